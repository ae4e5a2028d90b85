"""`run_lazyflow.map(...)`: map each argument of the workflow like Prefect maps a task's.

Prefect's ``Task.map`` maps over the task function's parameters. `run_lazyflow`'s are
``(workflow, *args, db, executor, tags, **kwargs)``, so Prefect would see the whole
``args`` tuple as one iterable and call the workflow with one element of it per run:
``run_lazyflow.map(unmapped(main), days, regions)`` would run ``main(*days)``. Here every
positional argument counts as a parameter of its own, as if the workflow were the task:

- top-level futures and states are resolved first (their results are what is mapped),
  and the task runs they came from are recorded as upstream of every mapped run;
- ``unmapped(x)`` is passed whole to every run; ``allow_failure``/``quote`` wrappers are
  looked through to decide, and kept on each element;
- any other iterable except ``str``/``bytes`` is mapped, all to the same length
  (``MappingLengthMismatch`` otherwise, ``MappingMissingIterable`` if none is); ``tags``
  given as a mapping is static (mapping over its keys is never what is meant);
- each element is submitted as one ordinary ``run_lazyflow`` task run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prefect.exceptions import MappingLengthMismatch, MappingMissingIterable
from prefect.utilities.annotations import BaseAnnotation, unmapped
from prefect.utilities.collections import isiterable

# Keys of the values `expand` looks at: ("arg", index) or ("kw", name).
Slot = tuple[str, Any]


@dataclass(frozen=True)
class MappedCall:
    """The arguments of one mapped run of ``run_lazyflow``."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def expand(
    args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> tuple[list[MappedCall], dict[str, set[Any]]]:
    """The calls a ``.map(*args, **kwargs)`` stands for, and the upstream task runs of
    the futures among the arguments (Prefect's ``dependencies`` of each run)."""
    from prefect.utilities.engine import collect_task_run_inputs_sync, resolve_inputs_sync

    slots: dict[Slot, Any] = {("arg", i): value for i, value in enumerate(args)}
    slots.update({("kw", name): value for name, value in kwargs.items()})
    keys = {slot: f"{slot[0]}:{slot[1]}" for slot in slots}
    raw = {keys[slot]: value for slot, value in slots.items()}
    upstream = {key: collect_task_run_inputs_sync(value, max_depth=0) for key, value in raw.items()}
    resolved = resolve_inputs_sync(raw, max_depth=0)

    mapped: dict[Slot, list[Any]] = {}
    static: dict[Slot, Any] = {}
    wrappers: dict[Slot, BaseAnnotation] = {}
    for slot in slots:
        value = resolved[keys[slot]]
        if isinstance(value, BaseAnnotation) and not isinstance(value, unmapped):
            wrappers[slot] = value
            value = value.unwrap()
        if isinstance(value, unmapped):
            static[slot] = value.value
        elif slot == ("kw", "tags") and isinstance(value, Mapping):
            static[slot] = value
        elif isiterable(value):
            mapped[slot] = list(value)
        else:
            static[slot] = value
    length = _common_length(mapped, resolved)
    calls = []
    for i in range(length):
        values = {**static, **{slot: items[i] for slot, items in mapped.items()}}
        for slot, wrapper in wrappers.items():
            values[slot] = wrapper.rewrap(values[slot])
        calls.append(
            MappedCall(
                args=tuple(values[("arg", j)] for j in range(len(args))),
                kwargs={name: values[("kw", name)] for name in kwargs},
            )
        )
    return calls, _dependencies(upstream)


def _common_length(mapped: Mapping[Slot, list[Any]], parameters: Mapping[str, Any]) -> int:
    if not mapped:
        raise MappingMissingIterable(
            "run_lazyflow.map: no iterable argument was given; map needs at least one "
            "(a list of values for a workflow parameter), wrap constant iterables in "
            f"unmapped(...). Arguments: {dict(parameters)!r}"
        )
    lengths = {_describe(slot): len(items) for slot, items in mapped.items()}
    if len(set(lengths.values())) > 1:
        raise MappingLengthMismatch(
            "run_lazyflow.map: the mapped arguments have different lengths "
            f"{lengths!r}; give each the same number of values, or wrap the ones meant "
            "for every run in unmapped(...)."
        )
    return next(iter(lengths.values()))


def _describe(slot: Slot) -> str:
    kind, key = slot
    if kind == "kw":
        return str(key)
    return "workflow" if key == 0 else f"positional argument {key}"


def _dependencies(upstream: Mapping[str, Iterable[Any]]) -> dict[str, set[Any]]:
    """Upstream task runs by run_lazyflow parameter (every positional one is ``args``)."""
    deps: dict[str, set[Any]] = {}
    for key, inputs in upstream.items():
        kind, _, name = key.partition(":")
        parameter = "workflow" if key == "arg:0" else ("args" if kind == "arg" else name)
        deps.setdefault(parameter, set()).update(inputs)
    return {name: inputs for name, inputs in deps.items() if inputs}
