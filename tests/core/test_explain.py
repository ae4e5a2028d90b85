"""explain: a dry run says what would run and why, without running anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .workflows import Workflow

EXPLAIN = """
import json, sys
sys.path.insert(0, sys.argv[2])
import wf
from lazyflow_core import Scheduler
decisions = Scheduler(db=sys.argv[1]).explain(wf.main(3))
print(json.dumps([[d.task_name.rsplit('.', 1)[-1], d.action, d.reason, d.detail]
                  for d in decisions]))
"""


def _explain(tmp_path: Path, db_url: str) -> list[list[str]]:
    import json

    script = tmp_path / "explain.py"
    script.write_text(EXPLAIN)
    proc = subprocess.run(
        [sys.executable, str(script), db_url, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_explain_reasons_and_which_helper_changed(tmp_path: Path, db_url: str) -> None:
    wf = Workflow(tmp_path, db_url)
    assert _explain(tmp_path, db_url) == [
        ["main", "run", "new_task", "no call of this task is stored"]
    ]
    wf.run()
    (tmp_path / "ran.log").unlink()
    assert [d[1:3] for d in _explain(tmp_path, db_url)] == [["cached", "cached"]]
    assert not (tmp_path / "ran.log").exists()  # explain executed no task

    wf.edit("SCALE = 10", "SCALE = 11")
    decisions = _explain(tmp_path, db_url)
    # main's cached result is invalid because step (a task below it) changed, but its own
    # code and arguments are not: its stored returned expression is evaluated again, so
    # explain sees below it (the steps would run, combine needs their results).
    assert decisions[0] == [
        "main",
        "cached",
        "expression_reused",
        "its body would not run: task wf.step it called has changed, so the expression "
        "it returned is evaluated again",
    ]
    assert [d[:3] for d in decisions[1:]] == [
        ["step", "run", "code_changed"],
        ["step", "run", "code_changed"],
        ["step", "run", "code_changed"],
        ["combine", "unknown", "needs_result"],
    ]
    # each names what changed in step's code: the constant its helper reads
    assert all("constant SCALE changed; helper helper changed" in d[3] for d in decisions[1:4])
    wf.run()  # record the new versions, then change only the helper's constant back
    wf.edit("SCALE = 11", "SCALE = 12")
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, json; sys.path.insert(0, sys.argv[2]); import wf; "
            "from lazyflow_core import Scheduler; "
            "d = Scheduler(db=sys.argv[1]).explain(wf.step(1)); "
            "print(json.dumps([[x.reason, x.detail] for x in d]))",
            db_url,
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    [[reason, detail]] = __import__("json").loads(out.strip().splitlines()[-1])
    assert reason == "code_changed"
    assert "helper helper changed" in detail and "constant SCALE changed" in detail
