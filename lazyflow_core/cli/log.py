"""``lazyflow log``: executions, one execution's calls, or one job in full.

One execution is shown as what a reader looks for first: a table of its calls per task
(executed, cached, failed, time), then its call tree. In the tree, long lists of children
are folded, but only reused ones: a call that ran or failed is always shown, and the
fold says what it holds per task and status. ``--executed``, ``--failed`` and ``--task``
list just those calls, grouped by task.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import click

from .common import (
    cut,
    db_option,
    execution_arg,
    fmt_seconds,
    fmt_size,
    fmt_time,
    is_terminal,
    job_arg,
    jref,
    open_provenance,
    paint,
    parse_since,
    parse_tags,
    plural,
    short,
    table_lines,
    tag_text,
    terminal_width,
)

STATUS_COLOR = {
    "done": "green",
    "cached": "cyan",
    "failed": "red",
    "running": "yellow",
    "cancelled": "magenta",
    "interrupted": "red",
}


@click.command("log", short_help="List executions, or show one execution or job.")
@click.argument("execution", required=False)
@db_option
@click.option(
    "--job",
    "job_id",
    metavar="JOB",
    help="Show one job (call) in full: an id, EXECUTION.N, or -.N (of the latest execution).",
)
@click.option(
    "--task",
    help="List: executions that ran this task. One execution: only its calls of this task. "
    "Full or short name.",
)
@click.option(
    "--tag",
    "tags",
    multiple=True,
    metavar="KEY=VALUE",
    help="Only executions with this tag (repeatable: all must match); with -, the latest such.",
)
@click.option(
    "--status",
    type=click.Choice(["running", "done", "failed", "cancelled", "interrupted"]),
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
@click.option("--executed", is_flag=True, help="One execution: only the calls that ran.")
@click.option("--failed", is_flag=True, help="One execution: only the calls that failed.")
@click.option("--all", "show_all", is_flag=True, help="Show every call (nothing folded).")
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
    executed: bool,
    failed: bool,
    show_all: bool,
    expand: bool,
    as_json: bool,
) -> None:
    """List executions (newest first), or show EXECUTION's calls (``-``: the latest).

    \b
      lazyflow log                       the last 20 executions
      lazyflow log --task main --since 1d --tag env=prod
      lazyflow log -                     the latest execution: calls per task, call tree
      lazyflow log - --tag env=prod      the latest execution tagged env=prod
      lazyflow log 1a2b --executed       the calls that ran (id prefixes are fine)
      lazyflow log - --failed --task load
      lazyflow log --job 9f8e            one call: arguments, result, task source
      lazyflow log --job -.2             the 2nd call of the latest execution
    """
    tag_map = parse_tags(tags)
    since_ts = parse_since(since) if since else None
    if job_id is None and execution is None:
        filters = {"task": task, "tags": tag_map, "status": status, "since": since_ts}
        rows = _fast_list(db, {**filters, "limit": limit})
        if rows is None:
            with open_provenance(db) as prov:
                rows = prov.executions(**filters, limit=limit)
        list_executions(rows, as_json)
        return
    with open_provenance(db) as prov:
        if job_id is not None:
            show_job(prov, job_arg(prov, job_id), as_json)
        else:
            e = execution_arg(prov, execution, tags=tag_map, status=status, since=since_ts)
            view = CallFilter(task=task, executed=executed, failed=failed)
            show_execution(prov, e, view, show_all, expand, as_json)


def _fast_list(db: str | None, filters: dict[str, Any]) -> list[Any] | None:
    """The execution list read without SQLAlchemy when the store allows (`fastlog`)."""
    import os

    from ..config import discover
    from .fastlog import list_executions as fast

    url = db or os.environ.get("LAZYFLOW_DB")
    if url is None:
        project = discover()
        if not project.found:
            return None  # the full path says that no store was found
        url = project.db_url
    return fast(url, **filters)


# -- the list of executions ----------------------------------------------------------------

_LIST_HEADERS = ["id", "started", "duration", "status", "jobs", "cached", "command", "tags"]


def list_executions(rows: list[Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([execution_dict(e) for e in rows], indent=2))
        return
    if not rows:
        click.echo("no executions match (run a workflow with `lazyflow run`).")
        return
    cells = [
        [
            short(e.id),
            fmt_time(e.started_at),
            fmt_seconds(e.seconds),
            e.status,
            str(e.jobs),
            str(e.cached),
            " ".join((e.command or e.root_task or "-").split()),
            tag_text(e.tags, automatic=False),
        ]
        for e in rows
    ]
    lines = table_lines(
        _LIST_HEADERS,
        cells,
        right=frozenset({"duration", "jobs", "cached"}),
        shrink=frozenset({"command", "tags"}),
        width=terminal_width(),
    )
    color = is_terminal()
    click.echo(paint(lines[0], None, False))
    status_at = lines[0].index("status")
    for e, line in zip(rows, lines[1:], strict=True):
        head, rest = line[:status_at], line[status_at:]
        word = rest.split(" ", 1)
        word[0] = paint(word[0], STATUS_COLOR.get(e.status), color)
        click.echo(head + " ".join(word))


def execution_dict(e: Any) -> dict[str, Any]:
    from .fastlog import COLUMNS

    out = {k: getattr(e, k) for k in (*COLUMNS, "tags")}
    out["seconds"] = e.seconds
    return out


# -- one execution ---------------------------------------------------------------------


class CallFilter:
    """Which calls of an execution to list (``--task``, ``--executed``, ``--failed``)."""

    def __init__(self, task: str | None = None, executed: bool = False, failed: bool = False):
        self.task, self.executed, self.failed = task, executed, failed

    @property
    def active(self) -> bool:
        return bool(self.task or self.executed or self.failed)

    def __call__(self, n: Any) -> bool:
        if self.task and self.task not in (n.task_name, n.task_name.rsplit(".", 1)[-1]):
            return False
        if self.executed and self.failed:
            return outcome(n) in ("executed", "failed")
        if self.executed:
            return outcome(n) == "executed"
        return not self.failed or outcome(n) == "failed"


def outcome(n: Any) -> str:
    """``executed``, ``cached``, ``failed`` or the job's own status (``running``...)."""
    if n.cached:
        return "cached"
    if n.status == "done":
        return "executed"
    return str(n.status)


def walk(roots: list[Any]) -> Iterator[Any]:
    """Every node of a call tree, parents before children, in order."""
    stack = list(reversed(roots))
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.children))


def show_execution(
    prov: Any, e: Any, view: CallFilter, show_all: bool, expand: bool, as_json: bool
) -> None:
    roots = prov.call_tree(e.id, expand_cached=expand)
    if as_json:
        calls = [node_dict(n) for n in roots]
        if view.active:
            calls = [node_dict(n, children=False) for n in walk(roots) if view(n)]
        click.echo(json.dumps({"execution": execution_dict(e), "calls": calls}, indent=2))
        return
    color = is_terminal()
    _print_fields(_execution_fields(prov, e), color)
    if not roots:
        click.echo("\n(no jobs recorded)")
        return
    click.echo()
    for line in task_table(walk(roots)):
        click.echo(line)
    click.echo()
    if view.active:
        _print_selected(roots, view, show_all, color)
        return
    click.echo(f"calls of execution {short(e.id)}")
    for prefix, node in tree_lines(roots, show_all):
        click.echo(prefix + (node if isinstance(node, str) else node_text(node, color)))


def _execution_fields(prov: Any, e: Any) -> list[tuple[str, str]]:
    report = prov.run_report(e.id)
    result = prov.values([e.result_hash]).get(e.result_hash) if e.result_hash else None
    return [
        ("execution", e.id),
        ("status", e.status + (f": {e.error}" if e.error else "")),
        ("task", e.root_task or "-"),
        ("started", f"{fmt_time(e.started_at)}  (took {fmt_seconds(e.seconds)})"),
        ("command", e.command or "-"),
        ("host", f"{e.hostname or '-'} (pid {e.pid})"),
        ("tags", tag_text(e.tags, automatic=False) or "-"),
        ("auto tags", tag_text(e.tags, automatic=True) or "-"),
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


def _print_fields(fields: list[tuple[str, str]], color: bool) -> None:
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        click.echo(
            click.style(f"{key:<{width}}", bold=True) if color else f"{key:<{width}}", nl=False
        )
        click.echo(f"  {value}")


def task_table(nodes: Iterator[Any]) -> list[str]:
    """Calls per task: how many ran, were reused, failed, and the time they ran."""
    counts: dict[str, list[float]] = {}
    for n in nodes:
        row = counts.setdefault(n.task_name, [0, 0, 0, 0, 0.0])
        kind = outcome(n)
        row[{"executed": 0, "cached": 1, "failed": 2}.get(kind, 3)] += 1
        if not n.cached and n.seconds is not None:
            row[4] += n.seconds
    headers = ["task", "executed", "cached", "failed", "other", "time"]
    cells = [
        [name, *(str(int(v)) for v in row[:4]), fmt_seconds(row[4])]
        for name, row in sorted(counts.items())
    ]
    if not any(row[3] for row in counts.values()):  # running/cancelled jobs only if any
        headers.remove("other")
        cells = [c[:4] + c[5:] for c in cells]
    right = frozenset(headers[1:])
    return table_lines(
        headers, cells, right=right, shrink=frozenset({"task"}), width=terminal_width()
    )


def _print_selected(roots: list[Any], view: CallFilter, show_all: bool, color: bool) -> None:
    """The calls `view` selects, grouped by task."""
    groups: dict[str, list[Any]] = {}
    for n in walk(roots):
        if view(n):
            groups.setdefault(n.task_name, []).append(n)
    if not groups:
        click.echo("no calls match.")
        return
    limit = None if show_all else 30
    for name, nodes in sorted(groups.items()):
        kinds: dict[str, int] = {}
        for n in nodes:
            kinds[outcome(n)] = kinds.get(outcome(n), 0) + 1
        click.echo(f"{name}: " + ", ".join(f"{v} {k}" for k, v in kinds.items()))
        for n in nodes[:limit]:
            click.echo("  " + node_text(n, color))
        if limit is not None and len(nodes) > limit:
            click.echo(f"  ... {len(nodes) - limit} more (--all lists them)")


def tree_lines(roots: list[Any], show_all: bool, limit: int = 10) -> Iterator[tuple[str, Any]]:
    """``(prefix, node or text)`` per line of the call tree, folding long lists of
    reused children (never one that ran or failed) into one line per fold."""
    stack: list[tuple[str, bool, Any]] = [
        ("", i == len(roots) - 1, r) for i, r in reversed(list(enumerate(roots)))
    ]
    while stack:
        indent, last, n = stack.pop()
        yield indent + ("└── " if last else "├── "), n
        if isinstance(n, str):
            continue
        shown, folded = fold(n.children, show_all, limit)
        items: list[Any] = list(shown)
        if folded:
            items.append(fold_text(folded))
        child_indent = indent + ("    " if last else "│   ")
        for i in reversed(range(len(items))):
            stack.append((child_indent, i == len(items) - 1, items[i]))


def fold(children: list[Any], show_all: bool, limit: int) -> tuple[list[Any], list[Any]]:
    """Children to show and children to fold: the first `limit`, plus every one that ran
    or failed (up to `limit` more); reused ones past those are folded."""
    if show_all or len(children) <= limit + 1:
        return children, []
    keep = set(range(limit))
    extra = [i for i in range(limit, len(children)) if not children[i].cached]
    keep.update(extra[:limit])
    shown = [c for i, c in enumerate(children) if i in keep]
    folded = [c for i, c in enumerate(children) if i not in keep]
    return shown, folded


def fold_text(folded: list[Any]) -> str:
    parts: dict[tuple[str, str], int] = {}
    for n in folded:
        key = (n.task_name.rsplit(".", 1)[-1], outcome(n))
        parts[key] = parts.get(key, 0) + 1
    summary = ", ".join(f"{v} {name} {kind}" for (name, kind), v in parts.items())
    return f"... {len(folded)} more calls ({summary}); --all shows them"


def node_text(n: Any, color: bool = False) -> str:
    """One call as a line: preview, status, duration, result, job id, error."""
    status = "cached" if n.cached else n.status
    text = f"{cut(n.preview, 80)}  {paint(status, STATUS_COLOR.get(status), color)}"
    if n.seconds is not None and not n.cached:
        text += f" {fmt_seconds(n.seconds)}"
    if n.result is not None:
        text += f" -> {cut(n.result.preview, 60)}"
    if n.result_tags:
        text += f"  [{' '.join(f'{k}={v}' for k, v in n.result_tags.items())}]"
    if n.job_tags:
        text += f"  job tags: {' '.join(f'{k}={v}' for k, v in n.job_tags.items())}"
    if n.job is not None:
        text += f"  job {jref(n.job.id)}"
        if n.job.error:
            text += "  " + paint(cut(n.job.error, 100), "red", color)
    if n.repeated:
        text += "  (shown above)"
    return text


def node_dict(n: Any, children: bool = True) -> dict[str, Any]:
    out = {
        "task": n.task_name,
        "call": n.preview,
        "status": n.status,
        "cached": n.cached,
        "call_hash": n.call_hash,
        "job_id": n.job.id if n.job else None,
        "seconds": n.seconds,
        "result": n.result.preview if n.result else None,
        "result_hash": n.result.hash if n.result else None,
        "result_tags": n.result_tags,
        "job_tags": n.job_tags,
    }
    if children:
        out["children"] = [node_dict(c) for c in n.children]
    return out


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


class JobView:
    """Everything `show_job` prints about one job, read from the store once."""

    def __init__(self, prov: Any, ident: str) -> None:
        from ..provenance.queries import job_outcome

        job = self.job = prov.job(ident)
        self.call = prov.calls([job.call_hash]).get(job.call_hash) if job.call_hash else None
        # The job's own result and code, not the call row's (a later run may rewrite it).
        self.result_hash, self.task_hash = job_outcome(job, self.call)
        self.result = prov.values([self.result_hash] if self.result_hash else []).get(
            self.result_hash or ""
        )
        self.execution = prov.execution(job.execution_id)
        self.task = prov.task(self.task_hash) if self.task_hash else None
        self.task_note = ""
        if self.task is None:
            versions = prov.task_versions(job.task_name)
            if versions:
                self.task = versions[0]
                self.task_note = " (latest recorded version: this job did not record its own)"
        self.files = prov.files(job.call_hash) if job.call_hash else []
        self.children = prov.children(job.call_hash) if job.call_hash else []
        self.child_tasks: dict[str, int] = {}
        for c in prov.calls(self.children, details=False).values() if self.children else ():
            name = c.task_name.rsplit(".", 1)[-1]
            self.child_tasks[name] = self.child_tasks.get(name, 0) + 1
        self.parent = _parent_job(prov, job.parent_id)
        self.tags = prov.entity_tags("job", [job.id]).get(job.id, {})
        self.result_tags = (
            prov.entity_tags("value", [self.result_hash]).get(self.result_hash, {})
            if self.result_hash
            else {}
        )

    def as_dict(self) -> dict[str, Any]:
        job, call = self.job, self.call
        return {
            "job": {k: getattr(job, k) for k in job.__dataclass_fields__},
            "call_hash": job.call_hash,
            "task_hash": self.task_hash,
            "arguments": [
                {
                    "name": a.name,
                    "hash": a.value_hash,
                    "preview": a.value.preview if a.value else None,
                }
                for a in (call.args if call else ())
            ],
            "result": {
                "hash": self.result_hash,
                "preview": self.result.preview if self.result else None,
            }
            if self.result_hash
            else None,
            "files": [{"role": f.role, "path": f.path, "hash": f.file_hash} for f in self.files],
            "children": self.children,
            "source": self.task.source if self.task else None,
            "tags": self.tags,
            "result_tags": self.result_tags,
        }

    def status(self) -> str:
        job, call = self.job, self.call
        if job.cached:
            where = ""
            if (
                call is not None
                and call.execution_id != job.execution_id
                and (call.created_at or 0) <= (job.started_at or 0)  # not rewritten since
            ):
                where = (
                    f"; computed in execution {short(call.execution_id)}, job {jref(call.job_id)}"
                )
            return f"cached (reused{where})"
        return "done (executed)" if job.status == "done" else str(job.status)

    def fields(self) -> list[tuple[str, str]]:
        job, e, parent = self.job, self.execution, self.parent
        fields = [
            ("job", job.id),
            ("call", job.args_preview or job.task_name),
            (
                "task",
                job.task_name + (f"  (code {short(self.task_hash)})" if self.task_hash else ""),
            ),
            ("status", self.status()),
            (
                "execution",
                f"{e.id}  ({fmt_time(e.started_at)}, {e.command or e.root_task or '-'})",
            ),
            ("parent", f"job {jref(parent.id)}: {parent.args_preview}" if parent else "-"),
            ("started", fmt_time(job.started_at)),
            ("duration", fmt_seconds(job.seconds)),
            ("attempts", str(job.attempts or 0)),
            ("call hash", job.call_hash or "-"),
        ]
        if self.tags:
            fields.append(("tags", tag_text(self.tags, automatic=False)))
        if self.result_tags:
            fields.append(("result tags", tag_text(self.result_tags, automatic=False)))
        if job.error:
            fields.append(("error", job.error))
        if job.error_type:
            fields.append(("exception", job.error_type))
        return fields

    def sections(self) -> Iterator[str]:
        """The lines after the fields: arguments, result, child calls, files."""
        call = self.call
        if call is not None:
            yield "\narguments"
            for a in call.args:
                v = a.value
                detail = (
                    f"({v.type_name}, {fmt_size(v.size)}, {short(a.value_hash)})"
                    if v
                    else f"({short(a.value_hash)})"
                )
                yield f"  {a.name} = {cut(v.preview if v else '?', 200)}  {detail}"
            if self.result_hash:
                r = self.result
                kind = f"{r.type_name}, {fmt_size(r.size)}, " if r else ""
                yield "\nresult"
                yield f"  {cut(r.preview if r else '?', 300)}  ({kind}{short(self.result_hash)})"
        if self.job.traceback:
            yield "\ntraceback"
            yield self.job.traceback.rstrip("\n")
        if self.children:
            names = ", ".join(f"{n} {k}" for k, n in self.child_tasks.items())
            yield f"\nchild calls  {plural(len(self.children), 'call')}: {names}"
        if self.files:
            yield "\nfiles"
            for f in self.files:
                yield f"  {f.role:<6} {f.path}  ({short(f.file_hash)})"


def show_job(prov: Any, ident: str, as_json: bool) -> None:
    view = JobView(prov, ident)
    if as_json:
        click.echo(json.dumps(view.as_dict(), indent=2))
        return
    color = is_terminal()
    _print_fields(view.fields(), color)
    for line in view.sections():
        click.echo(line)
    task = view.task
    if task is not None and task.source:
        click.echo(f"\nsource of {task.name} @ {short(task.hash)}{view.task_note}")
        if color:
            from rich.console import Console
            from rich.syntax import Syntax

            Console(highlight=False).print(Syntax(task.source, "python", line_numbers=False))
        else:
            click.echo(task.source.rstrip("\n"))
