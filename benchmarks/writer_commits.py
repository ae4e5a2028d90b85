"""What the writer process's commit policy costs: one script, two policies, the same rows.

``python -m benchmarks.writer_commits [--jobs 50000,200000] [--trials 2] [--before REV]``

A busy run's store work happens in the writer process (`lazyflow_core.store.batch_write`,
run as a script), and how often it commits decides both what a kill of that process
loses and how fast it writes: with random (hash) keys, every commit rewrites each B-tree
page it touched. This feeds the real writer process, through its real pipe protocol, the
rows of a fan-out of N jobs (per job: a call, its argument, the parent's child row, the
result value and the job, as `Recorder` makes them), in batches of 500 jobs, as fast as
it takes them (the writer is the bottleneck, as in a busy run: the pipe stays full), and
ends with a sync. Each batch says when its records were "put" (just before the send, as
the run's writer thread says), which the current policy commits by.

A/B in the same run, trials interleaved: ``before`` is ``batch_write.py`` as of `--before`
(a git revision, read with ``git show``; default: the last commit that touched it
before the commit-age policy), ``after`` the working tree's. Both write a fresh SQLite
store each trial, with the pragmas the store gives its writer process. Reported per
case: wall time and the writer process's CPU time (user + system, from ``wait4``) per
job, and the lowest of the trials. The machine is shared: compare the two columns of
one run, not runs.
"""

from __future__ import annotations

import argparse
import os
import pickle
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lazyflow_core.store import Store, batch_write
from lazyflow_core.store.statements import write_plan

REPO = Path(__file__).resolve().parents[1]
BEFORE = "ad3bdc4"  # main before issue 13's commit-age policy (0.5 s, stretched to 2 s)
BATCH_JOBS = 500


def fanout_batches(jobs: int) -> list[dict[str, list[tuple[object, ...]]]]:
    """The rows a cold fan-out ``total([inc(i) for i in range(jobs)])`` writes, by batch."""
    execution, parent, task = secrets.token_hex(16), secrets.token_hex(20), secrets.token_hex(20)
    now = time.time()
    batches = []
    for start in range(0, jobs, BATCH_JOBS):
        batch: dict[str, list[tuple[object, ...]]] = {
            k: [] for k in ("value", "call", "arg", "child", "job")
        }
        for i in range(start, min(jobs, start + BATCH_JOBS)):
            call, arg, result = (secrets.token_hex(20) for _ in range(3))
            data = pickle.dumps(i + 1)
            batch["value"].append(
                (result, "int", len(data), repr(i + 1), data, None, now, "c" * 64)
            )
            batch["call"].append((call, task, "inc", result, arg, execution, f"j{i}", now))
            batch["arg"].append((call, 0, "x", arg, None))
            batch["child"].append((parent, i, call))
            batch["job"].append(
                (
                    f"{execution[:8]}-{i}",
                    execution,
                    call,
                    "inc",
                    None,
                    "done",
                    False,
                    now,
                    now,
                    1,
                    f"inc({i})",
                    None,
                    result,
                    task,
                    None,
                    None,
                )
            )
        batches.append(batch)
    return batches


def script(rev: str | None, tmp: Path, age: float | None = None) -> Path:
    """``batch_write.py`` of `rev` (None: the working tree's; `age`: with that
    ``COMMIT_AGE`` instead of its own, to see what the interval costs)."""
    if rev is None and age is None:
        return Path(batch_write.__file__)
    if rev is None:
        source = Path(batch_write.__file__).read_text()
        line = f"COMMIT_AGE = {batch_write.COMMIT_AGE}\n"
        assert line in source, "COMMIT_AGE is not set where this benchmark expects it"
        path = tmp / f"batch_write_age_{age}.py"
        path.write_text(source.replace(line, f"COMMIT_AGE = {age}\n"))
        return path
    path = tmp / f"batch_write_{rev}.py"
    source = subprocess.run(
        ["git", "show", f"{rev}:lazyflow_core/store/batch_write.py"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path.write_text(source)
    return path


def trial(
    writer: Path, batches: list[dict[str, list[tuple[object, ...]]]], tmp: Path
) -> tuple[float, float]:
    """Wall and writer-CPU seconds to write `batches` into a fresh store through `writer`."""
    db = tmp / f"w{secrets.token_hex(4)}.db"
    store = Store(f"sqlite:///{db}")
    store.ensure_schema()
    spec = store.write_target().process_connect
    assert spec is not None
    store.close()
    proc = subprocess.Popen(
        [sys.executable, str(writer)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdin is not None and proc.stdout is not None
    out, reader = proc.stdin.fileno(), batch_write.Reader(proc.stdout.fileno())
    batch_write.send(out, ("open", *spec, write_plan("sqlite")))
    assert reader.read()[0] == "ready"
    started = time.perf_counter()
    for batch in batches:
        if reader.ready():  # the current writer says what it committed: read it, as the run does
            reader.read()
        batch_write.send(out, ("batch", batch, time.monotonic()))
    batch_write.send(out, ("sync", 1))
    while (message := reader.read()) is not None and message[0] != "ack":
        pass
    wall = time.perf_counter() - started
    proc.stdin.close()
    _, _, usage = os.wait4(proc.pid, 0)
    proc.stdout.close()
    proc.returncode = 0
    for path in db.parent.glob(db.name + "*"):
        path.unlink()
    return wall, usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.writer_commits", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--jobs", default="50000,200000", help="comma-separated fan-out sizes")
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--before", default=BEFORE, help="git revision of the 'before' writer")
    parser.add_argument(
        "--ages", default="", help="also the current writer with these COMMIT_AGE values (s)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        writers = {"before": script(args.before, tmp)}
        writers[f"after (COMMIT_AGE {batch_write.COMMIT_AGE} s)"] = script(None, tmp)
        for age in filter(None, args.ages.split(",")):
            writers[f"COMMIT_AGE {float(age)} s"] = script(None, tmp, float(age))
        print("| jobs | policy | wall µs/job (trials) | writer CPU µs/job (trials) |")
        print("| --- | --- | --- | --- |")
        for jobs in (int(n) for n in args.jobs.split(",")):
            batches = fanout_batches(jobs)
            seen: dict[str, list[tuple[float, float]]] = {k: [] for k in writers}
            for _ in range(args.trials):
                for label, writer in writers.items():  # interleaved: same load for both
                    seen[label].append(trial(writer, batches, tmp))
            for label, runs in seen.items():
                walls = ", ".join(f"{w / jobs * 1e6:.1f}" for w, _ in runs)
                cpus = ", ".join(f"{c / jobs * 1e6:.1f}" for _, c in runs)
                best = min(runs)
                print(
                    f"| {jobs:,} | {label} | {best[0] / jobs * 1e6:.1f} ({walls}) | "
                    f"{min(c for _, c in runs) / jobs * 1e6:.1f} ({cpus}) |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
