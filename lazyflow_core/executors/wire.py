"""The wire format between the scheduler and workers in other processes or machines.

Jobs travel as *parts*: cloudpickled lists of `JobSpec` (lambdas, closures and tasks
defined in scripts work), unpickled by the worker inside `iter_wires`, so that a task
whose module does not import there fails its jobs instead of killing the worker, and an
argument that does not pickle fails its own job only (`pack`).

Each outcome comes back as a `Wire`: a tuple of plain values that pickles at C speed,
with the task's value as the bytes the worker already pickled for the store and the
error as bytes of its own, so that a value or exception that does not unpickle in the
scheduler fails its job only (`outcome`).

Shared by the process pool (wires through its pipes; its jobs go as plain tuples, see
`process_wire`) and the Batch executors (parts in a bundle file on scratch, one wire per
outcome file).
"""

from __future__ import annotations

import dataclasses
import io
import pickle
import traceback
from collections import ChainMap
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import cloudpickle

from ..errors import SerializationError
from ..expression import CallExpression
from ..reductions import over_copyreg
from .base import JobOutcome, JobSpec, run_call
from .stalecode import current_task

if TYPE_CHECKING:
    from ..task import Task


def _own_pickling(cls: type) -> bool:
    """Whether `cls` (or a base other than `object`) says how it pickles."""
    names = ("__reduce__", "__reduce_ex__", "__getstate__", "__getnewargs_ex__")
    return any(n in vars(c) for c in cls.__mro__[:-1] for n in names)


def _reduce_call(expr: CallExpression) -> tuple[Any, ...]:
    return (CallExpression, (expr.task, expr.args, expr.kwargs))


_SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(JobSpec))


def _reduce_spec(spec: JobSpec) -> tuple[Any, ...]:
    return (JobSpec, tuple(getattr(spec, name) for name in _SPEC_FIELDS))


# Objects that cross the boundary by the thousand get a reducer that rebuilds them by a
# plain constructor call. A slotted object without one pickles through the generic state
# protocol, several times slower both ways (the expressions of a big fan-out returned by
# a task; JobSpec's generated __getstate__ is Python code). A class that defines its own
# pickling keeps it.
_FAST: dict[type, Any] = {}
if not _own_pickling(CallExpression):
    _FAST[CallExpression] = _reduce_call
if all(f.init for f in dataclasses.fields(JobSpec)):
    _FAST[JobSpec] = _reduce_spec


class _Pickler(cloudpickle.Pickler):
    """cloudpickle with the `_FAST` reducers."""

    dispatch_table = ChainMap(_FAST, cloudpickle.Pickler.dispatch_table)


def dumps(obj: Any) -> bytes:
    """cloudpickle `obj`, with fast reducers for specs and call expressions."""
    buf = io.BytesIO()
    _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buf.getvalue()


class _StdPickler(pickle.Pickler):
    """The standard library's C pickler with the `_FAST` reducers."""

    dispatch_table: dict[type, Any] = {}


def _by_value_modules() -> bool:
    """Whether modules were registered with cloudpickle to be pickled by value."""
    registry = getattr(getattr(cloudpickle, "cloudpickle", None), "_PICKLE_BY_VALUE_MODULES", None)
    return bool(registry)


def fast_dumps(obj: Any) -> bytes:
    """`dumps`, but by the C pickler (several times faster) where the reader can load
    its output: tasks importable by reference, plain arguments, the common case.

    The C pickler fails on lambdas, closures and local classes (then cloudpickle takes
    them by value), but succeeds on a reference to ``__main__``, which a worker could
    not resolve: bytes that mention ``__main__`` are pickled again with cloudpickle. So
    are objects of modules registered with cloudpickle to go by value.
    """
    if not _by_value_modules():
        buf = io.BytesIO()
        over_copyreg(_FAST, _StdPickler)
        try:
            _StdPickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
        except Exception:
            pass  # a lambda, a closure, a local class...: by value
        else:
            data = buf.getvalue()
            if b"__main__" not in data:
                return data
    return dumps(obj)


def picklable(exc: BaseException) -> BaseException:
    """`exc` if it pickles, else a RuntimeError carrying its type and message."""
    try:
        pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


# A part of a batch of jobs: (number of jobs, their pickled ``(code hashes, specs)``), or
# one job that could not be pickled, as the exception that says why. The code hash of each
# task, by name, is the scheduler's: a worker checks its own import of the task against
# it (`stalecode.current_task`) and never runs stale code under the new hash.
Part = tuple[int, bytes] | BaseException


def _digests(specs: list[JobSpec]) -> dict[str, str]:
    digests: dict[str, str] = {}
    for spec in specs:
        name = spec.task.name
        if name not in digests:
            digests[name] = spec.task.hash
    return digests


def pack(specs: list[JobSpec], dump: Callable[[Any], bytes] = dumps) -> list[Part]:
    """Pickle `specs` as one part, or, when that fails, one part per job (to find the
    job(s) at fault: each fails alone, the others run). `dump` is the pickling function
    (the Dask executor's refers to values its cluster holds: `dask_held`)."""
    try:
        return [(len(specs), dump((_digests(specs), specs)))]
    except Exception:
        return [_pack_one(spec, dump) for spec in specs]


def _pack_one(spec: JobSpec, dump: Callable[[Any], bytes]) -> Part:
    try:
        return (1, dump((_digests([spec]), [spec])))
    except Exception as exc:
        return picklable(exc)


# What a worker sends back per job, all plain values: (pickled error, remote traceback,
# digest, pickled value, data_error, has_expressions, files, started, finished).
Wire = tuple[
    bytes | None,
    str | None,
    bytes | None,
    bytes | None,
    str | None,
    bool,
    list[tuple[str, bool, str | None]],
    float,
    float,
]


def error_wire(
    exc: BaseException,
    remote_traceback: str | None = None,
    started: float = 0.0,
    finished: float = 0.0,
) -> Wire:
    """The wire of a job that failed with `exc`."""
    try:
        blob = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        blob = pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))
    return (blob, remote_traceback, None, None, None, False, [], started, finished)


def call_to_wire(task: Task, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Wire:
    """Worker side: run one call (`run_call`) and put its outcome on the wire."""
    out = run_call(task, args, kwargs)
    if out.error is not None:
        return error_wire(out.error, out.remote_traceback, out.started, out.finished)
    data = out.data
    if out.has_expressions or data is None:
        # Expressions (or values the store's pickling cannot handle) go back by the C
        # pickler where the scheduler can load its output (a fan-out's 10k calls: ~4x
        # faster than cloudpickle's Python-level pickler, the same bytes), else by
        # cloudpickle (`fast_dumps`).
        try:
            data = fast_dumps(out.value)
        except Exception as exc:
            error = SerializationError(
                f"task {task.name!r} returned {type(out.value).__name__}, which cannot be "
                f"sent back from a worker process ({type(exc).__name__}: {exc}). Return "
                'picklable values, or run this task with executor="threads".'
            )
            return error_wire(error, None, out.started, out.finished)
    return (
        None,
        None,
        out.digest,
        data,
        out.data_error,
        out.has_expressions,
        out.files,
        out.started,
        out.finished,
    )


def iter_wires(
    parts: list[Part], fix: str, loads: Callable[[bytes], Any] = pickle.loads
) -> Iterator[Wire]:
    """Worker side: run the jobs of `parts` in order, yielding each outcome as it is done.

    A task whose code here differs from the scheduler's fails its job with an
    `ExecutorError` ending with `fix` (what the user does about it on this backend).
    `loads` unpickles a part (the counterpart of `pack`'s `dump`)."""
    for part in parts:
        if isinstance(part, BaseException):
            yield error_wire(part)
            continue
        count, blob = part
        try:
            digests, specs = loads(blob)
        except Exception as exc:  # e.g. a task's module does not import in the worker
            tb = "".join(traceback.format_exception(exc))
            for _ in range(count):
                yield error_wire(exc, tb)
            continue
        for spec in specs:
            try:
                task = current_task(spec.task, digests[spec.task.name], fix)
            except Exception as exc:  # stale code, or a reload that failed
                yield error_wire(exc, "".join(traceback.format_exception(exc)))
                continue
            yield call_to_wire(task, spec.args, spec.kwargs)


def outcome(wire: Wire) -> JobOutcome:
    """Scheduler side: the `JobOutcome` of a wire; one that does not unpickle here is a
    failed job (its exception says why), never a broken batch."""
    err, tb, digest, data, data_error, has_expressions, files, started, finished = wire
    out = JobOutcome(
        remote_traceback=tb,
        digest=digest,
        data=data,
        data_error=data_error,
        has_expressions=has_expressions,
        files=files,
        started=started,
        finished=finished,
    )
    try:
        if err is not None:
            out.error = pickle.loads(err)
        elif data is not None:
            out.value = pickle.loads(data)
            if has_expressions:
                out.data = None  # not a value for the store
    except BaseException as exc:  # the result did not unpickle here
        return JobOutcome(error=exc)
    return out
