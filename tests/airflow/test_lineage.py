"""OpenLineage events of a LazyFlowOperator list its File inputs and outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def test_openlineage_complete_event_lists_inputs_results_and_intermediate_files(
    airflow_db: Path, tmp_path: Path
) -> None:
    """`airflow dags test` with a file transport: the COMPLETE event names the input, the
    result file and the intermediate file of an inner call.

    Runs in a subprocess because OpenLineage decides once per process whether it is on.
    """
    lineage_dir = airflow_db / "lineage"  # where the lf_lineage DAG reads and writes
    lineage_dir.mkdir(exist_ok=True)
    (lineage_dir / "in.txt").write_text("hello lineage")
    events_file = tmp_path / "openlineage.jsonl"
    env = {
        **os.environ,
        "AIRFLOW__OPENLINEAGE__DISABLED": "False",
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events_file), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "lazyflow-tests",
    }
    conf = json.dumps({"db": f"sqlite:///{tmp_path}/lf.db"})
    run = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", "lf_lineage", "2024-02-01", "-c", conf],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert (lineage_dir / "upper.txt").read_text() == "HELLO LINEAGE"
    assert (lineage_dir / "count.txt").read_text() == "13"

    complete = [
        e
        for e in _events(events_file)
        if e.get("eventType") == "COMPLETE" and e["job"]["name"] == "lf_lineage.lf"
    ]
    assert complete, f"no COMPLETE event for lf_lineage.lf in {events_file}"
    event = complete[-1]
    assert [(d["namespace"], d["name"]) for d in event["inputs"]] == [
        ("file", str(lineage_dir / "in.txt"))
    ]
    # The result (count.txt) and the intermediate file an inner call wrote (upper.txt).
    assert [(d["namespace"], d["name"]) for d in event["outputs"]] == [
        ("file", str(lineage_dir / "count.txt")),
        ("file", str(lineage_dir / "upper.txt")),
    ]
    assert event["run"]["facets"]["externalQuery"]["source"] == "lazyflow"


def _events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
