"""The look of every page citybase serves to people: the console's pages and the HTML scorecards
of quality render from this one stylesheet (inline, as the pages load nothing from elsewhere).

Identifiers (``code``, ``.mono``) wrap only where they do not fit a line at all: a request id or a
field name stays on one line on a desktop, and a table that cannot fit a phone scrolls inside its
own box rather than widening the page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from services.common import i18n

STYLESHEET: Final = """\
:root { --ink: #1d2733; --muted: #5b6877; --line: #d9dee5; --accent: #1f6feb; --bad: #b42318; --good: #067647; --warn: #b54708; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", "Noto Sans", sans-serif; color: var(--ink); background: #f6f8fa; }
header { display: flex; align-items: center; gap: 1.2rem; padding: .6rem 1.2rem; background: #0f2437; color: #fff; }
header a { color: #dbe7f5; text-decoration: none; }
header a:hover, header a.here { color: #fff; text-decoration: underline; }
header .brand { font-weight: 700; color: #fff; margin-right: .5rem; }
header .who { margin-left: auto; color: #b8c7d9; font-size: .9em; }
header form { margin: 0; }
main { max-width: 1200px; margin: 1.2rem auto; padding: 0 1.2rem; }
h1 { font-size: 1.5rem; margin: .2rem 0 1rem; }
h2 { font-size: 1.15rem; margin: 1.6rem 0 .6rem; }
section.card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 1rem 1.2rem; margin-bottom: 1rem; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: .9em; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .9em; overflow-wrap: break-word; }
td.mono { max-width: 26rem; font-size: .8em; }
a { color: var(--accent); }
.muted { color: var(--muted); }
.tag { display: inline-block; padding: 0 .45rem; border-radius: 999px; background: #eef2f6; font-size: .85em; margin-right: .2rem; }
.tag.sensitive, .tag.removed, .tag.fail, .tag.denied, .tag.rejected, .tag.revoked { background: #fde7e7; color: var(--bad); }
.tag.added, .tag.pass, .tag.success, .tag.approved, .tag.active { background: #e3f6ea; color: var(--good); }
.tag.changed, .tag.pending, .tag.suspended { background: #fff1dc; color: var(--warn); }
.score { font-weight: 700; }
.nowrap { white-space: nowrap; }
table.audit details summary { cursor: pointer; color: var(--muted); font-size: .85em; }
table.audit pre { white-space: pre-wrap; overflow-wrap: anywhere; font-size: .8em; max-height: 24rem; overflow: auto; margin: .3rem 0; }
table.audit tr.group td { background: #fafbfc; }
.alert { padding: .7rem 1rem; border-radius: 6px; margin-bottom: 1rem; background: #fde7e7; color: var(--bad); border: 1px solid #f5c2c0; }
form.inline { display: inline; }
form.stacked { display: flex; flex-direction: column; align-items: flex-start; gap: .55rem; margin: 0 0 1rem; }
form.stacked label { display: flex; flex-direction: column; gap: .15rem; max-width: 100%; }
form.stacked input[type=text], form.stacked textarea, form.stacked select { max-width: 100%; }
form.stacked fieldset { border: 1px solid var(--line); border-radius: 4px; max-width: 100%; }
.field-error { display: block; color: var(--bad); font-size: .85em; }
.help { color: var(--muted); font-size: .85em; margin: 0; }
.actions { display: flex; flex-wrap: wrap; gap: .8rem; align-items: flex-start; }
.actions > form, .actions > label { max-width: 100%; min-width: 0; }
.key-once { font-size: 1.05em; padding: .6rem .8rem; background: #fff8e6; border: 1px solid #f3d19c; border-radius: 6px; overflow-wrap: anywhere; }
form.filters { display: flex; flex-wrap: wrap; gap: .5rem; align-items: end; margin-bottom: 1rem; }
form.filters label { display: flex; flex-direction: column; font-size: .85em; color: var(--muted); }
input, select, textarea, button { font: inherit; padding: .3rem .5rem; border: 1px solid var(--line); border-radius: 4px; }
button { background: var(--accent); color: #fff; border-color: var(--accent); cursor: pointer; }
button.secondary { background: #fff; color: var(--ink); border-color: var(--line); }
button.danger { background: var(--bad); border-color: var(--bad); }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: .8rem; }
.stat { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .7rem 1rem; }
.stat b { display: block; font-size: 1.4rem; }
svg.chart { background: #fff; border: 1px solid var(--line); border-radius: 6px; max-width: 100%; height: auto; }
svg.chart .grid-line { stroke: #e6eaef; }
svg.chart .axis { fill: var(--muted); font-size: 11px; }
svg.chart .line { fill: none; stroke: var(--accent); stroke-width: 2; }
svg.chart .dot { fill: var(--accent); }
.scroll { max-width: 100%; overflow-x: auto; }
header nav.lang { display: flex; gap: .5rem; font-size: .85em; }
header nav.lang a[aria-current] { color: #fff; font-weight: 600; text-decoration: none; }
@media (max-width: 700px) {
  header { flex-wrap: wrap; gap: .5rem .9rem; } header .who { margin-left: 0; }
  main { padding: 0 .6rem; }
  table { display: block; overflow-x: auto; }
  th, td { min-width: 6.5rem; }
  td.muted, td.mono { min-width: 13rem; }
  code, .mono { overflow-wrap: normal; word-break: normal; }
}
"""


def page_environment(templates: Path) -> Environment:
    """Jinja2 for the pages of one service: HTML-escaped, gettext in the language of the work in
    hand (:mod:`services.common.i18n`; one environment serves Chinese and English pages at the
    same time), the locale's formats as filters, and :data:`STYLESHEET` as ``stylesheet``."""
    env = Environment(
        loader=FileSystemLoader(templates),
        autoescape=select_autoescape(default=True),
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters["number"] = lambda value, digits=None: i18n.format_number(value, digits=digits)
    env.filters["percent"] = i18n.format_percent
    env.filters["when"] = i18n.format_datetime
    # CSS is raw text inside <style>: escaped quotes would break its font names.
    env.globals["stylesheet"] = Markup(STYLESHEET)
    return env
