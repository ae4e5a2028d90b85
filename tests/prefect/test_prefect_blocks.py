"""The LazyFlowStore block: registration through prefect.collections, save/load, use."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Any

import pytest
from prefect import flow

from lazyflow_prefect import LazyFlowStore, run_lazyflow
from lazyflow_prefect.report import artifact_key
from tests.prefect.workflows import executions, fanout

pytestmark = pytest.mark.usefixtures("prefect_harness")

SECRET_URL = "postgresql+psycopg://lazyflow:s3cr3t-pw@db.example:5432/lazyflow"


def test_collection_entry_point_registers_the_block_type() -> None:
    from prefect.blocks.core import Block

    entry_points = importlib.metadata.entry_points(group="prefect.collections")
    assert {(ep.name, ep.value) for ep in entry_points} >= {
        ("lazyflow_prefect", "lazyflow_prefect")
    }
    assert Block.get_block_class_from_key("lazyflow-store") is LazyFlowStore


def test_block_round_trip_keeps_the_url_secret() -> None:
    from prefect.client.orchestration import get_client

    LazyFlowStore(url=SECRET_URL).save("roundtrip", overwrite=True)
    loaded = LazyFlowStore.load("roundtrip")
    assert loaded.get_url() == SECRET_URL
    assert "s3cr3t" not in repr(loaded)
    assert loaded.display_url() == "postgresql+psycopg://lazyflow:***@db.example:5432/lazyflow"
    with get_client(sync_client=True) as client:
        document = client.read_block_document_by_name(
            "roundtrip", block_type_slug="lazyflow-store", include_secrets=False
        )
    assert "s3cr3t" not in json.dumps(document.data)


def test_run_lazyflow_with_a_block_or_its_name(
    marker_dir: Path, sqlite_url: str, read_artifacts: Any
) -> None:
    LazyFlowStore(url=sqlite_url).save("tests-store", overwrite=True)

    @flow
    def with_block() -> tuple[int, int]:
        by_block = run_lazyflow(fanout, 3, str(marker_dir), db=LazyFlowStore.load("tests-store"))
        by_name = run_lazyflow(fanout, 3, str(marker_dir), db="lazyflow-store/tests-store")
        return by_block, by_name

    state = with_block(return_state=True)
    assert state.result() == (5, 5)
    assert executions(marker_dir, "square-2") == 1, "both runs used the same store"
    summary = read_artifacts(state.state_details.flow_run_id)[artifact_key(fanout.name)]
    assert f"--db '{sqlite_url}'" in summary.data


def test_the_block_carries_the_signing_key(marker_dir: Path, sqlite_url: str) -> None:
    """A block's signing key signs every value the run stores, and stays secret."""
    from sqlalchemy import text

    from lazyflow_core import Scheduler
    from lazyflow_core.store.signing import key_id

    key = "prefect-team-key-0123456789"
    LazyFlowStore(url=sqlite_url, signing_key=key).save("signed-store", overwrite=True)
    loaded = LazyFlowStore.load("signed-store")
    assert loaded.get_signing_key() == key and key not in repr(loaded)

    @flow
    def signed() -> int:
        return run_lazyflow(fanout, 3, str(marker_dir), db="lazyflow-store/signed-store")

    assert signed() == 5
    with Scheduler(db=sqlite_url, signing_key=key) as sched:
        rows = sched.store.query(text("SELECT DISTINCT substr(signature, 1, 11) FROM lf_values"))
        assert [r for (r,) in rows] == [f"s1:{key_id(key.encode())}"]
        assert sched.run(fanout(3, str(marker_dir))) == 5
        assert sched.last_run is not None and sched.last_run.executed == 0
