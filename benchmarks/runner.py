"""Run benchmark cases, each in a fresh interpreter, and collect their results.

A ``Case`` names a system (``plain``, ``lazyflow``, ``airflow``, ``dask``, ``floor``,
``startup`` or a peer of `benchmarks.peers`), a workload function in
``benchmarks.wl_<system>`` and its parameters; a peer's cases run under the interpreter
of its own venv. Every case runs as
``python -m benchmarks.child SPEC`` in its own process, so peak RSS and in-memory caches
are isolated. Peak RSS comes from ``os.wait4`` on that process (it covers the process and
the children it waited for, e.g. a process pool). Wall time is measured inside the child,
around the work only (interpreter start-up and imports excluded; scheduler start-up
included).

Cases that share a ``store`` key run in the same working directory, which is how a
"cached re-run" finds the database its cold run filled: the cold case is listed in
``prep`` and runs first if this run has not run it yet.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.child import MARKER
from benchmarks.peers import REPO, interpreter


@dataclass
class Case:
    """One measurement: ``wl_<system>.<workload>(**params)`` in a fresh process."""

    scenario: str
    system: str
    workload: str
    params: dict[str, Any]
    label: str
    store: str | None = None
    prep: list[Case] = field(default_factory=list)
    timeout: float = 600.0
    skip: str | None = None
    expect: dict[str, Any] = field(default_factory=dict)
    # fresh processes measured; the result is the one of median wall (`median_of`)
    repeat: int = 1

    @property
    def key(self) -> str:
        params = json.dumps(self.params, sort_keys=True)
        return f"{self.system}:{self.workload}:{params}:{self.store or ''}"


@dataclass
class Result:
    """What a case measured (``data`` is the child's dict) or why it has no figures."""

    case: Case
    status: str  # "ok", "error", "timeout", "skipped", "unavailable"
    data: dict[str, Any] = field(default_factory=dict)
    process_seconds: float = 0.0
    maxrss_kb: int = 0
    note: str = ""
    stderr_tail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def wall(self) -> float | None:
        return self.data.get("wall") if self.ok else None

    def to_dict(self) -> dict[str, Any]:
        c = self.case
        return {
            "key": c.key,
            "scenario": c.scenario,
            "system": c.system,
            "workload": c.workload,
            "params": c.params,
            "label": c.label,
            "store": c.store,
            "status": self.status,
            "data": {k: v for k, v in self.data.items() if k != "traceback"},
            "process_seconds": self.process_seconds,
            "maxrss_kb": self.maxrss_kb,
            "note": self.note,
        }


def load_results(path: Path) -> list[Result]:
    """Results saved by ``python -m benchmarks --json PATH`` (or ``results/last.json``)."""
    payload = json.loads(path.read_text())
    out = []
    for d in payload["results"]:
        case = Case(
            d["scenario"], d["system"], d["workload"], d["params"], d["label"], store=d["store"]
        )
        out.append(
            Result(case, d["status"], d["data"], d["process_seconds"], d["maxrss_kb"], d["note"])
        )
    return out


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("LAZYFLOW_DB", None)
    env.pop("VIRTUAL_ENV", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [env.get("PYTHONPATH"), str(REPO)] if p)
    return env


def run_child(
    python: Path, case: Case, cwd: Path, timeout: float, env: dict[str, str] | None = None
) -> Result:
    """Run ``case`` in a new process group under ``cwd``; kill the group on timeout."""
    params = {**case.params, "workdir": str(cwd)}
    spec = {"system": case.system, "workload": case.workload, "params": params}
    cmd = [str(python), "-m", "benchmarks.child", json.dumps(spec)]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=cwd, stdout=out, stderr=err, env=env or child_env(), start_new_session=True
        )
        timed_out = False
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() - t0 > timeout:
                    timed_out = True
                    os.killpg(proc.pid, signal.SIGKILL)
                    pid, status, usage = os.wait4(proc.pid, 0)
                    break
                time.sleep(0.02)
        except BaseException:  # interrupted (Ctrl-C, SIGTERM): take the case down with us
            _kill_group(proc.pid)
            proc.wait()
            raise
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        _kill_group(proc.pid)  # stray pool workers, if any
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr_tail = err.read().decode(errors="replace")[-4000:]
    result = Result(
        case, "ok", process_seconds=seconds, maxrss_kb=usage.ru_maxrss, stderr_tail=stderr_tail
    )
    lines = [ln for ln in stdout.splitlines() if ln.startswith(MARKER)]
    if timed_out:
        result.status, result.note = "timeout", f"timeout after {timeout:.0f} s"
    elif not lines:
        result.status = "error"
        last = stderr_tail.strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
        result.note = f"crashed (exit {proc.returncode}): {last[0][:300]}"
    else:
        result.data = json.loads(lines[-1][len(MARKER) :])
        if not result.data.get("ok"):
            result.status, result.note = "error", result.data.get("error", "")
    return result


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class Runner:
    """Runs cases once each (deduplicated by key), honouring stores and preparation."""

    def __init__(
        self,
        workdir: Path,
        log: Callable[[str], None] = print,
        unavailable: dict[str, str] | None = None,
        timeout_scale: float = 1.0,
    ):
        self.workdir = workdir
        self.log = log
        self.unavailable = dict(unavailable or {})
        self.timeout_scale = timeout_scale
        self.results: dict[str, Result] = {}

    def run_all(self, cases: Iterable[Case]) -> list[Result]:
        return [self.run(case) for case in cases]

    def run(self, case: Case) -> Result:
        if case.key in self.results:
            return self.results[case.key]
        if case.skip:
            result = Result(case, "skipped", note=case.skip)
        elif case.system in self.unavailable:
            result = Result(case, "unavailable", note=self.unavailable[case.system])
        else:
            prep_failed = None
            for prep in case.prep:
                prepared = self.run(prep)
                if not prepared.ok:
                    prep_failed = f"preparation {prep.label} failed: {prepared.note}"
            if prep_failed:
                result = Result(case, "error", note=prep_failed)
            else:
                result = self._execute(case)  # (each run checked against case.expect)
        self.results[case.key] = result
        self.log(describe(result))
        return result

    def _execute(self, case: Case) -> Result:
        cwd = self.workdir / (case.store or f"case-{len(self.results)}")
        cwd.mkdir(parents=True, exist_ok=True)
        runs: list[Result] = []
        for k in range(case.repeat):
            if k and case.params.get("run") == "cold":  # each cold run gets a new store
                shutil.rmtree(cwd)
                cwd.mkdir(parents=True)
            result = run_child(
                interpreter(case.system), case, cwd, case.timeout * self.timeout_scale
            )
            if not check_expectations(result).ok:
                return result
            runs.append(result)
        return median_of(runs)


def median_of(runs: list[Result]) -> Result:
    """The run of median wall time among `runs` (fresh processes of one case), with every
    run's wall time in its ``data["runs"]`` (in the order they ran). One run on a shared
    2-core machine can be off by half; the median of three rarely is."""
    if len(runs) == 1:
        return runs[0]
    chosen = sorted(runs, key=lambda r: r.data["wall"])[len(runs) // 2]
    chosen.data["runs"] = [r.data["wall"] for r in runs]
    return chosen


def check_expectations(result: Result) -> Result:
    """Turn a result whose values differ from ``case.expect`` into an error."""
    if not result.ok:
        return result
    wrong = {
        k: (v, result.data.get(k)) for k, v in result.case.expect.items() if result.data.get(k) != v
    }
    if wrong:
        result.status = "error"
        result.note = "wrong result: " + ", ".join(
            f"{k} expected {want!r}, got {got!r}" for k, (want, got) in wrong.items()
        )
    return result


def describe(result: Result) -> str:
    """One console line for a result."""
    c = result.case
    head = f"  {c.scenario:<10} {c.system:<9} {c.workload:<11} {c.label:<14}"
    if not result.ok:
        return f"{head} {result.status.upper()}: {result.note}"
    d = result.data
    parts = [f"wall {d['wall']:.4g} s"]
    calls = d.get("calls") or d.get("jobs")
    if calls:
        parts.append(f"{d['wall'] / calls * 1e6:.1f} µs/call")
    if d.get("queries") is not None:
        parts.append(f"{d['queries']} queries")
    if d.get("cached") is not None:
        parts.append(f"{d['cached']} cached")
    parts.append(f"RSS {result.maxrss_kb / 1024:.0f} MB")
    return f"{head} " + ", ".join(parts)
