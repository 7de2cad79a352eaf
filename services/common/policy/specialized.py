"""A compiled grant policy as straight-line Python written for the grant's terms.

Feeds apply a grant's policy to every record they deliver, so its cost per record is feeds' cost.
A loop over the grant's fields, a call per field and a closure per filter condition cost more than
the masking itself; here the terms are written out once, when the grant version is compiled, as
the source of two functions: ``apply(record)`` and ``apply_many(records)`` (the same body in a
loop, without a call per record). The row filter's top-level conditions come first, as inline
tests, so a dropped record costs no mask; then the masked values, then the granted fields as one
dict display, in the grant's order. A top-level hash, and a cut of the usual timestamp to the day
or the hour, are written out for the values they usually meet (no call per value: they are most
of a record's cost), and hand any other value to their mask function.

The source holds only what this module writes: fixed statements and names it makes up
(``name_0``, ``mask_3``, ``condition_1``). Every field name, literal and mask function is handed
to the factory the source defines as an argument, never pasted into the text, so nothing a grant
says (and nothing of a record, which the source never sees) can become code. The meaning stays
that of :mod:`.masking` and :mod:`.row_filter`: a condition's inline test covers only the values
whose verdict is a plain Python comparison (a string field against a string literal, a number
against a number) and hands any other value to the condition :mod:`.row_filter` compiled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from services.common.policy import row_filter_syntax as syntax
from services.common.policy.masking import REMOVED, InlineMask, MaskFunction, StringHash, TimestampCut
from services.common.policy.row_filter import RowFilter, compile_condition
from services.common.policy.row_filter_syntax import Node, Operand

Apply = Callable[[Mapping[str, Any]], dict[str, Any] | None]
ApplyMany = Callable[[Iterable[Mapping[str, Any]]], list[dict[str, Any]]]
FieldStep = tuple[str, MaskFunction | None, bool, InlineMask | None]
"""A granted field, its mask (None: delivered as it is), whether the mask can remove it, and the
mask in parts to write out (None: the mask is called)."""

_OPERATORS = {"==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
"""The row filter's comparisons as Python writes them (only these strings reach the source)."""

_DROP = "DROP"
"""Where a guard leaves the record out: ``return None`` in ``apply``, ``continue`` in the loop."""


class _Source:
    """The lines of the functions and the arguments they are compiled with."""

    def __init__(self) -> None:
        self.arguments: dict[str, Any] = {}
        self.made = 0

    def local(self, role: str) -> str:
        """A made-up name for a variable of the functions, unlike any other."""
        self.made += 1
        return f"{role}_{self.made - 1}"

    def constant(self, role: str, value: Any) -> str:
        """A made-up name under which ``value`` reaches the functions."""
        name = self.local(role)
        self.arguments[name] = value
        return name


def _top_field(operand: Operand) -> str | None:
    """The field name of a top-level field operand (``district``, not ``location.district``)."""
    if isinstance(operand, syntax.Field) and len(operand.path) == 1:
        return operand.path[0]
    return None


def _guard(node: Node, source: _Source) -> list[str]:
    """Lines that drop the record unless ``node`` is true of it."""
    fallback = source.constant("condition", compile_condition(node))
    otherwise = [f"elif {fallback}(record) is not True:", f"    {_DROP}"]
    if isinstance(node, syntax.Compare) and isinstance(node.right, syntax.Literal):
        field, literal_type = _top_field(node.left), type(node.right.value)
        if field is not None and literal_type in (str, int, float):
            value_test = (
                "type(value) is str" if literal_type is str else "type(value) is int or type(value) is float"
            )
            name, literal = source.constant("name", field), source.constant("literal", node.right.value)
            return [
                f"value = record.get({name})",
                f"if {value_test}:",
                f"    if not (value {_OPERATORS[node.operator]} {literal}):",
                f"        {_DROP}",
                *otherwise,
            ]
    if isinstance(node, syntax.Member) and (field := _top_field(node.operand)) is not None:
        name = source.constant("name", field)
        strings = source.constant("strings", frozenset(item for item in node.items if type(item) is str))
        return [
            f"value = record.get({name})",
            "if type(value) is str:",
            f"    if value {'in' if node.negated else 'not in'} {strings}:",
            f"        {_DROP}",
            *otherwise,
        ]
    if isinstance(node, syntax.IsNull) and (field := _top_field(node.operand)) is not None:
        name = source.constant("name", field)
        return [f"if record.get({name}) is {'None' if node.negated else 'not None'}:", f"    {_DROP}"]
    return [f"if {fallback}(record) is not True:", f"    {_DROP}"]


def _masked(key: str, masked: str, function: str, form: InlineMask | None, source: _Source) -> list[str]:
    """Lines that set ``masked`` to the masked value of ``record[key]``.

    A hash or a timestamp cut is written out for the values it usually meets (a string, the usual
    timestamp), which saves a call per value, and hands any other value to its mask ``function``
    (:class:`~services.common.policy.masking.StringHash`,
    :class:`~services.common.policy.masking.TimestampCut` say when and why that gives the same).
    """
    if isinstance(form, StringHash):
        copy, encode = source.constant("copy", form.copy), source.constant("encode", form.encode)
        prefix = source.constant("prefix", form.prefix)
        return [
            f"value = record[{key}]",
            "if type(value) is str:",
            f"    state = {copy}()",
            "    try:",
            f"        state.update({encode}(value).encode())",
            "    except UnicodeEncodeError:",
            f"        {masked} = {function}(value)",
            "    else:",
            f"        {masked} = {prefix} + state.hexdigest()",
            "else:",
            f"    {masked} = {function}(value)",
        ]
    if isinstance(form, TimestampCut):
        marks, parse = source.constant("marks", form.marks), source.constant("parse", form.parse)
        kept, midnight = source.constant("kept", form.kept), source.constant("midnight", form.midnight)
        return [
            f"value = record[{key}]",
            f"if type(value) is str and value[4:20:3] in {marks}:",
            "    try:",
            f"        {parse}(value)",
            "    except ValueError:",
            f"        {masked} = {function}(value)",
            "    else:",
            f"        {masked} = f'{{value[:{kept}]}}{{{midnight}}}{{value[19:]}}'",
            "else:",
            f"    {masked} = {function}(value)",
        ]
    return [f"{masked} = {function}(record[{key}])"]


def _fields(steps: Sequence[FieldStep], source: _Source) -> list[str]:
    """Lines that make ``out``: the granted fields of ``record``, masked, in the grant's order.

    A record that holds every granted field (the usual case) is built as one dict display, sized
    once, after its masked values; a record without some (its ``[]`` raises KeyError, as a
    Mapping's does) is built field by field, calling the masks again: they have no side effects.
    """
    if not steps:
        return ["out = {}"]
    masking: list[str] = []
    display: list[str] = []
    removals: list[str] = []
    one_by_one: list[str] = []
    for name, mask, removes, form in steps:
        key = source.constant("name", name)
        one_by_one.append(f"if {key} in record:")
        if mask is None:
            display.append(f"{key}: record[{key}]")
            one_by_one.append(f"    out[{key}] = record[{key}]")
            continue
        function, masked = source.constant("mask", mask), source.local("masked")
        masking += _masked(key, masked, function, form, source)
        display.append(f"{key}: {masked}")
        if removes:
            removals += [f"    if {masked} is REMOVED:", f"        del out[{key}]"]
        one_by_one += (
            [
                f"    value = {function}(record[{key}])",
                "    if value is not REMOVED:",
                f"        out[{key}] = value",
            ]
            if removes
            else [f"    out[{key}] = {function}(record[{key}])"]
        )
    return [
        "try:",
        *(f"    {line}" for line in masking),
        f"    out = {{{', '.join(display)}}}",
        "except KeyError:",
        "    out = {}",
        *(f"    {line}" for line in one_by_one),
        *(["else:", *removals] if removals else []),
    ]


def _indented(lines: Sequence[str], depth: int, drop: str) -> str:
    pad = "    " * depth
    return "".join(f"{pad}{line.replace(_DROP, drop)}\n" for line in lines)


def specialize(steps: Sequence[FieldStep], row_filter: RowFilter | None) -> tuple[Apply, ApplyMany]:
    """``apply`` and ``apply_many`` of a policy: granted fields with their masks, in order, and
    the row filter (None: every record passes)."""
    source = _Source()
    guards: list[str] = []
    if row_filter is not None:
        tree = row_filter.tree
        for node in tree.operands if isinstance(tree, syntax.All) else (tree,):
            guards += _guard(node, source)
    fields = _fields(steps, source)
    names = ", ".join(["REMOVED", "type", "str", *source.arguments])
    # apply_many reads the arguments (and the builtins its tests call) once into locals, which
    # the loop reads faster than the closure's cells or the builtins; apply, called once per
    # record, reads the cells.
    text = (
        f"def specialized({names}):\n"
        "    def apply(record):\n"
        f"{_indented(guards, 2, 'return None')}"
        f"{_indented(fields, 2, '')}"
        "        return out\n"
        "\n"
        "    def apply_many(records):\n"
        f"        {names}, = arguments\n"
        "        delivered = []\n"
        "        for record in records:\n"
        f"{_indented(guards, 3, 'continue')}"
        f"{_indented(fields, 3, '')}"
        "            delivered.append(out)\n"
        "        return delivered\n"
        "\n"
        f"    arguments = ({names},)\n"
        "    return apply, apply_many\n"
    )
    namespace: dict[str, Any] = {}
    exec(compile(text, "<citybase grant policy>", "exec"), namespace)
    functions: tuple[Apply, ApplyMany] = namespace["specialized"](REMOVED, type, str, **source.arguments)
    return functions
