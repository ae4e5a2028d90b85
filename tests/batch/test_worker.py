"""`python -m lazyflow_core.worker`: the one entry point of Batch containers."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import fsspec

from lazyflow_core import __version__
from lazyflow_core.executors import JobSpec, scratch
from lazyflow_core.executors.codepackage import CodeShipper, build, user_roots
from lazyflow_core.executors.wire import outcome, pack
from lazyflow_core.worker import VersionMismatch, run_bundle

from . import workflows as wf


def _bundle(root: Path, specs: list[JobSpec], version: str = __version__) -> str:
    """A one-bundle array prefix on a local scratch directory; returns its URL."""
    fs, path = fsspec.core.url_to_fs(f"file://{root}")
    code = CodeShipper(fs, f"file://{root}").url()
    prefix = f"{path}/runs/test"
    parts = scratch.dump(pack(specs))
    scratch.write(
        fs, {scratch.bundle_path(prefix, 0): scratch.bundle_file(version, code, len(specs), parts)}
    )
    return f"file://{prefix}"


def _outcomes(prefix_url: str) -> list:
    fs, prefix = fsspec.core.url_to_fs(prefix_url)
    return [outcome(w) for w in pickle.loads(fs.cat_file(scratch.all_path(prefix, 0)))]


# Runs the worker's main as `python -m lazyflow_core.worker` does, then reports where
# the tasks' module came from and whether any store module was imported.
RUN_WORKER = """
import json, runpy, sys
sys.argv = ["lazyflow_core.worker", sys.argv[1]]
try:
    runpy.run_module("lazyflow_core.worker", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
mod = sys.modules.get("tests.batch.workflows")
store = sorted(m for m in sys.modules if m.split(".")[0] in ("sqlalchemy", "alembic"))
store += [m for m in sys.modules if m.startswith("lazyflow_core.store")]
tasks_from = getattr(mod, "__file__", None)
print(json.dumps({"exit": code, "tasks_from": tasks_from, "store_modules": store}))
"""


def test_the_worker_runs_a_bundle_from_its_code_package_without_sqlalchemy(
    tmp_path: Path,
) -> None:
    """In an empty directory with no PYTHONPATH, the worker imports the tasks' module
    from the shipped code package, writes one outcome per job and an `all` file, exits
    0 although a task raised, and never imports SQLAlchemy."""
    specs = [JobSpec("a", wf.inc, (3,), {}), JobSpec("b", wf.boom, (1,), {})]
    prefix = _bundle(tmp_path / "scratch", specs)
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(empty), "TMPDIR": str(empty)}
    env["BATCH_TASK_INDEX"] = "0"
    proc = subprocess.run(
        [sys.executable, "-c", RUN_WORKER, prefix],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.splitlines()[-1])
    assert report["exit"] == 0
    assert report["tasks_from"].startswith(str(empty / "lazyflow-code"))  # the package
    assert report["tasks_from"].endswith("tests/batch/workflows.py")
    assert report["store_modules"] == []
    ok, failed = _outcomes(prefix)
    assert ok.value == 4 and ok.digest is not None and ok.data is not None
    assert isinstance(failed.error, ValueError) and "boom 1" in str(failed.error)
    assert "in boom" in (failed.remote_traceback or "")
    fs, path = fsspec.core.url_to_fs(prefix)
    files = [p.rsplit("/", 1)[-1] for p in fs.ls(f"{path}/out/0")]
    assert "all" in files  # and chunks of outcomes, written as the jobs finished:
    chunks = sorted(r for r in map(scratch.chunk_range, files) if r is not None)
    assert [j for r in chunks for j in r] == [0, 1]


def test_a_worker_of_another_lazyflow_version_runs_nothing_and_says_how_to_fix_it(
    tmp_path: Path,
) -> None:
    prefix = _bundle(tmp_path, [JobSpec("a", wf.inc, (3,), {})], version="0.0.1")
    assert run_bundle(prefix, 0) == (1, 1)
    (out,) = _outcomes(prefix)
    assert isinstance(out.error, VersionMismatch)
    assert "lazyflow==0.0.1" in str(out.error) and __version__ in str(out.error)


def test_the_code_package_is_content_addressed() -> None:
    """Equal sources make the same zip (same digest); it holds this test's package."""
    roots = user_roots()
    first, second = build(roots), build(roots)
    assert first is not None and second is not None
    assert first.digest == second.digest and first.data == second.data
    assert "tests" in first.roots and "lazyflow_core" not in first.roots


def test_big_outcomes_are_read_from_their_chunk_not_the_all_file(tmp_path: Path) -> None:
    """An outcome over INLINE_OUTCOME_BYTES is written once (in its chunk); the
    scheduler's reader finds it there, and the small one in the bundle's `all` file."""
    size = scratch.INLINE_OUTCOME_BYTES + 1
    prefix_url = _bundle(
        tmp_path, [JobSpec("a", wf.big, (size,), {}), JobSpec("b", wf.inc, (1,), {})]
    )
    assert run_bundle(prefix_url, 0) == (2, 0)
    fs, prefix = fsspec.core.url_to_fs(prefix_url)
    assert pickle.loads(fs.cat_file(scratch.all_path(prefix, 0)))[0] is None
    (found,) = scratch.read_outcomes(fs, [(prefix, 0, True, ["a", "b"])])
    assert outcome(found[0]).value == b"x" * size and outcome(found[1]).value == 2
