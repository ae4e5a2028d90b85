"""Task names do not depend on where a file is: orchestrators' generated module names."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SOURCE = """
from lazyflow_core import task

@task
def clean(x: int) -> int:
    return x
"""


def _import_as(path: Path, module_name: str) -> object:
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[module_name]
    return module


@pytest.mark.parametrize(
    "module_name",
    [
        "unusual_prefix_" + "3f" * 20 + "_etl",  # Airflow's DAG file loader
        "__prefect_loader_0123456789abcdef__",  # Prefect's, when the stem is taken
    ],
)
def test_a_generated_module_name_gives_the_name_of_the_file(
    tmp_path: Path, module_name: str
) -> None:
    """The same file at two paths defines the same task (name and hash)."""
    tasks = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        path = tmp_path / folder / "etl.py"
        path.write_text(SOURCE)
        tasks.append(_import_as(path, module_name.replace("3f" * 20, folder * 40)).clean)
    assert [t.name for t in tasks] == ["etl.clean", "etl.clean"]
    assert tasks[0].hash == tasks[1].hash
