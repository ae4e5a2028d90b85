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

from ..errors import Terminated
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


class _RawArgs(click.Command):
    """Keeps the words as typed (``ctx.meta["raw_args"]``): with ``--rerun`` there is no
    TASK, and the task options must be read without click taking values for positions."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["raw_args"] = list(args)
        return super().parse_args(ctx, args)


@click.command(
    "run",
    cls=_RawArgs,
    context_settings=TASK_CONTEXT,
    add_help_option=False,
    short_help="Run a task of a workflow.",
)
@_task_options
@click.option(
    "--executor",
    default="threads",
    show_default=True,
    help="Where jobs run: threads, processes, or an executor named in lazyflow.toml.",
)
@click.option("--max-workers", type=click.IntRange(min=1), help="Parallel jobs at most.")
@click.option("--no-cache", is_flag=True, help="Read nothing from the cache (still record).")
@click.option(
    "--rerun",
    metavar="EXECUTION",
    help="Call the entry task of an earlier execution (id, prefix, or - for the latest) "
    "again with its recorded arguments, in the current code; task options given too "
    "override them. WORKFLOW is needed only when the task's module is not importable.",
)
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
    "--strict-store",
    is_flag=True,
    help="Fail (exit 1) if any of the run's records could not be stored (a read-only "
    "store, a full disk); without it the run warns with the count.",
)
@click.option(
    "--traceback",
    "full_traceback",
    is_flag=True,
    help="On failure, print the full Python traceback.",
)
@click.option(
    "--pdb",
    "debug",
    is_flag=True,
    help="On failure, open the Python debugger (post mortem) at the failed task's frame; "
    "needs a local executor (threads, the default, or inline).",
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
    rerun: str | None,
    tags: tuple[str, ...],
    progress: str,
    quiet: bool,
    strict_store: bool,
    full_traceback: bool,
    debug: bool,
    verbose: bool,
    show_help: bool,
) -> None:
    """Run TASK of WORKFLOW (a .py file or package.module) with task parameters as options.

    \b
      lazyflow run flows.py main --n 200 --tag env=dev
      lazyflow run mypkg.flows main --names a --names b --opts '{"k": 1}'
      lazyflow run --rerun 1a2b            the same call as execution 1a2b, again

    The result is printed on the last line of stdout (JSON when it can be, else its
    repr); progress and the run summary go to stderr. Exit status 1 if the task fails.
    """
    tag_map = parse_tags(tags)
    if rerun is None or show_help:
        loaded = task_call(ctx, workflow, task_name, show_help)
    else:
        from .rerun import RERUN_TAG, rerun_call, run_words

        # with --rerun there is no TASK: the words typed are read again (`run_words`)
        words = run_words(ctx.meta.get("raw_args", []))
        task_, expr_, rerun_of = rerun_call(rerun, words.workflow, words.options, db)
        loaded = task_, expr_
        tag_map = {RERUN_TAG: rerun_of, **tag_map}
    if loaded is None:
        return
    _task, expr = loaded
    from ..scheduler import Scheduler

    mode = "none" if quiet else progress
    if mode == "auto":
        mode = "live" if sys.stderr.isatty() else "plain"
    # rich (~25 ms to import) only for the live view: plain progress is print()ed
    err = console(stderr=True) if mode == "live" else None
    _configure_logging(err, verbose)
    reporter = _reporter(mode, err)
    sched = Scheduler(
        db=db,
        executor=executor,
        max_workers=max_workers,
        listeners=[reporter] if reporter is not None else None,
        strict_store=strict_store,
    )
    sched.store  # noqa: B018 - open (and migrate) the store now: its errors are user errors
    if mode == "live":
        # how many jobs can run at once: the rest of those sent are shown as queued
        workers = getattr(sched.executors[sched.default_executor], "max_workers", None)
        reporter.tally.capacity = workers if isinstance(workers, int) else None
    view = reporter if mode == "live" else contextlib.nullcontext()
    try:
        with view:
            result = _run_or_exit(
                ctx,
                sched,
                expr,
                cache=not no_cache,
                tags=tag_map,
                quiet=quiet,
                full_traceback=full_traceback,
                debug=debug,
            )
    finally:
        sched.close()
    failed = ctx.meta.get("failed")
    if failed is not None:  # --pdb: after the live view is gone and the store is closed
        post_mortem(failed)
        ctx.exit(1)
    if not quiet and sched.last_run is not None:
        click.echo(summary_line(sched.last_run), err=True)
    click.echo(format_result(result))


def _reporter(mode: str, err: Any) -> Any:
    """The progress listener of `mode` ("live", "plain"; None for "none")."""
    if mode == "live":
        from .progress import LiveView

        return LiveView(err)
    if mode == "plain":
        from .progress import PlainLog

        return PlainLog(sys.stderr)
    return None


def _run_or_exit(
    ctx: click.Context,
    sched: Any,
    expr: Any,
    *,
    cache: bool,
    tags: dict[str, str],
    quiet: bool,
    full_traceback: bool,
    debug: bool = False,
) -> Any:
    """Run `expr`; on Ctrl+C, SIGTERM or a failed task, report it and exit (130, 143, 1).
    With `debug`, a failed task's exception is left in ``ctx.meta["failed"]`` for the
    debugger (`post_mortem`) instead."""
    try:
        return sched.run(expr, cache=cache, tags=tags)
    except KeyboardInterrupt:
        for ex in sched.executors.values():
            ex.shutdown(cancel=True)
        click.echo("lazyflow: interrupted", err=True)
        ctx.exit(130)
    except Terminated as exc:  # SIGTERM: the run was cancelled and recorded
        click.echo(f"lazyflow: {exc}", err=True)
        if sched.last_run is not None and not quiet:
            click.echo(summary_line(sched.last_run), err=True)
        sched.close(cancel=True)
        # Exit now: jobs still running in pool threads cannot be stopped, and Python
        # would wait for them; the run's records are written already.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exc.code if isinstance(exc.code, int) else 143)
    except Exception as exc:
        _report_failure(exc, full_traceback)
        if sched.last_run is not None and not quiet:
            click.echo(summary_line(sched.last_run), err=True)
        if not debug:
            ctx.exit(1)
        ctx.meta["failed"] = exc
        return None


def post_mortem(exc: BaseException) -> None:
    """``--pdb``: the debugger at the innermost frame of the failed task's traceback, where
    it raised (as redun's ``--pdb``). A task that ran in another process (``--executor
    processes``, Dask, Batch) left its frames there: then say how to debug it here."""
    tb = exc.__traceback__
    user = [f for f in traceback.extract_tb(tb) if not _internal(f.filename)]
    if tb is None or not user:
        click.echo(
            "lazyflow: --pdb: the task failed in another process (its executor is not "
            "local), so its frames are not here to debug. Run it again in this process: "
            "lazyflow run --rerun - --executor threads --pdb (a task with its own "
            "executor= option needs that changed too).",
            err=True,
        )
        return
    import pdb

    click.echo(f"lazyflow: --pdb: post mortem of {type(exc).__name__}: {exc}", err=True)
    pdb.post_mortem(tb)


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
@click.option(
    "--load-values",
    "values",
    is_flag=True,
    help="Also unpickle cached results signed with the store's key, to explain past them "
    "(without it only built-in data, File and Dir are loaded; unsigned values never are). "
    "Not --values, which a task may have as a parameter.",
)
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
    values: bool,
    show_help: bool,
) -> None:
    """Explain what `lazyflow run WORKFLOW TASK ...` would run and why, running nothing.

    Each call is cached (reused), would run (new task, code changed, argument changed,
    output file missing or modified, cache disabled), or unknown: its arguments need a
    result that only running would give. Cached results are read as data only (a stored
    pickle of another class is not unpickled: in a shared store it may be planted);
    --load-values also loads those signed with the store's key.
    """
    loaded = task_call(ctx, workflow, task_name, show_help)
    if loaded is None:
        return
    _task, expr = loaded
    from ..scheduler import Scheduler

    sched = Scheduler(db=db)
    try:
        sched.store  # noqa: B018 - store errors are user errors, reported in one line
        decisions = sched.explain(expr, cache=not no_cache, values="signed" if values else "data")
    finally:
        sched.close()
    if as_json:
        click.echo(json.dumps([_decision_dict(d) for d in decisions], indent=2))
        return
    render_decisions(decisions, show_all)


def _decision_dict(d: Any) -> dict[str, Any]:
    keys = ("task_name", "call", "call_hash", "action", "reason", "detail", "diff", "predicted")
    return {k: getattr(d, k, None) for k in keys}


def render_decisions(decisions: list[Any], show_all: bool) -> None:
    """The decisions of this run, then those predicted below calls that would run (marked
    with ``?``: they hold if the new run makes the same calls as the previous one)."""
    out = console()
    from ..events import decision_totals

    actual = [d for d in decisions if not d.predicted]
    predicted = [d for d in decisions if d.predicted]
    totals = decision_totals(decisions)
    out.print(
        f"{plural(totals['run'], 'call')} would run, {totals['cached']} cached, "
        f"{totals['unknown']} unknown (need results only running gives)"
    )
    shown_diffs: set[tuple[str, str]] = set()
    _print_decisions(out, actual, show_all, "", shown_diffs)
    if predicted:
        out.print(
            f"below calls that would run, predicted from their previous run: "
            f"{totals['predicted_run']} would run again, "
            f"{totals['predicted_cached']} would be reused"
        )
        _print_decisions(out, predicted, show_all, "?", shown_diffs)


def _print_decisions(
    out: Any, decisions: list[Any], show_all: bool, mark: str, shown_diffs: set[tuple[str, str]]
) -> None:
    from rich.text import Text

    hidden: dict[str, int] = {}
    for d in decisions:
        if d.action == "cached" and not show_all:
            hidden[d.task_name] = hidden.get(d.task_name, 0) + 1
            continue
        label = d.action + mark
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
            _print_diff(out, diff)
    if hidden:
        parts = ", ".join(f"{n} {name}" for name, n in sorted(hidden.items()))
        out.print(f"{'cached' + mark:<8}{parts}  (--all lists them)")


def _print_diff(out: Any, diff: str) -> None:
    from rich.text import Text

    for diff_line in diff.rstrip("\n").splitlines():
        style = {"+": "green", "-": "red"}.get(diff_line[:1], "")
        out.print(Text("        " + diff_line, style=style))
