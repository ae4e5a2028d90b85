"""Turn results into the targets table, per-scenario tables and ``benchmarks/README.md``.

Per-job overhead is ``(wall - plain wall) / calls``, where the plain-Python wall time of
the same workload and size comes from the same run. Targets are those of issue 7; each
row says whether lazyflow meets it, by how much it misses, and redun's figure.

The README keeps everything outside the ``BEGIN``/``END`` markers (the hand-written intro
and notes) and replaces only the generated section between them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import goals, peertable
from benchmarks.figures import (
    Results,
    calls,
    fmt_mb,
    fmt_s,
    fmt_us,
    fmt_x,
    status_text,
    table,
    verdict,
)
from benchmarks.peers import PEERS
from benchmarks.runner import Case, Result
from benchmarks.scenarios import (
    SCENARIOS,
    GiB,
    Sizes,
    chain_case,
    fanout_case,
    label,
    scenario_cases,
)

README = Path(__file__).resolve().parent / "README.md"
BEGIN = "<!-- BEGIN GENERATED RESULTS: written by `python -m benchmarks`, do not edit -->"
END = "<!-- END GENERATED RESULTS -->"
INTRO = """# lazyflow benchmarks

Run `make bench` (everything, ~20 min on 2 cores) or `python -m benchmarks SCENARIO ...`;
`--quick` runs tiny sizes. See `python -m benchmarks --help`.
"""


# ---------------------------------------------------------------- targets


@dataclass
class Target:
    scenario: str
    target: str
    lazyflow: str
    redun: str
    verdict: str


def targets(res: Results, s: Sizes) -> list[Target]:
    out: list[Target] = []
    n = 10_000 if 10_000 in s.fanout else max(s.fanout)
    for fn in (
        _t_fanout,
        _t_cached,
        _t_chain,
        _t_million,
        _t_scaling,
        _t_hashing,
        _t_processes,
        _t_airflow,
        _t_postgres,
        _t_dask,
    ):
        out += fn(res, s, n)
    return out


def _redun_fallback(
    res: Results, s: Sizes, n: int, what: Callable[[Result], str], **kw: Any
) -> str:
    """redun's figure at N, else (skipped/failed) its figure at the smallest N."""
    rd = res.get(fanout_case("redun", n, sizes=s, **kw))
    if rd is not None and rd.ok:
        return what(rd)
    small = res.ok(fanout_case("redun", min(s.fanout), sizes=s, **kw))
    text = status_text(rd)
    if rd is not None and rd.status == "skipped":
        text = f"not run at N={label(n)} (budget)"
    if small is not None and min(s.fanout) != n:
        text += f"; at N={label(min(s.fanout))}: {what(small)}"
    return text


def _t_fanout(res: Results, s: Sizes, n: int) -> list[Target]:
    lf = res.get(fanout_case("lazyflow", n))
    ov = res.overhead_us(lf) if lf else None
    met = None if ov is None else ov <= 100
    text = fmt_us(ov) if ov is not None else status_text(lf)
    if ov is not None and lf is not None and lf.data.get("startup") is not None:
        net = ov - lf.data["startup"] / calls(lf) * 1e6
        text += f" ({fmt_us(net)} without the {fmt_s(lf.data['startup'])} store start-up)"
    return [
        Target(
            f"fan-out cold, N={label(n)}",
            "overhead ≤ 100 µs/job",
            text,
            _redun_fallback(res, s, n, lambda r: f"{fmt_us(res.overhead_us(r))}/job"),
            verdict(met, f"{ov / 100:.1f}x the target" if ov else ""),
        )
    ]


def _t_cached(res: Results, s: Sizes, n: int) -> list[Target]:
    out = []
    for flat in (False, True):
        case = fanout_case("lazyflow", n, flat=flat, run="cached")
        lf = res.ok(case)
        wall = lf.data["wall"] if lf else None
        q = f", {lf.data.get('queries')} queries" if lf else ""
        rtext = _redun_fallback(
            res,
            s,
            n,
            lambda r: f"{fmt_s(r.data['wall'])}, {r.data.get('queries')} queries",
            flat=flat,
            run="cached",
        )
        shape = "top-level expression is the fan-out" if flat else "main(n)"
        out.append(
            Target(
                f"fully cached re-run, N={label(n)} ({shape})",
                "≤ 0.5 s incl. start-up",
                f"{fmt_s(wall)}{q}" if lf else status_text(res.get(case)),
                rtext,
                verdict(
                    None if wall is None else wall <= 0.5,
                    f"{wall / 0.5:.1f}x the target" if wall else "",
                ),
            )
        )
    return out


def _t_chain(res: Results, s: Sizes, n: int) -> list[Target]:
    depth = max(s.chain)
    lf = res.get(chain_case("lazyflow", depth))
    ov = res.overhead_us(lf) if lf else None
    redun_text = "not run"
    for d in sorted(s.redun_chain):
        r = res.get(chain_case("redun", d))
        if r is None:
            continue
        if not r.ok:
            redun_text = f"fails at depth {label(d)}: {r.note[:60]}"
            break
        redun_text = f"depth {label(d)}: {fmt_us(res.overhead_us(r))}/call"
    met = None if lf is None else (lf.ok and ov is not None and ov <= 100)
    lf_text = f"completes, {fmt_us(ov)}/call" if lf and lf.ok else status_text(lf)
    return [
        Target(
            f"chain x = inc(x), depth {label(depth)}",
            "completes, ≤ 100 µs/call",
            lf_text,
            redun_text,
            verdict(met, f"{ov / 100:.1f}x the target" if ov else ""),
        )
    ]


def _t_million(res: Results, s: Sizes, n: int) -> list[Target]:
    lf = res.get(fanout_case("lazyflow", s.million, scenario="million", sizes=s))
    if lf is None:
        return [
            Target(
                f"{label(s.million)}-call fan-out",
                "completes; peak RSS ≤ 2 GB",
                "not run",
                "not run",
                verdict(None),
            )
        ]
    rss_gb = lf.maxrss_kb * 1024 / 1e9
    met = lf.ok and rss_gb <= 2
    text = f"{fmt_s(lf.data['wall'])}, peak RSS {rss_gb:.2f} GB" if lf.ok else status_text(lf)
    return [
        Target(
            f"{label(s.million)}-call fan-out",
            "completes; peak RSS ≤ 2 GB",
            text,
            f"not run (~{s.million * 0.012 / 3600:.1f} h at ~12 ms/job)",
            verdict(met, f"RSS {rss_gb:.2f} GB" if lf.ok else lf.status),
        )
    ]


def _per_call(res: Results, case: Case, net: bool = False) -> float | None:
    """Wall time per call; ``net`` leaves out the case's store start-up."""
    r = res.ok(case)
    if not r or not calls(r):
        return None
    startup = r.data.get("startup", 0.0) if net else 0.0
    return (r.data["wall"] - startup) / calls(r)


def _t_scaling(res: Results, s: Sizes, n: int) -> list[Target]:
    """Raw time per job (as the issue states it) and time per job net of start-up.

    Start-up (creating the scheduler and a fresh store: schema migrations) is a fixed
    cost; at 1k jobs it is a large share of the total and hides growth of the per-job
    cost, so the verdict uses the net figure (the raw one is shown too).
    """
    out = []
    pairs = [
        ("fan-out", fanout_case("lazyflow", min(s.fanout)), fanout_case("lazyflow", max(s.fanout))),
        ("chain", chain_case("lazyflow", min(s.chain)), chain_case("lazyflow", max(s.chain))),
    ]
    for what, lo, hi in pairs:
        a, b = _per_call(res, lo), _per_call(res, hi)
        na, nb = _per_call(res, lo, net=True), _per_call(res, hi, net=True)
        if not (a and b):
            out.append(
                Target(f"scaling, {what}", "time per job within ±25%", "—", "—", verdict(None))
            )
            continue
        raw = b / a
        text = f"raw {fmt_us(a * 1e6)} -> {fmt_us(b * 1e6)} per job ({raw:.2f}x)"
        ratio = raw
        if na and nb and na > 0:
            ratio = nb / na
            text = (
                f"net of start-up {fmt_us(na * 1e6)} -> {fmt_us(nb * 1e6)} per job "
                f"({ratio:.2f}x); {text}"
            )
        met = 0.75 <= ratio <= 1.25
        miss = f"{(ratio - 1) * 100:+.0f}% per job"
        if ratio < 0.75:
            miss += " (cheaper per job at the larger N: no super-linear path)"
        lo_n, hi_n = lo.label.split()[-1], hi.label.split()[-1]
        out.append(
            Target(
                f"scaling, {what} {lo_n} -> {hi_n}",
                "time per job within ±25%",
                text,
                "—",
                verdict(met, miss),
            )
        )
    return out


def _gbps(r: Result | None) -> float | None:
    return r.data["bytes"] / r.data["wall"] / 1e9 if r and r.ok and r.data["wall"] else None


def _t_hashing(res: Results, s: Sizes, n: int) -> list[Target]:
    out = []
    size = s.hash_bytes
    what = f"{size / GiB:.3g} GiB" if size >= GiB else f"{size >> 20} MiB"
    for workload, name in (
        ("hash_bytes", "bytes"),
        ("hash_numpy", "NumPy array"),
        ("hash_file", "file content"),
    ):
        lf = res.get(Case("hashing", "lazyflow", workload, {"size": size}, what, store="hashdata"))
        rd = res.get(Case("hashing", "redun", workload, {"size": size}, what, store="hashdata"))
        g, rg = _gbps(lf), _gbps(rd)
        out.append(
            Target(
                f"hashing {what} {name}",
                "≥ 1 GB/s",
                f"{g:.2f} GB/s" if g else status_text(lf),
                f"{rg:.2f} GB/s" if rg else ("n/a" if rd is None else status_text(rd)),
                verdict(None if g is None else g >= 1, f"{g:.2f} GB/s" if g else ""),
            )
        )
    files = s.stat_files
    lf = res.get(
        Case(
            "hashing",
            "lazyflow",
            "stat_files",
            {"count": files},
            f"{files} files",
            store="hashdata",
        )
    )
    rd = res.get(
        Case("hashing", "redun", "stat_files", {"count": files}, f"{files} files", store="hashdata")
    )
    per = lf.data["wall"] / files * 1e6 if lf and lf.ok else None
    rper = rd.data["wall"] / files * 1e6 if rd and rd.ok else None
    out.append(
        Target(
            "stat-based file hashing",
            "≤ 20 µs per file",
            f"{fmt_us(per)}/file" if per is not None else status_text(lf),
            f"{fmt_us(rper)}/file" if rper is not None else status_text(rd),
            verdict(
                None if per is None else per <= 20, f"{per / 20:.1f}x the target" if per else ""
            ),
        )
    )
    return out


def _t_processes(res: Results, s: Sizes, n: int) -> list[Target]:
    lf = res.get(fanout_case("lazyflow", s.processes, executor="processes"))
    rd = res.get(
        fanout_case("redun", min(s.processes, s.redun_processes), executor="processes", sizes=s)
    )
    ov = res.overhead_us(lf) if lf else None
    rov = res.overhead_us(rd) if rd else None
    rtext = fmt_us(rov) if rov is not None else status_text(rd)
    if rd is not None and rd.ok and rd.case.params["n"] != s.processes:
        rtext += f" (at N={label(rd.case.params['n'])})"
    return [
        Target(
            f"processes executor, {label(s.processes)} tiny tasks",
            "≤ 1 ms/job",
            fmt_us(ov) if ov is not None else status_text(lf),
            rtext,
            verdict(
                None if ov is None else ov <= 1000, f"{ov / 1000:.1f}x the target" if ov else ""
            ),
        )
    ]


def _t_airflow(res: Results, s: Sizes, n: int) -> list[Target]:
    op = res.get(
        Case(
            "airflow",
            "airflow",
            "operator",
            {"n": s.airflow},
            "",
            store=f"airflow-operator-{s.airflow}",
        )
    )
    mp = res.get(
        Case(
            "airflow",
            "airflow",
            "mapped",
            {"n": s.airflow},
            "",
            store=f"airflow-mapped-{s.airflow}",
        )
    )
    ratio = mp.data["wall"] / op.data["wall"] if op and mp and op.ok and mp.ok else None
    note = f" ({op.data['note']})" if op and op.ok and op.data.get("note") else ""
    lf_text = (
        f"operator {fmt_s(op.data['wall'])} vs mapped {fmt_s(mp.data['wall'])}: "
        f"{fmt_x(ratio)} faster{note}"
        if ratio
        else f"operator: {status_text(op)}; mapped: {status_text(mp)}"
    )
    return [
        Target(
            f"{label(s.airflow)} calls: one LazyFlowOperator vs mapped tasks",
            "operator ≥ 10x faster",
            lf_text,
            "—",
            verdict(None if ratio is None else ratio >= 10, fmt_x(ratio)),
        )
    ]


def _t_postgres(res: Results, s: Sizes, n: int) -> list[Target]:
    out = []
    for run in ("cold", "cached"):
        sq = res.ok(fanout_case("lazyflow", s.postgres, run=run))
        pgr = res.get(fanout_case("lazyflow", s.postgres, run=run, db="postgres"))
        ratio = pgr.data["wall"] / sq.data["wall"] if sq and pgr and pgr.ok else None
        text = (
            f"{fmt_s(pgr.data['wall'])} vs SQLite {fmt_s(sq.data['wall'])} ({fmt_x(ratio)})"
            if ratio
            else status_text(pgr)
        )
        out.append(
            Target(
                f"PostgreSQL store, fan-out {label(s.postgres)} {run}",
                "≤ 3x SQLite (report)",
                text,
                "—",
                verdict(None if ratio is None else ratio <= 3, fmt_x(ratio)),
            )
        )
    return out


# ---------------------------------------------------------------- detail tables


def _t_dask(res: Results, s: Sizes, n: int) -> list[Target]:
    """Per call, lazyflow's Dask executor against Dask's own client.map (issue 12)."""
    from benchmarks.scenarios import dask_cases

    by_key = {(c.workload, c.params["n"]): res.ok(c) for c in dask_cases(s)}
    out = []
    for size in s.dask:
        lf, dm = by_key.get(("lazyflow", size)), by_key.get(("client_map", size))
        per_lf = lf.data["wall"] / size * 1e6 if lf else None
        per_dm = dm.data["wall"] / size * 1e6 if dm else None
        ratio = per_lf / per_dm if per_lf and per_dm else None
        out.append(
            Target(
                f"Dask executor, {label(size)} tiny calls (client.map: {fmt_us(per_dm)}/call)",
                "≤ 2x client.map",
                f"{fmt_us(per_lf)}/call ({fmt_x(ratio)} client.map)" if per_lf else status_text(lf),
                "—",
                verdict(None if ratio is None else ratio <= 2, f"{fmt_x(ratio)}"),
            )
        )
    return out


def lazyflow_twin(res: Results, c: Case) -> Result | None:
    """lazyflow's result for the same work as a peer's case (None for lazyflow's own)."""
    if c.system not in PEERS or c.workload not in ("fanout", "chain"):
        return None
    if c.system == "redun":
        store = (c.store or "").replace(c.system, "lazyflow", 1)
        return res.ok(Case(c.scenario, "lazyflow", c.workload, c.params, c.label, store=store))
    if c.workload == "chain":
        return res.ok(chain_case("lazyflow", c.params["depth"]))
    return res.ok(fanout_case("lazyflow", c.params["n"], flat=True, run=c.params["run"]))


def detail_row(res: Results, r: Result) -> list[str]:
    """One row of a scenario's table."""
    c, d = r.case, r.data
    n = calls(r) if r.ok else None
    if c.workload in ("hash_bytes", "hash_numpy", "hash_file", "hash_blake2b"):
        g = _gbps(r)
        per = f"{g:.2f} GB/s" if g else "—"
    elif c.workload == "stat_files" and r.ok:
        per = f"{fmt_us(d['wall'] / d['files'] * 1e6)}/file"
    else:
        per = fmt_us(res.overhead_us(r)) if n and c.system != "plain" else "—"
    ratio = ""
    twin = lazyflow_twin(res, c) if r.ok else None
    if twin:
        ratio = fmt_x(d["wall"] / twin.data["wall"])
    counts = ""
    if r.ok and d.get("executed") is not None:
        counts = f"{d['executed']} run / {d.get('cached', n - d['executed'])} cached"
    startup = fmt_s(d["startup"]) if r.ok and d.get("startup") is not None else "—"
    queries = d.get("queries")
    system = c.system if c.workload in ("fanout", "chain") else f"{c.system} `{c.workload}`"
    return [
        c.label,
        system,
        fmt_s(r.wall) if r.ok else r.status,
        startup,
        str(n or "—"),
        per,
        fmt_mb(r.maxrss_kb),
        "—" if queries in (None, -1) else str(queries),
        counts,
        ratio,
        (r.note if not r.ok else _note(d))[:160],
    ]


def _note(d: dict[str, Any]) -> str:
    """A measured case's note; for a median of several runs, every run's wall."""
    runs = d.get("runs")
    median = f"median of {', '.join(fmt_s(w) for w in runs)}" if runs else ""
    return "; ".join(part for part in (median, d.get("note", "")) if part)


DETAIL_HEAD = [
    "case",
    "system",
    "wall",
    "of which start-up",
    "calls",
    "overhead/call or rate",
    "peak RSS",
    "store queries",
    "jobs",
    "peer/lazyflow wall",
    "note",
]


def breakdown_rows(results: list[Result]) -> list[list[str]]:
    """Where a lazyflow run's wall time goes, for cases that report the phases."""
    rows = []
    for r in results:
        d = r.data
        if not (r.ok and r.case.system == "lazyflow" and "run" in d and "run_seconds" in d):
            continue
        tail = d["run"] - d["run_seconds"]
        rows.append(
            [
                r.case.label,
                fmt_s(d["wall"]),
                fmt_s(d["startup"]),
                fmt_s(d["build"]),
                fmt_s(d["run_seconds"]),
                fmt_s(tail),
                f"{tail / d['wall'] * 100:.0f}%" if d["wall"] else "—",
            ]
        )
    return rows


BREAKDOWN_HEAD = [
    "case",
    "wall",
    "start-up (store open)",
    "build expression",
    "evaluation (`last_run.seconds`)",
    "after evaluation (writer drain, close)",
    "share after",
]


def markdown(results: list[Result], s: Sizes, info: dict[str, Any]) -> str:
    res = Results(results)
    parts = [
        f"Machine: {info['nproc']} cores, {info['cpu']}, {info['mem_gib']} GiB RAM, "
        f"{info['platform']}, Python {info['python']}.  ",
        f"Date: {info['date']}; commit `{info['commit']}`; "
        f"{'quick (smoke) sizes' if info.get('quick') else 'full sizes'}; "
        f"suite took {info.get('seconds', 0):.0f} s."
        + (
            f" The working tree changed during the run (commit `{info['commit_end']}` at the "
            "end): cases ran against the code on disk when each started."
            if info.get("commit_end", info["commit"]) != info["commit"]
            else ""
        ),
        "",
        "Wall time is measured inside a fresh process per case, from creating the "
        "scheduler (opening the store) to the returned value, imports excluded; overhead "
        "per call is "
        "(wall - plain Python wall) / calls; peak RSS is the case's process (and its "
        "children). Store: SQLite file, threads executor, unless stated.",
        "",
        "### Targets (issue 18)",
        "",
        "Verdicts against this run's figures; *floor* is the same per-job work at its "
        "barest, measured in this run (`benchmarks/wl_floor.py`; whole-process rows: the "
        "interpreter alone).",
        "",
        goals.markdown(res, s),
        "",
        "### lazyflow beside the peers",
        "",
        "Overhead per job against plain Python, each system in its own virtual "
        "environment, same run; sizes a system did not run (the time budget) fall back "
        "to its largest smaller size. Fan-out: `total([inc(i) for i in range(N)])`; "
        "cached: the same in a fresh process over the cold run's cache; chain: "
        "`x = inc(x)` D times.",
        "",
        peertable.markdown(res, s),
        "",
        "### Targets (issue 7)",
        "",
        table(
            ["scenario", "target", "lazyflow", "redun 0.44", "lazyflow verdict"],
            [[t.scenario, t.target, t.lazyflow, t.redun, t.verdict] for t in targets(res, s)],
        ),
        "",
        "### All measurements",
    ]
    names = info.get("scenarios") or list(SCENARIOS)
    breakdown = breakdown_rows(results)
    if breakdown:
        parts += [
            "",
            "**Where lazyflow's wall time goes**: `Scheduler.run` returns only "
            "after the store writer has drained; the time after the evaluation "
            "itself is shown separately.",
            "",
            table(BREAKDOWN_HEAD, breakdown),
        ]
    for name in names:
        found = {case.key: res.get(case) for case in scenario_cases(name, s)}
        rows = [detail_row(res, r) for r in found.values() if r]
        if rows and (name != "scaling" or "fanout" not in names):
            parts += ["", f"**{name}**: {SCENARIOS[name]}", "", table(DETAIL_HEAD, rows)]
    return "\n".join(parts) + "\n"


def console(results: list[Result], s: Sizes, info: dict[str, Any]) -> str:
    return "\n" + markdown(results, s, info)


PROJECT_README = README.parent.parent / "README.md"
PEERS_BEGIN = "<!-- BEGIN PEERS TABLE: written by `python -m benchmarks`, do not edit -->"
PEERS_END = "<!-- END PEERS TABLE -->"


def write_project_readme(
    results: list[Result], s: Sizes, path: Path = PROJECT_README, indent: str = "  "
) -> bool:
    """Replace the peers table of the project README between its markers (kept where
    they are, indented as they are); False when the README has no markers."""
    text = path.read_text() if path.exists() else ""
    if PEERS_BEGIN not in text or PEERS_END not in text:
        return False
    head, rest = text.split(PEERS_BEGIN, 1)
    tail = rest.split(PEERS_END, 1)[1]
    block = peertable.readme_block(Results(results), s)
    body = "\n".join(indent + line for line in block.splitlines())
    path.write_text(f"{head}{PEERS_BEGIN}\n{body}\n{indent}{PEERS_END}{tail}")
    return True


def write_readme(
    results: list[Result], s: Sizes, info: dict[str, Any], path: Path = README
) -> Path:
    """Replace the generated section of the README (create the file if missing)."""
    generated = f"{BEGIN}\n\n## Results\n\n{markdown(results, s, info)}\n{END}"
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + generated + tail
    else:
        text = (text or INTRO).rstrip() + "\n\n" + generated + "\n"
    path.write_text(text)
    return path
