"""examples/airflow/word_frequencies_dag.py runs end to end, twice (second time cached)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest


def test_example_dag_runs_and_second_run_is_cached(
    run_dag: Any, xcom: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = {"conn_type": "lazyflow", "extra": {"db": f"sqlite:///{tmp_path}/lazyflow.db"}}
    monkeypatch.setenv("AIRFLOW_CONN_LAZYFLOW_DEFAULT", json.dumps(conn))
    data_dir = tmp_path / "corpus"

    first = run_dag("lazyflow_word_frequencies", data_dir=str(data_dir))
    second = run_dag("lazyflow_word_frequencies", data_dir=str(data_dir))

    expected = {
        "fetch_corpus": ("success", 1),
        "word_frequencies": ("success", 1),
        "publish": ("success", 1),
        "announce": ("success", 1),
    }
    assert run_dag.states(first) == expected
    assert run_dag.states(second) == expected
    result = xcom(second, "word_frequencies", "return_value")
    assert result == {
        "files": 3,
        "top": [["the", 6], ["cache", 3], ["lazy", 3], ["is", 2], ["sleeps", 2]],
    }
    assert xcom(first, "word_frequencies", "lazyflow_summary")["executed"] >= 3 + 2
    assert xcom(second, "word_frequencies", "lazyflow_summary")["executed"] == 0
    assert xcom(second, "publish", "return_value") == "the: 6"
