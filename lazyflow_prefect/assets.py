"""The workflow's output files as Prefect assets.

A `run_lazyflow` task run whose result holds `File`/`Dir` values (at any depth: a list of
files, a dict of reports) declares each as an asset the task run materialized, in
Prefect's own asset context: when the task run finishes, Prefect emits
``prefect.asset.materialization.succeeded`` for each (related to ``lazyflow`` as the
tool that made it), the assets appear on Prefect's Assets page with their lineage, and
downstream tasks that receive the result inherit them as upstream assets, exactly as
for a ``@materialize`` task. Keys are URIs: ``file:///abs/path`` for a local path, the
URL itself for ``s3://``, ``gs://`` and other fsspec paths.

A cached run declares them too: the files are the run's outputs whether or not a call
re-ran to make them.
"""

from __future__ import annotations

import logging
import os
from typing import Any

MATERIALIZED_BY = "lazyflow"


def asset_key(path: str) -> str:
    """The Prefect asset key of a lazyflow file path (a URI with a lowercase scheme)."""
    if "://" in path:
        scheme, rest = path.split("://", 1)
        return f"{scheme.lower()}://{rest}"
    return "file://" + os.path.abspath(path)


def declare_output_assets(
    value: Any, logger: logging.Logger | logging.LoggerAdapter[Any]
) -> list[str]:
    """Declare the files in `value` as assets of the current task run; their keys
    (none outside a Prefect task run, or when the result holds no file)."""
    from prefect.assets import Asset
    from prefect.context import AssetContext

    from lazyflow_core.integration import iter_files

    context = AssetContext.get()
    if context is None:
        return []
    keys = []
    for item in iter_files(value):
        key = asset_key(str(item.path))
        try:
            context.downstream_assets.add(Asset(key=key))
        except ValueError as exc:  # a path Prefect cannot take as a key (characters, length)
            logger.debug("lazyflow: %s is not published as a Prefect asset: %s", key, exc)
            continue
        keys.append(key)
    if keys:
        context.materialized_by = context.materialized_by or MATERIALIZED_BY
        context.update_tracked_assets()
    return keys
