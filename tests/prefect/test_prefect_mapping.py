"""run_lazyflow.map / .submit: each workflow argument mapped like a Prefect task's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prefect import flow, unmapped
from prefect import task as prefect_task
from prefect.exceptions import MappingLengthMismatch, MappingMissingIterable

from lazyflow_prefect import run_lazyflow
from lazyflow_prefect.report import artifact_key
from tests.prefect.runs import read_task_runs
from tests.prefect.workflows import executions, report_line

pytestmark = pytest.mark.usefixtures("prefect_harness")


@prefect_task
def regions() -> list[str]:
    return ["eu", "us"]


@prefect_task
def scale() -> int:
    return 7


@prefect_task
def echo(value: str) -> str:
    return value


def test_map_and_submit_with_positional_keyword_unmapped_and_future_arguments(
    marker_dir: Path, sqlite_url: str, read_artifacts: Any
) -> None:
    md = str(marker_dir)

    @flow
    def daily() -> dict[str, Any]:
        days = ["d1", "d2"]
        # Positional: a list, a future of a list (mapped), a future of an int and a
        # string (static), the workflow itself unmapped.
        by_position = run_lazyflow.map(
            unmapped(report_line), days, regions.submit(), scale.submit(), md, db=sqlite_url
        )
        # Keyword: a list of futures (each run gets one), a list, a static value.
        by_keyword = run_lazyflow.map(
            report_line,
            day=days,
            region=echo.map(["north", "south"]),
            scale=[1, 2],
            marker_dir=md,
            db=sqlite_url,
        )
        single = run_lazyflow.submit(
            report_line, "d9", region="eu", scale=scale.submit(), marker_dir=md, db=sqlite_url
        )
        states = run_lazyflow.map(
            report_line, ["d3"], "eu", 1, md, db=sqlite_url, return_state=True
        )
        return {
            "position": by_position.result(),
            "keyword": by_keyword.result(),
            "single": single.result(),
            "state": [s.message for s in states],
        }

    state = daily(return_state=True)
    out = state.result()
    assert out["position"] == ["d1/eu:7", "d2/us:7"]
    assert out["keyword"] == ["d1/north:1", "d2/south:2"]
    assert out["single"] == "d9/eu:7"
    assert out["state"] == ["1 job, 0 cached"]
    assert executions(marker_dir, "report-d1-eu") == 1
    assert not list(marker_dir.glob("report-d1-d2*")), "a list never reaches the workflow whole"

    flow_run_id = state.state_details.flow_run_id

    def lazyflow_runs(runs: list[Any]) -> list[str]:
        return sorted(r.name for r in runs if r.name.startswith("lazyflow "))

    runs = read_task_runs(flow_run_id, until=lambda runs: len(lazyflow_runs(runs)) >= 6)
    names = lazyflow_runs(runs)
    assert len(names) == 6 and len(set(names)) == 6, names
    assert any(n.startswith(f"lazyflow {report_line.name}('d1', 'eu', 7, ") for n in names)
    base = artifact_key(report_line.name)
    summaries = {
        k for k in read_artifacts(flow_run_id) if k.startswith(base) and not k.endswith("-jobs")
    }
    # Five mapped runs with keys of their own, and the plain key of the submitted run.
    assert len(summaries) == 6 and base in summaries, summaries


def test_map_refuses_unequal_lengths_and_nothing_to_map(sqlite_url: str) -> None:
    @flow
    def unequal() -> Any:
        return run_lazyflow.map(report_line, ["d1", "d2"], ["eu"], 1, "x", db=sqlite_url)

    @flow
    def nothing() -> Any:
        return run_lazyflow.map(report_line, "d1", "eu", 1, "x", db=sqlite_url)

    with pytest.raises(MappingLengthMismatch, match=r"positional argument 2.: 1"):
        unequal()
    with pytest.raises(MappingMissingIterable, match="unmapped"):
        nothing()


def test_map_outside_a_flow_names_the_fix(sqlite_url: str) -> None:
    from lazyflow_core.integration import IntegrationError

    with pytest.raises(IntegrationError, match=r"no flow run to map in; call it inside a @flow"):
        run_lazyflow.map(report_line, ["d1", "d2"], unmapped(["eu"]), 1, "x", db=sqlite_url)
