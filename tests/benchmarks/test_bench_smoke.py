"""Smoke runs of every benchmark scenario at tiny sizes, so the suite cannot rot.

Each scenario runs its cases exactly as ``python -m benchmarks --quick`` does (a fresh
process per case) and asserts the results are correct: the runner checks every value
against the case's ``expect`` (sums, call counts, executed/cached counts), so a wrong
result shows up as an error here. Times are never asserted.

lazyflow's own scenarios are mandatory. redun and Airflow are baselines, not project
features: their cases skip when ``.venv-redun`` (created by ``make bench``) or Airflow is
absent. PostgreSQL uses the shared ``_pg_server`` fixture (skips locally, fails under CI).
"""

from __future__ import annotations

import importlib.util
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from benchmarks import report
from benchmarks.runner import Case, Result, Runner, interpreter
from benchmarks.scenarios import FULL, QUICK, chain_case, fanout_case, scenario_cases

# "scaling" is derived from the fanout and chain cases: nothing of its own to run.
LAZYFLOW_SCENARIOS = ["fanout", "cached", "chain", "million", "hashing", "processes"]


def _run_groups(cases: list[Case], workdir: Path) -> list[Result]:
    """Run cases two at a time; cases sharing a store run in order in one group."""
    groups: dict[str, list[Case]] = {}
    for i, case in enumerate(cases):
        groups.setdefault(case.store or f"solo-{i}", []).append(case)

    def run_group(item: tuple[int, list[Case]]) -> list[Result]:
        index, group = item
        runner = Runner(workdir / f"g{index}", log=lambda _line: None)
        return runner.run_all(group)

    with ThreadPoolExecutor(max_workers=2) as pool:
        chunks = list(pool.map(run_group, enumerate(groups.values())))
    return [r for chunk in chunks for r in chunk]


def _cases(scenario: str, system: str) -> list[Case]:
    cases = [c for c in scenario_cases(scenario, QUICK) if c.system == system]
    return [c for c in cases if not c.skip]


def _assert_all_ok(results: list[Result]) -> None:
    bad = [
        f"{r.case.system} {r.case.workload} {r.case.label}: {r.status} {r.note}\n"
        f"{r.stderr_tail[-1500:]}"
        for r in results
        if not r.ok
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("scenario", LAZYFLOW_SCENARIOS)
def test_lazyflow_scenario_gives_correct_results(scenario: str, tmp_path: Path) -> None:
    """Every lazyflow case (and its plain-Python floor) returns the expected values."""
    cases = _cases(scenario, "lazyflow") + _cases(scenario, "plain")
    assert cases
    results = _run_groups(cases, tmp_path)
    _assert_all_ok(results)
    for r in results:
        if r.case.system == "lazyflow" and r.case.workload == "fanout":
            assert r.data["queries"] > 0, "store queries were not counted"
        if r.case.params.get("run") == "cached":  # a re-run executes nothing
            assert r.data["executed"] == 0 and r.data["cached"] >= 1


@pytest.mark.postgres
def test_postgres_scenario(_pg_server: None, tmp_path: Path) -> None:
    """Fan-out cold and cached on a fresh PostgreSQL schema, next to the SQLite figures."""
    from benchmarks import pg

    results = _run_groups(_cases("postgres", "lazyflow") + _cases("postgres", "plain"), tmp_path)
    try:
        _assert_all_ok(results)
    finally:
        for group in tmp_path.iterdir():
            pg.drop_schemas(group)


def test_redun_baselines(tmp_path: Path) -> None:
    """redun computes the same values; its deep chain fails with RecursionError."""
    if not interpreter("redun").exists():
        pytest.skip(".venv-redun is absent (make bench creates it)")
    n, deep = min(QUICK.fanout), max(QUICK.redun_chain)
    cases = [
        fanout_case("redun", n, run="cached", sizes=QUICK),
        fanout_case("redun", n, executor="processes", sizes=QUICK),
        chain_case("redun", deep),
        *(
            c
            for c in scenario_cases("hashing", QUICK)
            if c.system == "redun" and c.workload in ("hash_bytes", "stat_files")
        ),
    ]
    results = {r.case.key: r for r in _run_groups(cases, tmp_path)}
    chain = results.pop(chain_case("redun", deep).key)
    assert chain.ok or "RecursionError" in chain.note, chain.note
    _assert_all_ok(list(results.values()))


@pytest.mark.airflow
def test_airflow_operator_vs_mapped(tmp_path: Path) -> None:
    """One LazyFlowOperator and N mapped Airflow tasks both produce the sum."""
    if importlib.util.find_spec("airflow") is None:
        pytest.skip("Airflow is not installed")
    results = _run_groups(_cases("airflow", "airflow"), tmp_path)
    _assert_all_ok(results)
    operator = next(r for r in results if r.case.workload == "operator")
    assert operator.data["airflow_tasks"] == 1


def _fake_result(case: Case, wall: float, **data: object) -> Result:
    return Result(case, "ok", {"wall": wall, **case.expect, **data}, maxrss_kb=50_000)


def test_report_and_readme(tmp_path: Path) -> None:
    """The report renders the targets, and the README keeps its hand-written parts."""
    n = 10_000
    results = [
        _fake_result(fanout_case("plain", n), 0.001, calls=n + 2),
        _fake_result(fanout_case("lazyflow", n), 0.5, calls=n + 2, queries=40, cached=0),
        _fake_result(fanout_case("redun", n), 130.0, calls=n + 2, queries=9000),
        Result(chain_case("redun", 1000), "error", note="RecursionError: too deep"),
    ]
    info = {
        "nproc": 2,
        "cpu": "cpu",
        "mem_gib": 1,
        "platform": "Linux",
        "python": "3.11",
        "date": "today",
        "commit": "abc",
        "quick": False,
        "seconds": 1.0,
        "scenarios": ["fanout", "chain"],
    }
    text = report.markdown(results, FULL, info)
    row = "| fan-out cold, N=10k | overhead ≤ 100 µs/job | 49.9 µs | 13.00 ms/job | ✅ met |"
    assert row in text
    assert "fails at depth 1k: RecursionError" in text
    readme = tmp_path / "README.md"
    readme.write_text(
        f"# intro\n\nhand-written\n\n{report.BEGIN}\nSTALE-TABLE\n"
        f"{report.END}\n\n## Profiles\nnotes\n"
    )
    report.write_readme(results, FULL, info, path=readme)
    out = readme.read_text()
    assert out.startswith("# intro\n\nhand-written") and out.endswith("## Profiles\nnotes\n")
    assert "STALE-TABLE" not in out and "### Targets" in out
