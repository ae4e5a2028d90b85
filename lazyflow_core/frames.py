"""Frames: the evaluation state of one expression each (see `evaluator`).

A frame waits for the frames of the expressions it depends on (``pending`` counts them;
each dependency lists its ``waiters``) and is *stepped* by the evaluator when they are
done. Frames hold state only; the evaluator decides what happens next, which keeps the
state machine in one place.
"""

from __future__ import annotations

import copy
import dataclasses
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
ARGS, LOOKUP, RUN, RESULT = 0, 1, 2, 3

EMPTY: frozenset[Any] = frozenset()
NO_CHILDREN: list[Any] = []  # shared placeholders, never appended to
NO_WAITERS: list[Any] = []
NO_ITEMS: list[Any] = []


class Frame:
    """Evaluation state of one expression."""

    __slots__ = ("begun", "context", "error", "pending", "state", "value", "waiters")

    def __init__(self, context: CallFrame | None) -> None:
        self.context = context
        self.waiters: list[Frame] = []
        self.pending = 0
        self.state = PENDING
        self.begun = False
        self.value: Any = None
        self.error: BaseException | None = None

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
    """A task call: arguments, then cache lookup or execution, then its result."""

    __slots__ = (
        "alias",
        "arg_digests",
        "arg_files",
        "args",
        "attempts",
        "cached",
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
        self.children: list[CallFrame] = []
        self.call_hash: str | None = None
        self.arg_digests: list[tuple[str, bytes]] = []
        self.arg_files: list[tuple[str, bool, str | None]] = []
        self.args: tuple[Any, ...] = ()
        self.kwargs: dict[str, Any] = {}
        self.job_no = job_no
        self.attempts = 0
        self.cached = False
        self.alias: CallFrame | None = None
        self.result: Frame | None = None
        self.digest: bytes | None = None
        self.started = 0.0
        self.tasks: frozenset[tuple[str, str]] = EMPTY
        self.files: frozenset[tuple[str, bool, str | None]] = EMPTY
        self.vset_hash: str | None = None

    def begin(self, ev: Evaluator) -> None:
        ev.wait_for_value(self, (self.expr.args, self.expr.kwargs))

    def step(self, ev: Evaluator) -> None:
        if self.phase == ARGS:
            ev.prepare_call(self)
        elif self.phase == RESULT:
            assert self.result is not None
            ev.finish_call(self, self.result.value, None, None)
        elif self.alias is not None:
            ev.adopt(self, self.alias)


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


def substitute(value: Any, frames: dict[int, Frame]) -> Any:
    if isinstance(value, Expression):
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
