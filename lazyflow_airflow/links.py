"""The "lazyflow run" extra link: from an Airflow task to its lazyflow execution.

Where the link points, first that applies:

1. the execution's page in the provenance browser (``lazyflow ui``) when a UI base URL is
   configured: the connection's extra ``ui_url``, else ``[lazyflow] ui_url`` (env
   ``AIRFLOW__LAZYFLOW__UI_URL``), else ``url`` of the ``[ui]`` table of the project's
   ``lazyflow.toml``. The link is ``<base>/executions/<execution_id>``, live while the run
   writes and for as long as the store keeps it;
2. else a published HTML page (``lazyflow viz EXECUTION_ID -o run.html``): ``[lazyflow]
   viz_dir`` (env ``AIRFLOW__LAZYFLOW__VIZ_DIR``), a folder, local or any fsspec URL, where
   the operator writes ``<execution_id>.html`` after each run, and ``[lazyflow]
   viz_base_url`` (env ``AIRFLOW__LAZYFLOW__VIZ_BASE_URL``, or ``LAZYFLOW_VIZ_BASE_URL``),
   where a browser finds them: a base holding ``{execution_id}`` is a template, any other
   base gets ``/<execution_id>.html`` appended.

Without either, there is no link. Rendering a page takes seconds, so it runs in a thread
of its own after the result is pushed (`publish_viz_later`); the task's state is reported
without waiting for it, and a failure is logged as a warning.

In Airflow 3 the worker computes every extra link once the task has finished and stores
it in XCom; the UI only reads it. `LazyFlowExecutionLink.get_link` therefore runs on the
worker, right after ``execute()``, and finds the execution id on the operator.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

SUMMARY_XCOM_KEY = "lazyflow_summary"
_ENV_BASE_URL = "LAZYFLOW_VIZ_BASE_URL"
# Runs in a process of its own: renders with the lazyflow CLI (whose module is importable
# wherever lazyflow is, unlike the console script), then copies the page with fsspec. The
# store URL arrives through LAZYFLOW_DB, never the command line, where a password shows.
_PUBLISH = """
import os, sys, tempfile
import fsspec
from lazyflow_core.integration import cli_main as main
execution_id, target = sys.argv[1], sys.argv[2]
with tempfile.TemporaryDirectory(prefix="lazyflow-viz-") as tmp:
    page = os.path.join(tmp, "run.html")
    code = main(["viz", execution_id, "-o", page])
    if code:
        sys.exit(code)
    fs, _, (path,) = fsspec.get_fs_token_paths(target)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    fs.put_file(page, path)
"""


def ui_base_url(connection_ui_url: str | None = None) -> str:
    """The configured base URL of ``lazyflow ui``, or "" when none is configured."""
    if connection_ui_url:
        return connection_ui_url.strip()
    from airflow.sdk import conf

    base = str(conf.get("lazyflow", "ui_url", fallback="") or "").strip()
    if base:
        return base
    try:
        from lazyflow_core.integration import find_config

        config = find_config()
    except Exception:  # a broken config file is reported by the run itself
        return ""
    return (config.ui.url or "").strip() if config is not None else ""


def ui_url(execution_id: str | None, base: str) -> str:
    """The page of `execution_id` in the provenance browser at `base` ("" without both)."""
    if not base or not execution_id:
        return ""
    return f"{base.rstrip('/')}/executions/{execution_id}"


def viz_base_url() -> str:
    """The configured base URL of published views, or "" when none is configured."""
    from airflow.sdk import conf

    base = conf.get("lazyflow", "viz_base_url", fallback="") or ""
    return (base or os.environ.get(_ENV_BASE_URL, "")).strip()


def viz_dir() -> str:
    """The configured folder for published HTML views, or "" when none is configured."""
    from airflow.sdk import conf

    return str(conf.get("lazyflow", "viz_dir", fallback="") or "").strip()


def viz_target(execution_id: str, folder: str) -> str:
    return f"{folder.rstrip('/')}/{execution_id}.html"


def publish_viz(execution_id: str, store_url: str, folder: str) -> str:
    """Render `execution_id` into `folder` now; returns the page's path."""
    target = viz_target(execution_id, folder)
    subprocess.run(
        [sys.executable, "-c", _PUBLISH, execution_id, target],
        env={**os.environ, "LAZYFLOW_DB": store_url},
        check=True,
        capture_output=True,
        timeout=300,
    )
    return target


def publish_viz_later(execution_id: str, store_url: str, folder: str, log: Any) -> threading.Thread:
    """Render the page in a thread of its own; it logs where the page went, or why not.

    The thread is not a daemon: the task process lives until the page is written, but
    Airflow has the task's result and state by then (it allows a finished task some
    seconds of overtime for such work).
    """

    def publish() -> None:
        try:
            page = publish_viz(execution_id, store_url, folder)
        except subprocess.CalledProcessError as exc:
            detail = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
            log.warning(
                "lazyflow: could not publish the call graph: %s", detail[-1] if detail else exc
            )
        except Exception as exc:
            log.warning("lazyflow: could not publish the call graph: %s", exc)
        else:
            log.info("lazyflow: call graph written to %s", page)

    thread = threading.Thread(target=publish, name=f"lazyflow-viz-{execution_id[:8]}")
    thread.start()
    return thread


def viz_url(execution_id: str | None, base: str | None = None) -> str:
    """URL of the HTML view of `execution_id`, or "" when there is no base or no id."""
    base = viz_base_url() if base is None else base
    if not base or not execution_id:
        return ""
    if "{execution_id}" in base:
        return base.replace("{execution_id}", execution_id)
    return f"{base.rstrip('/')}/{execution_id}.html"


def execution_link(execution_id: str | None, connection_ui_url: str | None = None) -> str:
    """Where the extra link of `execution_id` points: the UI page, else the HTML view."""
    return ui_url(execution_id, ui_base_url(connection_ui_url)) or viz_url(execution_id)


class LazyFlowExecutionLink(BaseOperatorLink):
    """Operator extra link to the lazyflow execution that a task instance ran."""

    name = "lazyflow run"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        if getattr(operator, "lazyflow_reported", False):  # the run happened right here
            return str(getattr(operator, "lazyflow_link", "") or "")
        execution_id = _execution_id_from_xcom(ti_key)
        return execution_link(execution_id)


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
