"""Profile one lazyflow benchmark case: ``python -m benchmarks.profile CASE [--tool ...]``.

CASE is ``fanout:N``, ``flat:N``, ``cached:N``, ``cached-flat:N``, ``chain:N`` or
``processes:N``. The case runs exactly as in the suite (a fresh ``benchmarks.child``
process; a cached case first gets its cold run in the same store), under

* ``pyinstrument`` (default): a call tree, written as text; or
* ``py-spy``: sampled stacks of the thread holding the GIL (``--gil``), summarised as the functions
  with the most self and total samples, plus a speedscope JSON file.

Output goes to ``--out`` (default ``benchmarks/profiles/``). Neither profiler is a
dependency of the suite: ``pip install pyinstrument py-spy`` in the venv first.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.runner import REPO, Case, Runner, child_env
from benchmarks.scenarios import chain_case, fanout_case

PROFILES = Path(__file__).resolve().parent / "profiles"


def make_case(spec: str) -> Case:
    kind, _, size = spec.partition(":")
    n = int(size.replace("k", "000").replace("M", "000000") or 1000)
    makers = {
        "fanout": lambda: fanout_case("lazyflow", n),
        "flat": lambda: fanout_case("lazyflow", n, flat=True),
        "cached": lambda: fanout_case("lazyflow", n, run="cached"),
        "cached-flat": lambda: fanout_case("lazyflow", n, flat=True, run="cached"),
        "chain": lambda: chain_case("lazyflow", n),
        "processes": lambda: fanout_case("lazyflow", n, executor="processes"),
    }
    if kind not in makers:
        raise SystemExit(f"unknown case {spec!r}; use one of {', '.join(makers)} as KIND:N")
    return makers[kind]()


def summarize_pyspy(raw: Path, top: int = 25) -> str:
    """Top functions by self and total samples from py-spy's collapsed-stack output.

    Samples taken while the child imports the workload module (``lazyflow_core`` and its
    store, outside the timed region) are left out; lazy imports during a run are kept.
    """
    self_n: collections.Counter[str] = collections.Counter()
    total_n: collections.Counter[str] = collections.Counter()
    samples = skipped = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if f]
        if any(f.startswith("<module> (") and "benchmarks/wl_" in f for f in frames):
            skipped += n
            continue
        samples += n
        if frames:
            self_n[_short(frames[-1])] += n
        for name in {_short(f) for f in frames}:
            total_n[name] += n
    if not samples:
        return f"no samples outside imports ({skipped} in imports)"
    lines = [
        f"{samples} samples in the timed region ({skipped} more while importing)",
        "",
        "self%  total%  function",
    ]
    for name, n in self_n.most_common(top):
        lines.append(f"{100 * n / samples:5.1f}  {100 * total_n[name] / samples:6.1f}  {name}")
    lines += ["", "total% (inclusive), lazyflow_core only"]
    core = [(k, v) for k, v in total_n.most_common() if "lazyflow_core" in k][:top]
    lines += [f"{100 * v / samples:6.1f}  {k}" for k, v in core]
    return "\n".join(lines)


def _short(frame: str) -> str:
    # py-spy frames look like "func (path/to/file.py:123)"; drop the line number.
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", str(REPO) + "/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{name} ({where})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile")
    parser.add_argument("case", help="KIND:N, e.g. fanout:10k, cached-flat:10k, chain:100k")
    parser.add_argument("--tool", choices=["pyinstrument", "py-spy"], default="pyinstrument")
    parser.add_argument("--out", type=Path, default=PROFILES)
    parser.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    args = parser.parse_args(argv)

    case = make_case(args.case)
    workdir = Path(tempfile.mkdtemp(prefix="lazyflow-profile-"))
    try:
        runner = Runner(workdir, log=lambda line: print(line, flush=True))
        for prep in case.prep:
            runner.run(prep)
        cwd = workdir / (case.store or "case")
        cwd.mkdir(parents=True, exist_ok=True)
        spec = json.dumps(
            {
                "system": case.system,
                "workload": case.workload,
                "params": {**case.params, "workdir": str(cwd)},
            }
        )
        args.out.mkdir(parents=True, exist_ok=True)
        stem = args.out / args.case.replace(":", "-")
        bindir = Path(sys.executable).parent
        if args.tool == "pyinstrument":
            out = stem.with_suffix(".pyinstrument.txt")
            cmd = [str(bindir / "pyinstrument"), "-o", str(out), "-m", "benchmarks.child", spec]
        else:
            out = stem.with_suffix(".pyspy.txt")
            raw = stem.with_suffix(".pyspy.raw")
            cmd = [
                str(bindir / "py-spy"),
                "record",
                "--gil",
                "--rate",
                str(args.rate),
                "--format",
                "raw",
                "-o",
                str(raw),
                "--",
                sys.executable,
                "-m",
                "benchmarks.child",
                spec,
            ]
        proc = subprocess.run(cmd, cwd=cwd, env=child_env(), capture_output=True, text=True)
        result = [ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH-RESULT")]
        print(result[-1][:300] if result else proc.stderr[-2000:])
        if args.tool == "py-spy":
            out.write_text(summarize_pyspy(raw))
        print(f"profile written to {out}")
        return proc.returncode
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
