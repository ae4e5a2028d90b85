"""examples/prefect/word_frequencies_flow.py runs end to end, twice (second time cached)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from lazyflow_prefect.report import artifact_key

pytestmark = pytest.mark.usefixtures("prefect_harness")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "prefect" / "word_frequencies_flow.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("word_frequencies_flow", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_flow_runs_and_second_run_is_cached(
    tmp_path: Path, sqlite_url: str, read_artifacts: Any
) -> None:
    example = load_example()
    data_dir = str(tmp_path / "corpus")

    first = example.word_frequencies(data_dir=data_dir, db=sqlite_url, return_state=True)
    second = example.word_frequencies(data_dir=data_dir, db=sqlite_url, return_state=True)

    expected = {
        "files": 3,
        "top": [["the", 6], ["cache", 3], ["lazy", 3], ["is", 2], ["sleeps", 2]],
    }
    assert first.result() == expected
    assert second.result() == expected
    summary_key = artifact_key("word_frequencies.main")
    first_artifacts = read_artifacts(first.state_details.flow_run_id)
    second_artifacts = read_artifacts(second.state_details.flow_run_id)
    assert "| Executed | 0 |" not in first_artifacts[summary_key].data
    assert "| Executed | 0 |" in second_artifacts[summary_key].data
    rows = json.loads(first_artifacts[artifact_key("word_frequencies.main", "jobs")].data)
    assert sum(row["task"] == "word_frequencies.count_words" for row in rows) == 3
