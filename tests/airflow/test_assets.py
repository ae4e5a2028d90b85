"""Airflow Assets: the files a lazyflow run writes become asset events, its inputs inlets."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _events(run_id: str) -> dict[str, dict[str, Any]]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetModel.uri, AssetEvent.extra)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetEvent.source_run_id == run_id)
        ).all()
    return {uri: extra for uri, extra in rows}


def _queued_dags() -> set[str]:
    from airflow.models.asset import AssetDagRunQueue
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return set(session.scalars(select(AssetDagRunQueue.target_dag_id)))


def test_written_files_emit_asset_events_that_schedule_a_downstream_dag(
    run_dag: Any, dagbag: Any, airflow_db: Path, counter_dir: Path, tmp_path: Path
) -> None:
    """Result and (inner_assets=True) intermediate files emit events through the alias;
    a DAG scheduled on the result file is queued. A cached re-run still emits the result
    file (written: false) but no intermediate file: nothing new was written."""
    folder = airflow_db / "assets"  # where the lf_assets DAG reads and writes
    folder.mkdir(exist_ok=True)
    (folder / "in.txt").write_text("hello assets")
    db = f"sqlite:///{tmp_path}/lf.db"
    upper, count = f"file://{folder}/upper.txt", f"file://{folder}/count.txt"

    first = run_dag("lf_assets", db=db, counter_dir=counter_dir)

    assert run_dag.states(first)["lf"] == ("success", 1)
    events = _events(first.run_id)
    assert set(events) == {upper, count}
    assert events[count]["written"] is True
    assert events[count]["task"] == "workflows.count_chars"
    assert events[count]["content_hash"]
    assert events[upper]["task"] == "workflows.copy_upper"
    summary_id = events[count]["lazyflow_execution_id"]
    assert summary_id and events[upper]["lazyflow_execution_id"] == summary_id
    assert "lf_asset_consumer" in _queued_dags()
    task = dagbag.get_dag("lf_assets").get_task("lf")
    assert [a.uri for a in task.inlets] == [f"file://{folder}/in.txt"]
    assert [a.name for a in task.outlets] == ["lazyflow.lf_assets.lf"]

    second = run_dag("lf_assets", db=db, counter_dir=counter_dir)

    again = _events(second.run_id)
    assert set(again) == {count}
    assert again[count]["written"] is False
