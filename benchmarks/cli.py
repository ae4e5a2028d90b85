"""Command line of the benchmark suite: ``python -m benchmarks [SCENARIO ...] [--quick]``.

Every run prints each case as it finishes, then the targets and the tables. A full run
(no scenario named, no ``--quick``) also saves all figures to
``benchmarks/results/last.json`` and rewrites the generated section of
``benchmarks/README.md``; other runs leave both alone unless ``--readme``/``--json`` say
otherwise. The exit status is 1 when a lazyflow or plain case crashed, timed out or
returned a wrong value (a missed target is not an error).
"""

from __future__ import annotations

import argparse
import compileall
import json
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from benchmarks import machine, pg, report
from benchmarks.peers import PEERS, ensure_venv
from benchmarks.runner import REPO, Result, Runner, load_results
from benchmarks.scenarios import FULL, QUICK, SCENARIOS, Sizes, plan

RESULTS_DIR = Path(__file__).resolve().parent / "results"
OWN = ("plain", "lazyflow", "floor", "startup", "airflow", "dask")
SYSTEMS = OWN + tuple(PEERS)
BASELINES = ("plain", "lazyflow", "floor", "startup")
"""Systems whose crash, time-out or wrong value makes the run fail (exit status 1)."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="lazyflow speed and scale benchmarks, with plain Python, the measured "
        "floor and the peer systems (redun, dask, joblib, Hamilton, Prefect) in the same run.",
        epilog="scenarios: " + "; ".join(f"{k}: {v}" for k, v in SCENARIOS.items()),
    )
    parser.add_argument(
        "scenarios",
        nargs="*",
        metavar="SCENARIO",
        help=f"any of {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for smoke tests")
    parser.add_argument(
        "--systems", default=",".join(SYSTEMS), help="comma-separated systems to run (default: all)"
    )
    parser.add_argument(
        "--no-redun", action="store_true", help="skip redun (do not create .venv-redun)"
    )
    parser.add_argument(
        "--no-peers",
        action="store_true",
        help="skip every peer system (redun, dask.*, joblib, hamilton, prefect)",
    )
    parser.add_argument(
        "--redun-max-n",
        type=int,
        default=None,
        help="largest fan-out redun runs (default 1000; quick 50)",
    )
    readme = parser.add_mutually_exclusive_group()
    readme.add_argument(
        "--readme",
        action="store_true",
        default=None,
        help="write benchmarks/README.md even for a quick or partial run",
    )
    readme.add_argument(
        "--no-readme", dest="readme", action="store_false", help="do not write benchmarks/README.md"
    )
    parser.add_argument(
        "--reuse",
        type=Path,
        default=None,
        metavar="JSON",
        help="take the results of systems not selected by --systems from "
        "this earlier results file (marked as reused)",
    )
    parser.add_argument(
        "--render",
        type=Path,
        nargs="+",
        default=None,
        metavar="JSON",
        help="run nothing: print the report of earlier results files "
        "(merged; the first file's figures win) and write the README "
        "with --readme",
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the results to this JSON file"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where stores and data files go (default: a temp dir)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--timeout-scale", type=float, default=1.0, help="multiply every case's timeout"
    )
    args = parser.parse_args(argv)
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(
            f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}"
        )
    return args


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # so that cleanup (children, work dir, schemas) runs


def byte_compile() -> None:
    """Write lazyflow's (and the workloads') bytecode caches before measuring.

    An installed package has them (pip compiles what it installs, the peers' venvs
    included); this checkout's editable install does not, and where
    ``PYTHONDONTWRITEBYTECODE`` is set (as on these machines) no import writes them, so
    every module lazyflow imports inside a timed run (the store writer, on the first
    ``run``) would be compiled from source there, ~1-3 ms each. Imports still read the
    caches with that variable set; a stale one is recompiled, never used.
    """
    for package in ("lazyflow_core", "lazyflow_airflow", "lazyflow_prefect", "benchmarks"):
        compileall.compile_dir(str(REPO / package), quiet=1, workers=1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    names = args.scenarios or list(SCENARIOS)
    sizes = QUICK if args.quick else FULL
    if args.redun_max_n is not None:
        sizes = replace(sizes, redun_max_n=args.redun_max_n)
    systems = {s.strip() for s in args.systems.split(",") if s.strip()}
    if args.no_redun:
        systems.discard("redun")
    if args.no_peers:
        systems -= set(PEERS)
    unknown = systems - set(SYSTEMS)
    if unknown:
        print(f"unknown system(s) {', '.join(sorted(unknown))}; choose from {', '.join(SYSTEMS)}")
        return 2
    if args.render is not None:
        return render(args.render, sizes, write_readme=bool(args.readme))
    cases = plan(names, sizes)
    reused = {r.case.key: r for r in load_results(args.reuse)} if args.reuse else {}
    for case in cases:
        if case.system not in systems:
            case.skip = "not selected (--systems)"

    info = machine.describe()
    print(
        f"lazyflow benchmarks ({'quick' if args.quick else 'full'}): "
        f"{', '.join(names)}\n{machine.one_line(info)}",
        flush=True,
    )
    unavailable = {}
    for system in dict.fromkeys(c.system for c in cases if c.system in PEERS and not c.skip):
        problem = ensure_venv(system, lambda msg: print(msg, flush=True))
        if problem:
            unavailable[system] = problem
    if any(c.params.get("db") == "postgres" and not c.skip for c in cases):
        problem = pg.check()
        if problem:
            unavailable["postgres"] = problem

    byte_compile()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="lazyflow-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    runner = Runner(
        workdir,
        log=lambda line: print(line, flush=True),
        unavailable=unavailable,
        timeout_scale=args.timeout_scale,
    )
    started = time.time()
    try:
        for case in cases:
            if case.params.get("db") == "postgres" and "postgres" in unavailable:
                case.skip = f"PostgreSQL unavailable: {unavailable['postgres']}"
            old = reused.get(case.key)
            if case.skip and old is not None and old.status != "skipped":
                old.case = case
                mark = f"(reused from {args.reuse})"
                if mark not in (old.note or ""):  # a case two scenarios share: marked once
                    old.note = (old.note + " " if old.note else "") + mark
                runner.results[case.key] = old
                continue
            if case.system not in systems:
                continue
            runner.run(case)
    except (KeyboardInterrupt, SystemExit):
        # Keep what was measured: ``--render THIS.json EARLIER.json`` completes it.
        if args.json is not None:
            info["interrupted"] = True
            info["seconds"] = round(time.time() - started, 1)
            info["scenarios"] = names
            save(list(runner.results.values()), info, args.json, partial=True)
            print(f"interrupted: the results so far are in {args.json}", flush=True)
        raise
    finally:
        pg.drop_schemas(workdir)
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    info["seconds"] = round(time.time() - started, 1)
    info["commit_end"] = machine.describe()["commit"]
    info["quick"] = args.quick
    info["scenarios"] = names
    results = list(runner.results.values())

    text = report.console(results, sizes, info)
    print(text)
    save(results, info, args.json, partial=args.quick or bool(args.scenarios))
    full_run = not args.quick and not args.scenarios
    write_readme = args.readme if args.readme is not None else full_run
    if write_readme:
        path = report.write_readme(results, sizes, info)
        print(f"wrote {path.relative_to(REPO)}")
        if report.write_project_readme(results, sizes):
            print("wrote the peers table of README.md")
    failed = [r for r in results if r.status in ("error", "timeout") and r.case.system in BASELINES]
    return 1 if failed else 0


def render(paths: list[Path], sizes: Sizes, write_readme: bool) -> int:
    """Re-render the report of saved results files (after changing the report code)."""
    info = json.loads(paths[0].read_text())["machine"]
    merged: dict[str, Result] = {}
    for path in paths:
        for r in load_results(path):
            if r.status != "skipped" or r.case.key not in merged:
                merged.setdefault(r.case.key, r)
    results = list(merged.values())
    if len(paths) > 1:
        info["date"] = f"{info['date']} (merged with {', '.join(p.name for p in paths[1:])})"
    if info.get("quick"):
        sizes = QUICK if sizes is FULL else sizes
    print(report.console(results, sizes, info))
    if write_readme:
        print(f"wrote {report.write_readme(results, sizes, info).relative_to(REPO)}")
        if report.write_project_readme(results, sizes):
            print("wrote the peers table of README.md")
    return 0


def save(results: list[Result], info: dict[str, object], extra: Path | None, partial: bool) -> None:
    payload = {"machine": info, "results": [r.to_dict() for r in results]}
    text = json.dumps(payload, indent=1, default=repr)
    RESULTS_DIR.mkdir(exist_ok=True)
    if not partial:
        (RESULTS_DIR / "last.json").write_text(text)
    if extra is not None:
        extra.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
