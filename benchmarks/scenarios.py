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
    "million": "1,000,000-call fan-out, peak RSS",
    "scaling": "time per job from the smallest to the largest fan-out and chain",
    "hashing": "content hashing of 1 GiB (bytes, NumPy, file); stat-based file hashing",
    "processes": "processes executor, tiny tasks",
    "airflow": "one LazyFlowOperator vs the same work as mapped Airflow tasks (dag.test)",
    "postgres": "PostgreSQL store: the fan-out cold and cached",
}

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
    processes: int = 1_000
    redun_processes: int = 200
    airflow: int = 1_000
    postgres: int = 10_000
    redun_max_n: int = REDUN_MAX_N


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
            fanout_case("lazyflow", n, executor="processes", scenario="processes"),
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
    raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
