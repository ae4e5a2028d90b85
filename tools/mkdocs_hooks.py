"""MkDocs hooks for lazyflow's documentation site.

Code blocks that cannot run as written are marked ```` ```python fragment ```` (the docs
test skips them, see tests/docs/test_snippets.py). Markdown's fenced-code syntax takes
one language word, so the marker is dropped before a page is rendered.
"""

from __future__ import annotations

import re
from typing import Any

_FRAGMENT = re.compile(r"^(\s*```+)python fragment\s*$", re.M)


def on_page_markdown(markdown: str, **_: Any) -> str:
    return _FRAGMENT.sub(r"\1python", markdown)
