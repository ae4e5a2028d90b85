"""``lazyflow log``: executions, one execution's call tree, or one job in full."""

from __future__ import annotations

import json
from typing import Any

import click

from .common import (
    console,
    cut,
    db_option,
    fmt_seconds,
    fmt_size,
    fmt_time,
    jref,
    open_provenance,
    parse_since,
    parse_tags,
    plural,
    short,
)

_STATUS_STYLE = {
    "done": "green",
    "cached": "cyan",
    "failed": "red",
    "running": "yellow",
    "cancelled": "magenta",
}


@click.command("log", short_help="List executions, or show one execution or job.")
@click.argument("execution", required=False)
@db_option
@click.option("--job", "job_id", metavar="JOB", help="Show one job (call) in full.")
@click.option("--task", help="Only executions that ran this task (full or short name).")
@click.option(
    "--tag",
    "tags",
    multiple=True,
    metavar="KEY=VALUE",
    help="Only executions with this tag (repeatable: all must match).",
)
@click.option(
    "--status",
    type=click.Choice(["running", "done", "failed", "cancelled"]),
    help="Only executions with this status.",
)
@click.option(
    "--since",
    metavar="WHEN",
    help="Only executions started since: 30m, 2h, 3d, "
    "1w ago, or a date/time such as 2026-01-31T14:00.",
)
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Executions listed at most.",
)
@click.option("--all", "show_all", is_flag=True, help="Tree: show every child call.")
@click.option("--expand", is_flag=True, help="Tree: also show the calls under reused ones.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def log_command(
    execution: str | None,
    db: str | None,
    job_id: str | None,
    task: str | None,
    tags: tuple[str, ...],
    status: str | None,
    since: str | None,
    limit: int,
    show_all: bool,
    expand: bool,
    as_json: bool,
) -> None:
    """List executions (newest first), or show EXECUTION's call tree.

    \b
      lazyflow log                       the last 20 executions
      lazyflow log --task main --since 1d --tag env=prod
      lazyflow log 1a2b                  call tree (id prefixes are fine)
      lazyflow log --job 9f8e            one call: arguments, result, task source
    """
    tag_map = parse_tags(tags)
    since_ts = parse_since(since) if since else None
    with open_provenance(db) as prov:
        if job_id is not None:
            show_job(prov, job_id, as_json)
        elif execution is not None:
            show_execution(prov, execution, show_all, expand, as_json)
        else:
            rows = prov.executions(
                task=task, tags=tag_map, status=status, since=since_ts, limit=limit
            )
            list_executions(rows, as_json)


def list_executions(rows: list[Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([_execution_dict(e) for e in rows], indent=2))
        return
    out = console()
    if not rows:
        out.print("no executions match (run a workflow with `lazyflow run`).")
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    cells = [
        [
            short(e.id),
            fmt_time(e.started_at),
            fmt_seconds(e.seconds),
            e.status,
            str(e.jobs),
            str(e.cached),
            e.command or e.root_task or "-",
            " ".join(f"{k}={v}" for k, v in e.tags.items()),
        ]
        for e in rows
    ]
    names = ("id", "started", "duration", "status", "jobs", "cached", "command", "tags")
    for i, name in enumerate(names):
        # every column keeps its width; only the command and the tags shrink on a narrow
        # terminal (cut with an ellipsis)
        fixed = name not in ("command", "tags")
        table.add_column(
            name,
            justify="right" if name in ("duration", "jobs", "cached") else "left",
            no_wrap=True,
            overflow="ellipsis",
            min_width=max(len(name), *(len(c[i]) for c in cells)) if fixed else None,
            max_width=60 if name == "command" else None,
        )
    for e, row in zip(rows, cells, strict=True):
        style = _STATUS_STYLE.get(e.status, "")
        row[3] = f"[{style}]{row[3]}[/]" if style else row[3]
        row[6], row[7] = _escape(row[6]), _escape(row[7])
        table.add_row(*row)
    out.print(table)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _execution_dict(e: Any) -> dict[str, Any]:
    keys = (
        "id",
        "started_at",
        "finished_at",
        "status",
        "root_task",
        "root_call_hash",
        "result_hash",
        "command",
        "hostname",
        "pid",
        "jobs",
        "cached",
        "executed",
        "failed",
        "error",
        "tags",
    )
    out = {k: getattr(e, k) for k in keys}
    out["seconds"] = e.seconds
    return out


# -- one execution ---------------------------------------------------------------------


def show_execution(prov: Any, ident: str, show_all: bool, expand: bool, as_json: bool) -> None:
    e = prov.execution(ident)
    roots = prov.call_tree(e.id, expand_cached=expand)
    if as_json:
        click.echo(
            json.dumps(
                {"execution": _execution_dict(e), "calls": [_node_dict(n) for n in roots]}, indent=2
            )
        )
        return
    out = console()
    report = prov.run_report(e.id)
    result = prov.values([e.result_hash]).get(e.result_hash) if e.result_hash else None
    fields = [
        ("execution", e.id),
        ("status", e.status + (f": {e.error}" if e.error else "")),
        ("task", e.root_task or "-"),
        ("started", f"{fmt_time(e.started_at)}  (took {fmt_seconds(e.seconds)})"),
        ("command", e.command or "-"),
        ("host", f"{e.hostname or '-'} (pid {e.pid})"),
        ("tags", " ".join(f"{k}={v}" for k, v in e.tags.items()) or "-"),
        (
            "jobs",
            f"{e.jobs}: {e.executed} executed, {e.cached} cached, {e.failed} failed"
            + (f"; {report.reused_calls} calls reused in all" if report.cached else ""),
        ),
        (
            "result",
            f"{cut(result.preview, 100)}  ({result.type_name}, {short(result.hash)})"
            if result
            else "-",
        ),
    ]
    _print_fields(out, fields)
    if not roots:
        out.print("\n(no jobs recorded)")
        return
    from rich.tree import Tree

    out.print()
    tree = Tree(f"calls of execution {short(e.id)}", guide_style="dim")
    for root in roots:
        _add_node(tree, root, show_all)
    out.print(tree)


def _print_fields(out: Any, fields: list[tuple[str, str]]) -> None:
    from rich.text import Text

    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        out.print(Text.assemble((f"{key:<{width}}  ", "bold"), value))


def node_text(n: Any) -> Any:
    """One call as a line: preview, status, duration, result, job id."""
    from rich.text import Text

    status = "cached" if n.cached else n.status
    text = Text.assemble(
        cut(n.preview, 80),
        "  ",
        (status, _STATUS_STYLE.get(status, "")),
    )
    if n.seconds is not None and not n.cached:
        text.append(f" {fmt_seconds(n.seconds)}", style="dim")
    if n.result is not None:
        text.append(f" -> {cut(n.result.preview, 60)}")
    if n.job is not None:
        text.append(f"  job {jref(n.job.id)}", style="dim")
        if n.job.error:
            text.append(f"  {cut(n.job.error, 100)}", style="red")
    if n.repeated:
        text.append("  (shown above)", style="dim")
    return text


def _add_node(parent: Any, node: Any, show_all: bool, limit: int = 10) -> None:
    stack = [(parent, node)]
    while stack:
        branch, n = stack.pop()
        if isinstance(n, _More):
            from rich.text import Text

            branch.add(Text(n.preview, style="dim"))
            continue
        sub = branch.add(node_text(n))
        kids = n.children if show_all or len(n.children) <= limit + 1 else n.children[:limit]
        rest = n.children[len(kids) :]
        if rest:
            by_task: dict[str, int] = {}
            for r in rest:
                by_task[r.task_name.rsplit(".", 1)[-1]] = (
                    by_task.get(r.task_name.rsplit(".", 1)[-1], 0) + 1
                )
            summary = ", ".join(f"{v} {k}" for k, v in by_task.items())
            # pushed first so it prints after the shown children
            stack.append((sub, _More(f"... {len(rest)} more calls ({summary}); --all shows them")))
        stack.extend((sub, k) for k in reversed(kids))


class _More:
    """A placeholder row for children that are not shown."""

    def __init__(self, text: str) -> None:
        self.preview = text
        self.children: list[Any] = []
        self.task_name = ""


def _node_dict(n: Any) -> dict[str, Any]:
    return {
        "task": n.task_name,
        "call": n.preview,
        "status": n.status,
        "cached": n.cached,
        "call_hash": n.call_hash,
        "job_id": n.job.id if n.job else None,
        "seconds": n.seconds,
        "result": n.result.preview if n.result else None,
        "result_hash": n.result.hash if n.result else None,
        "children": [_node_dict(c) for c in n.children],
    }


# -- one job -------------------------------------------------------------------------


def _parent_job(prov: Any, parent_id: str | None) -> Any:
    """The parent job, or None (a parent that failed only because a child failed may not
    have a job record)."""
    from ..provenance import NoSuchRecord

    if not parent_id:
        return None
    try:
        return prov.job(parent_id)
    except NoSuchRecord:
        return None


def show_job(prov: Any, ident: str, as_json: bool) -> None:
    job = prov.job(ident)
    call = prov.calls([job.call_hash]).get(job.call_hash) if job.call_hash else None
    execution = prov.execution(job.execution_id)
    task = prov.task(call.task_hash) if call else None
    task_note = ""
    if task is None:
        versions = prov.task_versions(job.task_name)
        if versions:
            task = versions[0]
            task_note = " (latest recorded version: this job did not record its own)"
    files = prov.files(job.call_hash) if job.call_hash else []
    children = prov.children(job.call_hash) if job.call_hash else []
    parent = _parent_job(prov, job.parent_id)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "job": {k: getattr(job, k) for k in job.__dataclass_fields__},
                    "call_hash": job.call_hash,
                    "task_hash": call.task_hash if call else None,
                    "arguments": [
                        {
                            "name": a.name,
                            "hash": a.value_hash,
                            "preview": a.value.preview if a.value else None,
                        }
                        for a in (call.args if call else ())
                    ],
                    "result": {
                        "hash": call.result_hash,
                        "preview": call.result.preview if call.result else None,
                    }
                    if call
                    else None,
                    "files": [{"role": f.role, "path": f.path, "hash": f.file_hash} for f in files],
                    "children": children,
                    "source": task.source if task else None,
                },
                indent=2,
            )
        )
        return
    out = console()
    status = job.status
    if job.cached:
        status = "cached (reused"
        if call is not None and call.execution_id != job.execution_id:
            status += f"; computed in execution {short(call.execution_id)}, job {jref(call.job_id)}"
        status += ")"
    elif job.status == "done":
        status = "done (executed)"
    fields = [
        ("job", job.id),
        ("call", job.args_preview or job.task_name),
        ("task", f"{job.task_name}" + (f"  (code {short(call.task_hash)})" if call else "")),
        ("status", status),
        (
            "execution",
            f"{execution.id}  ({fmt_time(execution.started_at)}, "
            f"{execution.command or execution.root_task or '-'})",
        ),
        ("parent", f"job {jref(parent.id)}: {parent.args_preview}" if parent else "-"),
        ("started", fmt_time(job.started_at)),
        ("duration", fmt_seconds(job.seconds)),
        ("attempts", str(job.attempts or 0)),
        ("call hash", job.call_hash or "-"),
    ]
    if job.error:
        fields.append(("error", job.error))
    _print_fields(out, fields)
    if call is not None:
        out.print("\n[bold]arguments[/]")
        for a in call.args:
            v = a.value
            detail = (
                f"({v.type_name}, {fmt_size(v.size)}, {short(a.value_hash)})"
                if v
                else f"({short(a.value_hash)})"
            )
            out.print(
                f"  {_escape(a.name)} = {_escape(cut(v.preview if v else '?', 200))}  "
                f"[dim]{detail}[/]"
            )
        r = call.result
        out.print("\n[bold]result[/]")
        out.print(
            f"  {_escape(cut(r.preview if r else '?', 300))}  [dim]("
            + (f"{r.type_name}, {fmt_size(r.size)}, " if r else "")
            + f"{short(call.result_hash)})[/]"
        )
    if children:
        names: dict[str, int] = {}
        for c in prov.calls(children, details=False).values():
            short_name = c.task_name.rsplit(".", 1)[-1]
            names[short_name] = names.get(short_name, 0) + 1
        out.print(
            f"\n[bold]child calls[/]  {plural(len(children), 'call')}: "
            + ", ".join(f"{n} {k}" for k, n in names.items())
        )
    if files:
        out.print("\n[bold]files[/]")
        for f in files:
            out.print(f"  {f.role:<6} {_escape(f.path)}  [dim]({short(f.file_hash)})[/]")
    if task is not None and task.source:
        out.print(f"\n[bold]source[/] of {task.name} @ {short(task.hash)}{task_note}")
        from rich.syntax import Syntax

        if out.is_terminal:
            out.print(Syntax(task.source, "python", line_numbers=False))
        else:
            click.echo(task.source.rstrip("\n"))
