"""``lazyflow run`` and ``lazyflow explain``: call a task of a workflow file or module.

Both commands take ``WORKFLOW TASK`` and then the task's own parameters as options (see
`params`). Everything after ``--`` goes to the task, which lets a task have a parameter
named like one of lazyflow's own options (``--db``, ``--tag``...).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
import sysconfig
import traceback
from typing import Any

import click

from ..task import Task
from ..workflow import load_module, load_task
from .common import console, cut, db_option, parse_tags, plural, short
from .params import call_arguments, task_params

TASK_CONTEXT = {"ignore_unknown_options": True, "allow_extra_args": True}
_CORE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_STDLIB_DIRS = tuple(
    os.path.abspath(p)
    for p in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]}
)


def _list_tasks(workflow: str) -> str:
    module = load_module(workflow)
    names = sorted(n for n, v in vars(module).items() if isinstance(v, Task))
    return ", ".join(names) or "(none)"


def task_call(
    ctx: click.Context, workflow: str | None, task_name: str | None, show_help: bool
) -> tuple[Task, Any] | None:
    """Load the task and build its call from the remaining options (None: help shown)."""
    if workflow is None:
        if show_help:
            click.echo(ctx.get_help())
            return None
        raise click.UsageError("missing WORKFLOW: a .py file or a package.module.", ctx=ctx)
    extra = list(ctx.args)
    if ":" in workflow and not os.path.exists(workflow):
        # "module:task": what click took for TASK is the value of a task option
        if task_name is not None:
            extra.insert(0, task_name)
        workflow, task_name = workflow.rsplit(":", 1)
    if task_name is None:
        if show_help:
            click.echo(ctx.get_help())
            click.echo(f"\nTasks in {workflow}: {_list_tasks(workflow)}")
            return None
        raise click.UsageError(
            f"missing TASK: name the task to call in {workflow!r} (tasks there: "
            f"{_list_tasks(workflow)}).",
            ctx=ctx,
        )
    task = load_task(workflow, task_name)
    params = task_params(task)
    command = click.Command(
        name=f"{workflow} {task_name}",
        params=[p.option for p in params],
        help=task.__doc__,
        add_help_option=False,
    )
    if show_help:
        full = click.Command(
            name=f"{workflow} {task_name}",
            params=[p.option for p in params]
            + [
                p
                for p in ctx.command.params
                if p.name not in ("workflow", "task_name", "show_help")
            ],
            help=(task.__doc__ or f"Call task {task.name}.")
            + "\n\nTask parameters are options; lazyflow's own options follow them.",
            add_help_option=False,
        )
        with click.Context(full, info_name=f"{ctx.command_path} {workflow} {task_name}") as hctx:
            click.echo(full.get_help(hctx))
        return None
    # no parent context: usage messages then name the command as typed
    info = f"{ctx.command_path} {workflow} {task_name}"
    tctx = command.make_context(info, extra)
    args, kwargs = call_arguments(params, tctx)
    return task, task(*args, **kwargs)


def _task_options(func: Any) -> Any:
    for decorator in reversed(
        (
            click.argument("workflow", metavar="WORKFLOW", required=False),
            click.argument("task_name", metavar="TASK [--PARAM VALUE]...", required=False),
            db_option,
        )
    ):
        func = decorator(func)
    return func


# -- run -----------------------------------------------------------------------------


@click.command(
    "run",
    context_settings=TASK_CONTEXT,
    add_help_option=False,
    short_help="Run a task of a workflow.",
)
@_task_options
@click.option(
    "--executor", default="threads", show_default=True, help="Where jobs run: threads or processes."
)
@click.option("--max-workers", type=click.IntRange(min=1), help="Parallel jobs at most.")
@click.option("--no-cache", is_flag=True, help="Read nothing from the cache (still record).")
@click.option(
    "--tag",
    "tags",
    multiple=True,
    metavar="KEY=VALUE",
    help="Tag the execution (repeatable); `lazyflow log --tag` finds it.",
)
@click.option(
    "--progress",
    type=click.Choice(["auto", "live", "plain", "none"]),
    default="auto",
    show_default=True,
    help="Live table (terminal), one line per job (plain), or nothing.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only the result.")
@click.option(
    "--traceback",
    "full_traceback",
    is_flag=True,
    help="On failure, print the full Python traceback.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log lazyflow's info messages.")
@click.option(
    "-h",
    "--help",
    "show_help",
    is_flag=True,
    help="Show this message (with TASK: the task's options) and exit.",
)
@click.pass_context
def run_command(
    ctx: click.Context,
    workflow: str | None,
    task_name: str | None,
    db: str | None,
    executor: str,
    max_workers: int | None,
    no_cache: bool,
    tags: tuple[str, ...],
    progress: str,
    quiet: bool,
    full_traceback: bool,
    verbose: bool,
    show_help: bool,
) -> None:
    """Run TASK of WORKFLOW (a .py file or package.module) with task parameters as options.

    \b
      lazyflow run flows.py main --n 200 --tag env=dev
      lazyflow run mypkg.flows main --names a --names b --opts '{"k": 1}'

    The result is printed on the last line of stdout (JSON when it can be, else its
    repr); progress and the run summary go to stderr. Exit status 1 if the task fails.
    """
    tag_map = parse_tags(tags)
    loaded = task_call(ctx, workflow, task_name, show_help)
    if loaded is None:
        return
    _task, expr = loaded
    from ..scheduler import Scheduler

    err = console(stderr=True)
    mode = "none" if quiet else progress
    if mode == "auto":
        mode = "live" if sys.stderr.isatty() else "plain"
    _configure_logging(err if mode == "live" else None, verbose)
    reporter: Any = None
    if mode == "live":
        from .progress import LiveView

        reporter = LiveView(err)
    elif mode == "plain":
        from .progress import PlainLog

        reporter = PlainLog(sys.stderr)
    sched = Scheduler(
        db=db,
        executor=executor,
        max_workers=max_workers,
        listeners=[reporter] if reporter is not None else None,
    )
    sched.store  # noqa: B018 - open (and migrate) the store now: its errors are user errors
    view = reporter if mode == "live" else contextlib.nullcontext()
    try:
        try:
            with view:
                result = sched.run(expr, cache=not no_cache, tags=tag_map)
        except KeyboardInterrupt:
            for ex in sched.executors.values():
                ex.shutdown(cancel=True)
            click.echo("lazyflow: interrupted", err=True)
            ctx.exit(130)
        except Exception as exc:
            _report_failure(exc, full_traceback)
            if sched.last_run is not None and not quiet:
                click.echo(summary_line(sched.last_run), err=True)
            ctx.exit(1)
    finally:
        sched.close()
    if not quiet and sched.last_run is not None:
        click.echo(summary_line(sched.last_run), err=True)
    click.echo(format_result(result))


def summary_line(s: Any) -> str:
    """``execution 1a2b3c4d done: 202 jobs, 202 executed, 0 cached, 0 failed in 0.41s``."""
    text = (
        f"execution {short(s.execution_id)} {s.status}: {plural(s.jobs, 'job')}, "
        f"{s.executed} executed, {s.cached} cached, {s.failed} failed in {s.seconds:.2f}s"
    )
    if s.status == "done" and s.executed == 0 and s.cached:
        text += " (all served from the cache)"
    return text


def _json_friendly(value: Any, depth: int = 0) -> bool:
    if depth > 100:
        return False
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if type(value) in (list, tuple):
        return all(_json_friendly(v, depth + 1) for v in value)
    if type(value) is dict:
        return all(isinstance(k, str) and _json_friendly(v, depth + 1) for k, v in value.items())
    return False


def format_result(value: Any) -> str:
    """JSON when the value round-trips as JSON (str keys, finite floats), else repr."""
    if _json_friendly(value):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def _configure_logging(rich_console: Any, verbose: bool) -> None:
    logger = logging.getLogger("lazyflow")
    handler: logging.Handler
    if rich_console is not None:
        from rich.logging import RichHandler

        handler = RichHandler(console=rich_console, show_time=False, show_path=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("lazyflow: %(levelname)s: %(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.propagate = False


def _internal(filename: str) -> bool:
    path = os.path.abspath(filename)
    return path.startswith(_CORE_DIR + os.sep) or path.startswith(_STDLIB_DIRS)


def _report_failure(exc: BaseException, full: bool) -> None:
    """The task's error, where lazyflow called it, and the user's own frames."""
    out = sys.stderr
    out.write(f"error: {type(exc).__name__}: {exc}\n")
    for note in getattr(exc, "__notes__", ()):
        out.write(f"  {note}\n")
    if full:
        out.write("".join(traceback.format_exception(exc)))
        return
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not _internal(f.filename)]
    remote = getattr(exc.__cause__, "tb", None)
    if frames:
        out.write(
            "traceback (lazyflow and standard library frames hidden; --traceback shows all):\n"
        )
        out.write("".join(traceback.format_list(frames)))
    elif isinstance(remote, str):
        out.write("traceback (from the worker process; --traceback shows all):\n")
        out.write(_filter_remote(remote))


def _filter_remote(text: str) -> str:
    """Keep the user's frames of a traceback formatted in another process."""
    kept: list[str] = []
    keep = False
    for line in text.splitlines(keepends=True):
        stripped = line.lstrip()
        if stripped.startswith('File "'):
            keep = not _internal(stripped.split('"', 2)[1])
            if keep:
                kept.append(line)
        elif line.startswith("    ") and keep:
            kept.append(line)
        elif not line.startswith(" "):
            keep = False
    return "".join(kept)


# -- explain -------------------------------------------------------------------------


_ACTION_STYLE = {"run": "yellow", "cached": "green", "unknown": "magenta"}


@click.command(
    "explain",
    context_settings=TASK_CONTEXT,
    add_help_option=False,
    short_help="Dry run: what would run, and why.",
)
@_task_options
@click.option("--no-cache", is_flag=True, help="Explain a run with --no-cache.")
@click.option("--all", "show_all", is_flag=True, help="List every cached call too.")
@click.option("--json", "as_json", is_flag=True, help="Print the decisions as JSON.")
@click.option("-h", "--help", "show_help", is_flag=True, help="Show this message and exit.")
@click.pass_context
def explain_command(
    ctx: click.Context,
    workflow: str | None,
    task_name: str | None,
    db: str | None,
    no_cache: bool,
    show_all: bool,
    as_json: bool,
    show_help: bool,
) -> None:
    """Explain what `lazyflow run WORKFLOW TASK ...` would run and why, running nothing.

    Each call is cached (reused), would run (new task, code changed, argument changed,
    output file missing or modified, cache disabled), or unknown: its arguments need a
    result that only running would give.
    """
    loaded = task_call(ctx, workflow, task_name, show_help)
    if loaded is None:
        return
    _task, expr = loaded
    from ..scheduler import Scheduler

    sched = Scheduler(db=db)
    try:
        sched.store  # noqa: B018 - store errors are user errors, reported in one line
        decisions = sched.explain(expr, cache=not no_cache)
    finally:
        sched.close()
    if as_json:
        click.echo(json.dumps([_decision_dict(d) for d in decisions], indent=2))
        return
    render_decisions(decisions, show_all)


def _decision_dict(d: Any) -> dict[str, Any]:
    keys = ("task_name", "call", "call_hash", "action", "reason", "detail", "diff")
    return {k: getattr(d, k, None) for k in keys}


def render_decisions(decisions: list[Any], show_all: bool) -> None:
    from rich.text import Text

    out = console()
    counts = {"run": 0, "cached": 0, "unknown": 0}
    for d in decisions:
        counts[d.action] = counts.get(d.action, 0) + 1
    out.print(
        f"{plural(counts['run'], 'call')} would run, {counts['cached']} cached, "
        f"{counts['unknown']} unknown (need results only running gives)"
    )
    hidden: dict[str, int] = {}
    shown_diffs: set[tuple[str, str]] = set()
    for d in decisions:
        if d.action == "cached" and not show_all:
            hidden[d.task_name] = hidden.get(d.task_name, 0) + 1
            continue
        label = {"run": "run", "cached": "cached", "unknown": "unknown"}.get(d.action, d.action)
        line = Text.assemble(
            (f"{label:<8}", _ACTION_STYLE.get(d.action, "")),
            f"{cut(d.call, 70)}  ",
            (f"{d.reason}", "bold"),
            f": {d.detail}" if d.detail else "",
        )
        out.print(line)
        diff = getattr(d, "diff", None)
        if diff and (d.task_name, diff) not in shown_diffs:
            shown_diffs.add((d.task_name, diff))
            for diff_line in diff.rstrip("\n").splitlines():
                style = (
                    "green"
                    if diff_line.startswith("+")
                    else ("red" if diff_line.startswith("-") else "")
                )
                out.print(Text("        " + diff_line, style=style))
    if hidden:
        parts = ", ".join(f"{n} {name}" for name, n in sorted(hidden.items()))
        out.print(f"cached  {parts}  (--all lists them)")
