"""``lazyflow run --rerun EXECUTION``: call an earlier execution's entry task again, with
the arguments it was called with, in the current code (redun's ``run --rerun``).

Where the call comes from, in the store's record:

- The task: the execution's root task, looked up by name after importing its module
  (recorded with the task version), or the workflow the recorded ``lazyflow run``
  command named, or a WORKFLOW given now (needed when the module is not importable from
  here, e.g. a file workflow run from another directory).
- The arguments: the entry call's stored argument values, when it was recorded (it
  finished, or was cached). They are read with a run's rule: with a signing key only
  signed values are unpickled, without one only values whose checksum matches; a value
  that fails is an error naming the argument (give it on the command line instead).
  An entry call that failed has no stored arguments: then the task options of the
  recorded ``lazyflow run`` command line are parsed again.

Task options given with ``--rerun`` override the recorded arguments, as in redun. The
new execution is tagged ``rerun_of=ID`` (the execution it re-ran), which is also how a
re-run that failed can itself be re-run.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import os
import shlex
import sys
from dataclasses import dataclass
from typing import Any

import click

from ..errors import LazyflowError, WorkflowImportError
from ..task import Task, get_task
from ..workflow import load_module
from .params import call_arguments, task_params

# The tag a re-run's execution carries: the id of the execution it re-ran
RERUN_TAG = "rerun_of"


class RerunError(LazyflowError):
    """An earlier execution cannot be re-run: its task or its arguments cannot be had."""


@dataclass(frozen=True)
class RunWords:
    """A ``lazyflow run`` command line read as lazyflow does: WORKFLOW, TASK (None with
    ``--rerun``, where the first word is WORKFLOW only if it is not an option), the task
    options, and the execution ``--rerun`` names."""

    workflow: str | None
    task_name: str | None
    options: list[str]
    rerun: str | None


def run_words(words: list[str]) -> RunWords:
    """Read the words after ``lazyflow run`` (see `RunWords`)."""
    from .run import TASK_CONTEXT, run_command

    own = [p for p in run_command.params if p.name not in ("workflow", "task_name")]
    parsed = click.Command("run", params=own, context_settings=TASK_CONTEXT).make_context(
        "run", list(words), resilient_parsing=True
    )
    extra = list(parsed.args)
    rerun = parsed.params.get("rerun")
    workflow = extra.pop(0) if extra and not extra[0].startswith("-") else None
    task_name = None
    if workflow and ":" in workflow and not os.path.exists(workflow):
        workflow, task_name = workflow.rsplit(":", 1)
    elif rerun is None and extra and not extra[0].startswith("-"):
        task_name = extra.pop(0)
    return RunWords(workflow, task_name, extra, rerun)


def rerun_call(
    ident: str, workflow: str | None, options: list[str], db: str | None
) -> tuple[Task, Any, str]:
    """The task and the call expression that re-run execution `ident` (task `options`,
    ``--n 5``, override the recorded arguments), and that execution's full id."""
    from .common import execution_arg, open_provenance

    with open_provenance(db) as prov:
        execution_id = execution_arg(prov, ident).id
        task, args, kwargs = _entry_call(prov, execution_id, workflow, depth=0)
    args, kwargs = _merge(args, kwargs, _parse_options(task, options, "the command line"))
    return task, task(*args, **kwargs), execution_id


def _entry_call(
    prov: Any, ident: str, workflow: str | None, depth: int
) -> tuple[Task, tuple[Any, ...], dict[str, Any]]:
    from .common import execution_arg

    execution = execution_arg(prov, ident)
    if not execution.root_task:
        raise RerunError(
            f"execution {execution.id[:8]} has no entry task recorded (it was not a "
            "call of a task): there is nothing to re-run."
        )
    recorded = _recorded_command(execution.command)
    task = _find_task(execution, workflow, recorded, prov)
    stored = _stored_arguments(prov, execution, task)
    if stored is not None:
        return task, *stored
    if recorded is None:
        raise RerunError(
            f"execution {execution.id[:8]}'s entry call {execution.root_task} has no "
            "stored arguments (it did not finish) and it was not started by "
            "`lazyflow run`: give the arguments as options, or run the task "
            "without --rerun."
        )
    earlier = execution.tags.get(RERUN_TAG)
    if recorded.rerun is None or earlier is None or depth >= 20:
        return task, *_parse_options(task, recorded.options, "the recorded command", full=True)
    # a re-run that failed: the call of the execution it re-ran, with its overrides
    _task, args, kwargs = _entry_call(prov, earlier, workflow, depth + 1)
    overrides = _parse_options(task, recorded.options, "the recorded command")
    return task, *_merge(args, kwargs, overrides)


def _recorded_command(command: str | None) -> RunWords | None:
    """A recorded ``lazyflow run`` command line, read again (None: another command)."""
    if not command:
        return None
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    if len(words) < 2 or os.path.basename(words[0]) != "lazyflow" or words[1] != "run":
        return None
    return run_words(words[2:])


def _find_task(
    execution: Any,
    workflow: str | None,
    recorded: RunWords | None,
    prov: Any,
) -> Task:
    """The live task named `execution.root_task`, from the first place that has it."""
    name = execution.root_task
    places: list[str] = []
    if workflow is not None:
        places.append(workflow)
    else:
        module = _recorded_module(prov, execution)
        if module:
            places.append(module)
        if recorded is not None and recorded.workflow:
            places.append(recorded.workflow)
    problems: list[str] = []
    for place in places:
        try:
            module = _import(place)
        except WorkflowImportError as exc:
            problems.append(str(exc))
            continue
        found = get_task(name)
        if found is None and recorded is not None and recorded.task_name:
            found = getattr(module, recorded.task_name, None)
        if found is None:
            found = getattr(module, name.rsplit(".", 1)[-1], None)
        if isinstance(found, Task):
            return found
        problems.append(f"{place!r} has no task {name!r}")
    tried = "; ".join(p.rstrip(".") for p in problems) or "no module or workflow is recorded"
    raise RerunError(
        f"execution {execution.id[:8]}'s task {name} cannot be imported: {tried}. Name the "
        f"workflow that defines it: lazyflow run --rerun {execution.id[:8]} path/to/flows.py"
    )


def _import(place: str) -> Any:
    if place.endswith(".py") or os.sep in place:
        return load_module(place)
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(place)
    except Exception as exc:
        raise WorkflowImportError(f"module {place!r}: {type(exc).__name__}: {exc}") from exc


def _recorded_module(prov: Any, execution: Any) -> str | None:
    """The module of the entry call's task version, as recorded."""
    from sqlalchemy import select

    from ..store import schema

    j, t = schema.jobs, schema.tasks
    rows = prov._rows(
        select(t.c.module)
        .join(j, j.c.task_hash == t.c.hash)
        .where(j.c.execution_id == execution.id, j.c.parent_id.is_(None))
        .limit(1)
    )
    return str(rows[0][0]) if rows and rows[0][0] else None


def _stored_arguments(
    prov: Any, execution: Any, task: Task
) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    """The entry call's recorded arguments, unpickled by the run's rule (None when the
    call's arguments were not recorded)."""
    from ..store.values import load_value

    if not execution.root_call_hash:
        return None
    call = prov.calls([execution.root_call_hash]).get(execution.root_call_hash)
    if call is None:
        return None
    kinds = {p.name: p.kind for p in inspect.signature(task.func).parameters.values()}
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for arg in call.args:
        try:
            value = load_value(prov.store, arg.value_hash)
        except LazyflowError as exc:
            raise RerunError(
                f"argument {arg.name!r} of execution {execution.id[:8]}'s entry call "
                f"{execution.root_task} cannot be read: {exc}. Give it on the command "
                f"line instead (--{arg.name.replace('_', '-')} VALUE)."
            ) from exc
        kind = kinds.get(arg.name)
        if kind is inspect.Parameter.VAR_POSITIONAL:
            args.extend(value)
        elif kind is inspect.Parameter.VAR_KEYWORD:
            kwargs.update(value)
        elif kind is inspect.Parameter.POSITIONAL_ONLY:
            args.append(value)
        elif kind is None:
            raise RerunError(
                f"execution {execution.id[:8]}'s entry call passed {arg.name!r}, which "
                f"{task.name} no longer has (its parameters: {', '.join(kinds)}); it "
                "cannot be re-run with the same arguments."
            )
        else:
            kwargs[arg.name] = value
    if any(k is inspect.Parameter.VAR_POSITIONAL for k in kinds.values()):
        # parameters before *args must go by position then
        ordered = [n for n, k in kinds.items() if k is inspect.Parameter.POSITIONAL_OR_KEYWORD]
        args = [kwargs.pop(n) for n in ordered if n in kwargs] + args
    return tuple(args), kwargs


def _parse_options(
    task: Task, words: list[str], where: str, *, full: bool = False
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Task options (``--n 5``) to arguments: a `full` call (required options must be
    there), else overrides."""
    params = task_params(task)
    options: list[click.Parameter] = [p.option for p in params]
    if not full:
        options = [copy.copy(o) for o in options]
        for option in options:
            option.required = False
    command = click.Command(name=task.short_name, params=options, add_help_option=False)
    try:
        tctx = command.make_context(f"lazyflow run --rerun {task.short_name}", words)
    except click.UsageError as exc:
        raise RerunError(f"{where}: {exc.format_message()}") from None
    return call_arguments(params, tctx)


def _merge(
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    overrides: tuple[tuple[Any, ...], dict[str, Any]],
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    new_args, new_kwargs = overrides
    merged = list(new_args) + list(args[len(new_args) :])
    return tuple(merged), {**kwargs, **new_kwargs}
