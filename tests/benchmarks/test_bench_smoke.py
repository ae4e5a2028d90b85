"""Smoke runs of every benchmark scenario at tiny sizes, so the suite cannot rot.

Each scenario runs its cases exactly as ``python -m benchmarks --quick`` does (a fresh
process per case) and asserts the results are correct: the runner checks every value
against the case's ``expect`` (sums, call counts, executed/cached counts), so a wrong
result shows up as an error here. Times are never asserted.

lazyflow's own scenarios are mandatory, and so are the floor and the start-up ones. The
peers (redun, dask.delayed, dask.distributed, joblib, Hamilton, Prefect) and Airflow are
baselines, not project features: each peer's cases skip when its venv (created by
``make bench``) is absent, Airflow's when Airflow is. The report's own logic (the
targets with verdicts and floors, the peers table, the README blocks) is tested on
made-up results, without any peer. PostgreSQL uses the shared ``_pg_server`` fixture
(skips locally, fails under CI).
"""

from __future__ import annotations

import importlib.util
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from benchmarks import cli, report
from benchmarks.peers import PEERS
from benchmarks.runner import Case, Result, Runner, interpreter
from benchmarks.scenarios import (
    FULL,
    PEER_SYSTEMS,
    QUICK,
    chain_case,
    dask_cases,
    fanout_case,
    floor_cases,
    peer_case,
    scenario_cases,
    startup_cases,
)

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


@pytest.mark.dask
def test_dask_scenario_gives_correct_results(tmp_path: Path) -> None:
    """The Dask executor and Dask's client.map (each on a LocalCluster) sum correctly."""
    results = _run_groups(_cases("dask", "dask"), tmp_path)
    assert {r.case.workload for r in results} == {"client_map", "lazyflow"}
    _assert_all_ok(results)
    lazyflow = next(r for r in results if r.case.workload == "lazyflow")
    assert lazyflow.data["executed"] == lazyflow.data["jobs"] > 0


def test_floor_and_startup_scenarios(tmp_path: Path) -> None:
    """The floor (call + dict + BLAKE3 + SQLite row) and the whole-process start-up
    figures run and give their values."""
    results = _run_groups(_cases("floor", "floor") + _cases("startup", "startup"), tmp_path)
    _assert_all_ok(results)
    assert {r.case.workload for r in results} == {"floor", "command", "first_run"}
    first = next(r for r in results if r.case.workload == "first_run")
    assert 0 < first.data["wall"] <= first.data["run_seconds"]


@pytest.mark.parametrize("system", PEER_SYSTEMS)
def test_peer_adapter(system: str, tmp_path: Path) -> None:
    """Each peer's adapter computes the same values at a tiny size: the fan-out, its
    cached re-run in a fresh process (executing nothing) where the peer caches, and the
    chain."""
    peer = PEERS[system]
    if not interpreter(system).exists():
        pytest.skip(f"{peer.venv} is absent (make bench creates it)")
    cases = _cases("peers", system)
    assert {c.workload for c in cases} == {"fanout", "chain"}
    results = _run_groups(cases, tmp_path)
    _assert_all_ok(results)  # the runner checked the values and executed counts
    cached = [r for r in results if r.case.params.get("run") == "cached"]
    assert all(r.data["executed"] == 0 for r in cached)


def test_cli_refuses_an_unknown_system(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["floor", "--quick", "--systems", "lazyflow,nope"]) == 2
    assert "unknown system(s) nope" in capsys.readouterr().out


def _peer_results() -> list[Result]:
    """Made-up results for every system of the peers table (no peer is run)."""
    out = []
    for n, wall in ((1_000, 0.01), (10_000, 0.1)):
        plain = fanout_case("plain", n, flat=True)
        out.append(_fake_result(plain, 0.0, calls=n + 1))
        for run, w in (("cold", 0.5), ("cached", 0.05)):
            case = fanout_case("lazyflow", n, flat=True, run=run)
            out.append(_fake_result(case, w * n / 10_000, calls=n + 1))
        out.append(_fake_result(peer_case("joblib", "fanout", n), wall * 40, calls=n + 1))
        if n == 1_000:  # prefect is capped at 1k: its 10k cell falls back to this one
            out.append(_fake_result(peer_case("prefect", "fanout", n), 12.012, calls=n + 1))
    out.append(_fake_result(chain_case("plain", 1_000), 0.0, calls=1_000))
    out.append(_fake_result(chain_case("lazyflow", 1_000), 0.1, calls=1_000))
    out.append(Result(peer_case("hamilton", "chain", 1_000), "error", note="RecursionError: x"))
    return out


def test_peers_table_and_project_readme(tmp_path: Path) -> None:
    """lazyflow beside every peer: per-job figures, fall-backs to a smaller size, no
    cache, failures by name, provenance; the README block is replaced in place."""
    from benchmarks import peertable
    from benchmarks.figures import Results

    res = Results(_peer_results())
    text = peertable.markdown(res, FULL)
    head = text.splitlines()[0]
    for system in ("lazyflow", *PEER_SYSTEMS, "redun"):
        assert peertable.title(system) in head
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in text.splitlines()}
    cold = rows["fan-out 10k, cold, per job"]
    assert cold[1] == "50.0 µs" and cold[4] == "400 µs"  # lazyflow, joblib
    assert cold[6] == "12.00 ms (at 1k)"  # prefect, capped
    assert rows["flat cached re-run 1k, per hit"][2] == "— (no cache)"  # dask.delayed
    assert rows["chain 1k, per call"][5] == "RecursionError"  # hamilton
    provenance = rows["records provenance"]
    assert provenance[1].startswith("yes") and provenance[4].startswith("no")

    readme = tmp_path / "README.md"
    begin, end = report.PEERS_BEGIN, report.PEERS_END
    readme.write_text(f"intro\n- **Fast.**\n  {begin}\n  OLD\n  {end}\nend\n")
    assert report.write_project_readme(_peer_results(), FULL, path=readme)
    out = readme.read_text()
    assert out.startswith("intro\n- **Fast.**\n") and out.endswith(f"  {report.PEERS_END}\nend\n")
    assert "OLD" not in out and "  | fan-out 10k, cold, per job | 50.0 µs |" in out
    assert not report.write_project_readme([], FULL, path=tmp_path / "absent.md")


def _goal_results() -> list[Result]:
    """Made-up lazyflow, floor, start-up and Dask results for the issue 18 targets."""
    n, big = 10_000, 100_000
    out = [
        _fake_result(fanout_case("plain", n), 0.0, calls=n + 2),
        _fake_result(fanout_case("lazyflow", n), 0.15, calls=n + 2),  # 15 µs: met
        _fake_result(fanout_case("plain", big), 0.0, calls=big + 2),
        _fake_result(fanout_case("lazyflow", big), 5.0, calls=big + 2),  # 50 µs: missed
        _fake_result(fanout_case("plain", n, flat=True), 0.0, calls=n + 1),
        _fake_result(fanout_case("lazyflow", n, flat=True, run="cached"), 0.4, calls=n + 1),
    ]
    for case in floor_cases(FULL):
        out.append(_fake_result(case, 0.00002 * case.params["n"], calls=case.params["n"]))
    for case in startup_cases(FULL):
        wall = {"python": 0.03, "help": 0.15, "log": 0.3}.get(case.params.get("name", ""), 0.1)
        out.append(_fake_result(case, wall))
    for case in dask_cases(FULL):
        out.append(_fake_result(case, 1.0 if case.workload == "client_map" else 3.0))
    million = fanout_case("lazyflow", FULL.million, scenario="million")
    out.append(Result(million, "ok", {"wall": 60.0, "calls": 1_000_002, **million.expect}))
    out[-1].maxrss_kb = 800_000
    return out


def test_issue_18_targets_have_verdicts_and_floors() -> None:
    """Every target row of issue 18 is there with a verdict; a missed per-job target
    shows by how much and the floor measured in the same run."""
    from benchmarks import goals
    from benchmarks.figures import Results

    rows = {g.scenario: g for g in goals.goals(Results(_goal_results()), FULL)}
    assert len(rows) == 15  # 2 fan-out, 2 cached, chain, 1M, processes, 2 PG, 4 start-up, 2 Dask
    met = rows["fan-out cold, overhead per job, N=10k"]
    assert met.verdict == "✅ met" and met.measured == "15.0 µs"
    missed = rows["fan-out cold, overhead per job, N=100k"]
    assert missed.verdict == "❌ missed: 2.5x the target"
    assert missed.floor == "20.0 µs/job: call + dict + BLAKE3 + SQLite row"
    hit = rows["flat cached re-run, per hit, N=10k"]
    assert hit.verdict == "❌ missed: 8.0x the target" and "BLAKE3 + SELECT" in hit.floor
    assert rows["chain, per call, depth 100k"].verdict == "— not measured"
    m = rows["1M fan-out"]
    assert m.verdict == "❌ missed: 2.4x the time, per job +20% of 100k", m.measured
    assert rows["`lazyflow --help` start-up"].verdict == "✅ met"
    log = rows["`lazyflow log` start-up"]
    assert log.verdict == "❌ missed: 1.5x the target" and log.floor == "`python -c pass`: 30.0 ms"
    dask = rows["Dask executor vs raw client.map, 10k calls, same cluster"]
    assert dask.verdict == "❌ missed: 3.0x"
    text = goals.markdown(Results(_goal_results()), FULL)
    assert text.count("\n") == 16  # head, rule, 15 rows


def test_repeated_cases_report_the_median_of_fresh_runs(tmp_path: Path) -> None:
    """A case run three times reports the run of median wall, with every run's wall; each
    cold run gets a new store (else the second would be served from the first's cache
    and fail its expected executed count), and the cached case after them is cached."""
    sizes = replace(QUICK, repeat=3)
    cold = fanout_case("lazyflow", 30, sizes=sizes)
    cached = fanout_case("lazyflow", 30, run="cached", sizes=sizes)
    assert cold.repeat == cached.repeat == 3
    runner = Runner(tmp_path, log=lambda _line: None)
    for result in runner.run_all([cold, cached]):
        assert result.ok, result.note
        runs = result.data["runs"]
        assert len(runs) == 3
        assert result.data["wall"] == sorted(runs)[1]
    big = fanout_case("lazyflow", sizes.repeat_max_n + 1, sizes=sizes)
    assert big.repeat == 1  # the 1M case runs once
    assert fanout_case("plain", 30, sizes=sizes).repeat == 1
