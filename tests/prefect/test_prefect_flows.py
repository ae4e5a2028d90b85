"""lazyflow_flow: a lazyflow task as a Prefect flow with the task's parameters."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect import Flow

from lazyflow_core.integration import IntegrationTypeError
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

    with pytest.raises(TypeError, match=r"keyword-only parameters \['db'\]") as info:
        lazyflow_flow(needs_db)
    assert isinstance(info.value, IntegrationTypeError)


def test_positional_parameter_named_like_an_option_still_reaches_the_task(
    sqlite_url: str,
) -> None:
    from lazyflow_core import task

    @task
    def echo_db(db: str, tags: int = 2) -> str:
        return f"{db}:{tags}"

    flow = lazyflow_flow(echo_db, db=sqlite_url)
    assert flow("value", 5) == "value:5"


def test_file_parameters_are_path_strings_in_the_schema(tmp_path: Path, sqlite_url: str) -> None:
    from lazyflow_core import File
    from tests.prefect.workflows import count_lines

    flow = lazyflow_flow(count_lines, db=sqlite_url)
    assert flow.parameters.properties["path"]["type"] == "string"
    assert flow.parameters.properties["shards"]["type"] == "integer"
    text = tmp_path / "three.txt"
    text.write_text("a\nb\nc\n")
    assert flow(path=str(text), shards="9") == "3 lines in 9 shards"
    assert flow(File(text), 2) == "3 lines in 2 shards"  # a File from Python still works


def test_a_served_deployment_from_another_module_runs(tmp_path: Path) -> None:
    """`lazyflow_flow` called in tests/prefect/served.py for a task of workflows.py: served
    in a process of its own, a run with text parameters ("9" for an int, a path for a
    File) completes and its summary says what ran."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time
    import uuid

    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL

    from lazyflow_prefect.report import artifact_key
    from tests.prefect.workflows import count_lines

    root = Path(__file__).resolve().parents[2]
    name = f"served-{uuid.uuid4().hex[:8]}"
    text = tmp_path / "two.txt"
    text.write_text("x\ny\n")
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "LAZYFLOW_DB": f"sqlite:///{tmp_path}/lf.db",
        "PYTHONPATH": str(root),
    }
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.prefect.served", name],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        with get_client(sync_client=True) as client:
            while True:
                try:
                    deployment = client.read_deployment_by_name(f"count-lines/{name}")
                    break
                except Exception:
                    assert server.poll() is None, (tmp_path / "serve.log").read_text()
                    assert time.monotonic() < deadline, "the deployment never appeared"
                    time.sleep(0.5)
        assert deployment.entrypoint == "tests/prefect/served.py:line_counts"
        run = run_deployment(
            f"count-lines/{name}",
            parameters={"path": str(text), "shards": "9"},
            timeout=180,
        )
        assert run.state is not None and run.state.is_completed(), (
            run.state,
            (tmp_path / "serve.log").read_text()[-3000:],
        )
        with get_client(sync_client=True) as client:
            artifacts = {a.key: a for a in client.read_artifacts() if a.flow_run_id == run.id}
        summary = artifacts[artifact_key(count_lines.name)].data
        assert "| Status | **done** |" in summary and "| Jobs | 1 |" in summary
        [row] = json.loads(artifacts[artifact_key(count_lines.name, "jobs")].data)
        assert row["call"].startswith("count_lines(File(") and row["call"].endswith(", 9)")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
