"""Turn results into the targets table, per-scenario tables and ``benchmarks/README.md``.

Per-job overhead is ``(wall - plain wall) / calls``, where the plain-Python wall time of
the same workload and size comes from the same run. Targets are those of issue 7; each
row says whether lazyflow meets it, by how much it misses, and redun's figure.

The README keeps everything outside the ``BEGIN``/``END`` markers (the hand-written intro
and notes) and replaces only the generated section between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.runner import Case, Result
from benchmarks.scenarios import (
    SCENARIOS,
    GiB,
    Sizes,
    chain_case,
    fanout_case,
    label,
)

README = Path(__file__).resolve().parent / "README.md"
BEGIN = "<!-- BEGIN GENERATED RESULTS: written by `python -m benchmarks`, do not edit -->"
END = "<!-- END GENERATED RESULTS -->"
INTRO = """# lazyflow benchmarks

Run `make bench` (everything, ~20 min on 2 cores) or `python -m benchmarks SCENARIO ...`;
`--quick` runs tiny sizes. See `python -m benchmarks --help`.
"""


class Results:
    """Results by case key, with the derived figures the tables need."""

    def __init__(self, results: list[Result]):
        self.by_key = {r.case.key: r for r in results}

    def get(self, case: Case) -> Result | None:
        return self.by_key.get(case.key)

    def ok(self, case: Case) -> Result | None:
        r = self.get(case)
        return r if r is not None and r.ok else None

    def plain_wall(self, case: Case) -> float | None:
        plain = plain_case(case)
        r = self.ok(plain) if plain is not None else None
        return r.data["wall"] if r else None

    def overhead_us(self, result: Result) -> float | None:
        """(wall - plain wall) / calls, in µs."""
        n = calls(result)
        if not result.ok or not n:
            return None
        plain = self.plain_wall(result.case)
        if plain is None:
            plain = 0.0
        return (result.data["wall"] - plain) / n * 1e6


def calls(result: Result) -> int | None:
    d = result.data
    return d.get("calls") or d.get("jobs")


def plain_case(case: Case) -> Case | None:
    p = case.params
    if case.workload == "fanout" or case.system == "airflow":
        return fanout_case("plain", p["n"], flat=p.get("flat", False))
    if case.workload == "chain":
        return chain_case("plain", p["depth"])
    return None


# ---------------------------------------------------------------- formatting helpers


def fmt_s(x: float | None) -> str:
    if x is None:
        return "—"
    if x >= 100:
        return f"{x:.0f} s"
    if x >= 1:
        return f"{x:.2f} s"
    if x >= 1e-3:
        return f"{x * 1e3:.1f} ms"
    return f"{x * 1e6:.0f} µs"


def fmt_us(x: float | None) -> str:
    if x is None:
        return "—"
    if x >= 1000:
        return f"{x / 1000:.2f} ms"
    return f"{x:.1f} µs" if x < 100 else f"{x:.0f} µs"


def fmt_mb(kb: int | None) -> str:
    return "—" if not kb else f"{kb / 1024:.0f} MB"


def fmt_x(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:.1f}x" if x < 100 else f"{x:.0f}x"


def status_text(r: Result | None) -> str:
    if r is None:
        return "not run"
    if r.ok:
        return "ok"
    return f"{r.status}: {r.note}"


def table(head: list[str], rows: list[list[str]]) -> str:
    def clean(cell: str) -> str:
        return cell.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    lines += ["| " + " | ".join(clean(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------- targets


@dataclass
class Target:
    scenario: str
    target: str
    lazyflow: str
    redun: str
    verdict: str


def verdict(met: bool | None, miss: str = "") -> str:
    if met is None:
        return "— not measured"
    return "✅ met" if met else f"❌ missed{': ' + miss if miss else ''}"


def targets(res: Results, s: Sizes) -> list[Target]:
    out: list[Target] = []
    n = 10_000 if 10_000 in s.fanout else max(s.fanout)
    for fn in (_t_fanout, _t_cached, _t_chain, _t_million, _t_scaling, _t_hashing,
               _t_processes, _t_airflow, _t_postgres):
        out += fn(res, s, n)
    return out


def _t_fanout(res: Results, s: Sizes, n: int) -> list[Target]:
    lf = res.get(fanout_case("lazyflow", n))
    rd = res.get(fanout_case("redun", n, sizes=s))
    ov = res.overhead_us(lf) if lf else None
    rov = res.overhead_us(rd) if rd else None
    met = None if ov is None else ov <= 100
    return [Target(f"fan-out cold, N={label(n)}", "overhead ≤ 100 µs/job",
                   fmt_us(ov) if ov is not None else status_text(lf),
                   fmt_us(rov) if rov is not None else status_text(rd),
                   verdict(met, f"{ov / 100:.1f}x the target" if ov else ""))]


def _t_cached(res: Results, s: Sizes, n: int) -> list[Target]:
    out = []
    for flat in (False, True):
        case = fanout_case("lazyflow", n, flat=flat, run="cached")
        lf = res.ok(case)
        rd = res.get(fanout_case("redun", n, flat=flat, run="cached", sizes=s))
        wall = lf.data["wall"] if lf else None
        q = f", {lf.data.get('queries')} queries" if lf else ""
        rq = f", {rd.data.get('queries')} queries" if rd and rd.ok else ""
        rtext = (f"{fmt_s(rd.data['wall'])}{rq}" if rd and rd.ok else status_text(rd))
        shape = "top-level expression is the fan-out" if flat else "main(n)"
        out.append(Target(
            f"fully cached re-run, N={label(n)} ({shape})", "≤ 0.5 s incl. start-up",
            f"{fmt_s(wall)}{q}" if lf else status_text(res.get(case)), rtext,
            verdict(None if wall is None else wall <= 0.5,
                    f"{wall / 0.5:.1f}x the target" if wall else "")))
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
    return [Target(f"chain x = inc(x), depth {label(depth)}", "completes, ≤ 100 µs/call",
                   lf_text, redun_text,
                   verdict(met, f"{ov / 100:.1f}x the target" if ov else ""))]


def _t_million(res: Results, s: Sizes, n: int) -> list[Target]:
    lf = res.get(fanout_case("lazyflow", s.million, scenario="million", sizes=s))
    if lf is None:
        return [Target(f"{label(s.million)}-call fan-out", "completes; peak RSS ≤ 2 GB",
                       "not run", "not run", verdict(None))]
    rss_gb = lf.maxrss_kb * 1024 / 1e9
    met = lf.ok and rss_gb <= 2
    text = (f"{fmt_s(lf.data['wall'])}, peak RSS {rss_gb:.2f} GB" if lf.ok
            else status_text(lf))
    return [Target(f"{label(s.million)}-call fan-out", "completes; peak RSS ≤ 2 GB", text,
                   f"not run (~{s.million * 0.012 / 3600:.1f} h at ~12 ms/job)",
                   verdict(met, f"RSS {rss_gb:.2f} GB" if lf.ok else lf.status))]


def _per_call(res: Results, case: Case) -> float | None:
    r = res.ok(case)
    return r.data["wall"] / calls(r) if r and calls(r) else None


def _t_scaling(res: Results, s: Sizes, n: int) -> list[Target]:
    out = []
    pairs = [("fan-out", fanout_case("lazyflow", min(s.fanout)),
              fanout_case("lazyflow", max(s.fanout))),
             ("chain", chain_case("lazyflow", min(s.chain)),
              chain_case("lazyflow", max(s.chain)))]
    for what, lo, hi in pairs:
        a, b = _per_call(res, lo), _per_call(res, hi)
        ratio = b / a if a and b else None
        met = None if ratio is None else 0.75 <= ratio <= 1.25
        text = (f"{fmt_us(a * 1e6)} → {fmt_us(b * 1e6)} per job ({ratio:.2f}x)"
                if ratio else "—")
        out.append(Target(f"scaling, {what} {lo.label.split()[-1]} → {hi.label.split()[-1]}",
                          "time per job within ±25%", text, "—",
                          verdict(met, f"{(ratio - 1) * 100:+.0f}%" if ratio else "")))
    return out


def _gbps(r: Result | None) -> float | None:
    return r.data["bytes"] / r.data["wall"] / 1e9 if r and r.ok and r.data["wall"] else None


def _t_hashing(res: Results, s: Sizes, n: int) -> list[Target]:
    out = []
    size = s.hash_bytes
    what = f"{size / GiB:.3g} GiB" if size >= GiB else f"{size >> 20} MiB"
    for workload, name in (("hash_bytes", "bytes"), ("hash_numpy", "NumPy array"),
                           ("hash_file", "file content")):
        lf = res.get(Case("hashing", "lazyflow", workload, {"size": size}, what,
                          store="hashdata"))
        rd = res.get(Case("hashing", "redun", workload, {"size": size}, what,
                          store="hashdata"))
        g, rg = _gbps(lf), _gbps(rd)
        out.append(Target(f"hashing {what} {name}", "≥ 1 GB/s",
                          f"{g:.2f} GB/s" if g else status_text(lf),
                          f"{rg:.2f} GB/s" if rg else ("n/a" if rd is None
                                                       else status_text(rd)),
                          verdict(None if g is None else g >= 1,
                                  f"{g:.2f} GB/s" if g else "")))
    files = s.stat_files
    lf = res.get(Case("hashing", "lazyflow", "stat_files", {"count": files},
                      f"{files} files", store="hashdata"))
    rd = res.get(Case("hashing", "redun", "stat_files", {"count": files},
                      f"{files} files", store="hashdata"))
    per = lf.data["wall"] / files * 1e6 if lf and lf.ok else None
    rper = rd.data["wall"] / files * 1e6 if rd and rd.ok else None
    out.append(Target("stat-based file hashing", "≤ 20 µs per file",
                      f"{fmt_us(per)}/file" if per is not None else status_text(lf),
                      f"{fmt_us(rper)}/file" if rper is not None else status_text(rd),
                      verdict(None if per is None else per <= 20,
                              f"{per / 20:.1f}x the target" if per else "")))
    return out


def _t_processes(res: Results, s: Sizes, n: int) -> list[Target]:
    lf = res.get(fanout_case("lazyflow", s.processes, executor="processes"))
    rd = res.get(fanout_case("redun", s.processes, executor="processes", sizes=s))
    ov = res.overhead_us(lf) if lf else None
    rov = res.overhead_us(rd) if rd else None
    return [Target(f"processes executor, {label(s.processes)} tiny tasks", "≤ 1 ms/job",
                   fmt_us(ov) if ov is not None else status_text(lf),
                   fmt_us(rov) if rov is not None else status_text(rd),
                   verdict(None if ov is None else ov <= 1000,
                           f"{ov / 1000:.1f}x the target" if ov else ""))]


def _t_airflow(res: Results, s: Sizes, n: int) -> list[Target]:
    op = res.get(Case("airflow", "airflow", "operator", {"n": s.airflow}, "",
                      store=f"airflow-operator-{s.airflow}"))
    mp = res.get(Case("airflow", "airflow", "mapped", {"n": s.airflow}, "",
                      store=f"airflow-mapped-{s.airflow}"))
    ratio = (mp.data["wall"] / op.data["wall"] if op and mp and op.ok and mp.ok else None)
    note = f" ({op.data['note']})" if op and op.ok and op.data.get("note") else ""
    lf_text = (f"operator {fmt_s(op.data['wall'])} vs mapped {fmt_s(mp.data['wall'])}: "
               f"{fmt_x(ratio)} faster{note}" if ratio else
               f"operator: {status_text(op)}; mapped: {status_text(mp)}")
    return [Target(f"{label(s.airflow)} calls: one LazyFlowOperator vs mapped tasks",
                   "operator ≥ 10x faster", lf_text, "—",
                   verdict(None if ratio is None else ratio >= 10, fmt_x(ratio)))]


def _t_postgres(res: Results, s: Sizes, n: int) -> list[Target]:
    out = []
    for run in ("cold", "cached"):
        sq = res.ok(fanout_case("lazyflow", s.postgres, run=run))
        pgr = res.get(fanout_case("lazyflow", s.postgres, run=run, db="postgres"))
        ratio = (pgr.data["wall"] / sq.data["wall"] if sq and pgr and pgr.ok else None)
        text = (f"{fmt_s(pgr.data['wall'])} vs SQLite {fmt_s(sq.data['wall'])} "
                f"({fmt_x(ratio)})" if ratio else status_text(pgr))
        out.append(Target(f"PostgreSQL store, fan-out {label(s.postgres)} {run}",
                          "≤ 3x SQLite (report)", text, "—",
                          verdict(None if ratio is None else ratio <= 3, fmt_x(ratio))))
    return out


# ---------------------------------------------------------------- detail tables


def detail_rows(res: Results, results: list[Result]) -> dict[str, list[list[str]]]:
    """Rows of the detail table for each scenario (a case appears under its scenario)."""
    lazyflow_wall: dict[tuple[str, str], float] = {}
    for r in results:
        if r.ok and r.case.system == "lazyflow":
            lazyflow_wall[(r.case.workload, r.case.label)] = r.data["wall"]
    rows: dict[str, list[list[str]]] = {}
    for r in results:
        c, d = r.case, r.data
        n = calls(r) if r.ok else None
        if c.workload in ("hash_bytes", "hash_numpy", "hash_file", "hash_blake2b"):
            g = _gbps(r)
            per = f"{g:.2f} GB/s" if g else "—"
        elif c.workload == "stat_files" and r.ok:
            per = f"{fmt_us(d['wall'] / d['files'] * 1e6)}/file"
        else:
            per = fmt_us(res.overhead_us(r)) if n and c.system != "plain" else "—"
        lf = lazyflow_wall.get((c.workload, c.label))
        ratio = fmt_x(d["wall"] / lf) if r.ok and lf and c.system == "redun" else ""
        counts = ""
        if r.ok and d.get("executed") is not None:
            counts = f"{d['executed']} run / {d['cached']} cached"
        queries = d.get("queries")
        rows.setdefault(c.scenario, []).append([
            c.label, c.system + ("" if c.workload in ("fanout", "chain") else
                                 f" `{c.workload}`"),
            fmt_s(r.wall) if r.ok else r.status, str(n or "—"), per,
            fmt_mb(r.maxrss_kb), "—" if queries in (None, -1) else str(queries), counts,
            ratio, "" if r.ok else r.note[:120]])
    return rows


DETAIL_HEAD = ["case", "system", "wall", "calls", "overhead/call or rate", "peak RSS",
               "store queries", "jobs", "vs lazyflow", "note"]


def markdown(results: list[Result], s: Sizes, info: dict[str, Any]) -> str:
    res = Results(results)
    parts = [
        f"Machine: {info['nproc']} cores, {info['cpu']}, {info['mem_gib']} GiB RAM, "
        f"{info['platform']}, Python {info['python']}.  ",
        f"Date: {info['date']}; commit `{info['commit']}`; "
        f"{'quick (smoke) sizes' if info.get('quick') else 'full sizes'}; "
        f"suite took {info.get('seconds', 0):.0f} s.",
        "",
        "Wall time is measured inside a fresh process per case, from creating the "
        "scheduler (opening the store) to the returned value; overhead per call is "
        "(wall - plain Python wall) / calls; peak RSS is the case's process (and its "
        "children). Store: SQLite file, threads executor, unless stated.",
        "",
        "### Targets (issue 7)",
        "",
        table(["scenario", "target", "lazyflow", "redun 0.44", "lazyflow verdict"],
              [[t.scenario, t.target, t.lazyflow, t.redun, t.verdict]
               for t in targets(res, s)]),
        "",
        "### All measurements",
    ]
    rows = detail_rows(res, results)
    for name, title in SCENARIOS.items():
        if name in rows:
            parts += ["", f"**{name}** — {title}", "", table(DETAIL_HEAD, rows[name])]
    return "\n".join(parts) + "\n"


def console(results: list[Result], s: Sizes, info: dict[str, Any]) -> str:
    return "\n" + markdown(results, s, info)


def write_readme(results: list[Result], s: Sizes, info: dict[str, Any],
                 path: Path = README) -> Path:
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

