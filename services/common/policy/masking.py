"""Field masking for grants: what one masked value becomes, compiled once per grant.

A grant masks a field by path (``patient_id``, ``location.lat``, ``contacts[].phone``) with one of
four kinds. The rules, which feeds apply to every delivered record:

- ``hash``: ``"h:"`` followed by the first :data:`HASH_HEX_CHARS` hex digits (128 bits) of
  keyed BLAKE2b of the value's canonical JSON (:func:`canonical_json`), keyed per grant with 256
  random bits the catalog makes when it creates the grant (:func:`services.common.policy.new_hash_key`)
  and hands to feeds only, inside the grant event on the internal bus; no API returns it. What a
  hash promises: equal values hash equally under one grant, in every process and every version
  of the grant, so a scenario's records still join on the field (*linkable within one grant*);
  two grants' hashes of one value differ, even two grants of one scenario, so they cannot be
  joined (*not linkable across grants*); and since the key is random and never leaves the
  platform, the receiver cannot hash a guessed value (a patient id from a small space) to find
  which one it was (*not reversible by the receiver*). ``1`` and ``"1"`` differ.
- ``redact``: the field is removed from the output (not set to null), so that a consumer never
  takes a hidden value for a real null. Inside an array (``tags[]``) a removed item becomes null,
  so that positions stay.
- ``partial``: the value's text (a string as is, any other value as its canonical JSON) keeps
  ``keep_prefix`` leading and ``keep_suffix`` trailing characters (default 3 and 4) and has one
  ``*`` per other character: ``13812345678`` -> ``138****5678``. A value too short to keep
  anything (``len <= keep_prefix + keep_suffix``) is all stars.
- ``generalize``: numbers are rounded to ``precision`` decimal places (default 2: about a
  kilometre for coordinates; negative rounds to tens, hundreds...). An ISO 8601 date
  (``2026-11-24``) or timestamp (``2026-11-24T09:13:11+08:00``: extended form, ``T``, ``t`` or
  a space between date and time, any offset or none) is truncated to ``granularity`` (``year``,
  ``month``, ``day``, ``hour``; default ``month`` for dates, ``day`` for timestamps) and stays a
  valid date or timestamp with the same separator and offset (``2026-11-01``,
  ``2026-11-24T00:00:00+08:00``). Any other value (other text, an impossible date such as
  ``2026-13-01``, booleans, objects, arrays) cannot be coarsened and is removed, as by
  ``redact``.

A null stays null under ``hash``, ``partial`` and ``generalize`` (there is nothing to hide);
``redact`` removes the field whatever it holds. Masks on nested paths nest: a value's
descendants are masked first, and the value's own mask applies to the result, so a mask named on
a parent never shows what a mask on a child hides. Where a record does not have the shape a nested
path expects (``location.lat`` but ``location`` is a string), the value on the path is removed
rather than delivered unmasked.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from services.common.i18n import N_, Sentence

MaskingKind = Literal["hash", "redact", "partial", "generalize"]
Granularity = Literal["year", "month", "day", "hour"]

HASH_PREFIX = "h:"
HASH_HEX_CHARS = 32
"""Hex digits of a hash: 128 bits, far beyond any dataset's collision risk."""
DEFAULT_KEEP_PREFIX = 3
DEFAULT_KEEP_SUFFIX = 4
DEFAULT_PRECISION = 2
MAX_PRECISION = 15
"""Precision beyond this is the full precision of a float anyway; larger values are refused."""
MAX_KEEP = 1024
DEFAULT_DATE_GRANULARITY: Granularity = "month"
DEFAULT_TIMESTAMP_GRANULARITY: Granularity = "day"

REMOVED: Any = type("Removed", (), {"__repr__": lambda self: "REMOVED", "__slots__": ()})()
"""What a mask returns for a value that must not appear at all: the caller drops the key."""

MaskFunction = Callable[[Any], Any]

_OPTIONS: dict[str, tuple[str, ...]] = {
    "hash": (),
    "redact": (),
    "partial": ("keepPrefix", "keepSuffix"),
    "generalize": ("precision", "granularity"),
}


@dataclass(frozen=True)
class FieldMask:
    """One field's masking in a grant; unset options take the defaults of the module docstring."""

    kind: MaskingKind
    keep_prefix: int | None = None
    keep_suffix: int | None = None
    precision: int | None = None
    granularity: str | None = None

    def __post_init__(self) -> None:
        problem = _option_problem(self)
        if problem:
            raise ValueError(problem)

    @classmethod
    def from_value(cls, value: Any) -> FieldMask:
        """Read a masking rule as grants and contracts write it; raise :class:`ValueError` saying
        what is expected.

        ``"hash"``, ``{"kind": "partial", "keepPrefix": 3, "keepSuffix": 4}``,
        ``{"kind": "generalize", "precision": 2, "granularity": "month"}``.
        """
        if isinstance(value, FieldMask):
            return value
        if isinstance(value, str):
            value = {"kind": value}
        if not isinstance(value, Mapping):
            raise ValueError(
                Sentence(
                    N_(
                        "a masking rule is a kind (hash, redact, partial, generalize) or a mapping with 'kind'"
                    )
                )
            )
        kind = value.get("kind")
        if kind not in _OPTIONS:
            raise ValueError(_kind_problem(kind))
        allowed = _OPTIONS[kind]
        unknown = sorted(str(name) for name in value if name != "kind" and name not in allowed)
        if unknown:
            if allowed:
                raise ValueError(
                    Sentence(
                        N_("a %(kind)s masking rule takes only %(allowed)s, not %(unknown)s"),
                        kind=kind,
                        allowed=", ".join(allowed),
                        unknown=", ".join(unknown),
                    )
                )
            raise ValueError(
                Sentence(
                    N_("a %(kind)s masking rule takes no options, not %(unknown)s"),
                    kind=kind,
                    unknown=", ".join(unknown),
                )
            )
        return cls(
            kind,
            keep_prefix=value.get("keepPrefix"),
            keep_suffix=value.get("keepSuffix"),
            precision=value.get("precision"),
            granularity=value.get("granularity"),
        )

    def to_value(self) -> dict[str, Any]:
        """The camelCase mapping :meth:`from_value` reads, with only the options that are set."""
        value: dict[str, Any] = {"kind": self.kind}
        for key, option in (
            ("keepPrefix", self.keep_prefix),
            ("keepSuffix", self.keep_suffix),
            ("precision", self.precision),
            ("granularity", self.granularity),
        ):
            if option is not None:
                value[key] = option
        return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _kind_problem(kind: Any) -> Sentence:
    return Sentence(
        N_("masking kind must be one of %(kinds)s, not %(kind)r"), kinds=", ".join(_OPTIONS), kind=kind
    )


def _option_problem(mask: FieldMask) -> Sentence | None:
    if mask.kind not in _OPTIONS:
        return _kind_problem(mask.kind)
    set_options: dict[str, Any] = {
        "keepPrefix": mask.keep_prefix,
        "keepSuffix": mask.keep_suffix,
        "precision": mask.precision,
        "granularity": mask.granularity,
    }
    foreign = [name for name, option in set_options.items() if option is not None]
    foreign = [name for name in foreign if name not in _OPTIONS[mask.kind]]
    if foreign:
        return Sentence(
            N_("a %(kind)s masking rule takes no %(options)s"), kind=mask.kind, options=", ".join(foreign)
        )
    for name in ("keepPrefix", "keepSuffix"):
        keep = set_options[name]
        if keep is not None and not (_is_int(keep) and 0 <= keep <= MAX_KEEP):
            return Sentence(
                N_("%(name)s must be an integer from 0 to %(most)s, not %(value)r"),
                name=name,
                most=MAX_KEEP,
                value=keep,
            )
    if mask.precision is not None and not (
        _is_int(mask.precision) and -MAX_PRECISION <= mask.precision <= MAX_PRECISION
    ):
        return Sentence(
            N_("precision must be an integer from %(least)s to %(most)s, not %(value)r"),
            least=-MAX_PRECISION,
            most=MAX_PRECISION,
            value=mask.precision,
        )
    if mask.granularity is not None and mask.granularity not in get_args(Granularity):
        return Sentence(
            N_("granularity must be one of %(allowed)s, not %(value)r"),
            allowed=", ".join(get_args(Granularity)),
            value=mask.granularity,
        )
    return None


# --- canonical JSON and the keyed hash --------------------------------------------------------

_encode = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=True).encode
_encode_str: Callable[[str], str] = json.encoder.encode_basestring


def _normalized(value: Any) -> Any:
    """The value with integral floats as integers, so that ``1.0`` and ``1`` are one JSON number."""
    if type(value) is float:
        return int(value) if value.is_integer() else value
    if isinstance(value, Mapping):
        return {str(key): _normalized(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_normalized(item) for item in value]
    return value


def canonical_json(value: Any) -> str:
    """The JSON text hashes and partial masks are computed on.

    Compact separators, object keys sorted, non-ASCII characters as themselves (UTF-8 when
    hashed), integral numbers without a fraction (``1.0`` is ``1``, as in RFC 8785). Values
    that are not JSON (a datetime handed in by a caller) are taken as their ``str``.
    """
    kind = type(value)
    if kind is str:
        return _encode_str(value)
    if kind is int:
        return str(value)
    try:
        return _encode(_normalized(value))
    except (TypeError, ValueError):
        return _encode_str(str(value))


HASH_PERSON = b"citybase/hash/v1"
"""BLAKE2b personalization of the ``hash`` mask: its hashes differ from any other use of a key."""


@dataclass(frozen=True)
class StringHash:
    """The ``hash`` mask under one key, in the parts that hash a ``str``, for code that writes the
    hash out where a record is built instead of calling :attr:`mask` per value (:mod:`.specialized`).

    The hash of a ``str`` is ``prefix + state.hexdigest()`` for ``state = copy()`` updated with
    ``encode(value).encode()``; a value of any other type, or one whose text UTF-8 refuses (a lone
    surrogate: ``UnicodeEncodeError``), is :attr:`mask`'s, which is the whole rule.
    """

    mask: Callable[[Any], str | None]
    copy: Callable[[], Any]
    """The keyed state's ``copy``: the key block is laid down once, not per value."""
    encode: Callable[[str], str]
    prefix: str


def string_hash(hash_key: bytes) -> StringHash:
    """The ``hash`` mask under one key: keyed BLAKE2b (RFC 7693's MAC mode, a PRF like HMAC)
    over the value's canonical JSON, 128-bit digest (None stays None).

    Keyed BLAKE2b rather than HMAC-SHA256 because it is one pass instead of two: the keyed state
    is built once here and copied per value, at about 60 % of the cost of the best HMAC-SHA256 in
    CPython, and feeds pays it on every sensitive value of every delivered record.
    """
    if not hash_key:
        raise ValueError("the hash key must not be empty")
    # BLAKE2b takes keys up to 64 bytes; a longer one is hashed down first.
    key = hash_key if len(hash_key) <= 64 else hashlib.blake2b(hash_key).digest()
    keyed = hashlib.blake2b(key=key, digest_size=HASH_HEX_CHARS // 2, person=HASH_PERSON)
    copy, encode_str, prefix = keyed.copy, _encode_str, HASH_PREFIX

    def hash_value(value: Any) -> str | None:
        if type(value) is str:
            text = encode_str(value)
        elif value is None:
            return None
        else:
            text = canonical_json(value)
        state = copy()
        try:
            state.update(text.encode())
        except UnicodeEncodeError:  # a lone surrogate (\ud800), which strict UTF-8 refuses
            state.update(text.encode("utf-8", "surrogatepass"))
        return prefix + state.hexdigest()

    return StringHash(hash_value, copy, encode_str, prefix)


def hasher(hash_key: bytes) -> Callable[[Any], str | None]:
    """The ``hash`` mask under one key (:func:`string_hash`), as one function of the value."""
    return string_hash(hash_key).mask


# --- the masks ---------------------------------------------------------------------------------


def _partial(keep_prefix: int, keep_suffix: int) -> MaskFunction:
    keep = keep_prefix + keep_suffix

    def partial(value: Any) -> Any:
        if value is None:
            return None
        text = value if type(value) is str else canonical_json(value)
        length = len(text)
        if length <= keep:
            return "*" * length
        return text[:keep_prefix] + "*" * (length - keep) + text[length - keep_suffix :]

    return partial


# The date part kept per granularity, as (characters of "YYYY-MM-DD" kept, what completes it).
_DATE_CUT: dict[str, tuple[int, str]] = {
    "year": (5, "01-01"),
    "month": (8, "01"),
    "day": (10, ""),
    "hour": (10, ""),
}


_SEPARATORS = frozenset({"T", "t", " "})
"""What may stand between the date and the time of a timestamp."""
_TIMESTAMP_SHAPES = frozenset(f"--{separator}" for separator in _SEPARATORS)
"""Characters 4, 7 and 10 of an extended-form timestamp (``YYYY-MM-DD`` then its separator)."""
_SIGNS = frozenset({"+", "-"})
_USUAL_TIMESTAMP_MARKS = frozenset(f"--{separator}::{sign}" for separator in _SEPARATORS for sign in _SIGNS)
"""Characters 4, 7, 10, 13, 16 and 19 (``value[4:20:3]``) of the usual timestamp: ``YYYY-MM-DD``,
its separator, ``hh:mm:ss``, then a signed offset; one slice tells it from any other text."""


def _timestamp_cut(granularity: Granularity) -> tuple[int, str]:
    """(Characters kept, what follows them) of a timestamp cut to ``granularity``; day and hour
    keep the date and its separator as they are (and the hour), so their cut is one slice (0 for
    year and month, whose cut is made of parts)."""
    return {"day": (11, "00:00:00"), "hour": (13, ":00:00")}.get(granularity, (0, "00:00:00"))


@dataclass(frozen=True)
class TimestampCut:
    """``generalize`` to the day or the hour of the usual timestamp (``YYYY-MM-DD``, its
    separator, ``hh:mm:ss``, then a signed offset), for code that writes the cut out where a
    record is built instead of calling :attr:`mask` per value (:mod:`.specialized`).

    A ``str`` whose ``value[4:20:3]`` is in :attr:`marks` and which :attr:`parse` accepts becomes
    ``value[:kept] + midnight + value[19:]``, exactly what :attr:`mask` makes of it (its form is
    one the mask cuts the same way: the extended date, its separator, then the offset at 19);
    any other value is :attr:`mask`'s.
    """

    mask: MaskFunction
    parse: Callable[[str], Any]
    marks: frozenset[str]
    kept: int
    midnight: str


InlineMask = StringHash | TimestampCut
"""A top-level mask in the parts :mod:`.specialized` writes out for the values it usually meets."""


def inline_mask(mask: FieldMask, function: MaskFunction, keyed: StringHash | None) -> InlineMask | None:
    """``function`` (:func:`mask_function` of ``mask``, with the grant's :func:`string_hash`
    ``keyed``, None without a key) in parts to write out, or None for a mask that is called."""
    if mask.kind == "hash":
        return keyed if keyed is not None and keyed.mask is function else None
    if mask.kind == "generalize":
        granularity: Any = mask.granularity
        kept, midnight = _timestamp_cut(granularity or DEFAULT_TIMESTAMP_GRANULARITY)
        if kept:
            return TimestampCut(function, datetime.fromisoformat, _USUAL_TIMESTAMP_MARKS, kept, midnight)
    return None


def _generalize(
    precision: int, date_granularity: Granularity, timestamp_granularity: Granularity
) -> MaskFunction:
    # datetime.fromisoformat checks the text (a real date, a real time, an offset) in C, several
    # times faster than a regular expression; the output is then cut from the text itself, so
    # that it keeps its form and offset.
    parse = datetime.fromisoformat
    date_cut, date_end = _DATE_CUT[date_granularity]
    time_cut, time_end = _DATE_CUT[timestamp_granularity]
    kept, midnight = _timestamp_cut(timestamp_granularity)

    def generalize(value: Any) -> Any:
        kind = type(value)
        if kind is str:
            try:
                parsed = parse(value)
            except ValueError:
                try:  # RFC 3339 allows a lower-case t and z, which fromisoformat does not
                    parsed = parse(value.upper())
                except ValueError:
                    return REMOVED
            # the extended form YYYY-MM-DD[sep...], whose parts are where the cuts expect them
            if value[4:11:3] not in _TIMESTAMP_SHAPES:
                return value[:date_cut] + date_end if len(value) == 10 and value[4:8:3] == "--" else REMOVED
            if value[19:20] in _SIGNS:  # hh:mm:ss then the offset: the usual timestamp
                offset = value[19:]
            elif parsed.tzinfo is None:
                offset = ""
            elif value[-1] in "Zz":
                offset = value[-1]
            else:
                sign = value.rfind("+")
                offset = value[sign if sign > 10 else value.rfind("-") :]
            if kept:
                return f"{value[:kept]}{midnight}{offset}"
            return f"{value[:time_cut]}{time_end}{value[10]}{midnight}{offset}"
        if kind is int or kind is float:
            if kind is float and not math.isfinite(value):
                return value
            return round(value, precision)
        return None if value is None else REMOVED

    return generalize


def _redact(value: Any) -> Any:
    return REMOVED


def mask_function(mask: FieldMask, hash_value: Callable[[Any], str | None]) -> MaskFunction:
    """The function that masks one value by ``mask``: it returns the masked value, or
    :data:`REMOVED` when the value must not appear at all."""
    if mask.kind == "hash":
        return hash_value
    if mask.kind == "redact":
        return _redact
    if mask.kind == "partial":
        return _partial(
            DEFAULT_KEEP_PREFIX if mask.keep_prefix is None else mask.keep_prefix,
            DEFAULT_KEEP_SUFFIX if mask.keep_suffix is None else mask.keep_suffix,
        )
    granularity: Any = mask.granularity
    return _generalize(
        DEFAULT_PRECISION if mask.precision is None else mask.precision,
        granularity or DEFAULT_DATE_GRANULARITY,
        granularity or DEFAULT_TIMESTAMP_GRANULARITY,
    )


# --- nested paths ------------------------------------------------------------------------------

PathStep = tuple[str, int]
"""One step of a masking path: a key and how many array levels (``[]``) follow it."""

_SEGMENT = re.compile(r"([^.\[\]]+)((?:\[\])*)")


def parse_masking_path(path: str) -> tuple[PathStep, ...]:
    """``contacts[].phone`` -> ``(("contacts", 1), ("phone", 0))``; ValueError if malformed."""
    if not isinstance(path, str) or not path:
        raise ValueError(Sentence(N_("a masking path is a non-empty field name such as a, a.b or a[].b")))
    steps = []
    for segment in path.split("."):
        found = _SEGMENT.fullmatch(segment)
        if not found:
            raise ValueError(
                Sentence(
                    N_(
                        "masking path %(path)r is not field names joined by '.', each optionally followed by '[]'"
                    ),
                    path=path,
                )
            )
        steps.append((found.group(1), len(found.group(2)) // 2))
    return tuple(steps)


def may_remove(path: tuple[PathStep, ...], mask: FieldMask, *, keyed: bool) -> bool:
    """Whether ``mask`` on ``path`` can make :data:`REMOVED` of a top-level value: ``redact``,
    ``generalize`` (what it cannot coarsen), ``hash`` without a key (``keyed`` False), and a mask
    on a nested path (a value not of the shape the path expects). A keyed ``hash`` and a
    ``partial`` always give a value."""
    nested = len(path) > 1 or path[0][1] > 0
    return nested or mask.kind in ("redact", "generalize") or (mask.kind == "hash" and not keyed)


def _in_arrays(levels: int, inner: MaskFunction) -> MaskFunction:
    """Apply ``inner`` to every item of ``levels`` nested arrays; a removed item becomes null."""
    if levels == 0:
        return inner

    def each(value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, list):
            return REMOVED
        masked = [inner(item) for item in value]
        return [None if item is REMOVED else item for item in masked]

    return _in_arrays(levels - 1, each)


def _object(children: Mapping[str, MaskFunction]) -> MaskFunction:
    """Mask some keys of an object value (a copy; the record is never changed)."""
    items = tuple(children.items())

    def masked_object(value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            return REMOVED
        out = dict(value)
        for key, mask in items:
            if key in out:
                masked = mask(out[key])
                if masked is REMOVED:
                    del out[key]
                else:
                    out[key] = masked
        return out

    return masked_object


def compile_masks(
    masks: Mapping[tuple[PathStep, ...], MaskFunction],
) -> dict[str, MaskFunction]:
    """One function per top-level field from masks by parsed path.

    Masks nest: the masks beneath a value apply first, then the value's own mask to what they
    made of it. With masks on ``caller`` and ``caller.phone``, the phone is masked by its rule and
    ``caller``'s mask then sees only that, so no mask on a parent (a long ``partial``, a
    ``generalize``) can show what a mask on a child hides.
    """
    by_field: dict[str, dict[tuple[PathStep, ...], MaskFunction]] = {}
    for path, mask in masks.items():
        by_field.setdefault(path[0][0], {})[path] = mask
    return {name: _compile_field(paths, 0) for name, paths in by_field.items()}


def _compile_field(paths: Mapping[tuple[PathStep, ...], MaskFunction], depth: int) -> MaskFunction:
    """The function for the value at ``depth`` of ``paths``, which all share their first ``depth + 1`` keys."""
    by_levels: dict[int, dict[tuple[PathStep, ...], MaskFunction]] = {}
    for path, mask in paths.items():
        by_levels.setdefault(path[depth][1], {})[path] = mask
    # ``a[]`` is inside ``a``: the deeper array level is masked first, the shallower sees the result.
    functions: list[MaskFunction] = []
    for levels in sorted(by_levels, reverse=True):
        group = by_levels[levels]
        children: dict[str, dict[tuple[PathStep, ...], MaskFunction]] = {}
        for path, mask in group.items():
            if len(path) > depth + 1:
                children.setdefault(path[depth + 1][0], {})[path] = mask
        steps = (
            [_object({key: _compile_field(sub, depth + 1) for key, sub in children.items()})]
            if children
            else []
        )
        steps.extend(mask for path, mask in group.items() if len(path) == depth + 1)
        functions.append(_in_arrays(levels, _chain(steps)))
    return _chain(functions)


def _chain(functions: list[MaskFunction]) -> MaskFunction:
    """``functions`` applied in turn; a removed value stays removed."""
    if len(functions) == 1:
        return functions[0]
    steps = tuple(functions)

    def chained(value: Any) -> Any:
        for function in steps:
            value = function(value)
            if value is REMOVED:
                break
        return value

    return chained
