"""The documentation site builds with no warning (``mkdocs build --strict``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).with_name("mkdocs")
    proc = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    pages = {p.parent.name for p in (tmp_path / "site").rglob("index.html")}
    assert {"tutorial", "redun", "reference", "config", "cli"} <= pages
    reference = (tmp_path / "site" / "reference" / "index.html").read_text()
    assert "scheduler_settings" in reference and "Scheduler" in reference
