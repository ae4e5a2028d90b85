"""Task parameters as command-line options, converted by their type hints.

``def main(n: int, names: list[str], out: File, verbose: bool = False)`` becomes
``--n INTEGER --names TEXT (repeatable, or one JSON list) --out PATH --verbose/--no-verbose``.
Options that are not given are not passed, so the task's own defaults apply and the call
hash is the same as ``main(10)`` written in Python.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import inspect
import json
import os
import pathlib
import types
import typing
from collections.abc import Callable
from typing import Any

import click
from click.core import ParameterSource

from ..files import Dir, File
from ..task import Task

_EMPTY = inspect.Parameter.empty


class JsonType(click.ParamType):
    """A JSON document, optionally required to decode to `expected` (e.g. dict)."""

    name = "JSON"

    def __init__(self, expected: type | None = None, build: Callable[[Any], Any] | None = None):
        self.expected = expected
        self.build = build

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError as exc:
            self.fail(f"{value!r} is not valid JSON ({exc.msg})", param, ctx)
        if self.expected is not None and not isinstance(decoded, self.expected):
            self.fail(
                f"{value!r} is JSON of type {type(decoded).__name__}, expected a JSON "
                f"{'object' if self.expected is dict else self.expected.__name__}",
                param,
                ctx,
            )
        if self.build is not None:
            try:
                return self.build(decoded)
            except Exception as exc:
                self.fail(f"{value!r}: {exc}", param, ctx)
        return decoded


class BuildType(click.ParamType):
    """A string turned into a value by a constructor (File, Dir, Path, datetime...)."""

    def __init__(self, build: Callable[[str], Any], name: str) -> None:
        self.build = build
        self.name = name

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self.build(value)
        except Exception as exc:
            self.fail(f"{value!r} is not a valid {self.name.lower()}: {exc}", param, ctx)


class MappedChoice(click.Choice):
    """A choice of names mapped to values (enum members, Literal values)."""

    def __init__(self, mapping: dict[str, Any]) -> None:
        super().__init__(list(mapping))
        self.mapping = mapping

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return self.mapping[super().convert(value, param, ctx)]


def _existing(cls: type, check: Callable[[str], bool], what: str) -> Callable[[str], Any]:
    """A File/Dir builder that insists a local path exists (it is hashed by content)."""

    def build(path: str) -> Any:
        if "://" not in path and not check(path):
            raise ValueError(f"no such {what} (an input {what} must exist)")
        return cls(path)

    return build


_SIMPLE: dict[Any, click.ParamType] = {
    int: click.INT,
    float: click.FLOAT,
    bool: click.BOOL,
    str: click.STRING,
    Any: click.STRING,
    _EMPTY: click.STRING,
    None: click.STRING,
}


def _scalar(hint: Any) -> click.ParamType:
    """The click type for one (non-container) value."""
    simple = _SIMPLE.get(hint) if _hashable(hint) else None
    if simple is not None:
        return simple
    if isinstance(hint, type):
        return _class_type(hint)
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return MappedChoice({str(v): v for v in typing.get_args(hint)})
    if origin is dict or origin is typing.Union or origin is types.UnionType:
        return JsonType(dict if origin is dict else None)
    return JsonType()


def _hashable(hint: Any) -> bool:
    try:
        hash(hint)
    except TypeError:
        return False
    return True


def _class_type(hint: type) -> click.ParamType:
    """The click type for an annotation that is a class."""
    if issubclass(hint, File):
        return BuildType(_existing(File, os.path.isfile, "file"), "PATH")
    if issubclass(hint, Dir):
        return BuildType(_existing(Dir, os.path.isdir, "directory"), "DIR")
    if issubclass(hint, pathlib.PurePath):
        return BuildType(hint, "PATH")
    if issubclass(hint, enum.Enum):
        return MappedChoice({m.name: m for m in hint})
    dates: dict[type, tuple[Callable[[str], Any], str]] = {
        dt.datetime: (dt.datetime.fromisoformat, "DATETIME"),
        dt.date: (dt.date.fromisoformat, "DATE"),
    }
    if hint in dates:
        return BuildType(*dates[hint])
    if hint is dict:
        return JsonType(dict)
    if hint in (list, tuple, set, frozenset):
        return JsonType(list, hint)
    if dataclasses.is_dataclass(hint):
        cls = hint
        return JsonType(dict, lambda d: cls(**d))
    return BuildType(hint, hint.__name__.upper())


def _unwrap_optional(hint: Any) -> Any:
    """``X | None`` and ``Optional[X]`` -> X."""
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _hints(func: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func)
    except Exception:  # an annotation that cannot be resolved: resolve one by one
        hints: dict[str, Any] = {}
        for name, ann in getattr(func, "__annotations__", {}).items():
            if isinstance(ann, str):
                try:
                    ann = eval(ann, getattr(func, "__globals__", {}))
                except Exception:
                    ann = str
            hints[name] = ann
        return hints


@dataclasses.dataclass
class TaskParam:
    """How one task parameter is read from the command line."""

    name: str
    kind: Any  # inspect.Parameter kind
    default: Any  # inspect.Parameter.empty when required
    option: click.Option


def _sequence_callback(item: click.ParamType, container: type) -> Callable[..., Any]:
    def convert(ctx: click.Context, param: click.Parameter, values: Any) -> Any:
        if not values:
            return values
        raw: list[Any] = list(values)
        if len(raw) == 1 and isinstance(raw[0], str) and raw[0].lstrip().startswith("["):
            try:
                raw = json.loads(raw[0])
            except json.JSONDecodeError as exc:
                raise click.BadParameter(
                    f"{values[0]!r} is not a valid JSON list ({exc.msg})", ctx=ctx, param=param
                ) from None
            if not isinstance(raw, list):
                raise click.BadParameter(f"{values[0]!r} is not a JSON list", ctx=ctx, param=param)
        return container(item.convert(v, param, ctx) for v in raw)

    return convert


def _option(param: inspect.Parameter, hint: Any) -> click.Option:
    name = param.name
    dashed = "--" + name.replace("_", "-")
    decls = [dashed] + (["--" + name] if "_" in name else [])
    required = param.default is _EMPTY
    if hint is _EMPTY and not required and param.default is not None:
        hint = type(param.default)  # unannotated: go by the default's type
    hint = _unwrap_optional(hint)
    help_text = _hint_name(hint)
    shown = False
    default_note = "" if required else f"  [default: {_show(param.default)}]"
    origin = typing.get_origin(hint) or (hint if hint in (list, tuple, set, frozenset) else None)
    if hint is bool:
        flag = f"{dashed}/--no-{dashed[2:]}"
        return click.Option(
            [flag, name],
            default=None,
            required=required,
            show_default=shown,
            help=f"{help_text} flag{default_note}",
        )
    if origin in (list, tuple, set, frozenset):
        args = typing.get_args(hint)
        fixed = origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis)
        if not fixed:
            item = _scalar(args[0] if args else str)
            return click.Option(
                [*decls, name],
                multiple=True,
                type=click.STRING,
                required=required,
                callback=_sequence_callback(item, origin),
                show_default=shown,
                metavar=item.name.upper(),
                help=f"{help_text}: repeat the option, or give one JSON list{default_note}",
            )
        return click.Option(
            [*decls, name],
            type=JsonType(list, tuple),
            required=required,
            show_default=shown,
            help=f"{help_text} as a JSON list{default_note}",
        )
    return click.Option(
        [*decls, name],
        type=_scalar(hint),
        required=required,
        show_default=shown,
        help=help_text + default_note,
    )


def _show(default: Any) -> str:
    text = repr(default)
    return text if len(text) <= 40 else text[:37] + "..."


def _hint_name(hint: Any) -> str:
    if hint is _EMPTY:
        return "text"
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


def task_params(task: Task) -> list[TaskParam]:
    """The options for `task`'s parameters (``*args`` and ``**kwargs`` are not offered)."""
    hints = _hints(task.func)
    out = []
    for param in inspect.signature(task.func).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        option = _option(param, hints.get(param.name, _EMPTY))
        out.append(TaskParam(param.name, param.kind, param.default, option))
    return out


def call_arguments(
    params: list[TaskParam], ctx: click.Context
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Positional and keyword arguments for the options that were given."""
    args: list[Any] = []
    given_args = 0
    kwargs: dict[str, Any] = {}
    for p in params:
        given = ctx.get_parameter_source(p.name) not in (None, ParameterSource.DEFAULT)
        value = ctx.params.get(p.name)
        if p.kind is inspect.Parameter.POSITIONAL_ONLY:
            # positional-only parameters cannot be skipped: fill defaults up to the last given
            args.append(value if given else p.default)
            given_args = len(args) if given else given_args
        elif given:
            kwargs[p.name] = value
    return tuple(args[:given_args]), kwargs
