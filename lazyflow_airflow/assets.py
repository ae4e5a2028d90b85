"""Airflow Assets for lazyflow files: outputs as asset events, inputs as inlets.

A workflow's ``File``/``Dir`` values are data that other DAGs may wait for. Airflow 3
declares a task's outlets when the DAG is parsed, but a lazyflow workflow decides at run
time which files it writes, so `LazyFlowOperator` declares one `AssetAlias` outlet,
``lazyflow.<dag_id>.<task_id>``, and attaches an asset event per file to it when the run
has finished (Airflow's pattern for dynamic outputs). A downstream DAG is scheduled on a
file (``schedule=[Asset("file:///data/report.csv")]``) or on every file the task writes
(``schedule=[AssetAlias("lazyflow.etl.build")]``).

Which files emit events:

- the ``File``/``Dir`` values in the workflow's result, on every successful run (as
  Airflow emits a task's outlets), with ``extra["written"]`` saying whether this run
  wrote the file or reused a cached call that wrote it earlier;
- with ``inner_assets=True``, also every file an inner call wrote in this run (a cached
  inner call wrote nothing new, so it emits nothing).

Each event's extra carries the lazyflow execution id, the task that wrote the file and
the file's content hash as stored, so ``lazyflow lineage <path>`` leads back to the call.

Files are named by URI: a local path is ``file:///abs/path``, any fsspec URL
(``s3://bucket/key``) stays as it is.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

ALIAS_PREFIX = "lazyflow"


def alias_name(dag_id: str, task_id: str) -> str:
    """The name of the `AssetAlias` a LazyFlowOperator attaches its asset events to."""
    return f"{ALIAS_PREFIX}.{dag_id}.{task_id}"


def file_uri(path: str) -> str:
    """The asset URI of a lazyflow File/Dir path."""
    if "://" in path:
        return path
    return "file://" + os.path.abspath(path)


def path_of_uri(uri: str) -> str:
    """The File/Dir path an asset URI names (the inverse of `file_uri`)."""
    return uri[len("file://") :] if uri.startswith("file://") else uri


def assets_to_paths(value: Any) -> Any:
    """`value` with every Airflow `Asset` (inside lists, tuples and dicts) replaced by the
    path it names, so an inlet can be passed as a workflow argument."""
    from airflow.sdk import Asset

    if isinstance(value, Asset):
        return path_of_uri(value.uri)
    if isinstance(value, list | tuple):
        return type(value)(assets_to_paths(v) for v in value)
    if isinstance(value, dict):
        return {k: assets_to_paths(v) for k, v in value.items()}
    return value


def inlet_assets(values: Iterable[Any]) -> list[Any]:
    """Assets for the File/Dir values and `Asset` objects among operator arguments known
    when the DAG is parsed (templated strings are not known yet)."""
    from airflow.sdk import Asset

    from lazyflow_core.integration import iter_files

    found: dict[str, Any] = {}
    stack = list(values)
    while stack:
        value = stack.pop()
        if isinstance(value, Asset):
            found.setdefault(value.uri, value)
        elif isinstance(value, list | tuple):
            stack.extend(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
        else:
            for f in iter_files(value):
                uri = file_uri(str(f.path))
                found.setdefault(uri, Asset(uri))
    return list(found.values())


def emit_asset_events(
    outlet_events: Any,
    alias: str,
    result_paths: list[str],
    written: Mapping[str, tuple[str, str | None]],
    *,
    execution_id: str,
    inner: bool,
) -> list[str]:
    """Attach asset events to the alias outlet; returns the URIs that got one.

    `written` maps each path an inner call of this run wrote to (task name, file hash).
    """
    from airflow.sdk import Asset, AssetAlias

    accessor = outlet_events[AssetAlias(alias)]
    paths = list(dict.fromkeys(result_paths))
    if inner:
        paths += [p for p in written if p not in paths]
    emitted = []
    for path in paths:
        task_name, file_hash = written.get(path, (None, None))
        extra: dict[str, Any] = {
            "lazyflow_execution_id": execution_id,
            "path": path,
            "written": path in written,
        }
        if task_name:
            extra["task"] = task_name
        if file_hash:
            extra["content_hash"] = file_hash
        uri = file_uri(path)
        accessor.add(Asset(uri), extra=extra)
        emitted.append(uri)
    return emitted
