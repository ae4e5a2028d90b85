"""Every function of lazyflow_core (the CLI, the engine, the store, the executors, the
UI) fits on a screen: radon grade C or better (cyclomatic complexity at most 20)."""

from __future__ import annotations

from pathlib import Path

import pytest
import radon.complexity as radon

CORE = Path(__file__).resolve().parents[2] / "lazyflow_core"
FILES = sorted(p for p in CORE.rglob("*.py") if "migrations" not in p.parts)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(CORE)))
def test_functions_are_grade_c_or_better(path: Path) -> None:
    blocks = radon.cc_visit(path.read_text())
    worse = [
        f"{b.name} ({radon.cc_rank(b.complexity)}, {b.complexity})"
        for b in blocks
        if b.complexity > 20
    ]
    assert not worse, f"{path.name}: {', '.join(worse)}"
