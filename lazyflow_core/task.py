"""`@task`: turn a function into a `Task` whose calls are lazy `CallExpression`s.

A Task carries its options and its hash. The hash covers the task's name and either the
code it reaches (see `codehash`) or the ``version=`` the user pinned, plus anything listed
in ``hash_includes``. Arguments are checked against the function's signature at call time,
so a wrong call fails where it is written, with the task named, not later in a worker.

Tasks are looked up by name (weakly) only to validate cached results of parent calls: a
cached parent is reused only if every task below it still has the hash it had then.
"""

from __future__ import annotations

import inspect
import os
import sys
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, overload

from .codehash import code_ref_hash, dependency_hashes, function_hash, readable_source
from .errors import TaskCallError, TaskDefinitionError
from .expression import CallExpression, format_args
from .hashing import hash_struct

_NO_KWARGS: dict[str, Any] = {}  # shared by calls without keyword arguments; never mutated
_registry: weakref.WeakValueDictionary[str, Task] = weakref.WeakValueDictionary()


@dataclass(frozen=True)
class TaskOptions:
    name: str | None = None
    namespace: str | None = None
    version: str | None = None
    cache: bool = True
    retries: int = 0
    executor: str = "default"
    limits: dict[str, int] = field(default_factory=dict)
    hash_includes: tuple[Any, ...] = ()


def _module_name(func: Callable[..., Any]) -> str:
    module = getattr(func, "__module__", None) or "__main__"
    if module == "__main__":
        main_file = getattr(sys.modules.get("__main__"), "__file__", None)
        if main_file:
            return os.path.splitext(os.path.basename(main_file))[0]
    return module


def _validate_options(func: Callable[..., Any], opts: dict[str, Any]) -> TaskOptions:
    label = getattr(func, "__qualname__", repr(func))
    known = set(TaskOptions.__dataclass_fields__)
    unknown = set(opts) - known
    if unknown:
        raise TaskDefinitionError(
            f"@task on {label!r}: unknown option(s) {sorted(unknown)}; "
            f"valid options are {sorted(known)}."
        )
    retries = opts.get("retries", 0)
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise TaskDefinitionError(f"@task on {label!r}: retries={retries!r} must be an int >= 0.")
    version = opts.get("version")
    if version is not None and not isinstance(version, str):
        raise TaskDefinitionError(
            f'@task on {label!r}: version={version!r} must be a string, e.g. version="2".'
        )
    executor = opts.get("executor", "default")
    if not isinstance(executor, str):
        raise TaskDefinitionError(
            f"@task on {label!r}: executor={executor!r} must be the name of an executor "
            'configured on the Scheduler ("threads", "processes" or a key of executors=).'
        )
    limits = opts.get("limits") or {}
    if isinstance(limits, str):
        limits = [limits]
    if not isinstance(limits, dict):
        limits = dict.fromkeys(limits, 1)
    includes = opts.get("hash_includes") or ()
    if not isinstance(includes, list | tuple):
        includes = (includes,)
    return TaskOptions(
        name=opts.get("name"),
        namespace=opts.get("namespace"),
        version=version,
        cache=bool(opts.get("cache", True)),
        retries=retries,
        executor=executor,
        limits={str(k): int(v) for k, v in limits.items()},
        hash_includes=tuple(includes),
    )


class Task:
    """A lazy task. Calling it returns a `CallExpression`; `func` runs it eagerly."""

    def __init__(self, func: Callable[..., Any], options: TaskOptions | None = None) -> None:
        if not callable(func):
            raise TaskDefinitionError(f"@task needs a function, got {func!r}.")
        self.func = func
        self.options = options or TaskOptions()
        self.module = _module_name(func)
        self.short_name = self.options.name or func.__name__
        if self.options.namespace:
            self.name = f"{self.options.namespace}.{self.short_name}"
        else:
            qual = self.options.name or func.__qualname__
            self.name = f"{self.module}.{qual}"
        self._hash: str | None = None
        self._signature = inspect.signature(func)
        params = list(self._signature.parameters.values())
        self._simple = all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params)
        self._names = tuple(p.name for p in params)
        self._defaults = {p.name: p.default for p in params if p.default is not p.empty}
        self.__doc__ = func.__doc__
        self.__name__ = func.__name__
        self.__qualname__ = func.__qualname__
        self.__module__ = func.__module__
        self.__wrapped__ = func
        _registry.setdefault(self.name, self)

    # -- identity --------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"Task({self.name!r})"

    @property
    def hash(self) -> str:
        """Hex hash of this task: its name plus code (or pinned version) and includes."""
        if self._hash is None:
            opts = self.options
            if opts.version is not None:
                body = "v:" + opts.version
            else:
                body = function_hash(self.func)
            includes = [code_ref_hash(x) for x in opts.hash_includes]
            self._hash = hash_struct("Task", self.name, body, *includes)
        return self._hash

    def __lazyflow_task_ref__(self) -> str:
        """What referencing this task contributes to another function's code hash."""
        return self.name

    def __lazyflow_hash__(self) -> str:
        return self.hash

    @property
    def source(self) -> str:
        return readable_source(self.func)

    @property
    def dependencies(self) -> dict[str, str]:
        """``{name: hash}`` of the globals and closure variables the task refers to."""
        return dependency_hashes(self.func)

    def __reduce__(self) -> Any:
        module = sys.modules.get(self.func.__module__)
        if (
            self.func.__module__ != "__main__"
            and module is not None
            and getattr(module, self.func.__qualname__, None) is self
        ):
            return (_import_task, (self.func.__module__, self.func.__qualname__))
        return (_rebuild_task, (self.func, self.options))

    # -- calling ---------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> CallExpression:
        self.check_call(args, kwargs)
        return CallExpression(self, args, kwargs or _NO_KWARGS)

    def check_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Raise `TaskCallError` if the arguments cannot bind to the signature."""
        if self._simple:
            names = self._names
            if len(args) <= len(names):
                ok = True
                for key in kwargs:
                    if key not in names or names.index(key) < len(args):
                        ok = False
                        break
                if ok:
                    given = len(args) + len(kwargs)
                    if given == len(names) or all(
                        n in kwargs or n in self._defaults for n in names[len(args) :]
                    ):
                        return
        try:
            self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TaskCallError(
                f"task {self.name!r} called as {self.short_name}({format_args(args, kwargs)}): "
                f"{exc}. Its signature is {self.short_name}{self._display_signature()}; "
                "fix the call to match it."
            ) from None

    def _display_signature(self) -> inspect.Signature:
        try:
            return inspect.signature(self.func, eval_str=True)
        except Exception:
            return self._signature

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[tuple[str, Any]]:
        """Arguments in parameter order with defaults applied, for canonical call hashes."""
        if self._simple:
            bound = list(zip(self._names, args, strict=False))
            for name in self._names[len(args) :]:
                if name in kwargs:
                    bound.append((name, kwargs[name]))
                else:
                    bound.append((name, self._defaults[name]))
            return bound
        ba = self._signature.bind(*args, **kwargs)
        ba.apply_defaults()
        return list(ba.arguments.items())

    def partial(self, *args: Any, **kwargs: Any) -> PartialTask:
        """A task with some leading/keyword arguments bound; call it with the rest."""
        return PartialTask(self, args, kwargs)


class PartialTask:
    """`Task.partial`: calling it calls the underlying task with merged arguments."""

    def __init__(self, task: Task, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.task = task
        self.args = args
        self.kwargs = kwargs
        self.name = task.name
        self.short_name = task.short_name

    def __repr__(self) -> str:
        return f"{self.task.short_name}.partial({format_args(self.args, self.kwargs)})"

    def __call__(self, *args: Any, **kwargs: Any) -> CallExpression:
        return self.task(*self.args, *args, **{**self.kwargs, **kwargs})

    def partial(self, *args: Any, **kwargs: Any) -> PartialTask:
        return PartialTask(self.task, (*self.args, *args), {**self.kwargs, **kwargs})

    def __lazyflow_hash__(self) -> str:
        from .hashing import hash_value

        return hash_struct("Partial", self.task.hash, hash_value((self.args, self.kwargs)))


def _import_task(module: str, qualname: str) -> Task:
    import importlib

    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _rebuild_task(func: Callable[..., Any], options: TaskOptions) -> Task:
    task = Task(func, options)
    return _registry.get(task.name, task)


def get_task(name: str) -> Task | None:
    """The live task registered under `name`, if its module is loaded."""
    return _registry.get(name)


@overload
def task(func: Callable[..., Any], /) -> Task: ...


@overload
def task(
    *,
    name: str | None = ...,
    namespace: str | None = ...,
    version: str | None = ...,
    cache: bool = ...,
    retries: int = ...,
    executor: str = ...,
    limits: dict[str, int] | Iterable[str] | None = ...,
    hash_includes: Iterable[Any] | None = ...,
) -> Callable[[Callable[..., Any]], Task]: ...


def task(func: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Decorate a function as a lazy task: ``@task`` or ``@task(version="2", ...)``."""
    if func is not None:
        if options:
            raise TaskDefinitionError("use @task(...) with keyword options only")
        if isinstance(func, Task):
            return func
        return Task(func, _validate_options(func, {}))

    def decorate(fn: Callable[..., Any]) -> Task:
        return Task(fn, _validate_options(fn, options))

    return decorate
