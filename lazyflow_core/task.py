"""`@task`: turn a function into a `Task` whose calls are lazy `CallExpression`s.

A Task carries its options and its hash. The hash covers the task's name and either the
code it reaches (see `codehash`) or the ``version=`` the user pinned, plus anything listed
in ``hash_includes``. Arguments are checked against the function's signature at call time,
so a wrong call fails where it is written, with the task named, not later in a worker.

Tasks are looked up by name (weakly) only to validate cached results of parent calls: a
cached parent is reused only if every task below it still has the hash it had then. The
*last definition wins*: defining a task again (a notebook cell run again,
``importlib.reload``) replaces the old one under its name, and unpickling a task (a
result holding a task, a job sent to a worker) never registers it, so old code pickled by
value is never made the definition again. A task's hash is computed once per run
(`codehash.epoch`), so an edited constant or helper is seen by the next run.

``task.options(executor="batch", ...)`` derives a task with some options changed for one
call site (redun's ``Task.options``); the options that say *where* and *how often* a call
runs (executor, resources, limits, retries, cache) leave its hash alone, those that say
*what* runs (version, name, namespace, hash_includes) change it. ``nout`` (given, or read
from a ``-> tuple[int, str]`` hint) lets a call be unpacked lazily: ``a, b = split(x)``.
A module may set ``lazyflow_namespace = "bio"`` for the tasks it defines after it.
"""

from __future__ import annotations

import inspect
import os
import re
import sys
import typing
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any, overload

from . import codehash
from .codehash import (
    code_ref_hash,
    dependency_hashes,
    dependency_sources,
    function_hash,
    readable_source,
)
from .errors import TaskCallError, TaskDefinitionError
from .expression import CallExpression, contains_expression, format_args
from .hashing import hash_struct
from .resources import parse_resources
from .tagging import tag_items
from .values import register_container

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
    resources: dict[str, int | float] = field(default_factory=dict)  # not hashed: see resources
    nout: int | None = None  # how many items a call unpacks into (None: not iterable)
    tags: tuple[tuple[str, str], ...] = ()  # on every job of the task; not hashed

    def __call__(self, **overrides: Any) -> Task:
        """``task.options(executor="batch", ...)``: the task with some options changed.

        `TaskOptions` is what ``task.options`` holds (``task.options.executor``); calling
        it is redun's ``Task.options(**overrides)``. It knows its task through a weak
        reference set by `Task`, never pickled.
        """
        ref = self.__dict__.get("_task")
        owner = ref() if ref is not None else None
        if owner is None:
            raise TaskDefinitionError(
                "TaskOptions(...) called on options that belong to no task: call options() "
                'on the task itself, e.g. align.options(executor="batch")(sample).'
            )
        return owner.with_options(**overrides)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __getstate__(self) -> dict[str, Any]:
        return self.as_dict()  # without the owner's weak reference


# Orchestrators import files by path under generated module names that hold the path:
# Airflow names a DAG file "unusual_prefix_<sha1 of its path>_<file stem>", Prefect names a
# flow file "__prefect_loader_<digest of its path>__" when its stem is taken. The path is no
# part of what a task computes: a name holding it would make the same DAG folder at another
# path, or on another worker, share nothing with this one. Such tasks are named after the
# file, as `lazyflow run dags/etl.py main` names them (see `workflow`).
_GENERATED_MODULE = re.compile(
    r"^(?:unusual_prefix_[0-9a-f]{40}_(?P<stem>.+)|__prefect_loader_[0-9a-f]+__)$"
)


def _module_name(func: Callable[..., Any]) -> str:
    module = getattr(func, "__module__", None) or "__main__"
    if module == "__main__":
        main_file = getattr(sys.modules.get("__main__"), "__file__", None)
        if main_file:
            return os.path.splitext(os.path.basename(main_file))[0]
    generated = _GENERATED_MODULE.match(module)
    if generated is not None:
        path = getattr(sys.modules.get(module), "__file__", None)
        if path:
            return os.path.splitext(os.path.basename(path))[0]
        return generated.group("stem") or module
    return module


def tuple_length(hint: Any) -> int | None:
    """How many items a value of type `hint` has, if the type says so.

    ``tuple[int, str]`` -> 2, ``tuple[()]`` -> 0, a NamedTuple class -> its field count;
    ``tuple``, ``tuple[int, ...]`` and every other type -> None.
    """
    if isinstance(hint, type) and issubclass(hint, tuple) and hasattr(hint, "_fields"):
        return len(hint._fields)
    if typing.get_origin(hint) is not tuple:
        return None
    args = typing.get_args(hint)
    if not args and getattr(hint, "__args__", None) is None:
        return None  # bare typing.Tuple: length unknown
    if len(args) == 2 and args[1] is Ellipsis:
        return None
    return len(args)


def _nout_from_hint(func: Callable[..., Any]) -> int | None:
    """`tuple_length` of the function's return annotation (strings are evaluated)."""
    try:
        hint = inspect.signature(func).return_annotation
    except (TypeError, ValueError):
        return None
    if hint is inspect.Signature.empty:
        return None
    if isinstance(hint, str):
        try:
            hint = eval(hint, getattr(func, "__globals__", {}))  # as typing.get_type_hints
        except Exception:
            return None  # a forward reference not defined yet: no nout
    return tuple_length(hint)


def _validate_nout(label: str, opts: dict[str, Any], func: Callable[..., Any]) -> int | None:
    if "nout" not in opts:
        return _nout_from_hint(func)
    nout = opts["nout"]
    if nout is not None and (not isinstance(nout, int) or isinstance(nout, bool) or nout < 0):
        raise TaskDefinitionError(
            f"@task on {label!r}: nout={nout!r} must be an int >= 0 (the number of items "
            "the task returns, e.g. nout=2 for a pair), or None."
        )
    return nout


def _validate_name(label: str, name: Any, namespace: Any) -> None:
    """A task's name is an identifier and its namespace dotted identifiers (as redun's):
    the full name is how the store, the CLI (``lazyflow run wf.py bio.align``) and the
    registry find the task, so ``"1bad task"`` would be a name nothing can refer to."""
    if name is not None and not (isinstance(name, str) and name.isidentifier()):
        raise TaskDefinitionError(
            f"@task on {label!r}: name={name!r} is not a valid task name: use letters, "
            'digits and underscores, not starting with a digit (e.g. name="align_reads"); '
            'put a prefix with dots in namespace= (e.g. namespace="bio").'
        )
    if namespace is not None and not (
        isinstance(namespace, str) and all(part.isidentifier() for part in namespace.split("."))
    ):
        raise TaskDefinitionError(
            f"@task on {label!r}: namespace={namespace!r} is not a valid namespace: use "
            'identifiers separated by dots (e.g. namespace="bio.qc"), set with '
            "@task(namespace=...) or lazyflow_namespace in the module."
        )


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
    namespace = opts.get("namespace")
    if namespace is None:  # redun's module-level namespace: lazyflow_namespace = "bio"
        namespace = getattr(func, "__globals__", {}).get("lazyflow_namespace")
    _validate_name(label, opts.get("name"), namespace)
    return TaskOptions(
        name=opts.get("name"),
        namespace=namespace,
        version=version,
        cache=bool(opts.get("cache", True)),
        retries=retries,
        executor=executor,
        limits={str(k): int(v) for k, v in limits.items()},
        hash_includes=tuple(includes),
        resources=parse_resources(label, opts.get("resources")),
        nout=_validate_nout(label, opts, func),
        tags=tuple(tag_items(opts.get("tags"), "tags", f"@task on {label!r}")),
    )


class Task:
    """A lazy task. Calling it returns a `CallExpression`; `func` runs it eagerly."""

    def __init__(
        self,
        func: Callable[..., Any],
        options: TaskOptions | None = None,
        *,
        register: bool = True,
    ) -> None:
        if not callable(func):
            raise TaskDefinitionError(f"@task needs a function, got {func!r}.")
        self.func = func
        # a copy of its own: `task.options(...)` finds its task through it
        self.options = TaskOptions(**options.as_dict()) if options else TaskOptions()
        object.__setattr__(self.options, "_task", weakref.ref(self))
        self.module = _module_name(func)
        self.short_name = self.options.name or func.__name__
        if self.options.namespace:
            self.name = f"{self.options.namespace}.{self.short_name}"
        else:
            qual = self.options.name or func.__qualname__
            self.name = f"{self.module}.{qual}"
        self._hash: str | None = None
        self._hash_epoch = -1  # the `codehash.epoch` _hash was computed in
        self._signature = inspect.signature(func)
        params = list(self._signature.parameters.values())
        self._simple = all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params)
        self._names = tuple(p.name for p in params)
        self._defaults = {p.name: p.default for p in params if p.default is not p.empty}
        # defaults that are expressions (``x=add(1, 2)``): passed as arguments, see __call__
        self._lazy_defaults = tuple(n for n, d in self._defaults.items() if contains_expression(d))
        self.__doc__ = func.__doc__
        self.__name__ = func.__name__
        self.__qualname__ = func.__qualname__
        self.__module__ = func.__module__
        self.__wrapped__ = func
        if register:
            _registry[self.name] = self  # the last definition wins

    # -- identity --------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"Task({self.name!r})"

    @property
    def hash(self) -> str:
        """Hex hash of this task: its name plus code (or pinned version) and includes.

        Computed once per epoch (a run): the code it reaches may have changed since."""
        now = codehash._epoch  # epoch() without the call: read several times per job
        if self._hash is None or self._hash_epoch != now:
            opts = self.options
            if opts.version is not None:
                body = "v:" + opts.version
            else:
                body = function_hash(self.func)
            includes = sorted(code_ref_hash(x) for x in opts.hash_includes)  # a set
            self._hash = hash_struct("Task", self.name, body, *includes)
            self._hash_epoch = now
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

    @property
    def dependency_sources(self) -> dict[str, str]:
        """``{name: source}`` of the user's helpers, classes and constants it refers to
        (``NAME = repr`` for a constant), stored for the diffs of ``explain``/``diff``."""
        return dependency_sources(self.func)

    def __reduce__(self) -> Any:
        module = sys.modules.get(self.func.__module__)
        if (
            self.func.__module__ != "__main__"
            and module is not None
            and getattr(module, self.func.__qualname__, None) is self
        ):
            return (_import_task, (self.func.__module__, self.func.__qualname__))
        # the name and module as the defining process saw them: a `__main__` script's
        # task is ``script.f`` there, and the receiving process has another `__main__`
        return (_rebuild_task, (self.func, self.options, self.name, self.module))

    # -- calling ---------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> CallExpression:
        self.check_call(args, kwargs)
        if self._lazy_defaults:
            args, kwargs = self._pass_lazy_defaults(args, kwargs)
        return CallExpression(self, args, kwargs or _NO_KWARGS)

    def _pass_lazy_defaults(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The call with each default that is an expression passed as an argument.

        A default ``x=add(1, 2)`` is then evaluated like any argument (before the call,
        as redun does) and hashed as its value: ``f()`` and ``f(3)`` are the same call.
        """
        given = self._signature.bind_partial(*args, **kwargs).arguments
        params = self._signature.parameters
        names = list(params)
        kwargs = dict(kwargs)
        for name in self._lazy_defaults:
            if name in given:
                continue
            if params[name].kind is inspect.Parameter.POSITIONAL_ONLY:  # and those before it
                gap = names[len(args) : names.index(name) + 1]
                args = (*args, *(params[n].default for n in gap))
            else:
                kwargs[name] = params[name].default
        return args, kwargs

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
            # (zip without `strict`: the lengths are checked, and strict=... costs a
            # keyword parse, ~0.3 us of every call's binding)
            if len(args) == len(self._names):  # every argument given by position
                return list(zip(self._names, args))  # noqa: B905
            bound = list(zip(self._names, args))  # noqa: B905  # (args: the first ones)
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

    def with_options(self, **overrides: Any) -> Task:
        """This task with some options changed (what ``task.options(**overrides)`` does).

        Overrides are validated like ``@task``'s. The derived task keeps the name (unless
        `name`/`namespace` is overridden) and the hash (unless an option that is hashed
        changed: version, name, namespace, hash_includes), so its calls share the cache
        of the task's other calls. It does not replace the task in the registry.
        """
        if not overrides:
            return self
        if "tags" in overrides:  # a call site's tags add to (or change) the task's own
            overrides["tags"] = {**dict(self.options.tags), **dict(tag_items(overrides["tags"]))}
        opts = _validate_options(self.func, {**self.options.as_dict(), **overrides})
        renamed = (opts.name, opts.namespace) != (self.options.name, self.options.namespace)
        return Task(self.func, opts, register=renamed)


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

    def options(self, **overrides: Any) -> PartialTask:
        """The same partial application of the task with some options changed."""
        return PartialTask(self.task.with_options(**overrides), self.args, self.kwargs)

    def __lazyflow_hash__(self) -> str:
        from .hashing import hash_value

        return hash_struct("Partial", self.task.hash, hash_value((self.args, self.kwargs)))


# Its bound arguments may be expressions (a task may return ``add.partial(inc(1))``): the
# walker of `values` looks inside, so they are evaluated like any other returned value.
register_container(
    PartialTask,
    lambda p: (p.args, p.kwargs),
    lambda p, items: PartialTask(p.task, items[0], items[1]),
)


def _import_task(module: str, qualname: str) -> Task:
    import importlib

    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _rebuild_task(
    func: Callable[..., Any],
    options: TaskOptions,
    name: str | None = None,
    module: str | None = None,
) -> Task:
    """A task pickled by value, unpickled: the live definition of its name if there is
    one (the last definition wins), else the pickled task, unregistered.

    It keeps the name it had where it was pickled (`name`, `module`; absent from pickles
    older than them): its name is part of its hash, and a worker derives another one for
    a function of a `__main__` script (its own `__main__` is not that script), so its
    job's code check and any hash it computes would disagree with the scheduler's.

    Never registered: an old result holding an old definition must not make its code the
    definition again, and a worker that unpickles each job's task gets the code it was
    sent, not the first version it saw."""
    task = Task(func, options, register=False)
    if name is not None and name != task.name:
        task.name = name
        task.module = module if module is not None else task.module
        task._hash = None
    registered = _registry.get(task.name)
    # the live task, unless this one was derived from it with other options
    if registered is not None and registered.options == options:
        return registered
    return task


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
    resources: dict[str, int | float | str] | None = ...,
    nout: int | None = ...,
    tags: dict[str, Any] | Iterable[tuple[str, Any]] | None = ...,
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
