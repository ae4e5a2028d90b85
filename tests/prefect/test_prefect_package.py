"""lazyflow_prefect uses only lazyflow's public API and loads cheaply for Prefect."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import lazyflow_core
from lazyflow_core import integration

PACKAGE = Path(__file__).resolve().parents[2] / "lazyflow_prefect"


def test_only_the_public_core_api_is_used() -> None:
    """``lazyflow_core`` and ``lazyflow_core.integration`` (what adapters use), nothing else."""
    public = {
        "lazyflow_core": set(lazyflow_core.__all__),
        "lazyflow_core.integration": set(integration.__all__),
    }
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lazyflow_core"):
                assert node.module in public, f"{path.name} imports {node.module}"
                names = {alias.name for alias in node.names}
                assert names <= public[node.module], f"{path.name}: {names}"


def test_importing_the_collection_does_not_import_the_engine() -> None:
    """Prefect imports the package (entry point prefect.collections) to find the block."""
    code = "import sys, lazyflow_prefect; print('lazyflow_core' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
