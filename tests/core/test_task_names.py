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


SCRIPT = """
import pickle, sys
import cloudpickle
from lazyflow_core import task

@task
def shifted(x):
    return x + 1

if __name__ == "__main__":
    with open(sys.argv[1], "wb") as f:
        cloudpickle.dump((shifted, shifted.name), f)
"""

LOAD = """
import pickle, sys
with open(sys.argv[1], "rb") as f:
    task, name = pickle.load(f)
print(task.name == name, task.name)
"""


def test_a_script_task_sent_by_value_keeps_its_name(tmp_path: Path) -> None:
    # A worker (a Dask worker, a Batch container) unpickles a `__main__` script's task
    # under its own `__main__`: its name (part of its hash, and what the job's code
    # check looks its digest up by) must be the script's.
    import subprocess

    script = tmp_path / "wf_names.py"
    script.write_text(SCRIPT)
    sent = tmp_path / "task.pkl"
    subprocess.run([sys.executable, str(script), str(sent)], check=True, cwd=tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", LOAD, str(sent)],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.stdout.split() == ["True", "wf_names.shifted"]
