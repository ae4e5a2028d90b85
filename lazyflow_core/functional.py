"""Functional helpers, lazy like the rest: redun's ``redun.functools`` for lazyflow.

- ``compose(f, g)(x)`` is ``f(g(x))``; a composition is a value (hashed by its tasks) that
  can be passed to tasks and to `map_`.
- ``starmap(task, [{"a": 1}, ...])`` calls the task with each dict as keyword arguments;
  the list may be lazy.
- ``flatten(lists)`` concatenates a (lazy) list of lists; ``zip_(*lists)`` zips lazy lists
  into a list of tuples.
- ``delay(expr)`` holds an expression *without evaluating it*: passed to a task, the task
  receives the `Delayed` (hashed by the structure of its expression: the tasks and
  arguments it would call), and ``force(delayed)`` (or ``delayed()``) turns it back into
  the expression, so it is evaluated only where it is forced.
- ``const(x, y)`` evaluates both and is ``x``: it makes ``y`` happen (a side effect, a
  file written) before ``x`` is used, while discarding its value.

redun implements most of these as tasks, which adds a job per use to the record.
lazyflow builds them from `ApplyExpression`, evaluated on the scheduler thread once its
arguments are known (like `map_` and `flat_map`), so they cost no job and no worker; the
tasks they call are recorded and cached as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .errors import LazyflowError
from .expression import (
    ApplyExpression,
    CallExpression,
    CatchExpression,
    Expression,
    Quote,
)
from .hashing import UnhashableValue, hash_struct, hash_value, register_hasher
from .task import task
from .values import Walk, is_instance_of

__all__ = [
    "Composition",
    "Delayed",
    "compose",
    "const",
    "delay",
    "flatten",
    "force",
    "identity",
    "starmap",
    "zip_",
]


# -- compose ----------------------------------------------------------------------------


class Composition:
    """``compose(f, g, h)``: calling it calls ``f(g(h(*args, **kwargs)))``, lazily."""

    __slots__ = ("functions",)

    def __init__(self, functions: tuple[Callable[..., Any], ...]) -> None:
        self.functions = functions

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        *outer, inner = self.functions
        result = inner(*args, **kwargs)
        for fn in reversed(outer):
            result = fn(result)
        return result

    def __repr__(self) -> str:
        names = (getattr(f, "short_name", getattr(f, "__name__", repr(f))) for f in self.functions)
        return f"compose({', '.join(names)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Composition) and other.functions == self.functions

    def __hash__(self) -> int:
        return hash(self.functions)

    def __getstate__(self) -> tuple[Callable[..., Any], ...]:
        return self.functions

    def __setstate__(self, state: tuple[Callable[..., Any], ...]) -> None:
        self.functions = state


def compose(*functions: Callable[..., Any]) -> Composition:
    """``compose(f, g)(x) == f(g(x))``: tasks (or partial tasks, or functions), right first."""
    if not functions:
        raise LazyflowError("compose() needs at least one task, e.g. compose(double, inc).")
    for fn in functions:
        if not callable(fn):
            raise LazyflowError(
                f"compose(): {fn!r} is not callable; pass tasks, e.g. compose(double, inc)."
            )
    return Composition(tuple(functions))


register_hasher(Composition, lambda c: c.functions)


# -- starmap, flatten, zip_, const, identity -------------------------------------------


def _starmap_items(fn: Callable[..., Any], items: Iterable[Mapping[str, Any]]) -> list[Any]:
    calls = []
    for i, kwargs in enumerate(items):
        if not isinstance(kwargs, Mapping):
            raise LazyflowError(
                f"starmap(): item [{i}] is {kwargs!r}, not a dict of keyword arguments. "
                "Pass a list of dicts, e.g. starmap(add, [{'a': 1, 'b': 2}])."
            )
        calls.append(fn(**kwargs))
    return calls


def starmap(fn: Callable[..., Any], kwargs: Any) -> Expression:
    """Call `fn` with each dict of the (possibly lazy) list `kwargs` as keyword arguments."""
    return ApplyExpression(_starmap_items, (fn, kwargs), label="starmap")


def _flatten(lists: Iterable[Iterable[Any]]) -> list[Any]:
    return [item for sub in lists for item in sub]


def flatten(lists: Any) -> Expression:
    """A (possibly lazy) list of lists, concatenated into one list."""
    return ApplyExpression(_flatten, (lists,), label="flatten")


def _zip(*lists: Iterable[Any]) -> list[tuple[Any, ...]]:
    return list(zip(*lists, strict=False))


def zip_(*lists: Any) -> Expression:
    """``zip`` of (possibly lazy) lists, as a list of tuples (stops at the shortest)."""
    return ApplyExpression(_zip, lists, label="zip_")


def _first(x: Any, _discarded: Any) -> Any:
    return x


def const(x: Any, y: Any) -> Expression:
    """Evaluate `x` and `y`, return the value of `x` (y runs, its value is dropped)."""
    return ApplyExpression(_first, (x, y), label="const")


def _same(x: Any) -> Any:
    return x


def identity(x: Any) -> Expression:
    """The value of `x`, as an expression (for places that want one)."""
    return ApplyExpression(_same, (x,), label="identity")


# -- delay / force ---------------------------------------------------------------------


class Delayed:
    """An expression held unevaluated (`delay`); `force` (or calling it) releases it.

    A leaf for every walk, so the scheduler does not look inside: passing a `Delayed` to a
    task evaluates nothing. Its hash is the *structure* of the expression (`expression_hash`).
    """

    __slots__ = ("expr",)

    def __init__(self, expr: Any) -> None:
        self.expr = expr

    def __call__(self) -> Any:
        return self.expr

    def __repr__(self) -> str:
        return f"delay({self.expr!r})"

    def __getstate__(self) -> Any:
        return self.expr

    def __setstate__(self, state: Any) -> None:
        self.expr = state


def delay(x: Any) -> Delayed:
    """Hold `x` (an expression, or any value) without evaluating it; see `force`."""
    return x if isinstance(x, Delayed) else Delayed(x)


def _release(value: Any) -> Any:
    if isinstance(value, Delayed):
        return value.expr
    return value  # forcing a value that was never delayed is the value


def force(x: Any) -> Any:
    """The expression a `Delayed` holds (evaluated where it is used); x may be lazy."""
    if isinstance(x, Delayed):
        return x.expr
    if isinstance(x, Expression):
        return ApplyExpression(_release, (x,), label="force")
    return x


class _Hashed:
    """Stands for a sub-expression (by its structural hash) inside an expression's parts."""

    __slots__ = ("digest",)

    def __init__(self, digest: str) -> None:
        self.digest = digest

    def __lazyflow_hash__(self) -> str:
        return self.digest


_PARTS = Walk(is_instance_of(Expression, Quote))


def expression_hash(expr: Any) -> str:
    """A hash of what an expression would compute: its tasks, functions and arguments.

    Two separately built ``inc(x)`` expressions hash alike; the hash of a `CallExpression`
    covers its task's hash (its code), so a delayed call of an edited task hashes anew.
    """
    if isinstance(expr, CallExpression):
        # cache=False is part of what it computes: such a call runs every time
        kind = "DelayedCall" if expr.task.options.cache else "DelayedUncachedCall"
        return hash_struct(kind, expr.task.hash, _parts_hash((expr.args, expr.kwargs)))
    if isinstance(expr, ApplyExpression):
        return hash_struct(
            "DelayedApply", hash_value(expr.fn), _parts_hash((expr.args, expr.kwargs))
        )
    if isinstance(expr, CatchExpression):
        return hash_struct("DelayedCatch", expression_hash(expr.expr), hash_value(expr.handlers))
    if isinstance(expr, Quote):
        return hash_struct("DelayedQuote", _parts_hash(expr.value))
    return hash_value(expr)


def _parts_hash(value: Any) -> str:
    if not _PARTS.contains(value):
        return hash_value(value)
    return hash_value(_PARTS.replace(value, lambda e: _Hashed(expression_hash(e))))


register_hasher(Delayed, lambda d: expression_hash(d.expr).encode())


# -- a catch outside any task ----------------------------------------------------------


@task(namespace="lazyflow", name="catch", executor="inline")
def cached_catch(held: Delayed) -> Any:
    """Evaluate the catch `held` holds, as the result of this call.

    A ``catch(...)`` inside a task is cached with the task's result; one outside any task
    (``run(catch(fails(1), Flaky, recover))``) has no call to be cached in, so its error
    re-ran every time. The evaluator makes it a call of this task: hashed by the catch's
    structure (`expression_hash`: its tasks' code, arguments and handlers), reused like any
    call, and its validation set holds the tasks below it. It runs on the scheduler thread.
    """
    catch_expr = held.expr
    return CatchExpression(catch_expr.expr, catch_expr.handlers)  # a new frame, in this call


def catch_call(expr: CatchExpression) -> CallExpression | None:
    """The call of `cached_catch` that evaluates `expr`, or None if `expr` cannot be
    hashed (then it is evaluated as it is, uncached)."""
    try:
        expression_hash(expr)
    except (UnhashableValue, TypeError):
        return None
    return cached_catch(Delayed(expr))
