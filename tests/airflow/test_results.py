"""Which results go to XCom as they are, and how references load back."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from lazyflow_airflow.results import fits_in_xcom, is_json_friendly, is_result_ref, load_result
from lazyflow_core import LazyflowError
from lazyflow_core.integration import IntegrationTypeError, IntegrationValueError


@pytest.mark.parametrize(
    "value",
    [None, True, 3, 2.5, "s", [1, "a", None], (1, 2), {"a": [1, {"b": 2.0}]}, []],
)
def test_plain_json_is_json_friendly(value: Any) -> None:
    assert is_json_friendly(value)


@pytest.mark.parametrize(
    "value",
    [{1: "int key"}, {1, 2}, b"bytes", math.nan, math.inf, object(), [1, {2}], Path("p")],
)
def test_other_values_are_not_json_friendly(value: Any) -> None:
    assert not is_json_friendly(value)


def test_large_json_does_not_fit_in_xcom() -> None:
    assert fits_in_xcom(list(range(10)), max_bytes=100)
    assert not fits_in_xcom(list(range(1000)), max_bytes=100)


def test_load_result_passes_plain_values_through() -> None:
    assert load_result({"a": 1}) == {"a": 1}
    assert load_result([1, 2]) == [1, 2]
    assert not is_result_ref({"lazyflow_ref": None})


def test_load_result_reads_a_reference_from_the_store(tmp_path: Path) -> None:
    """A reference made from RunSummary.result_hash loads the value from the store."""
    from lazyflow_core import Scheduler, task

    @task
    def make_set(n: int) -> set[int]:
        return set(range(n))

    url = f"sqlite:///{tmp_path}/lf.db"
    with Scheduler(db=url) as sched:
        assert sched.run(make_set(3)) == {0, 1, 2}
    assert sched.last_run is not None and sched.last_run.result_hash
    ref = {"lazyflow_ref": sched.last_run.result_hash, "db": url, "conn_id": None}

    assert load_result(ref) == {0, 1, 2}


def test_reference_with_hidden_password_asks_for_the_url() -> None:
    ref = {"lazyflow_ref": "ab" * 20, "db": "postgresql+psycopg://u:***@h/db", "conn_id": None}
    with pytest.raises(IntegrationValueError, match="load_result\\(ref, db=") as info:
        load_result(ref)
    assert isinstance(info.value, ValueError)  # what callers caught before


@pytest.mark.parametrize(
    ("workflow", "kind", "message"),
    [
        ("tests.airflow.workflows", IntegrationValueError, r"workflow='tests.airflow.workflows'"),
        (42, IntegrationTypeError, r"workflow=42\): expected a lazyflow Task .* not a int"),
    ],
    ids=["reference", "type"],
)
def test_a_bad_workflow_argument_fails_at_parse_time(
    workflow: Any, kind: type[Exception], message: str
) -> None:
    from lazyflow_airflow import LazyFlowOperator

    with pytest.raises(kind, match=message) as info:
        LazyFlowOperator(task_id="t", workflow=workflow)
    assert isinstance(info.value, LazyflowError)
