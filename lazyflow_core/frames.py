"""Frames: the evaluation state of one expression each (see `evaluator`).

A frame waits for the frames of the expressions it depends on (``pending`` counts them;
each dependency lists its ``waiters``) and is *stepped* by the evaluator when they are
done. Frames hold state only; the evaluator decides what happens next, which keeps the
state machine in one place.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .expression import (
    ApplyExpression,
    CallExpression,
    CatchExpression,
    Expression,
    Quote,
    contains_expression,
    format_args,
)
from .task import Task

if TYPE_CHECKING:
    from .evaluator import Evaluator

PENDING, DONE, FAILED = 0, 1, 2
ARGS, LOOKUP, RUN, RESULT, ALIAS = 0, 1, 2, 3, 4
NOT_BEGUN = -1
"""`Frame.pending` of a frame that has not begun: it counts dependencies only once begun."""

EMPTY: frozenset[Any] = frozenset()
# Shared placeholders for "none yet" / "released": never appended to (the evaluator
# replaces them with a fresh list on the first append). A million-call run would
# otherwise hold four empty containers per frame until its call is recorded.
NO_CHILDREN: list[Any] = []
NO_WAITERS: list[Any] = []
NO_ITEMS: list[Any] = []
NO_DIGESTS: tuple[tuple[str, bytes], ...] = ()
NO_KWARGS: dict[str, Any] = {}


class Frame:
    """Evaluation state of one expression.

    Slots are few on purpose: a run keeps every frame until it ends (deduplication and
    substitution look them up), so each slot is a million words in a million-call run.
    A frame that has not begun has ``pending == NOT_BEGUN`` (no ``begun`` flag), and a
    failed frame keeps its exception in ``value`` (``error`` reads it back).
    """

    __slots__ = ("context", "pending", "state", "value", "waiters")

    def __init__(self, context: CallFrame | None) -> None:
        self.context = context
        self.waiters: list[Frame] = NO_WAITERS
        self.pending = NOT_BEGUN
        self.state = PENDING
        self.value: Any = None

    @property
    def error(self) -> BaseException | None:
        """The exception a failed frame failed with (None unless ``state == FAILED``)."""
        return self.value if self.state == FAILED else None

    def begin(self, ev: Evaluator) -> None:
        raise NotImplementedError

    def step(self, ev: Evaluator) -> None:
        raise NotImplementedError


class ValueFrame(Frame):
    """A plain value (list, dict, dataclass...) holding expressions."""

    __slots__ = ("template",)

    def __init__(self, template: Any, context: CallFrame | None) -> None:
        super().__init__(context)
        self.template = template

    def begin(self, ev: Evaluator) -> None:
        ev.wait_for_value(self, self.template)

    def step(self, ev: Evaluator) -> None:
        ev.finish(self, ev.substitute(self.template))


class ApplyFrame(Frame):
    """An operator or control form applied on the scheduler thread."""

    __slots__ = ("expr", "phase", "result")

    def __init__(self, expr: ApplyExpression, context: CallFrame | None) -> None:
        super().__init__(context)
        self.expr = expr
        self.phase = ARGS
        self.result: Frame | None = None

    def begin(self, ev: Evaluator) -> None:
        ev.wait_for_value(self, (self.expr.args, self.expr.kwargs))

    def step(self, ev: Evaluator) -> None:
        if self.phase == RESULT:
            assert self.result is not None
            ev.finish(self, self.result.value)
            return
        expr = self.expr
        args = ev.substitute(expr.args)
        kwargs = ev.substitute(expr.kwargs)
        try:
            result = expr.fn(*args, **kwargs)
        except Exception as exc:
            exc.add_note(
                f"lazyflow: raised by lazy operation {expr.label} {format_args(args, kwargs)}"
            )
            ev.fail(self, exc)
            return
        ev.continue_with(self, result)


class CatchFrame(Frame):
    """Evaluates its expression; on a matching failure, evaluates the handler's result."""

    __slots__ = ("expr", "handled", "inner", "result")

    def __init__(self, expr: CatchExpression, context: CallFrame | None) -> None:
        super().__init__(context)
        self.expr = expr
        self.inner: Frame | None = None
        self.handled = False
        self.result: Frame | None = None

    def begin(self, ev: Evaluator) -> None:
        # A single dependency: once it fails, nothing else can wake this frame.
        self.inner = ev.frame_for_value(self.expr.expr, self.context)
        ev.wait_on(self, self.inner)

    def step(self, ev: Evaluator) -> None:
        done = self.result if self.result is not None else self.inner
        assert done is not None
        ev.finish(self, done.value)

    def handle(self, ev: Evaluator, exc: BaseException) -> bool:
        """Try to recover from `exc`; True if a handler took it."""
        if self.handled or self.state != PENDING:
            return False
        handler = self.expr.handler_for(exc)
        if handler is None:
            return False
        self.handled = True
        self.pending = 0
        try:
            result = handler(exc)
        except Exception as err:
            ev.fail(self, err)
            return True
        ev.continue_with(self, result)
        return True


class CallFrame(Frame):
    """A task call: arguments, then cache lookup or execution, then its result.

    A run holds every call frame until it ends (identical later calls reuse it), so a
    frame has no slot it can do without (an alias keeps the call it waits for in
    ``result``, phase ``ALIAS``; ``cached`` was never read), containers start as shared
    empty placeholders, and what only running or recording needs (arguments, digests,
    children, start time) is released once the call is recorded. 22 slots: 208 bytes.
    """

    __slots__ = (
        "arg_digests",
        "arg_files",
        "args",
        "attempts",
        "call_hash",
        "children",
        "digest",
        "expr",
        "files",
        "job_no",
        "kwargs",
        "phase",
        "result",
        "started",
        "task",
        "tasks",
        "vset_hash",
    )

    def __init__(self, expr: CallExpression, context: CallFrame | None, job_no: int) -> None:
        super().__init__(context)
        self.expr = expr
        self.task: Task = expr.task
        self.phase = ARGS
        self.children: list[CallFrame] = NO_CHILDREN
        self.call_hash: str | None = None
        self.arg_digests: Sequence[tuple[str, bytes]] = NO_DIGESTS
        self.arg_files: list[tuple[str, bool, str | None]] = NO_ITEMS
        self.args: tuple[Any, ...] = ()
        self.kwargs: dict[str, Any] = NO_KWARGS
        self.job_no = job_no
        self.attempts = 0
        # RESULT: the frame of the expressions the task returned; ALIAS: the identical
        # call this one takes its result from.
        self.result: Frame | None = None
        self.digest: bytes | None = None
        self.started = 0.0
        self.tasks: frozenset[tuple[str, str]] = EMPTY
        self.files: frozenset[tuple[str, bool, str | None]] = EMPTY
        self.vset_hash: str | None = None

    def begin(self, ev: Evaluator) -> None:
        ev.wait_for_value(self, (self.expr.args, self.expr.kwargs))

    def step(self, ev: Evaluator) -> None:
        phase = self.phase
        if phase == ARGS:
            ev.prepare_call(self)
        elif phase == RESULT:
            assert self.result is not None
            ev.finish_call(self, self.result.value, None, None)
        elif phase == ALIAS:
            assert isinstance(self.result, CallFrame)
            ev.adopt(self, self.result)


def collect(value: Any, out: list[Expression]) -> None:
    """Append every Expression inside `value` (containers and dataclasses) to `out`."""
    cls = type(value)
    if cls is list or cls is tuple:
        for item in value:
            if isinstance(item, Expression):
                out.append(item)
            elif type(item) in _CONTAINERS or hasattr(type(item), "__dataclass_fields__"):
                collect(item, out)
        return
    if isinstance(value, Expression):
        out.append(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            collect(k, out)
            collect(v, out)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            collect(item, out)
    elif hasattr(cls, "__dataclass_fields__") and not isinstance(value, type):
        for name in cls.__dataclass_fields__:
            collect(getattr(value, name, None), out)


_CONTAINERS = frozenset({list, tuple, dict, set, frozenset})


def substitute(value: Any, frames: dict[int, Frame] | None) -> Any:
    """`value` with every expression replaced by its frame's value.

    `frames` maps ``id(expression)`` to its frame; None means the evaluator keeps each
    frame on its expression instead (``Expression._lf_frame``, see `Evaluator`).
    """
    if isinstance(value, Expression):
        if frames is None:
            return value._lf_frame.value  # type: ignore[union-attr]
        return frames[id(value)].value
    cls = type(value)
    if cls in _ATOMS:
        return value
    if cls is Quote:
        return value.value
    if cls is list:
        return [substitute(v, frames) for v in value]
    if cls is tuple:
        items = [substitute(v, frames) for v in value]
        # Unchanged argument tuples are kept, not copied (a million calls' worth).
        return value if all(a is b for a, b in zip(items, value, strict=True)) else tuple(items)
    if cls is dict:
        if not value:
            return value
        return {substitute(k, frames): substitute(v, frames) for k, v in value.items()}
    if cls is set or cls is frozenset:
        return cls(substitute(v, frames) for v in value)
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return cls._make(substitute(v, frames) for v in value)
    if isinstance(value, dict):
        new = copy.copy(value)
        for k, v in value.items():
            new[k] = substitute(v, frames)
        return new
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if not contains_expression(value):
            return value
        new = copy.copy(value)  # type: ignore[arg-type]
        for field in dataclasses.fields(value):
            object.__setattr__(new, field.name, substitute(getattr(value, field.name), frames))
        return new
    return value


_ATOMS = frozenset({int, float, str, bytes, bool, type(None)})
