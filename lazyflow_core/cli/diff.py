"""``lazyflow diff``: which calls differ between two executions, and why.

Each execution is taken as the set of calls in effect (reused subtrees expanded, see
`Provenance.execution_calls`). Calls with the same call hash are identical (if B ran one
again instead of reusing it, or evaluated its stored returned expression again into another
result, a call below it changed or the cache was bypassed). The others
are paired: same task and same preview first (then the difference is in the code or in
a value that prints the same, such as a file's content), then same task with the most
equal arguments. Each pair says whether the task's code changed (with a diff of the
stored sources) and which arguments changed; unpaired calls exist in only one run.

The report groups calls that differ in the same way (same task, same reasons): 200
squares whose argument changed are one line with a few examples, not 200 lines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import click

from ..codechange import summary, unified_diff
from ..provenance import CallNode, Execution, Provenance, Value
from .common import (
    cut,
    db_option,
    execution_arg,
    fmt_time,
    is_terminal,
    latest_execution,
    open_provenance,
    paint,
    plural,
    short,
)


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
    source_diff: str  # unified diff of the stored sources: the task's, changed helpers'
    summary: str = ""  # what changed: "its source is unchanged; helper gc_content changed"


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
    same, reran, only_a, only_b = _split(calls_a, calls_b)
    args = prov.arg_hashes(n.call_hash for n in only_a + only_b if n.call_hash)
    pairs, removed, added = _pair_calls(only_a, only_b, args)
    previews = prov.values(
        h for n in only_a + only_b for h in args.get(n.call_hash or "", {}).values()
    )
    changes = [_change(before, after, args, previews) for before, after in pairs]
    changes += [CallChange("removed", n.task_name, n, None, reasons=["only in A"]) for n in removed]
    changes += [CallChange("added", n.task_name, None, n, reasons=["only in B"]) for n in added]
    results = prov.values(h for h in (a.result_hash, b.result_hash) if h)
    return ExecutionDiff(
        a=a,
        b=b,
        identical=same - len(reran),
        reran=reran,
        changes=changes,
        tasks=[_task_change(prov, *t) for t in _code_changes(changes)],
        result_before=results.get(a.result_hash or ""),
        result_after=results.get(b.result_hash or ""),
    )


def _split(
    calls_a: dict[str, CallNode], calls_b: dict[str, CallNode]
) -> tuple[int, list[CallNode], list[CallNode], list[CallNode]]:
    """Calls in both (their number, and those B ran again), only in A, only in B."""
    same = calls_a.keys() & calls_b.keys()
    reran = [n for k, n in calls_b.items() if k in same and _ran(n, calls_a[k])]
    only_a = [n for k, n in calls_a.items() if k not in calls_b]
    only_b = [n for k, n in calls_b.items() if k not in calls_a]
    return len(same), reran, only_a, only_b


def _code_changes(changes: list[CallChange]) -> list[tuple[str, str, str]]:
    """``(task, hash before, hash after)`` of each task whose code changed."""
    pairs = set()
    for c in changes:
        if c.code_changed and c.before and c.after:
            pairs.add((c.task_name, c.before.task_hash or "", c.after.task_hash or ""))
    return sorted(pairs)


def _executed(n: CallNode) -> bool:
    """B executed this call (it did not reuse it) and it succeeded."""
    return n.job is not None and not n.cached and n.status == "done"


def _ran(n: CallNode, before: CallNode) -> bool:
    """B executed this call, or evaluated the expression its body returned again (a task
    below it changed) into another result."""
    if _executed(n):
        return True
    return n.job is not None and n.cached and _result_hash(n) != _result_hash(before)


def _result_hash(n: CallNode) -> str | None:
    """The result the call's own job recorded (history), else the call's stored one."""
    if n.job is not None and n.job.result_hash is not None:
        return n.job.result_hash
    return n.result.hash if n.result is not None else None


def _change(
    before: CallNode,
    after: CallNode,
    args: dict[str, dict[str, str]],
    previews: dict[str, Value],
) -> CallChange:
    """Why two paired calls differ: their task's code, arguments, or status."""
    change = CallChange(kind="changed", task_name=after.task_name, before=before, after=after)
    if before.task_hash and after.task_hash and before.task_hash != after.task_hash:
        change.code_changed = True
        change.reasons.append("task code changed")
    change.args = _arg_changes(
        args.get(before.call_hash or "", {}), args.get(after.call_hash or "", {}), previews
    )
    if change.args:
        names = ", ".join(x.name for x in change.args)
        change.reasons.append(f"argument{'s' if len(change.args) > 1 else ''} {names} changed")
    if before.status != after.status and not (before.cached or after.cached):
        change.reasons.append(f"{before.status} -> {after.status}")
    if not change.reasons:
        change.reasons.append("recorded differently (not cacheable, or it failed)")
    return change


def _arg_changes(
    args_a: dict[str, str], args_b: dict[str, str], previews: dict[str, Value]
) -> list[ArgChange]:
    out = []
    for name in [*args_a, *[n for n in args_b if n not in args_a]]:
        ha, hb = args_a.get(name), args_b.get(name)
        if ha != hb:
            pa, pb = previews.get(ha or ""), previews.get(hb or "")
            out.append(
                ArgChange(name, pa.preview if pa else None, pb.preview if pb else None, ha, hb)
            )
    return out


def _task_change(prov: Provenance, name: str, ha: str, hb: str) -> TaskChange:
    """What changed in a task's code between two versions (`codechange`): its source,
    or which helper, constant or class, with the diff of each stored source."""
    ta, tb = prov.code_version(ha), prov.code_version(hb)
    if ta is None or tb is None:
        return TaskChange(name, ha, hb, "", "code it uses (helpers, constants, classes) changed")
    return TaskChange(name, ha, hb, unified_diff(ta, tb, (ha[:8], hb[:8])), summary(ta, tb))


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
@click.argument("execution_b", required=False)
@db_option
@click.option("--task", help="Only calls of this task (full or short name).")
@click.option("--executed", is_flag=True, help="Only calls that B executed (did not reuse).")
@click.option("--failed", is_flag=True, help="Only calls that failed in A or B.")
@click.option("--all", "show_all", is_flag=True, help="List every differing call.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def diff_command(
    execution_a: str,
    execution_b: str | None,
    db: str | None,
    task: str | None,
    executed: bool,
    failed: bool,
    show_all: bool,
    as_json: bool,
) -> None:
    """Compare EXECUTION_A with EXECUTION_B (ids or unique prefixes, ``-``: the latest):
    calls only in one of them, and calls that changed, with the reason (task code, which
    arguments), grouped by task and reason. With one execution, compare it with the one
    before it (the previous execution of the same task, if there is one).

    \b
      lazyflow diff -                    the latest execution against the one before
      lazyflow diff 1a2b 3c4d --task square --executed
    """
    with open_provenance(db) as prov:
        if execution_b is None:
            b = execution_arg(prov, execution_a)
            a = latest_execution(prov, before=b)
        else:
            a, b = execution_arg(prov, execution_a), execution_arg(prov, execution_b)
        d = diff_executions(prov, a.id, b.id)
    d = select(d, task=task, executed=executed, failed=failed)
    if as_json:
        click.echo(json.dumps(_diff_dict(d), indent=2))
        return
    render_diff(d, show_all)


def _task_matches(name: str, task: str | None) -> bool:
    return task is None or task in (name, name.rsplit(".", 1)[-1])


def select(d: ExecutionDiff, *, task: str | None, executed: bool, failed: bool) -> ExecutionDiff:
    """The diff restricted to calls of `task`, executed in B, or failed in A or B."""
    if task is None and not executed and not failed:
        return d

    def keep(before: CallNode | None, after: CallNode | None, name: str) -> bool:
        if not _task_matches(name, task):
            return False
        ran = after is not None and _executed(after)
        broke = any(n is not None and n.status == "failed" for n in (before, after))
        if executed and failed:
            return ran or broke
        return (not executed or ran) and (not failed or broke)

    d.reran = [n for n in d.reran if keep(None, n, n.task_name)]
    d.changes = [c for c in d.changes if keep(c.before, c.after, c.task_name)]
    d.tasks = [t for t in d.tasks if _task_matches(t.name, task)]
    return d


def render_diff(d: ExecutionDiff, show_all: bool, limit: int = 3) -> None:
    """The two executions, the counts, then the differing calls grouped by task and
    reason (`limit` examples per group unless `show_all`), then the code diffs."""
    color = is_terminal()
    _print_header(d)
    if not d.changes and not d.reran:
        click.echo("the two executions made the same calls.")
        return
    click.echo()
    for kind, name, reason, calls in _groups(d):
        mark, style = _MARKS[kind]
        head = paint(f"{mark} ", style, color)
        if len(calls) == 1:
            click.echo(head + _call_line(kind, calls[0], reason))
            _print_args(calls[0], "    ")
            continue
        click.echo(head + f"{name}: {len(calls)} calls  {reason}")
        shown = calls if show_all else calls[:limit]
        for c in shown:
            click.echo("    " + _call_line(kind, c, ""))
            _print_args(c, "        ")
        if len(shown) < len(calls):
            click.echo(f"    ... {len(calls) - len(shown)} more (--all lists them)")
    _print_task_diffs(d, color)


_MARKS = {
    "reran": ("=", "cyan"),
    "changed": ("~", "yellow"),
    "removed": ("-", "red"),
    "added": ("+", "green"),
}
_RERAN = (
    "same call, ran again in B, or its returned expression evaluated again (a call below "
    "it changed, or the cache was bypassed)"
)


def _print_header(d: ExecutionDiff) -> None:
    for label, e in (("A", d.a), ("B", d.b)):
        click.echo(
            f"{label} {short(e.id)}  {fmt_time(e.started_at)}  {e.status:<9} "
            f"{plural(e.jobs, 'job')} ({e.executed} executed, {e.cached} cached)  "
            f"{cut(e.command or e.root_task, 60)}"
        )
    kinds = {"changed": 0, "removed": 0, "added": 0}
    for c in d.changes:
        kinds[c.kind] += 1
    click.echo(
        f"\ncalls: {d.identical} identical, {len(d.reran)} ran again, {kinds['changed']} "
        f"changed, {kinds['removed']} only in A, {kinds['added']} only in B"
    )
    if d.result_before is not None or d.result_after is not None:
        before = d.result_before.preview if d.result_before else "-"
        after = d.result_after.preview if d.result_after else "-"
        same = d.result_before and d.result_after and d.result_before.hash == d.result_after.hash
        click.echo(f"result: {cut(before, 60)}" + (" (same)" if same else f" -> {cut(after, 60)}"))


def _groups(d: ExecutionDiff) -> list[tuple[str, str, str, list[Any]]]:
    """``(kind, task, reason, items)``: calls that differ in the same way, in order."""
    groups: dict[tuple[str, str, str], list[Any]] = {}
    for n in d.reran:
        groups.setdefault(("reran", n.task_name, _RERAN), []).append(n)
    for c in d.changes:
        groups.setdefault((c.kind, c.task_name, "; ".join(c.reasons)), []).append(c)
    return [(kind, name, reason, items) for (kind, name, reason), items in groups.items()]


def _call_line(kind: str, item: Any, reason: str) -> str:
    if kind == "reran":
        return cut(item.preview, 70) + (f"  {reason}" if reason else "")
    node = item.after or item.before
    call = cut(node.preview, 70)
    if item.kind == "changed" and item.before is not None and item.before.preview != node.preview:
        call = f"{cut(item.before.preview, 40)} -> {cut(node.preview, 40)}"
    return call + (f"  {reason}" if reason else "")


def _print_args(item: Any, indent: str) -> None:
    for a in getattr(item, "args", ()):
        click.echo(f"{indent}{a.name}: {cut(a.before, 50)} -> {cut(a.after, 50)}")


def _print_task_diffs(d: ExecutionDiff, color: bool) -> None:
    for t in d.tasks:
        click.echo(
            f"\ntask {t.name} code changed ({short(t.before_hash)} -> {short(t.after_hash)})"
            + (f": {t.summary}" if t.summary else "")
        )
        for line in t.source_diff.rstrip("\n").splitlines():
            style = "green" if line.startswith("+") else ("red" if line.startswith("-") else None)
            click.echo("    " + paint(line, style, color))


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
                "summary": t.summary,
            }
            for t in d.tasks
        ],
    }
