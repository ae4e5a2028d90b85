"""An Airflow DAG that mixes ordinary operators with one LazyFlowOperator.

    fetch_corpus (@task)  ->  word_frequencies (LazyFlowOperator)  ->  publish (@task)
                                                                  \\->  announce (Bash)

``word_frequencies`` runs the whole dynamic workflow in examples/word_frequencies.py
(one cached call per file). Re-running the DAG re-counts only the files that changed;
an Airflow retry re-runs only the calls that failed. The store is the Airflow
connection ``lazyflow_default`` (see docs/airflow.md), e.g.::

    export AIRFLOW_CONN_LAZYFLOW_DEFAULT='{"conn_type": "lazyflow",
        "extra": {"db": "sqlite:////tmp/lazyflow-example/lazyflow.db"}}'
"""

from __future__ import annotations

import datetime
from pathlib import Path

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, task

from lazyflow_airflow import LazyFlowOperator

# In a deployment the workflow is usually an installed module ("mypkg.words:main");
# a path works too and is only imported when the task runs, never at parse time.
WORKFLOW = f"{Path(__file__).resolve().parents[1] / 'word_frequencies.py'}:main"

TEXTS = {
    "lazy.txt": "The lazy dog sleeps. The lazy cat sleeps too.",
    "flow.txt": "Work flows when the work is lazy and the cache is warm.",
    "cache.txt": "A warm cache makes the second run free: the cache remembers.",
}


with DAG(
    "lazyflow_word_frequencies",
    schedule="@daily",
    start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
    catchup=False,
    params={"data_dir": "/tmp/lazyflow-example/corpus"},
    default_args={"retries": 2, "retry_delay": datetime.timedelta(seconds=30)},
    tags=["lazyflow", "example"],
):

    @task
    def fetch_corpus(data_dir: str) -> str:
        """Stand-in for a real extract step: writes a few text files."""
        folder = Path(data_dir)
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in TEXTS.items():
            path = folder / name
            if not path.exists() or path.read_text() != text:  # keep mtimes stable
                path.write_text(text)
        return str(folder)

    corpus = fetch_corpus("{{ params.data_dir }}")
    frequencies = LazyFlowOperator(
        task_id="word_frequencies",
        workflow=WORKFLOW,
        op_kwargs={"data_dir": corpus, "top": 5},  # an XCom and a constant
        tags={"owner": "examples"},
    )

    @task
    def publish(result: dict) -> str:
        lines = [f"{word}: {n}" for word, n in result["top"]]
        print(f"top words in {result['files']} files:\n" + "\n".join(lines))
        return lines[0]

    announce = BashOperator(
        task_id="announce",
        bash_command=(
            'echo \'lazyflow ran {{ ti.xcom_pull(task_ids="word_frequencies", '
            'key="lazyflow_summary")["jobs"] }} jobs\''
        ),
    )

    publish(frequencies.output)
    frequencies >> announce
