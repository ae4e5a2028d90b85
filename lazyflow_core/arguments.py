"""Arguments that arrive as text, converted to the types a task's hints ask for.

An orchestrator hands a workflow its parameters as JSON or as rendered templates: an
Airflow ``op_kwargs={"shards": "{{ params.shards }}"}`` renders to the string ``"9"``,
a Prefect deployment run started from a form or ``prefect deployment run -p`` may carry
``"9"`` for an ``int`` and always carries a plain path string for a ``File``. Passed on as
they are, ``range("9")`` fails inside the workflow, and ``"9"`` hashes differently from
``9``, so the cache of the same call made from Python is missed.

`coerce_arguments` converts, per parameter, only what is unambiguous from the hint:

- ``File``/``Dir`` (also ``Optional[File]``, ``list[File]``...) from a path or URL string;
- ``int``, ``float``, ``bool`` from their usual spellings (``"9"``, ``"2.5"``, ``"true"``);
- ``list``/``tuple``/``set``/``dict`` hints from a JSON string, then item by item;
- ``pathlib.Path`` from a string.

A value that already has the right type, or a hint it does not know (``Any``, a user
class, a plain ``str``), is left alone. A string that cannot be converted raises a
`TaskCallError` naming the task, the parameter and the expected type.
"""

from __future__ import annotations

import inspect
import json
import os
import pathlib
import types
import typing
from collections.abc import Callable
from typing import Any

from .errors import TaskCallError
from .files import Dir, File

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
_SEQUENCES: dict[Any, type] = {list: list, tuple: tuple, set: set, frozenset: frozenset}


class _NoConversion(Exception):
    """The value does not fit the hint; the message says what was expected."""


def coerce_arguments(
    task: Any, args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """`args` and `kwargs` of a call of `task` with text converted per the type hints.

    Arguments that do not bind to the signature are returned unchanged: calling the task
    reports that with its own `TaskCallError`.
    """
    func = getattr(task, "func", task)
    try:
        signature = inspect.signature(func)
        signature.bind(*args, **kwargs)
    except (TypeError, ValueError):
        return tuple(args), dict(kwargs)
    hints = _hints(func)
    if not hints:
        return tuple(args), dict(kwargs)
    name = getattr(task, "name", getattr(func, "__qualname__", repr(func)))
    params = list(signature.parameters.values())
    var_kw = next((p.name for p in params if p.kind is p.VAR_KEYWORD), None)

    def convert(param_name: str | None, value: Any) -> Any:
        hint = hints.get(param_name) if param_name else None
        if hint is None:
            return value
        try:
            return coerce_value(value, hint)
        except _NoConversion as exc:
            raise TaskCallError(
                f"task {name!r}: argument {param_name!r} = {value!r} {exc}; pass a value of "
                f"that type (hint: {_hint_name(hint)})."
            ) from None

    # Positional stays positional and keywords stay keywords: previews read as written.
    new_args = tuple(convert(_positional_name(params, i), v) for i, v in enumerate(args))
    new_kwargs = {
        k: convert(k if k in signature.parameters else var_kw, v) for k, v in kwargs.items()
    }
    return new_args, new_kwargs


def _positional_name(params: list[inspect.Parameter], index: int) -> str | None:
    """The parameter that positional argument `index` binds to (``*args`` takes the rest)."""
    for i, param in enumerate(params):
        if param.kind is param.VAR_POSITIONAL:
            return param.name
        if i == index and param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            return param.name
    return None


def coerce_value(value: Any, hint: Any) -> Any:
    """`value` converted to `hint` where that is unambiguous, else `value` itself."""
    convert = _converter(hint)
    return value if convert is None else convert(value)


def _converter(hint: Any) -> Callable[[Any], Any] | None:
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return _converter(typing.get_args(hint)[0])
    if origin is typing.Union or origin is types.UnionType:
        return _union(typing.get_args(hint))
    if hint in (File, Dir):
        return lambda v: _path_value(v, hint)
    if hint is pathlib.Path:
        return lambda v: pathlib.Path(v) if isinstance(v, str) else v
    if hint is bool:
        return _bool
    if hint is int:
        return _int
    if hint is float:
        return _float
    container = _SEQUENCES.get(origin or hint)
    if container is not None:
        return _sequence(container, typing.get_args(hint))
    if (origin or hint) is dict:
        items = typing.get_args(hint)
        return _mapping(items[1] if len(items) == 2 else None)
    return None


def _union(options: tuple[Any, ...]) -> Callable[[Any], Any] | None:
    real = [o for o in options if o is not type(None)]
    if len(real) != 1:
        return None  # File | str, int | str...: no single reading of a string
    inner = _converter(real[0])
    if inner is None:
        return None
    return lambda v: None if v is None else inner(v)


def _path_value(value: Any, cls: type) -> Any:
    if isinstance(value, cls):
        return value
    if isinstance(value, str | os.PathLike):
        path = os.fspath(value)
        if not path:
            raise _NoConversion(f"is empty: expected a path or URL for a {cls.__name__}")
        return cls(path)
    raise _NoConversion(f"is a {type(value).__name__}: expected a path string for a {cls.__name__}")


def _bool(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _NoConversion("is not a boolean (true/false, yes/no, 1/0)")


def _int(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return int(value.strip())
    except ValueError:
        raise _NoConversion("is not an integer") from None


def _float(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return float(value.strip())
    except ValueError:
        raise _NoConversion("is not a number") from None


def _json(value: Any, expected: type, what: str) -> Any:
    if not isinstance(value, str):
        return value
    try:
        decoded = json.loads(value)
    except json.JSONDecodeError:
        raise _NoConversion(f"is not JSON: expected a {what} written as JSON") from None
    if not isinstance(decoded, expected):
        raise _NoConversion(f"is JSON of type {type(decoded).__name__}: expected a {what}")
    return decoded


def _sequence(container: type, items: tuple[Any, ...]) -> Callable[[Any], Any]:
    if container is tuple and len(items) == 2 and items[1] is Ellipsis:
        items = items[:1]
    converters = [_converter(i) for i in items] if container is tuple and len(items) > 1 else None
    one = _converter(items[0]) if items and converters is None else None

    def convert(value: Any) -> Any:
        decoded = _json(value, list, "list")
        if not isinstance(decoded, list | tuple | set | frozenset):
            return decoded
        if converters is not None:
            if len(converters) != len(decoded):
                raise _NoConversion(f"has {len(decoded)} items: expected {len(converters)}")
            out = [c(v) if c else v for c, v in zip(converters, decoded, strict=True)]
        else:
            out = [one(v) for v in decoded] if one else list(decoded)
        if isinstance(value, str) or out != list(decoded):
            return container(out)
        return decoded

    return convert


def _mapping(item: Any) -> Callable[[Any], Any]:
    one = _converter(item) if item is not None else None

    def convert(value: Any) -> Any:
        decoded = _json(value, dict, "dict (a JSON object)")
        if one is None or not isinstance(decoded, dict):
            return decoded
        return {k: one(v) for k, v in decoded.items()}

    return convert


def _hints(func: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func, include_extras=True)
    except Exception:  # unresolvable string annotations: convert nothing
        return {}


def _hint_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
