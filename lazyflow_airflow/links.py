"""The "lazyflow run" extra link: from an Airflow task to its lazyflow call graph.

lazyflow renders an execution as one self-contained HTML page (``lazyflow viz
EXECUTION_ID -o run.html``). Two settings, both optional, make that a link in the UI:

- ``[lazyflow] viz_dir`` (env ``AIRFLOW__LAZYFLOW__VIZ_DIR``): a folder, local or any
  fsspec URL (``s3://bucket/lazyflow-runs``), where the operator writes
  ``<execution_id>.html`` after each run;
- ``[lazyflow] viz_base_url`` (env ``AIRFLOW__LAZYFLOW__VIZ_BASE_URL``, or
  ``LAZYFLOW_VIZ_BASE_URL``): where a browser finds those pages. A base containing
  ``{execution_id}`` is a template (``https://viz.internal/run?id={execution_id}``);
  any other base gets ``/<execution_id>.html`` appended.

The link is shown only when a base URL is configured (teams that render pages some other
way set only the base URL).

In Airflow 3 the worker computes every extra link once the task has finished and stores
it in XCom; the UI only reads it. `LazyFlowExecutionLink.get_link` therefore runs on the
worker, right after ``execute()``, and finds the execution id on the operator.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

SUMMARY_XCOM_KEY = "lazyflow_summary"
_ENV_BASE_URL = "LAZYFLOW_VIZ_BASE_URL"
# The `lazyflow` console script may not be on PATH in a worker; its module always is.
_CLI = "import sys; from lazyflow_core.cli import main; sys.exit(main(sys.argv[1:]))"


def viz_base_url() -> str:
    """The configured base URL of execution views, or "" when none is configured."""
    from airflow.sdk import conf

    base = conf.get("lazyflow", "viz_base_url", fallback="") or ""
    return (base or os.environ.get(_ENV_BASE_URL, "")).strip()


def viz_dir() -> str:
    """The configured folder for published HTML views, or "" when none is configured."""
    from airflow.sdk import conf

    return str(conf.get("lazyflow", "viz_dir", fallback="") or "").strip()


def publish_viz(execution_id: str, store_url: str, folder: str) -> str:
    """Render `execution_id` with ``lazyflow viz`` into `folder`; returns the file's path.

    Runs the lazyflow CLI (the store URL goes through ``LAZYFLOW_DB``, never the command
    line, where other users could read a password), then copies the page with fsspec.
    """
    import fsspec

    target = f"{folder.rstrip('/')}/{execution_id}.html"
    with tempfile.TemporaryDirectory(prefix="lazyflow-viz-") as tmp:
        page = os.path.join(tmp, "run.html")
        subprocess.run(
            [sys.executable, "-c", _CLI, "viz", execution_id, "-o", page],
            env={**os.environ, "LAZYFLOW_DB": store_url},
            check=True,
            capture_output=True,
            timeout=300,
        )
        fs, _, (path,) = fsspec.get_fs_token_paths(target)
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        fs.put_file(page, path)
    return target


def viz_url(execution_id: str | None, base: str | None = None) -> str:
    """URL of the HTML view of `execution_id`, or "" when there is no base or no id."""
    base = viz_base_url() if base is None else base
    if not base or not execution_id:
        return ""
    if "{execution_id}" in base:
        return base.replace("{execution_id}", execution_id)
    return f"{base.rstrip('/')}/{execution_id}.html"


class LazyFlowExecutionLink(BaseOperatorLink):
    """Operator extra link to the lazyflow execution that a task instance ran."""

    name = "lazyflow run"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        execution_id = getattr(operator, "lazyflow_execution_id", None)
        if not execution_id:
            execution_id = _execution_id_from_xcom(ti_key)
        return viz_url(execution_id)


def _execution_id_from_xcom(ti_key: Any) -> str | None:
    from airflow.sdk import BaseXCom

    try:
        summary = BaseXCom.get_value(ti_key=ti_key, key=SUMMARY_XCOM_KEY)
    except Exception:  # no XCom backend reachable here: no link rather than a crash
        return None
    if isinstance(summary, dict):
        value = summary.get("execution_id")
        return str(value) if value else None
    return None
