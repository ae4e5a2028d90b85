"""Arguments as Airflow renders them, and task names as Airflow imports DAG files."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def test_tasks_defined_in_a_dag_file_share_the_cache_from_any_folder(
    run_dag: Any, counter_dir: Path, xcom: Any, tmp_path: Path
) -> None:
    """The same DAG file in dags/site_a and dags/site_b (Airflow imports each under a
    module name made from its path): the second runs nothing, the tasks are named after
    the file."""
    db = f"sqlite:///{tmp_path}/lf.db"
    first = run_dag("lf_moved_site_a", db=db, counter_dir=counter_dir)
    second = run_dag("lf_moved_site_b", db=db, counter_dir=counter_dir)

    assert xcom(first, "lf") == xcom(second, "lf") == ["A", "B", "C"]
    assert len((counter_dir / "shout.log").read_text().splitlines()) == 3
    summary = xcom(second, "lf", "lazyflow_summary")
    assert summary["executed"] == 0 and summary["cached"] >= 1, summary
    names = set(xcom(first, "lf", "lazyflow_summary")["by_task"])
    assert names == {"lf_moved.shout_all", "lf_moved.shout"}


def test_rendered_strings_become_the_types_the_workflow_asks_for(
    run_dag: Any, counter_dir: Path, xcom_record: Any, tmp_path: Path
) -> None:
    """ "3" for an int, "true" for a bool, a path for a File: converted by the type hints,
    and the call is the one Python makes, so its result comes from the same cache."""
    src = tmp_path / "poem.txt"
    src.write_text("one\ntwo\nthree\nfour\n")
    db = f"sqlite:///{tmp_path}/lf.db"

    dr = run_dag("lf_coerce", db=db, counter_dir=counter_dir, src=str(src), n="3", shout="true")

    assert run_dag.states(dr)["lf"] == ("success", 1)
    assert xcom_record(counter_dir, "coerce")["value"] == ["ONE", "TWO", "THREE"]
    from lazyflow_core import File, Scheduler, load_task

    head_lines = load_task(f"{Path(__file__).parent / 'workflows.py'}:head_lines")
    with Scheduler(db=db) as sched:
        assert sched.run(head_lines(File(str(src)), 3, shout=True)) == ["ONE", "TWO", "THREE"]
    assert sched.last_run is not None and sched.last_run.cached == 1
