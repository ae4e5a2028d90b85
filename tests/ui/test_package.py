"""The browser is a package of its own: the rest of the core does not import it (the
web framework is an extra), and its front end ships as package data."""

from __future__ import annotations

import ast
import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "lazyflow_core"
UI = CORE / "ui"


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the file's package
                package = path.relative_to(ROOT).with_suffix("").parts[: -node.level]
                base = ".".join((*package, *([base] if base else [])))
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_only_the_ui_and_viz_commands_import_the_browser() -> None:
    allowed = {CORE / "cli" / "ui.py", CORE / "cli" / "viz.py"}
    for path in CORE.rglob("*.py"):
        if UI in path.parents or path in allowed:
            continue
        bad = {n for n in _imported(path) if n.startswith("lazyflow_core.ui")}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_viz_needs_no_web_framework() -> None:
    """`views` and the package root are what `lazyflow viz` loads: no FastAPI there."""
    for name in ("__init__.py", "views.py"):
        bad = {n for n in _imported(UI / name) if n.split(".")[0] in ("fastapi", "starlette")}
        assert not bad, f"ui/{name} imports {sorted(bad)}"


def test_templates_and_static_files_are_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["lazyflow_core"]
    shipped = [p for p in UI.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    files = [str(p.relative_to(CORE)) for p in shipped if p.suffix != ".py"]
    assert any(f.endswith("cytoscape.min.js") for f in files)
    missing = [f for f in files if not any(fnmatch.fnmatch(f, pat) for pat in patterns)]
    assert missing == []
    licences = {p.name for p in (UI / "static" / "vendor").glob("LICENSE*")}
    assert {"LICENSE.cytoscape", "LICENSE.cytoscape-dagre", "LICENSE.dagre"} <= licences
