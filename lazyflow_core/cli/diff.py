"""``lazyflow diff``: which calls differ between two executions, and why.

Each execution is taken as the set of calls in effect (reused subtrees expanded, see
`Provenance.execution_calls`). Calls with the same call hash are identical (if B ran one
again instead of reusing it, a call below it changed or the cache was bypassed). The others
are paired: same task and same preview first (then the difference is in the code or in
a value that prints the same, such as a file's content), then same task with the most
equal arguments. Each pair says whether the task's code changed (with a diff of the
stored sources) and which arguments changed; unpaired calls exist in only one run.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any

import click

from ..provenance import CallNode, Execution, Provenance, Value
from .common import console, cut, db_option, fmt_time, open_provenance, plural, short


@dataclass(frozen=True, slots=True)
class ArgChange:
    name: str
    before: str | None  # value previews
    after: str | None
    before_hash: str | None
    after_hash: str | None


@dataclass(eq=False)
class CallChange:
    """A call that differs between two executions, and why."""

    kind: str  # "changed" | "removed" (only in A) | "added" (only in B)
    task_name: str
    before: CallNode | None
    after: CallNode | None
    code_changed: bool = False
    args: list[ArgChange] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TaskChange:
    name: str
    before_hash: str
    after_hash: str
    source_diff: str  # unified diff of the stored sources; "" when only helpers changed


@dataclass(eq=False)
class ExecutionDiff:
    a: Execution
    b: Execution
    identical: int
    reran: list[CallNode]  # same call as in A, executed again in B
    changes: list[CallChange]
    tasks: list[TaskChange]
    result_before: Value | None
    result_after: Value | None


def diff_executions(prov: Provenance, ident_a: str, ident_b: str) -> ExecutionDiff:
    a, b = prov.execution(ident_a), prov.execution(ident_b)
    calls_a, calls_b = prov.execution_calls(a.id), prov.execution_calls(b.id)
    same = calls_a.keys() & calls_b.keys()
    reran = [
        calls_b[k]
        for k in calls_b
        if k in same
        and calls_b[k].job is not None
        and not calls_b[k].cached
        and calls_b[k].status == "done"
    ]
    identical = len(same) - len(reran)
    only_a = [n for k, n in calls_a.items() if k not in calls_b]
    only_b = [n for k, n in calls_b.items() if k not in calls_a]
    args = prov.arg_hashes(n.call_hash for n in only_a + only_b if n.call_hash)
    pairs, removed, added = _pair_calls(only_a, only_b, args)
    previews = prov.values(
        h for n in only_a + only_b for h in args.get(n.call_hash or "", {}).values()
    )
    changes: list[CallChange] = []
    task_pairs: set[tuple[str, str, str]] = set()
    for before, after in pairs:
        change = CallChange(kind="changed", task_name=after.task_name, before=before, after=after)
        if before.task_hash and after.task_hash and before.task_hash != after.task_hash:
            change.code_changed = True
            change.reasons.append("task code changed")
            task_pairs.add((after.task_name, before.task_hash, after.task_hash))
        args_a = args.get(before.call_hash or "", {})
        args_b = args.get(after.call_hash or "", {})
        for name in [*args_a, *[n for n in args_b if n not in args_a]]:
            ha, hb = args_a.get(name), args_b.get(name)
            if ha != hb:
                pa, pb = previews.get(ha or ""), previews.get(hb or "")
                change.args.append(
                    ArgChange(name, pa.preview if pa else None, pb.preview if pb else None, ha, hb)
                )
        if change.args:
            names = ", ".join(x.name for x in change.args)
            change.reasons.append(f"argument{'s' if len(change.args) > 1 else ''} {names} changed")
        if before.status != after.status and not (before.cached or after.cached):
            change.reasons.append(f"{before.status} -> {after.status}")
        if not change.reasons:
            change.reasons.append("recorded differently (not cacheable, or it failed)")
        changes.append(change)
    changes += [CallChange("removed", n.task_name, n, None, reasons=["only in A"]) for n in removed]
    changes += [CallChange("added", n.task_name, None, n, reasons=["only in B"]) for n in added]
    tasks = []
    for name, ha, hb in sorted(task_pairs):
        ta, tb = prov.task(ha), prov.task(hb)
        text = ""
        if ta and tb and ta.source is not None and tb.source is not None:
            text = "\n".join(
                difflib.unified_diff(
                    ta.source.splitlines(),
                    tb.source.splitlines(),
                    fromfile=f"{name} @ {ha[:8]}",
                    tofile=f"{name} @ {hb[:8]}",
                    lineterm="",
                )
            )
        tasks.append(TaskChange(name, ha, hb, text))
    results = prov.values(h for h in (a.result_hash, b.result_hash) if h)
    return ExecutionDiff(
        a=a,
        b=b,
        identical=identical,
        reran=reran,
        changes=changes,
        tasks=tasks,
        result_before=results.get(a.result_hash or ""),
        result_after=results.get(b.result_hash or ""),
    )


def _pair_calls(
    only_a: list[CallNode], only_b: list[CallNode], args: dict[str, dict[str, str]]
) -> tuple[list[tuple[CallNode, CallNode]], list[CallNode], list[CallNode]]:
    pairs: list[tuple[CallNode, CallNode]] = []
    same_preview: dict[tuple[str, str], list[CallNode]] = {}
    for n in only_b:
        same_preview.setdefault((n.task_name, n.preview), []).append(n)
    rest_a: list[CallNode] = []
    for n in only_a:
        match = same_preview.get((n.task_name, n.preview))
        if match:
            pairs.append((n, match.pop(0)))
        else:
            rest_a.append(n)
    by_task: dict[str, list[CallNode]] = {}
    for group in same_preview.values():
        for n in group:
            by_task.setdefault(n.task_name, []).append(n)
    removed: list[CallNode] = []
    for n in rest_a:
        candidates = by_task.get(n.task_name)
        if not candidates:
            removed.append(n)
            continue
        mine = args.get(n.call_hash or "", {})

        def shared(i: int, mine: dict[str, str] = mine, cands: list[CallNode] = candidates) -> int:
            theirs = args.get(cands[i].call_hash or "", {})
            return sum(1 for k, v in theirs.items() if mine.get(k) == v)

        best = max(range(min(len(candidates), 200)), key=shared)
        pairs.append((n, candidates.pop(best)))
    added = [n for group in by_task.values() for n in group]
    return pairs, removed, added


# -- command -------------------------------------------------------------------------


@click.command("diff", short_help="Which calls differ between two executions, and why.")
@click.argument("execution_a")
@click.argument("execution_b")
@db_option
@click.option("--all", "show_all", is_flag=True, help="List every differing call.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def diff_command(
    execution_a: str, execution_b: str, db: str | None, show_all: bool, as_json: bool
) -> None:
    """Compare EXECUTION_A with EXECUTION_B (ids or unique prefixes): calls only in one
    of them, and calls that changed, with the reason (task code, which arguments)."""
    with open_provenance(db) as prov:
        d = diff_executions(prov, execution_a, execution_b)
    if as_json:
        click.echo(json.dumps(_diff_dict(d), indent=2))
        return
    render_diff(d, show_all)


def render_diff(d: ExecutionDiff, show_all: bool, limit: int = 30) -> None:
    from rich.text import Text

    out = console()
    for label, e in (("A", d.a), ("B", d.b)):
        out.print(
            Text.assemble(
                (f"{label} ", "bold"),
                f"{short(e.id)}  {fmt_time(e.started_at)}  {e.status:<9} ",
                f"{plural(e.jobs, 'job')} ({e.executed} executed, {e.cached} cached)  ",
                (cut(e.command or e.root_task, 60), "dim"),
            )
        )
    kinds = {"changed": 0, "removed": 0, "added": 0}
    for c in d.changes:
        kinds[c.kind] += 1
    out.print(
        f"\ncalls: {d.identical} identical, {len(d.reran)} ran again, {kinds['changed']} changed, "
        f"{kinds['removed']} only in A, {kinds['added']} only in B"
    )
    if d.result_before is not None or d.result_after is not None:
        before = d.result_before.preview if d.result_before else "-"
        after = d.result_after.preview if d.result_after else "-"
        same = d.result_before and d.result_after and d.result_before.hash == d.result_after.hash
        out.print(f"result: {cut(before, 60)}" + (" (same)" if same else f" -> {cut(after, 60)}"))
    if not d.changes and not d.reran:
        out.print("the two executions made the same calls.")
        return
    out.print()
    for n in d.reran if show_all else d.reran[:limit]:
        out.print(
            Text.assemble(
                ("= ", "cyan"),
                (cut(n.preview, 70), "bold"),
                "  same call, ran again in B (a call below it changed, or the cache was bypassed)",
            )
        )
    shown = d.changes if show_all else d.changes[:limit]
    marks = {"changed": ("~", "yellow"), "removed": ("-", "red"), "added": ("+", "green")}
    for c in shown:
        mark, style = marks[c.kind]
        node = c.after or c.before
        assert node is not None
        call = cut(node.preview, 70)
        if c.kind == "changed" and c.before is not None and c.before.preview != node.preview:
            call = f"{cut(c.before.preview, 40)} -> {cut(node.preview, 40)}"
        out.print(Text.assemble((f"{mark} ", style), (call, "bold"), f"  {'; '.join(c.reasons)}"))
        for a in c.args:
            out.print(Text(f"    {a.name}: {cut(a.before, 50)} -> {cut(a.after, 50)}", style="dim"))
    if len(shown) < len(d.changes):
        out.print(f"... {len(d.changes) - len(shown)} more (--all lists them)")
    for t in d.tasks:
        out.print(
            f"\ntask {t.name} code changed ({short(t.before_hash)} -> {short(t.after_hash)})"
            + (
                ""
                if t.source_diff
                else ": its own source is the same, so code it calls "
                "or reads (a helper, a constant, a class) changed"
            )
        )
        for line in t.source_diff.rstrip("\n").splitlines():
            style = "green" if line.startswith("+") else ("red" if line.startswith("-") else "")
            out.print(Text("    " + line, style=style))


def _node_dict(n: CallNode | None) -> dict[str, Any] | None:
    if n is None:
        return None
    return {
        "task": n.task_name,
        "call": n.preview,
        "call_hash": n.call_hash,
        "task_hash": n.task_hash,
        "status": n.status,
        "cached": n.cached,
    }


def _diff_dict(d: ExecutionDiff) -> dict[str, Any]:
    return {
        "a": d.a.id,
        "b": d.b.id,
        "identical": d.identical,
        "ran_again": [_node_dict(n) for n in d.reran],
        "result": [
            d.result_before.preview if d.result_before else None,
            d.result_after.preview if d.result_after else None,
        ],
        "changes": [
            {
                "kind": c.kind,
                "task": c.task_name,
                "before": _node_dict(c.before),
                "after": _node_dict(c.after),
                "code_changed": c.code_changed,
                "args": [{"name": a.name, "before": a.before, "after": a.after} for a in c.args],
                "reasons": c.reasons,
            }
            for c in d.changes
        ],
        "tasks": [
            {
                "name": t.name,
                "before": t.before_hash,
                "after": t.after_hash,
                "source_diff": t.source_diff,
            }
            for t in d.tasks
        ],
    }
