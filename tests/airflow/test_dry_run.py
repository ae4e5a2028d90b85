"""LazyFlowOperator(dry_run=True): what `lazyflow explain` says, as the task's XCom."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def test_dry_run_returns_the_decisions_and_runs_nothing(
    run_dag: Any, counter_dir: Path, executions: Any, xcom: Any, tmp_path: Path
) -> None:
    dr = run_dag("lf_explain", db=f"sqlite:///{tmp_path}/lf.db", counter_dir=counter_dir)

    assert {t: s for t, (s, _) in run_dag.states(dr).items()} == {
        "lf": "success",
        "explain_same": "success",
        "explain_more": "success",
    }
    assert executions(counter_dir, "square") == 3  # only the real run executed
    same = xcom(dr, "explain_same")
    assert (same["run"], same["cached"], same["unknown"], same["predicted"]) == (0, 1, 0, 0)
    assert "decisions_left_out" not in same  # small enough: every decision is listed
    [cached] = same["decisions"]
    assert (cached["action"], cached["reason"]) == ("cached", "cached")
    assert cached["call"].startswith("sum_of_squares(3, ")
    more = xcom(dr, "explain_more")
    # the entry call would run; below it, the calls its last run made are predicted
    # (add_all and the three squares, reused if called again), never run
    # predicted calls are counted apart: they are guesses, not calls found cached
    assert (more["run"], more["cached"], more["unknown"]) == (1, 0, 0)
    assert (more["predicted"], more["predicted_cached"], more["predicted_run"]) == (4, 4, 0)
    assert "decisions_left_out" not in more
    decision, *below = more["decisions"]
    assert [d["predicted"] for d in more["decisions"]] == [False, True, True, True, True]
    assert {d["task_name"] for d in below} == {"workflows.add_all", "workflows.square"}
    assert all(d["action"] == "cached" for d in below)
    assert decision["action"] == "run" and not decision["predicted"]
    assert decision["reason"] == "args_changed"
    assert "n (was 3, now 4)" in decision["detail"]
