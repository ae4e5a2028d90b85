"""Stored first reductions: the expression a task body returned, pickled with its tasks
named, never copied.

When a cached call's own code and arguments are unchanged but a task below it changed,
the evaluator evaluates the expression the body returned last time instead of running
the body again (redun's single reduction; see `lookups.CacheLookups` and
`Evaluator.call_reduced`). That expression holds the tasks it calls, and those are the
ones that changed: pickled by value (a task of a ``__main__`` script is), the stored
expression would bring the *old* code back. So every `Task` inside is written as its
name and options only (a call of `live_task` on that reference; a persistent id in
stores written before, and in the cloudpickle fallback), and loading looks the name up
in the live registry: the current definition runs. An expression naming a task that is
not loaded cannot be used (the body runs instead): `ExpressionUnusable`. A dry run
decodes them without running anything (`lazyflow_core.store.values.safe_expression`).
"""

from __future__ import annotations

import copyreg
import io
import pickle
from typing import Any

from .task import Task, TaskOptions, get_task

_TAG = "lazyflow.task"


class ExpressionUnusable(Exception):
    """A stored expression names a task that is not loaded now (its body runs instead)."""


def _pickler_class(base: type[pickle.Pickler]) -> type[pickle.Pickler]:
    class _ByName(base):  # type: ignore[misc, valid-type]
        # One reference per task object per pickle, made once: a fan-out's expression
        # names the same task a hundred thousand times, and the same tuple object is
        # then written once and memoised (the bytes load the same tasks either way).
        _refs: dict[int, tuple[Task, tuple[str, str, dict[str, Any]]]]

        def persistent_id(self, obj: Any) -> Any:
            if type(obj) is not Task:
                return None
            try:
                refs = self._refs
            except AttributeError:
                refs = self._refs = {}
            held = refs.get(id(obj))
            if held is None:  # (the task is held too: its id cannot be reused meanwhile)
                held = refs[id(obj)] = (obj, (_TAG, obj.name, obj.options.as_dict()))
            return held[1]

    return _ByName


def _task_reference(task: Task) -> tuple[Any, ...]:
    """How the plain pickler writes a task: a call of `live_task` on its reference (the
    same reference as a persistent id). A reduction through the pickler's dispatch table
    is one Python call per *task* (the pickle memoises it): a persistent-id hook is
    called for every object pickled, seven per call of a fan-out's expression."""
    return live_task, ((_TAG, task.name, task.options.as_dict()),)


def over_copyreg(own: dict[type, Any], pickler: type[pickle.Pickler]) -> None:
    """Give `pickler` the reducers `own` over copyreg's (``copyreg.pickle`` registrations,
    which a pickler with a dispatch table of its own no longer consults), as one dict: a
    mapping that is not a dict costs a Python call per object pickled. Refreshed before
    each use when copyreg's table changed size (a reducer registered after import)."""
    if len(pickler.dispatch_table) != len(copyreg.dispatch_table) + len(own):
        pickler.dispatch_table = {**copyreg.dispatch_table, **own}


class _Pickler(pickle.Pickler):
    dispatch_table: dict[type, Any] = {}


_OWN: dict[type, Any] = {Task: _task_reference}


def dumps_expression(expr: Any) -> bytes:
    """`expr` pickled with each task as a reference by name (cloudpickle for the rest when
    plain pickle cannot: lambdas, local classes). Both loaders read both forms."""
    buf = io.BytesIO()
    over_copyreg(_OWN, _Pickler)
    try:
        _Pickler(buf, protocol=5).dump(expr)
    except Exception:
        import cloudpickle

        buf = io.BytesIO()
        _pickler_class(cloudpickle.CloudPickler)(buf, protocol=5).dump(expr)
    return buf.getvalue()


def live_task(pid: Any) -> Task:
    """The live task a stored reference names (``persistent_load`` of both unpicklers)."""
    tag, name, options = pid
    if tag != _TAG or not isinstance(options, dict):
        raise pickle.UnpicklingError(f"unknown persistent id {tag!r}")
    live = get_task(name)
    if live is None:
        raise ExpressionUnusable(f"task {name} is not loaded")
    wanted = TaskOptions(**options)
    if live.options == wanted:
        return live
    return Task(live.func, wanted, register=False)  # a variant made with .options()


class _Unpickler(pickle.Unpickler):
    def persistent_load(self, pid: Any) -> Any:
        return live_task(pid)


def loads_expression(data: bytes) -> Any:
    """The expression `dumps_expression` stored, its tasks the live definitions; raises
    `ExpressionUnusable` (or any unpickling error) when it cannot be used."""
    return _Unpickler(io.BytesIO(data)).load()
