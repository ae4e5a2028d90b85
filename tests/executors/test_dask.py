"""The Dask executor on a real LocalCluster with worker processes: bundles, lost
workers, code shipping, resources, cancel, large values, its own cluster."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lazyflow_core import RunCancelled, Scheduler, task
from lazyflow_core.errors import ExecutorError
from lazyflow_core.executors import DaskExecutor

from ..core.user_code import SCALED_MODULE
from . import tasks
from .clusters import WORKER_RESOURCES

pytestmark = pytest.mark.dask

REPO = Path(__file__).resolve().parents[2]


class _Keys:
    """A scheduler plugin that keeps the keys of the Dask tasks that ran."""

    def __init__(self) -> None:
        from distributed.diagnostics.plugin import SchedulerPlugin

        class Plugin(SchedulerPlugin):
            name = f"lazyflow-test-{uuid.uuid4().hex}"

            def __init__(self) -> None:
                self.keys: list[str] = []

            def transition(self, key: Any, start: str, finish: str, *a: Any, **k: Any) -> None:
                if finish == "memory" and str(key).startswith("lazyflow_"):
                    self.keys.append(str(key))

        self.plugin = Plugin()


@pytest.fixture
def dask_keys(dask_cluster: Any) -> Iterator[list[str]]:
    """Keys of the Dask tasks the test's executor submitted (as the scheduler saw them)."""
    keys = _Keys().plugin
    scheduler = dask_cluster.scheduler
    scheduler.add_plugin(keys)
    try:
        yield keys.keys
    finally:
        scheduler.remove_plugin(name=keys.name)


@pytest.fixture
def client(dask_cluster: Any) -> Iterator[Any]:
    from distributed import Client

    with Client(dask_cluster, set_as_default=False) as c:
        yield c
        c.wait_for_workers(len(WORKER_RESOURCES), timeout=60)  # killed workers are back


def test_twenty_tiny_calls_run_in_fewer_than_twenty_dask_tasks(
    dask_cluster: Any, dask_keys: list[str], sqlite_url: str
) -> None:
    with (
        DaskExecutor(dask_cluster.scheduler_address) as ex,
        Scheduler(db=sqlite_url, executor=ex) as s,
    ):
        assert s.run(tasks.total([tasks.square(i) for i in range(20)])) == 2470
    squares = [k for k in dask_keys if k.startswith("lazyflow_square-")]
    assert 1 <= len(squares) < 20, dask_keys


def test_a_killed_worker_is_retried_on_the_infrastructure_budget(
    dask_cluster: Any, client: Any, sqlite_url: str, tmp_path: Path
) -> None:
    """die_once has retries=0: only the executor's own budget can bring it back."""
    state = str(tmp_path / "attempts")
    executor = DaskExecutor(dask_cluster.scheduler_address, infrastructure_retries=1)
    with executor, Scheduler(db=sqlite_url, executor=executor) as sched:
        assert sched.run(tasks.die_once(state)) == "survived"
    attempts = sorted(os.listdir(state))
    assert len(attempts) == 2 and attempts[0].split("-")[1] != attempts[1].split("-")[1]


def test_a_call_that_keeps_killing_its_worker_fails_with_an_executor_error(
    dask_cluster: Any, client: Any, sqlite_url: str, tmp_path: Path
) -> None:
    state = str(tmp_path / "attempts")
    executor = DaskExecutor(dask_cluster.scheduler_address, infrastructure_retries=1)
    with (
        executor,
        Scheduler(db=sqlite_url, executor=executor) as sched,
        pytest.raises(ExecutorError, match=r"task 'tests\.executors\.tasks\.die'.*lost 2") as info,
    ):
        sched.run(tasks.die(state))
    assert "KilledWorker" in str(info.value) and "infrastructure_retries" in str(info.value)
    assert len(os.listdir(state)) == 2


def test_a_task_defined_in_a_script_goes_by_value(dask_cluster: Any, tmp_path: Path) -> None:
    script = tmp_path / "wf_script.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            from lazyflow_core import Scheduler, task
            from lazyflow_core.executors import DaskExecutor

            OFFSET = 1000

            @task
            def shifted(x):
                return x + OFFSET

            if __name__ == "__main__":
                with DaskExecutor(sys.argv[1]) as ex:
                    with Scheduler(db="sqlite:///wf.db", executor=ex) as s:
                        print(s.run([shifted(i) for i in range(3)]))
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": ""}
    out = subprocess.run(
        [sys.executable, str(script), dask_cluster.scheduler_address],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[1000, 1001, 1002]"


def test_a_module_the_workers_never_imported_is_shipped_and_edits_reach_them(
    dask_cluster: Any, client: Any, sqlite_url: str, tmp_path: Path
) -> None:
    name = f"lf_shipped_{uuid.uuid4().hex[:8]}"
    source = tmp_path / "src"
    source.mkdir()
    module = source / f"{name}.py"
    module.write_text("from lazyflow_core import task\n\n@task\ndef answer():\n    return 41\n")
    assert not any(client.run(importlib.util.find_spec, name).values())  # not there
    sys.path.insert(0, str(source))
    try:
        mod = importlib.import_module(name)
        with (
            DaskExecutor(dask_cluster.scheduler_address) as ex,
            Scheduler(db=sqlite_url, executor=ex) as s,
        ):
            assert s.run(mod.answer()) == 41
            time.sleep(0.01)
            module.write_text(
                "from lazyflow_core import task\n\n@task\ndef answer():\n    return 42\n"
            )
            mod = importlib.reload(mod)
            assert s.run(mod.answer()) == 42
            assert s.last_run is not None and s.last_run.executed == 1
    finally:
        sys.path.remove(str(source))
        sys.modules.pop(name, None)


def test_resources_place_calls_on_workers_that_offer_them(
    dask_cluster: Any, client: Any, sqlite_url: str
) -> None:
    pids = client.run(os.getpid)
    workers = client.scheduler_info(n_workers=-1)["workers"]
    gpu = {pids[a] for a, w in workers.items() if w["resources"].get("gpus")}
    with (
        DaskExecutor(dask_cluster.scheduler_address) as ex,
        Scheduler(db=sqlite_url, executor=ex) as s,
    ):
        assert set(s.run([tasks.on_gpu(i) for i in range(6)])) == gpu
        with pytest.raises(ExecutorError, match=r"on_four_gpus.*no worker of the Dask cluster"):
            s.run(tasks.on_four_gpus(1))


def test_cancel_removes_the_runs_tasks_from_the_dask_scheduler(
    dask_cluster: Any, sqlite_url: str, tmp_path: Path
) -> None:
    state = str(tmp_path / "naps")
    executor = DaskExecutor(dask_cluster.scheduler_address)
    sched = Scheduler(db=sqlite_url, executor=executor)
    sched.run(tasks.square(0))
    threading.Timer(0.5, sched.cancel).start()
    with pytest.raises(RunCancelled):
        sched.run([tasks.nap(2.0 + i / 100, state) for i in range(6)])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = [k for k in dask_cluster.scheduler.tasks if str(k).startswith("lazyflow_nap")]
        if not left:
            break
        time.sleep(0.1)
    assert not left
    assert len(os.listdir(state)) <= len(WORKER_RESOURCES)  # the queued naps never ran
    sched.close()
    executor.shutdown()


@task
def _echo_size(data: bytes) -> bytes:
    return data[:10] * 200_000


@pytest.fixture
def dask_inputs(dask_cluster: Any) -> Iterator[dict[str, list[int]]]:
    """For each Dask task of lazyflow's as it starts: the sizes of the data it depends on
    (held by workers: scattered arguments), as the scheduler saw them."""
    from distributed.diagnostics.plugin import SchedulerPlugin

    scheduler = dask_cluster.scheduler
    seen: dict[str, list[int]] = {}

    class Inputs(SchedulerPlugin):
        name = f"lazyflow-test-inputs-{uuid.uuid4().hex}"

        def transition(self, key: Any, start: str, finish: str, *a: Any, **k: Any) -> None:
            if finish == "processing" and str(key).startswith("lazyflow_"):
                ts = scheduler.tasks[key]
                seen[str(key)] = [dep.nbytes for dep in ts.dependencies]

    plugin = Inputs()
    scheduler.add_plugin(plugin)
    try:
        yield seen
    finally:
        scheduler.remove_plugin(name=plugin.name)


def test_large_arguments_and_results_travel_beside_the_scheduler(
    dask_cluster: Any, dask_inputs: dict[str, list[int]], sqlite_url: str
) -> None:
    """A 3 MB argument is scattered to a worker first: the Dask task depends on worker
    data of that size instead of carrying it in the graph through the scheduler; a small
    one travels in the graph. The 2 MB result is gathered from the worker."""
    blob = os.urandom(3_000_000)
    with (
        DaskExecutor(dask_cluster.scheduler_address) as ex,
        Scheduler(db=sqlite_url, executor=ex) as s,
    ):
        assert s.run(_echo_size(blob)) == blob[:10] * 200_000
        (big,) = [v for k, v in dask_inputs.items() if "_echo_size" in k]
        assert big and max(big) >= 3_000_000, dask_inputs
        dask_inputs.clear()
        assert s.run(_echo_size(b"0123456789")) == b"0123456789" * 200_000
        (small,) = [v for k, v in dask_inputs.items() if "_echo_size" in k]
        assert small == [], dask_inputs


def test_an_executor_of_its_own_starts_a_local_cluster_and_closes_it(sqlite_url: str) -> None:
    """The cluster is the executor's: it outlives a scheduler the executor was passed to
    (another can use it) and closes with the executor."""
    with DaskExecutor(n_workers=1, threads_per_worker=1) as executor:
        with Scheduler(db=sqlite_url, executor=executor) as sched:
            assert sched.run(tasks.total([tasks.square(i) for i in range(5)])) == 30
            cluster = executor._cluster
            assert cluster is not None and cluster.status.name == "running"
        assert cluster.status.name == "running"
        with Scheduler(db=sqlite_url, executor=executor) as again:
            assert again.run(tasks.total([tasks.square(i) for i in range(6)])) == 55
            assert executor._cluster is cluster
    assert cluster.status.name == "closed" and executor._cluster is None


def test_cluster_options_with_a_target_are_a_clear_error() -> None:
    with pytest.raises(ExecutorError, match=r"n_workers=.*only to a cluster the executor"):
        DaskExecutor("tcp://127.0.0.1:1", n_workers=2)
    with pytest.raises(ExecutorError, match=r"cluster='nope\.Cluster'.*cannot import"):
        DaskExecutor(cluster="nope.Cluster")
    with pytest.raises(ExecutorError, match="infrastructure_retries"):
        DaskExecutor(infrastructure_retries=-1)


def test_an_unreachable_scheduler_fails_the_jobs_with_a_clear_error(sqlite_url: str) -> None:
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        executor = DaskExecutor("tcp://127.0.0.1:9")
        sched = Scheduler(db=sqlite_url, executor=executor)
        with pytest.raises(ExecutorError, match=r"cannot connect to the Dask scheduler"):
            sched.run(tasks.square(3))
        sched.close()
        executor.shutdown()


def test_lazyflow_run_uses_a_dask_executor_named_in_the_config_file(
    dask_cluster: Any, tmp_path: Path
) -> None:
    (tmp_path / "lazyflow.toml").write_text(
        f'[executors.dask]\ntype = "dask"\ntarget = "{dask_cluster.scheduler_address}"\n'
        "infrastructure_retries = 1\n"
    )
    (tmp_path / "wf.py").write_text(
        textwrap.dedent(
            """
            from distributed import get_worker
            from lazyflow_core import task

            @task
            def worker_name(i: int) -> str:
                return get_worker().name

            @task
            def main(n: int) -> list:
                return [worker_name(i) for i in range(n)]
            """
        )
    )
    lazyflow = str(Path(sys.executable).with_name("lazyflow"))
    out = subprocess.run(
        [lazyflow, "run", "wf.py", "main", "--n", "4", "--executor", "dask"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    names = set(eval(out.stdout.strip().splitlines()[-1]))
    assert names and names <= {"w0", "w1"}


SCRIPT = """
import sys
from lazyflow_core import Scheduler, task
from lazyflow_core.executors import DaskExecutor

@task
def square(x):
    return x * x

{body}
"""
RUN = """with Scheduler(db=sys.argv[1], executor=DaskExecutor(n_workers=1)) as sched:
    print(sched.run([square(i) for i in range(4)]))"""


def _script(tmp_path: Path, guarded: bool) -> subprocess.CompletedProcess[str]:
    body = 'if __name__ == "__main__":\n' + textwrap.indent(RUN, "    ") if guarded else RUN
    script = tmp_path / ("guarded.py" if guarded else "plain.py")
    script.write_text(SCRIPT.format(body=body))
    return subprocess.run(
        [sys.executable, str(script), f"sqlite:///{tmp_path}/s.db"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )


def test_a_plain_script_starting_a_local_cluster_is_told_to_guard_its_entry(
    tmp_path: Path,
) -> None:
    """Dask spawns its workers, which re-runs an unguarded script in each: one clear
    ExecutorError naming the fix, before any worker starts, instead of ~240 lines of
    tracebacks from both processes ending in "Nanny failed to start"."""
    done = _script(tmp_path, guarded=False)
    assert done.returncode == 1 and done.stdout == ""
    assert "ExecutorError: DaskExecutor starts a LocalCluster" in done.stderr
    assert 'under `if __name__ == "__main__":` in that script' in done.stderr
    assert "Nanny" not in done.stderr and "multiprocessing" in done.stderr
    assert len(done.stderr.splitlines()) < 40, done.stderr
    guarded = _script(tmp_path, guarded=True)
    assert guarded.returncode == 0, guarded.stderr
    assert guarded.stdout.strip() == "[0, 1, 4, 9]"


def test_workers_in_this_process_leave_its_modules_alone(sqlite_url: str) -> None:
    """A LocalCluster with processes=False runs its workers here: installing the code
    package there must not make this process forget (and later re-import) its modules,
    or an exception raised as tasks.Boom would not be the Boom a caller catches."""
    module = sys.modules[tasks.__name__]
    with (
        DaskExecutor(processes=False, n_workers=1) as executor,
        Scheduler(db=sqlite_url, executor=executor) as sched,
        pytest.raises(tasks.Boom, match="bad input 7"),
    ):
        sched.run(tasks.explode(7))
    assert sys.modules[tasks.__name__] is module


def test_long_lived_dask_workers_never_run_stale_code_under_a_new_hash(
    dask_cluster: Any, sqlite_url: str, tmp_path: Path
) -> None:
    """The workers imported the module in the first run. Edited and reloaded in the
    scheduler, it is the new code they run; changed in the scheduler's memory only (the
    file says otherwise), the jobs fail with the fix instead of storing the old code's
    result under the new code's hash."""
    name = f"dask_stale_{uuid.uuid4().hex[:8]}"
    path = tmp_path / f"{name}.py"
    path.write_text(SCALED_MODULE)
    sys.path.insert(0, str(tmp_path))
    try:
        mod = importlib.import_module(name)
        with (
            DaskExecutor(dask_cluster.scheduler_address) as ex,
            Scheduler(db=sqlite_url, executor=ex) as sched,
        ):
            assert sched.run(mod.total(3)) == [0, 2, 4]
            path.write_text(SCALED_MODULE.replace("FACTOR = 2", "FACTOR = 5"))
            importlib.invalidate_caches()
            mod = importlib.reload(mod)
            assert sched.run(mod.total(3)) == [0, 5, 10]
            mod.FACTOR = 7  # this process only: the workers' module (and file) say 5
            with pytest.raises(ExecutorError, match="differs from the scheduler's") as info:
                sched.run(mod.total(3))
            assert "Client.restart()" in str(info.value)
            mod.FACTOR = 5
            assert sched.run(mod.total(3)) == [0, 5, 10]  # cached, never a 7's result
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)
