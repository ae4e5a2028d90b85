"""lazyflow_flow: a lazyflow task as a Prefect flow with the task's parameters."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect import Flow

from lazyflow_prefect import lazyflow_flow
from tests.prefect.workflows import executions, fanout, fanout_flow

pytestmark = pytest.mark.usefixtures("prefect_harness")

WORKFLOWS = Path(__file__).with_name("workflows.py")


def test_flow_has_the_task_parameters_as_schema() -> None:
    schema = fanout_flow.parameters
    assert list(schema.properties) == ["n", "marker_dir"]
    assert schema.required == ["n", "marker_dir"]
    assert schema.properties["n"]["type"] == "integer"
    assert schema.properties["marker_dir"]["type"] == "string"
    assert schema.properties["n"]["description"] == "how many squares to add up."
    assert fanout_flow.name == "fanout"
    assert fanout_flow.version == fanout.hash[:16]
    assert fanout_flow.description and fanout_flow.description.startswith("Sum of squares")


def test_flow_runs_the_workflow_and_coerces_parameters(marker_dir: Path, sqlite_url: str) -> None:
    flow = lazyflow_flow(fanout, db=sqlite_url, name="fanout-in-test")
    assert flow(n="3", marker_dir=str(marker_dir)) == 5  # "3" validated into 3
    assert flow(3, str(marker_dir)) == 5
    assert executions(marker_dir, "square-2") == 1, "the second run is cached"


def test_flow_from_a_reference_uses_lazyflow_db_by_default(marker_dir: Path) -> None:
    flow = lazyflow_flow("tests.prefect.workflows:fanout")
    assert flow(2, str(marker_dir)) == 1


def test_deployment_entrypoint_loads_the_flow() -> None:
    from prefect.client.orchestration import get_client
    from prefect.flows import load_flow_from_entrypoint

    assert fanout_flow.fn.__name__ == "fanout_flow"
    loaded = load_flow_from_entrypoint(f"{WORKFLOWS}:fanout_flow")
    assert isinstance(loaded, Flow)
    assert loaded.parameters.properties.keys() == fanout_flow.parameters.properties.keys()
    deployment = fanout_flow.to_deployment(name="nightly", parameters={"n": 10})
    assert deployment.entrypoint.endswith("workflows.py:fanout_flow")
    deployment_id = deployment.apply()
    with get_client(sync_client=True) as client:
        stored = client.read_deployment(deployment_id)
    schema = stored.parameter_openapi_schema
    assert schema["properties"]["n"]["type"] == "integer"
    assert schema["required"] == ["n", "marker_dir"]
    assert stored.parameters == {"n": 10}


def test_reserved_keyword_only_parameters_are_rejected() -> None:
    from lazyflow_core import task

    @task
    def needs_db(x: int, *, db: str) -> int:
        return x

    with pytest.raises(TypeError, match=r"keyword-only parameters \['db'\]"):
        lazyflow_flow(needs_db)


def test_positional_parameter_named_like_an_option_still_reaches_the_task(
    sqlite_url: str,
) -> None:
    from lazyflow_core import task

    @task
    def echo_db(db: str, tags: int = 2) -> str:
        return f"{db}:{tags}"

    flow = lazyflow_flow(echo_db, db=sqlite_url)
    assert flow("value", 5) == "value:5"
