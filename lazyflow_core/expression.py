"""Lazy expressions: what calling a task returns.

An `Expression` is a description of a value that a scheduler will compute. Three kinds
exist, and the evaluator knows only these:

- `CallExpression` — a task applied to arguments (which may hold expressions);
- `ApplyExpression` — a cheap function applied on the scheduler thread to *evaluated*
  arguments: operators (``expr + 1``, ``expr[0]``, ``expr.attr``, ``expr.method()``) and
  the control forms `cond`, `seq`, `map_`, `flat_map` are built from it. The function may
  return further expressions, which keeps lazy control flow lazy;
- `CatchExpression` — evaluate an expression, and on a matching exception evaluate a
  handler instead.

`Quote` marks an argument of an ApplyExpression that must *not* be evaluated first (the
branches of `cond`). Expressions refuse ``bool()`` and iteration: their value is not
known yet, and silently treating them as true would be a bug in the user's workflow.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any

from .awaiting import await_expression

# previews live below every layer; re-exported for the modules that import them from here
from .errors import LazyExpressionError
from .preview import ellipsize as ellipsize
from .preview import format_args as format_args
from .preview import short_repr as short_repr
from .values import Walk, is_instance_of

if TYPE_CHECKING:
    from .frames import Frame
    from .task import Task


class Expression:
    """Base class of lazy values. Operators build new expressions.

    ``_lf_frame`` is the evaluator's bookkeeping: while a run evaluates this expression,
    the frame that holds its state (see `lazyflow_core.evaluator`). Keeping it here
    instead of in a dict keyed by ``id(expression)`` saves a dict entry per call, which is
    most of a dict's worth of memory in a million-call run. It is not pickled or copied.
    """

    __slots__ = ("_lf_frame",)
    _lf_frame: Frame | None

    def __bool__(self) -> bool:
        raise LazyExpressionError(
            f"{self!r} is a lazy expression; its truth value is not known until it runs. "
            "Use lazyflow_core.cond(pred, then, otherwise) to branch on it, or do the test "
            "inside a task."
        )

    def __iter__(self) -> Any:
        raise LazyExpressionError(
            f"{self!r} is a lazy expression and cannot be iterated before it runs. "
            "Use lazyflow_core.map_(task, expr) or iterate inside a task."
        )

    def __len__(self) -> int:
        raise LazyExpressionError(f"len() of lazy expression {self!r}: compute it inside a task.")

    # Identity semantics for dict/set membership inside the evaluator; == is lazy.
    __hash__ = object.__hash__

    def __getattr__(self, name: str) -> Expression:
        if name.startswith("_"):
            raise AttributeError(name)
        return ApplyExpression(getattr, (self, name), label=f".{name}")

    def __getitem__(self, key: Any) -> Expression:
        return ApplyExpression(operator.getitem, (self, key), label="[]")

    def __call__(self, *args: Any, **kwargs: Any) -> Expression:
        return ApplyExpression(_call, (self, args, kwargs), label="()")

    def __await__(self) -> Generator[Any, None, Any]:
        """``await expr`` inside an ``async def`` task: the scheduler evaluates it while
        the coroutine waits (`awaiting`)."""
        return await_expression(self)


def _call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return fn(*args, **kwargs)


def _binary(op: Callable[[Any, Any], Any], label: str) -> tuple[Any, Any]:
    def method(self: Expression, other: Any) -> Expression:
        return ApplyExpression(op, (self, other), label=label)

    def rmethod(self: Expression, other: Any) -> Expression:
        return ApplyExpression(op, (other, self), label=label)

    return method, rmethod


for _name, _op, _label in [
    ("add", operator.add, "+"),
    ("sub", operator.sub, "-"),
    ("mul", operator.mul, "*"),
    ("truediv", operator.truediv, "/"),
    ("floordiv", operator.floordiv, "//"),
    ("mod", operator.mod, "%"),
    ("pow", operator.pow, "**"),
    ("and", operator.and_, "&"),
    ("or", operator.or_, "|"),
    ("xor", operator.xor, "^"),
    ("matmul", operator.matmul, "@"),
]:
    _m, _r = _binary(_op, _label)
    setattr(Expression, f"__{_name}__", _m)
    setattr(Expression, f"__r{_name}__", _r)

for _name, _op, _label in [
    ("eq", operator.eq, "=="),
    ("ne", operator.ne, "!="),
    ("lt", operator.lt, "<"),
    ("le", operator.le, "<="),
    ("gt", operator.gt, ">"),
    ("ge", operator.ge, ">="),
]:
    setattr(Expression, f"__{_name}__", _binary(_op, _label)[0])


def _unary(op: Callable[[Any], Any], label: str) -> Any:
    def method(self: Expression) -> Expression:
        return ApplyExpression(op, (self,), label=label)

    return method


_UNARY: list[tuple[str, Callable[[Any], Any], str]] = [
    ("neg", operator.neg, "-"),
    ("pos", operator.pos, "+"),
    ("invert", operator.invert, "~"),
    ("abs", operator.abs, "abs"),
]
for _uname, _uop, _ulabel in _UNARY:
    setattr(Expression, f"__{_uname}__", _unary(_uop, _ulabel))


class CallExpression(Expression):
    """A call of `task` on `args`/`kwargs` (which may contain expressions)."""

    __slots__ = ("args", "kwargs", "task")

    def __init__(self, task: Task, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.task = task
        self.args = args
        self.kwargs = kwargs
        self._lf_frame = None

    def __reduce__(self) -> Any:
        return (CallExpression, (self.task, self.args, self.kwargs))

    def __repr__(self) -> str:
        return f"<call {self.task.short_name}({format_args(self.args, self.kwargs)})>"

    def __iter__(self) -> Any:
        """``a, b = pair(x)``: a task with ``nout`` unpacks into lazy items ``expr[i]``."""
        nout = self.task.options.nout
        if nout is None:
            raise LazyExpressionError(
                f"{self!r} is a lazy expression and cannot be iterated before it runs. "
                f"If {self.task.short_name} returns a fixed number of items, declare it "
                "(@task(nout=2), or a return hint such as -> tuple[int, str]) to unpack "
                "the call; else use lazyflow_core.map_(task, expr) or iterate inside a task."
            )
        return iter([self[i] for i in range(nout)])

    def __len__(self) -> int:
        nout = self.task.options.nout
        if nout is None:
            return super().__len__()
        return nout


class ApplyExpression(Expression):
    """``fn(*args, **kwargs)`` run on the scheduler thread once the arguments are known."""

    __slots__ = ("args", "fn", "kwargs", "label")

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None = None,
        label: str = "",
    ) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs or {}
        self.label = label or getattr(fn, "__name__", "apply")
        self._lf_frame = None

    def __reduce__(self) -> Any:
        return (ApplyExpression, (self.fn, self.args, self.kwargs, self.label))

    def __repr__(self) -> str:
        return f"<{self.label} {format_args(self.args, self.kwargs)}>"


class CatchExpression(Expression):
    """Evaluate `expr`; on an exception matching one of `handlers`, use the handler."""

    __slots__ = ("expr", "handlers")

    def __init__(
        self, expr: Any, handlers: tuple[tuple[type[BaseException], Callable[..., Any]], ...]
    ) -> None:
        self.expr = expr
        self.handlers = handlers
        self._lf_frame = None

    def __reduce__(self) -> Any:
        return (CatchExpression, (self.expr, self.handlers))

    def handler_for(self, exc: BaseException) -> Callable[..., Any] | None:
        for exc_type, handler in self.handlers:
            if isinstance(exc, exc_type):
                return handler
        return None

    def __repr__(self) -> str:
        names = ", ".join(t.__name__ for t, _ in self.handlers)
        return f"<catch {self.expr!r} on {names}>"


class Quote:
    """An ApplyExpression argument passed through unevaluated."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


# -- control forms ------------------------------------------------------------------


def _choose(pred: Any, then: Any, otherwise: Any) -> Any:
    return then if pred else otherwise


def cond(pred: Any, then: Any, otherwise: Any = None) -> Expression:
    """Evaluate `pred`, then only the chosen branch (``then`` if truthy)."""
    return ApplyExpression(_choose, (pred, Quote(then), Quote(otherwise)), label="cond")


def _seq_step(value: Any, exprs: tuple[Any, ...], done: tuple[Any, ...]) -> Any:
    done = (*done, value)
    if len(done) == len(exprs):
        return list(done)
    return ApplyExpression(_seq_step, (exprs[len(done)], Quote(exprs), Quote(done)), label="seq")


def seq(exprs: Iterable[Any]) -> Any:
    """Evaluate expressions one after another (not in parallel); returns their values."""
    items = tuple(exprs)
    if not items:
        return ApplyExpression(list, (), label="seq")
    return ApplyExpression(_seq_step, (items[0], Quote(items), Quote(())), label="seq")


def _map_items(fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
    return [fn(item) for item in items]


def map_(fn: Callable[[Any], Any], items: Any) -> Expression:
    """Evaluate `items` (a sequence or an expression of one), then call `fn` on each."""
    return ApplyExpression(_map_items, (fn, items), label="map_")


def _concat(lists: Iterable[Iterable[Any]]) -> list[Any]:
    return [x for sub in lists for x in sub]


def _flat_map_items(fn: Callable[[Any], Any], items: Iterable[Any]) -> Expression:
    return ApplyExpression(_concat, ([fn(item) for item in items],), label="flat_map")


def flat_map(fn: Callable[[Any], Any], items: Any) -> Expression:
    """Like `map_`, where each call returns a list; the lists are concatenated."""
    return ApplyExpression(_flat_map_items, (fn, items), label="flat_map")


def catch(expr: Any, *handlers: Any) -> Expression:
    """``catch(expr, ExcType, handler[, ExcType2, handler2 ...])``.

    If evaluating `expr` raises an exception matching `ExcType`, the result is
    ``handler(exc)`` (a task, or any callable; it may return expressions).
    """
    from .errors import LazyflowError

    if len(handlers) < 2 or len(handlers) % 2:
        raise LazyflowError(
            "catch() takes an expression followed by (ExceptionType, handler) pairs, "
            f"got {len(handlers)} extra argument(s). Example: catch(expr, ValueError, fallback)."
        )
    pairs = []
    for exc_type, handler in zip(handlers[::2], handlers[1::2], strict=True):
        if not (isinstance(exc_type, type) and issubclass(exc_type, BaseException)):
            types_ = exc_type if isinstance(exc_type, tuple) else None
            if not types_:
                raise LazyflowError(
                    f"catch(): {exc_type!r} is not an exception type. Pass an exception "
                    "class such as ValueError, then the handler."
                )
        if not callable(handler):
            raise LazyflowError(f"catch(): handler {handler!r} is not callable.")
        pairs.append((exc_type, handler))
    return CatchExpression(expr, tuple(pairs))


# -- finding and replacing expressions inside values (the walker of `values`) ---------

_EXPRESSIONS = Walk(is_instance_of(Expression))
_SUBSTITUTED = Walk(is_instance_of(Expression, Quote))  # a Quote is unwrapped, not walked


def contains_expression(value: Any) -> bool:
    """True if `value` is or holds an Expression (in containers, see `values`)."""
    return _EXPRESSIONS.contains(value)


def collect(value: Any, out: list[Expression]) -> None:
    """Append every Expression inside `value` to `out`, in order (see `values`)."""
    _EXPRESSIONS.find(value, out)


def _value_on_expression(item: Any) -> Any:
    if type(item) is Quote:
        return item.value
    return item._lf_frame.value


def substitute(value: Any, frames: dict[int, Any] | None) -> Any:
    """`value` with every expression replaced by its frame's value, and quotes unwrapped.

    `frames` maps ``id(expression)`` to its frame; None means the evaluator keeps each
    frame on its expression instead (``Expression._lf_frame``, see `Evaluator`).
    """
    if frames is None:
        return _SUBSTITUTED.replace(value, _value_on_expression)

    def value_in_frames(item: Any) -> Any:
        if type(item) is Quote:
            return item.value
        return frames[id(item)].value

    return _SUBSTITUTED.replace(value, value_in_frames)
