"""lazyflow beside every peer system: per job, the same work, measured in the same run.

Rows are the work (fan-out cold, its flat cached re-run, the chain) at each size of the
``peers`` scenario; columns are the systems. A figure is the overhead per job against
plain Python; a size a system did not run (its cap, `PEER_CAPS`) falls back to its
largest smaller size, marked "(at 1k)". The last row says which systems record
provenance. `markdown` gives the full table for ``benchmarks/README.md``,
`readme_block` the short one the project README shows.
"""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.figures import Results, fmt_us, status_text, table
from benchmarks.peers import PEERS
from benchmarks.runner import Case
from benchmarks.scenarios import (
    CACHING_PEERS,
    PEER_SYSTEMS,
    Sizes,
    chain_case,
    fanout_case,
    label,
    peer_case,
)

COLUMNS = ("lazyflow", *PEER_SYSTEMS, "redun")
LAZYFLOW_PROVENANCE = (
    "yes: every call, its arguments, result, code and timing, in its SQLite/PostgreSQL store"
)


def title(system: str) -> str:
    return "lazyflow" if system == "lazyflow" else PEERS[system].title


def provenance(system: str) -> str:
    return LAZYFLOW_PROVENANCE if system == "lazyflow" else PEERS[system].provenance


def case_for(system: str, work: str, n: int, s: Sizes) -> Case | None:
    """The case of ``system`` doing ``work`` ("cold", "cached", "chain") at size n."""
    if work == "chain":
        if system in ("lazyflow", "redun"):
            return chain_case(system, n)
        return peer_case(system, "chain", n)
    if system in ("lazyflow", "redun"):
        return fanout_case(system, n, flat=True, run=work, sizes=s)
    if work == "cached" and system not in CACHING_PEERS:
        return None
    return peer_case(system, "fanout", n, run=work)


def cell(res: Results, system: str, work: str, n: int, sizes: tuple[int, ...], s: Sizes) -> str:
    """Overhead per job at n, else at the largest smaller size that ran."""
    case = case_for(system, work, n, s)
    if case is None:
        return "— (no cache)"
    r = res.get(case)
    if r is not None and r.ok:
        return fmt_us(res.overhead_us(r))
    if r is not None and r.status == "error":  # "RecursionError: maximum ..." -> "RecursionError"
        return r.note.split(":", 1)[0][:60]
    for smaller in sorted((m for m in sizes if m < n), reverse=True):
        other = case_for(system, work, smaller, s)
        o = res.get(other) if other else None
        if o is not None and o.ok:
            return f"{fmt_us(res.overhead_us(o))} (at {label(smaller)})"
        if o is not None and o.status == "error":
            return f"{o.note.split(':', 1)[0][:60]} (at {label(smaller)})"
    return "not run" if r is None else status_text(r)[:80]


WORK: dict[str, tuple[str, Callable[[Sizes], tuple[int, ...]]]] = {
    "cold": ("fan-out {n}, cold, per job", lambda s: s.peer_fanout),
    "cached": ("flat cached re-run {n}, per hit", lambda s: s.peer_fanout),
    "chain": ("chain {n}, per call", lambda s: s.peer_chain),
}


def rows(res: Results, s: Sizes, systems: tuple[str, ...] = COLUMNS) -> list[list[str]]:
    out = []
    for work, (what, sizes_of) in WORK.items():
        sizes = sizes_of(s)
        for n in sizes:
            cells = [cell(res, sy, work, n, sizes, s) for sy in systems]
            out.append([what.format(n=label(n)), *cells])
    return out


def markdown(res: Results, s: Sizes) -> str:
    head = ["work", *(title(sy) for sy in COLUMNS)]
    body = rows(res, s)
    body.append(["records provenance", *(provenance(sy) for sy in COLUMNS)])
    return table(head, body)


def readme_block(res: Results, s: Sizes) -> str:
    """The project README's table: the largest size of each work, provenance short."""
    head = ["", *(title(sy) for sy in COLUMNS)]
    body = []
    for work, (what, sizes_of) in WORK.items():
        sizes = sizes_of(s)
        n = max(sizes)
        cells = [cell(res, sy, work, n, sizes, s) for sy in COLUMNS]
        body.append([what.format(n=label(n)), *cells])
    body.append(["records provenance", *(provenance(sy).split(":")[0] for sy in COLUMNS)])
    return table(head, body)
