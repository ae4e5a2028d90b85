"""The targets of issue 18, each with a verdict and, per job, the measured floor.

Every row names the scenario, the figure the issue started from, the target, what this
run measured and whether it meets the target (or by how much it misses). Per-job rows
also show the floor measured in the same run (`benchmarks.wl_floor`: a bare call, a
dict insert, a small BLAKE3 hash and an SQLite row per job; for cache hits, one indexed
``SELECT`` instead of the insert); whole-process rows show ``python -c pass``.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.figures import Results, calls, fmt_s, fmt_us, fmt_x, status_text, table, verdict
from benchmarks.runner import Case, Result
from benchmarks.scenarios import (
    Sizes,
    chain_case,
    dask_cases,
    fanout_case,
    floor_cases,
    label,
    startup_cases,
)


@dataclass
class Goal:
    scenario: str
    today: str
    target: str
    measured: str
    verdict: str
    floor: str = "—"


HEAD = ["scenario", "issue 18 start", "target", "lazyflow (this run)", "verdict", "floor"]


def _sizes(available: tuple[int, ...], wanted: tuple[int, ...]) -> list[int]:
    """The wanted sizes this run has, else its largest (quick runs)."""
    return [n for n in wanted if n in available] or [max(available)]


def _floor_us(res: Results, s: Sizes, n: int, mode: str = "write") -> str:
    """Floor per job at the floor size nearest n (same run)."""
    found = [
        (abs(c.params["n"] - n), r)
        for c in floor_cases(s)
        if c.params["mode"] == mode and (r := res.ok(c)) is not None
    ]
    if not found:
        return "not measured"
    r = min(found, key=lambda x: x[0])[1]
    where = f" (at {label(r.case.params['n'])})" if r.case.params["n"] != n else ""
    what = "call + dict + BLAKE3 + SQLite row" if mode == "write" else "BLAKE3 + SELECT + dict"
    return f"{fmt_us(r.data['wall'] / r.data['calls'] * 1e6)}/job{where}: {what}"


def _per_job(res: Results, case: Case, scenario: str, today: str, limit: float, floor: str) -> Goal:
    r = res.get(case)
    ov = res.overhead_us(r) if r is not None else None
    return Goal(
        scenario,
        today,
        f"≤ {limit:g} µs",
        fmt_us(ov) if ov is not None else status_text(r),
        verdict(None if ov is None else ov <= limit, f"{ov / limit:.1f}x the target" if ov else ""),
        floor,
    )


def _startup(res: Results, s: Sizes, name: str) -> Result | None:
    for case in startup_cases(s):
        if case.params.get("name", case.workload) == name:
            return res.get(case)
    return None


def _seconds_goal(
    r: Result | None, scenario: str, today: str, limit: float, floor: str = "—"
) -> Goal:
    wall = r.data["wall"] if r is not None and r.ok else None
    return Goal(
        scenario,
        today,
        f"≤ {limit:g} s",
        fmt_s(wall) if wall is not None else status_text(r),
        verdict(
            None if wall is None else wall <= limit,
            f"{wall / limit:.1f}x the target" if wall is not None else "",
        ),
        floor,
    )


def _million(res: Results, s: Sizes) -> Goal:
    lf = res.get(fanout_case("lazyflow", s.million, scenario="million", sizes=s))
    ref = res.ok(fanout_case("lazyflow", max(s.fanout)))
    target = f"≤ 25 s, per job within ±15% of the {label(max(s.fanout))} figure, ≤ 1 GB peak RSS"
    today = "138 s, 138 µs/job, 0.94-2.35 GB"
    if lf is None or not lf.ok:
        return Goal(f"{label(s.million)} fan-out", today, target, status_text(lf), verdict(None))
    wall, rss = lf.data["wall"], lf.maxrss_kb * 1024 / 1e9
    per = wall / calls(lf) * 1e6
    ref_per = ref.data["wall"] / calls(ref) * 1e6 if ref else None
    ratio = per / ref_per if ref_per else None
    misses = []
    if wall > 25:
        misses.append(f"{wall / 25:.1f}x the time")
    if ratio is not None and abs(ratio - 1) > 0.15:
        misses.append(f"per job {(ratio - 1) * 100:+.0f}% of {label(max(s.fanout))}")
    if rss > 1:
        misses.append(f"RSS {rss:.2f} GB")
    ratio_text = f" ({fmt_x(ratio)} the {label(max(s.fanout))} figure)" if ratio else ""
    return Goal(
        f"{label(s.million)} fan-out",
        today,
        target,
        f"{fmt_s(wall)}, {fmt_us(per)}/job{ratio_text}, {rss:.2f} GB",
        verdict(not misses, ", ".join(misses)),
        _floor_us(res, s, s.million),
    )


def _postgres(res: Results, s: Sizes) -> list[Goal]:
    out = []
    for run, today in (("cold", "2.2x SQLite"), ("cached", "2.5x SQLite")):
        sq = res.ok(fanout_case("lazyflow", s.postgres, run=run))
        pg = res.get(fanout_case("lazyflow", s.postgres, run=run, db="postgres"))
        ratio = pg.data["wall"] / sq.data["wall"] if sq and pg and pg.ok else None
        text = (
            f"{fmt_s(pg.data['wall'])} vs SQLite {fmt_s(sq.data['wall'])} ({fmt_x(ratio)})"
            if ratio and pg and sq
            else status_text(pg)
        )
        out.append(
            Goal(
                f"PostgreSQL, fan-out {label(s.postgres)} {run}",
                today,
                "≤ 1.5x SQLite",
                text,
                verdict(None if ratio is None else ratio <= 1.5, f"{fmt_x(ratio)} SQLite"),
            )
        )
    return out


def _dask(res: Results, s: Sizes) -> list[Goal]:
    by = {(c.workload, c.params["n"]): res.ok(c) for c in dask_cases(s)}
    out = []
    for n in s.dask:
        lf, dm = by.get(("lazyflow", n)), by.get(("client_map", n))
        ratio = lf.data["wall"] / dm.data["wall"] if lf and dm else None
        text = (
            f"{fmt_us(lf.data['wall'] / n * 1e6)}/call vs client.map "
            f"{fmt_us(dm.data['wall'] / n * 1e6)}/call ({fmt_x(ratio)})"
            if lf and dm and ratio
            else status_text(lf or dm)
        )
        out.append(
            Goal(
                f"Dask executor vs raw client.map, {label(n)} calls, same cluster",
                "—",
                "≤ 2x",
                text,
                verdict(None if ratio is None else ratio <= 2, fmt_x(ratio)),
            )
        )
    return out


def goals(res: Results, s: Sizes) -> list[Goal]:
    """Every target row of issue 18, in the issue's order."""
    out = []
    for n in _sizes(s.fanout, (10_000, 100_000)):
        out.append(
            _per_job(
                res,
                fanout_case("lazyflow", n),
                f"fan-out cold, overhead per job, N={label(n)}",
                "57-84 µs",
                20,
                _floor_us(res, s, n),
            )
        )
    for n in _sizes(s.fanout, (10_000, 100_000)):
        out.append(
            _per_job(
                res,
                fanout_case("lazyflow", n, flat=True, run="cached"),
                f"flat cached re-run, per hit, N={label(n)}",
                "40-46 µs",
                5,
                _floor_us(res, s, n, "read"),
            )
        )
    depth = max(s.chain)
    out.append(
        _per_job(
            res,
            chain_case("lazyflow", depth),
            f"chain, per call, depth {label(depth)}",
            "69 µs",
            25,
            _floor_us(res, s, depth),
        )
    )
    out.append(_million(res, s))
    out.append(
        _per_job(
            res,
            fanout_case("lazyflow", s.processes, executor="processes"),
            f"processes executor, {label(s.processes)} tiny calls, per job",
            "429-507 µs (1k)",
            60,
            _floor_us(res, s, s.processes),
        )
    )
    out += _postgres(res, s)
    py = _startup(res, s, "python")
    py_text = f"`python -c pass`: {fmt_s(py.data['wall'])}" if py and py.ok else "—"
    for name, what in (("log", "`lazyflow log`"), ("help", "`lazyflow --help`")):
        r = _startup(res, s, name)
        out.append(_seconds_goal(r, f"{what} start-up", "0.4-0.7 s", 0.2, py_text))
    out.append(
        _seconds_goal(
            _startup(res, s, "first_run"),
            "first `Scheduler.run` in a process, store open to first job",
            "~0.3 s",
            0.05,
        )
    )
    out.append(
        _seconds_goal(
            _startup(res, s, "cached_demo"),
            "a fully cached `lazyflow run` of the demo, whole process",
            "0.63 s",
            0.25,
            py_text,
        )
    )
    return out + _dask(res, s)


def markdown(res: Results, s: Sizes) -> str:
    rows = [[g.scenario, g.today, g.target, g.measured, g.verdict, g.floor] for g in goals(res, s)]
    return table(HEAD, rows)
