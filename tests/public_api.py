"""Shared check of the adapter packages: they import only lazyflow's public API."""

from __future__ import annotations

import ast
from pathlib import Path

import lazyflow_core
import lazyflow_core.integration


def imports_outside_the_public_api(package: Path) -> list[str]:
    """``file: module names`` for every import of lazyflow_core beyond its top-level names
    and ``lazyflow_core.integration`` (what adapters share, so internals can move)."""
    public = {
        "lazyflow_core": set(lazyflow_core.__all__),
        "lazyflow_core.integration": set(lazyflow_core.integration.__all__),
    }
    bad = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lazyflow_core"):
                names = {alias.name for alias in node.names}
                allowed = public.get(node.module or "")
                if allowed is None or not names <= allowed:
                    bad.append(f"{path.name}: {node.module} {sorted(names)}")
    return bad
