"""OpenLineage facets for a lazyflow run: every file it read and wrote, inner calls too.

`LazyFlowOperator` reports datasets through ``get_openlineage_facets_on_complete``, which
the OpenLineage provider calls after the task:

- inputs: the ``File``/``Dir`` arguments of the workflow, and every file an inner call read
  that no call of the run wrote (data the workflow took from outside);
- outputs: the files in the workflow's result and every file an inner call wrote, also
  the intermediate ones the workflow consumed itself: lineage tools then see the
  workflow's whole data footprint, not only its entry task's.

Inner files come from the store (`lazyflow_core.provenance.Provenance.execution_files`),
one query per run, made only when OpenLineage asks. Dataset names follow the OpenLineage
naming spec: a local path is namespace ``file`` with the absolute path as name;
``s3://bucket/key`` is namespace ``s3://bucket`` with name ``key`` (likewise ``gs://``,
``abfs://``, ...). The run facet ``externalQuery`` carries the lazyflow execution id, so a
lineage event leads back to ``lazyflow log <execution id>``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit


def file_paths(value: Any) -> list[str]:
    """The distinct paths of the Files and Dirs inside `value`, in order of appearance."""
    from lazyflow_core.integration import iter_files

    return list(dict.fromkeys(str(f.path) for f in iter_files(value)))


def run_datasets(
    arg_paths: list[str], result_paths: list[str], files: Iterable[Any]
) -> tuple[list[str], list[str]]:
    """(input paths, output paths) of a run, from its arguments, its result and the
    `JobFile` records of its calls."""
    read: dict[str, None] = {}
    wrote: dict[str, None] = dict.fromkeys(result_paths)
    for f in files:
        (wrote if f.role == "output" else read)[f.path] = None
    inputs = dict.fromkeys(arg_paths)
    inputs.update((p, None) for p in read if p not in wrote)
    return list(inputs), list(wrote)


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
