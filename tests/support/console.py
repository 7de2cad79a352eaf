"""Reading the console's pages in tests."""

from __future__ import annotations

import html
import re

ISSUED_KEY = re.compile(r'<code id="issued-key">([^<]+)</code>')
"""The key on the page that shows a new key once."""


def issued_key(page: str) -> str:
    found = ISSUED_KEY.search(page)
    assert found, "the page shows no new key"
    return html.unescape(found.group(1))
