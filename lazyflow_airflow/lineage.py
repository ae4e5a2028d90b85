"""OpenLineage facets for a lazyflow run: the File and Dir values it read and produced.

`LazyFlowOperator` collects the lazyflow ``File``/``Dir`` values in its arguments
(inputs) and in the workflow's result (outputs) and reports them through
``get_openlineage_facets_on_complete``, which the OpenLineage provider calls after the
task. Dataset names follow the OpenLineage naming spec: a local path is namespace
``file`` with the absolute path as name; ``s3://bucket/key`` is namespace
``s3://bucket`` with name ``key`` (likewise ``gs://``, ``abfs://``, ...).

The run facet ``externalQuery`` carries the lazyflow execution id, so a lineage event
leads back to ``lazyflow log <execution id>``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

_MAX_DEPTH = 50


def iter_file_values(value: Any, _depth: int = 0) -> Iterator[Any]:
    """Every lazyflow File or Dir inside `value` (containers and dataclasses searched)."""
    from lazyflow_core import Dir, File

    if isinstance(value, File | Dir):
        yield value
    elif _depth >= _MAX_DEPTH or isinstance(value, str | bytes | int | float | bool):
        return
    elif isinstance(value, dict):
        for item in value.values():
            yield from iter_file_values(item, _depth + 1)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from iter_file_values(item, _depth + 1)
    elif hasattr(value, "__dataclass_fields__"):
        for name in value.__dataclass_fields__:
            yield from iter_file_values(getattr(value, name, None), _depth + 1)


def file_paths(value: Any) -> list[str]:
    """The distinct paths of the Files and Dirs inside `value`, in order of appearance."""
    seen: dict[str, None] = {}
    for f in iter_file_values(value):
        seen.setdefault(str(f.path), None)
    return list(seen)


def dataset_name(path: str) -> tuple[str, str]:
    """(namespace, name) of a local path or URL, after the OpenLineage naming spec."""
    if "://" not in path:
        return "file", os.path.abspath(path)
    parts = urlsplit(path)
    if parts.scheme == "file":
        return "file", parts.path
    name = parts.path.lstrip("/") if parts.netloc else parts.path
    return f"{parts.scheme}://{parts.netloc}", name or "/"


def operator_lineage(inputs: list[str], outputs: list[str], execution_id: str | None) -> Any | None:
    """An ``OperatorLineage``, or None when the OpenLineage provider is not installed."""
    try:
        from airflow.providers.common.compat.openlineage.facet import (
            Dataset,
            ExternalQueryRunFacet,
        )
        from airflow.providers.openlineage.extractors import OperatorLineage
    except ImportError:
        return None

    def datasets(paths: list[str]) -> list[Any]:
        return [Dataset(namespace=ns, name=name) for ns, name in map(dataset_name, paths)]

    run_facets: dict[str, Any] = {}
    if execution_id:
        run_facets["externalQuery"] = ExternalQueryRunFacet(
            externalQueryId=execution_id, source="lazyflow"
        )
    return OperatorLineage(
        inputs=datasets(inputs), outputs=datasets(outputs), run_facets=run_facets
    )
