"""What is measured: the scenarios of issue 7 as lists of cases, full and ``--quick`` sizes.

Case constructors are deterministic, so the report finds a case's result by building the
same case again (``fanout_case("lazyflow", 10_000).key``). Every case carries the values
it must produce (``expect``); the runner marks a case whose result is wrong as an error,
so a fast but wrong benchmark cannot pass unnoticed.

redun is slow per job (~13 ms on a quiet machine, 90-130 ms on a loaded one: it commits
every record and waits on fsync), so by default it runs the fan-out only up to
``REDUN_MAX_N`` jobs, the flat cached variant only at the smallest size and the process
executor at 200 tasks (per-job overheads are what is compared); larger sizes are
reported as skipped with the reason (``--redun-max-n 10000`` adds the 10k runs, ~3 min
more on a quiet machine).
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.runner import Case

SCENARIOS: dict[str, str] = {
    "fanout": "fan-out of N tiny tasks into one sum, cold cache",
    "cached": "the same fan-out fully cached, re-run in a fresh process",
    "chain": "chain of dependent calls x = inc(x)",
    "floor": "the floor per job: a bare call, dict insert, BLAKE3 hash and SQLite row",
    "startup": "whole-process start-up: lazyflow --help, log, a cached demo run, first run",
    "million": "1,000,000-call fan-out, peak RSS",
    "scaling": "time per job from the smallest to the largest fan-out and chain",
    "hashing": "content hashing of 1 GiB (bytes, NumPy, file); stat-based file hashing",
    "processes": "processes executor, tiny tasks",
    "postgres": "PostgreSQL store: the fan-out cold and cached",
    "dask": "Dask executor vs Dask's own client.map, tiny calls, same LocalCluster",
    "peers": "the fan-out cold, its flat cached re-run and the chain on every peer system",
    "airflow": "one LazyFlowOperator vs the same work as mapped Airflow tasks (dag.test)",
}

PEER_SYSTEMS = ("dask_delayed", "dask_distributed", "joblib", "hamilton", "prefect")
"""Peers measured by the ``peers`` scenario (redun has its own cases, reused there)."""

CACHING_PEERS = ("joblib", "hamilton", "prefect")
"""Peers with a cache across processes: they get a cached re-run and count executions."""

PEER_CAPS: dict[str, tuple[int, int, str]] = {
    "dask_delayed": (
        1_000,
        1_000,
        "its time per call grows with N (loaded machine): a 10k fan-out took 74 s, a 10k "
        "chain 33 s, against 0.7 s and 1.1 s at 1k",
    ),
    "dask_distributed": (
        1_000,
        1_000,
        "its time per call grows with N (loaded machine): a 10k fan-out took 247 s, "
        "against 2.9 s at 1k",
    ),
    "joblib": (10_000, 10_000, ""),
    "hamilton": (
        1_000,
        1_000,
        "its time per node grows with N (loaded machine): a 10k fan-out took 246 s, "
        "against 2.5 s at 1k; its chain fails at 1k (RecursionError)",
    ),
    "prefect": (1_000, 1_000, "~10-30 ms per task run on this machine"),
}
"""Per peer, the largest fan-out and chain ``make bench`` runs (the time budget), and
why; larger sizes are reported as not run."""

REDUN_MAX_N = 1_000
GiB = 1 << 30


@dataclass(frozen=True)
class Sizes:
    """The sizes of one run: full (``make bench``) or quick (smoke tests)."""

    fanout: tuple[int, ...] = (1_000, 10_000, 100_000)
    chain: tuple[int, ...] = (1_000, 10_000, 100_000)
    redun_chain: tuple[int, ...] = (100, 1_000, 10_000, 100_000)
    million: int = 1_000_000
    hash_bytes: int = GiB
    stat_files: int = 10_000
    processes: int = 10_000
    redun_processes: int = 200
    airflow: int = 1_000
    postgres: int = 10_000
    redun_max_n: int = REDUN_MAX_N
    dask: tuple[int, ...] = (1_000, 10_000)
    peer_fanout: tuple[int, ...] = (1_000, 10_000)
    peer_chain: tuple[int, ...] = (1_000, 10_000)
    floor: tuple[int, ...] = (10_000, 100_000)
    startup_repeat: int = 5
    # lazyflow's fan-out cases up to `repeat_max_n` calls: the median of this many runs
    repeat: int = 3
    repeat_max_n: int = 100_000


FULL = Sizes()
QUICK = Sizes(
    fanout=(10, 50),
    chain=(10, 100),
    redun_chain=(10, 300),
    million=500,
    hash_bytes=1 << 20,
    stat_files=50,
    processes=8,
    redun_processes=8,
    airflow=3,
    postgres=20,
    redun_max_n=50,
    dask=(20,),
    peer_fanout=(10,),
    peer_chain=(10,),
    floor=(50,),
    startup_repeat=1,
    repeat=1,
)


def label(n: int) -> str:
    """1000 -> '1k', 1000000 -> '1M'."""
    for div, suffix in ((1_000_000, "M"), (1_000, "k")):
        if n >= div and n % div == 0:
            return f"{n // div}{suffix}"
    return str(n)


def fanout_sum(n: int) -> int:
    return n * (n + 1) // 2


def fanout_case(
    system: str,
    n: int,
    *,
    flat: bool = False,
    run: str = "cold",
    executor: str = "threads",
    db: str = "sqlite",
    scenario: str = "fanout",
    sizes: Sizes = FULL,
) -> Case:
    """``main(n)`` (or the flat expression) on ``system``; ``run`` is cold or cached."""
    shape = "flat" if flat else "main"
    params: dict[str, object] = {"n": n, "flat": flat, "run": run}
    if executor != "threads":
        params["executor"] = executor
    if db != "sqlite":
        params["db"] = db
    what = f"{shape} N={label(n)}"
    if run == "cached":
        what += " cached"
    if executor != "threads":
        what += f" [{executor}]"
    if db != "sqlite":
        what += f" [{db}]"
    expect: dict[str, object] = {"value": fanout_sum(n)}
    if system == "plain":
        return Case(scenario, "plain", "fanout", {"n": n, "flat": flat}, what, expect=expect)
    store = f"{system}-{shape}-{n}-{executor}-{db}"
    if system == "lazyflow":
        expect["executed"] = 0 if run == "cached" else n + (1 if flat else 2)
    prep = []
    if run == "cached":
        prep = [fanout_case(system, n, flat=flat, executor=executor, db=db, sizes=sizes)]
    timeout = 1800 if n > 100_000 or (system == "redun" and n >= 10_000) else 600
    case = Case(
        scenario,
        system,
        "fanout",
        params,
        what,
        store=store,
        prep=prep,
        timeout=timeout,
        expect=expect,
        repeat=sizes.repeat if system == "lazyflow" and n <= sizes.repeat_max_n else 1,
    )
    if system == "redun":
        if flat and n > min(sizes.fanout):
            case.skip = "not run (budget): redun's flat variant runs at the smallest N only"
        elif n > sizes.redun_max_n:
            case.skip = (
                f"not run (budget): ~{n * 0.013 / 60:.0f} min at redun's ~13 ms/job; "
                "--redun-max-n raises the limit"
            )
    return case


def chain_case(system: str, depth: int, scenario: str = "chain") -> Case:
    expect = {"value": depth}
    if system == "plain":
        return Case(
            scenario, "plain", "chain", {"depth": depth}, f"depth {label(depth)}", expect=expect
        )
    return Case(
        scenario,
        system,
        "chain",
        {"depth": depth},
        f"depth {label(depth)}",
        store=f"{system}-chain-{depth}",
        timeout=300 if system == "redun" else 900,
        expect=expect,
    )


def hashing_cases(sizes: Sizes) -> list[Case]:
    size, files = sizes.hash_bytes, sizes.stat_files
    what = f"{size / GiB:.3g} GiB" if size >= GiB else f"{size >> 20} MiB"
    cases = []
    for system, workloads in (
        ("plain", ["hash_bytes", "hash_blake2b", "hash_file"]),
        ("lazyflow", ["hash_bytes", "hash_numpy", "hash_file"]),
        ("redun", ["hash_bytes", "hash_numpy"]),
    ):
        cases += [
            Case("hashing", system, w, {"size": size}, what, store="hashdata") for w in workloads
        ]
    for system in ("plain", "lazyflow", "redun"):
        cases.append(
            Case(
                "hashing",
                system,
                "stat_files",
                {"count": files},
                f"{files} files",
                store="hashdata",
                expect={"value": files},
            )
        )
    return cases


def airflow_cases(n: int) -> list[Case]:
    expect = {"value": fanout_sum(n)}
    return [
        fanout_case("plain", n, scenario="airflow"),
        Case(
            "airflow",
            "airflow",
            "operator",
            {"n": n},
            f"N={label(n)} operator",
            store=f"airflow-operator-{n}",
            timeout=900,
            expect=expect,
        ),
        Case(
            "airflow",
            "airflow",
            "mapped",
            {"n": n},
            f"N={label(n)} mapped",
            store=f"airflow-mapped-{n}",
            timeout=1200,
            expect=expect,
        ),
    ]


def dask_cases(sizes: Sizes) -> list[Case]:
    """Per call: lazyflow's Dask executor and Dask's ``client.map``, each on a fresh
    LocalCluster of the same shape (see benchmarks/wl_dask.py)."""
    return [
        Case(
            "dask",
            "dask",
            workload,
            {"n": n},
            f"N={label(n)} {'client.map' if workload == 'client_map' else 'lazyflow'}",
            store=f"dask-{workload}-{n}",
            expect={"value": fanout_sum(n)},
        )
        for n in sizes.dask
        for workload in ("client_map", "lazyflow")
    ]


def peer_case(system: str, kind: str, n: int, run: str = "cold") -> Case:
    """A peer's flat fan-out (cold or cached) or chain, with the caps of `PEER_CAPS`."""
    max_n, max_depth, why = PEER_CAPS[system]
    expect: dict[str, object]
    if kind == "chain":
        params: dict[str, object] = {"depth": n}
        what, expect, cap = f"depth {label(n)}", {"value": n}, max_depth
    else:
        params = {"n": n, "flat": True, "run": run}
        what = f"flat N={label(n)}" + (" cached" if run == "cached" else "")
        expect, cap = {"value": fanout_sum(n)}, max_n
        if system in CACHING_PEERS:
            expect["executed"] = 0 if run == "cached" else n + 1
    if kind == "chain" and system in CACHING_PEERS:
        expect["executed"] = n
    prep = [peer_case(system, kind, n)] if run == "cached" else []
    store = f"{system}-{kind}-{n}"
    case = Case("peers", system, kind, params, what, store=store, prep=prep, expect=expect)
    if n > cap:
        case.skip = f"not run (budget): {system} runs up to {label(cap)}" + (
            f" ({why})" if why else ""
        )
    return case


def peer_cases(s: Sizes) -> list[Case]:
    """Every peer's cases, beside lazyflow's and plain Python's for the same work."""
    cases: list[Case] = []
    for n in s.peer_fanout:
        cases += [fanout_case("plain", n, flat=True, scenario="peers")]
        cases += [fanout_case("lazyflow", n, flat=True, run=r, sizes=s) for r in ("cold", "cached")]
        cases += [fanout_case("redun", n, flat=True, run="cached", sizes=s)]
        for system in PEER_SYSTEMS:
            cases.append(peer_case(system, "fanout", n))
            if system in CACHING_PEERS:
                cases.append(peer_case(system, "fanout", n, run="cached"))
    for d in s.peer_chain:
        cases += [chain_case("plain", d, "peers"), chain_case("lazyflow", d, "peers")]
        cases += [chain_case("redun", d, "peers")]
        cases += [peer_case(system, "chain", d) for system in PEER_SYSTEMS]
    return cases


def floor_cases(s: Sizes) -> list[Case]:
    """The floor per job (``wl_floor``): cold (write) and hit (read) at each size."""
    cases = []
    for n in s.floor:
        write = _floor_case(n, "write")
        cases += [write, _floor_case(n, "read", prep=[write])]
    return cases


def _floor_case(n: int, mode: str, prep: list[Case] | None = None) -> Case:
    return Case(
        "floor",
        "floor",
        "floor",
        {"n": n, "mode": mode},
        f"N={label(n)} {mode}",
        store=f"floor-{n}",
        prep=prep or [],
        expect={"value": fanout_sum(n)},
    )


STARTUP_COMMANDS = {
    "python": "`python -c pass`",
    "help": "`lazyflow --help`",
    "log": "`lazyflow log`",
    "cached_demo": "cached `lazyflow run demo.py main --n 200`",
}


def startup_cases(s: Sizes) -> list[Case]:
    """Whole-process start-up figures (``wl_startup``), medians of fresh processes."""
    r = s.startup_repeat
    cases = [
        Case(
            "startup",
            "startup",
            "command",
            {"name": name, "repeat": r},
            what,
            store="startup-demo",
            expect={"value": r},
        )
        for name, what in STARTUP_COMMANDS.items()
    ]
    cases.append(
        Case(
            "startup",
            "startup",
            "first_run",
            {"repeat": r},
            "first Scheduler.run",
            store="startup-first",
            expect={"value": r},
        )
    )
    return cases


def plan(names: list[str], sizes: Sizes) -> list[Case]:
    """All cases of the named scenarios, in run order (duplicates are run once)."""
    cases: list[Case] = []
    for name in names:
        cases += scenario_cases(name, sizes)
    return cases


def scenario_cases(name: str, s: Sizes) -> list[Case]:
    systems = ("plain", "lazyflow", "redun")
    if name == "fanout":
        return [fanout_case(sy, n, sizes=s) for n in s.fanout for sy in systems]
    if name == "cached":
        return [
            fanout_case(sy, n, flat=flat, run=run, scenario="cached", sizes=s)
            for flat in (False, True)
            for n in s.fanout
            for sy in systems
            for run in ("cold", "cached")
            if run == "cached" or sy == "plain"
        ]
    if name == "chain":
        cases = [chain_case(sy, d) for d in s.chain for sy in ("plain", "lazyflow")]
        return cases + [chain_case("redun", d) for d in s.redun_chain]
    if name == "million":
        return [
            fanout_case(sy, s.million, scenario="million", sizes=s) for sy in ("plain", "lazyflow")
        ]
    if name == "scaling":
        return [
            fanout_case(sy, n, scenario="scaling", sizes=s)
            for n in s.fanout
            for sy in ("plain", "lazyflow")
        ] + [chain_case(sy, d, scenario="scaling") for d in s.chain for sy in ("plain", "lazyflow")]
    if name == "hashing":
        return hashing_cases(s)
    if name == "processes":
        n = s.processes
        return [
            fanout_case("plain", n, scenario="processes"),
            fanout_case("lazyflow", n, executor="processes", scenario="processes", sizes=s),
            fanout_case(
                "redun",
                min(n, s.redun_processes),
                executor="processes",
                scenario="processes",
                sizes=s,
            ),
        ]
    if name == "airflow":
        return airflow_cases(s.airflow)
    if name == "postgres":
        n = s.postgres
        return [
            fanout_case("plain", n, scenario="postgres"),
            *(
                fanout_case("lazyflow", n, run=r, db=db, scenario="postgres", sizes=s)
                for db in ("sqlite", "postgres")
                for r in ("cold", "cached")
            ),
        ]
    if name == "dask":
        return dask_cases(s)
    if name == "peers":
        return peer_cases(s)
    if name == "floor":
        return floor_cases(s)
    if name == "startup":
        return startup_cases(s)
    raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
