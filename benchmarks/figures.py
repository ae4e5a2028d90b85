"""Figures from results: per-call overheads against plain Python, and cell formatting.

Shared by the report's tables (`report`, `peertable`, `goals`). Per-job overhead is
``(wall - plain wall) / calls``, where the plain-Python wall time of the same workload
and size comes from the same run.
"""

from __future__ import annotations

from benchmarks.runner import Case, Result
from benchmarks.scenarios import chain_case, fanout_case


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
    return "—" if not kb else f"{kb / 1024:.0f} MiB"


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


def verdict(met: bool | None, miss: str = "") -> str:
    if met is None:
        return "— not measured"
    return "✅ met" if met else f"❌ missed{': ' + miss if miss else ''}"
