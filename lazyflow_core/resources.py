"""``@task(resources=...)``: what a call needs from the machine that runs it.

``resources={"vcpus": 2, "memory": "4GiB", "gpus": 1}`` says *where* a call may run, not
*what* it computes, so it is not part of the task's hash: asking for more memory never
invalidates the cache. Executors that place work on machines read it (Dask maps it to
worker resources, Batch executors to the container's vCPUs, memory and GPUs); the local
executors ignore it, since every call there shares this machine.

The amounts are checked when the task is defined, so a typo fails at the decorator, not
on a cluster an hour later, and stored normalized: ``vcpus`` a number (fractions are
allowed, as Fargate sizes are), ``memory`` an int of bytes, ``gpus`` an int. A zero
amount means "no requirement" and is dropped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from .errors import TaskDefinitionError

RESOURCE_KINDS = ("vcpus", "memory", "gpus")
"""The resources a task may ask for; every executor that places work understands them."""

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_MEMORY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([a-zA-Z]*)\s*$")


def parse_memory(value: Any) -> int:
    """Bytes in `value`: an int of bytes, or a string such as ``"4GiB"``, ``"512 MB"``.

    Raises ValueError with the accepted forms; `parse_resources` adds the task's name.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an amount of memory")
    if isinstance(value, int | float):
        amount = float(value)
    elif isinstance(value, str):
        match = _MEMORY.match(value)
        unit = match.group(2).lower() if match else ""
        if match is None or unit not in _UNITS:
            raise ValueError(
                f"{value!r} is not an amount of memory; write bytes as an int, or a number "
                'with a unit: "512MB", "4GiB" (units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)'
            )
        amount = float(match.group(1)) * _UNITS[unit]
    else:
        raise ValueError(f"{value!r} ({type(value).__name__}) is not an amount of memory")
    if not math.isfinite(amount) or amount < 0:
        raise ValueError(f"{value!r} is negative or not finite")
    return math.ceil(amount)


def _amount(label: str, kind: str, value: Any) -> int | float:
    where = f"@task on {label!r}: resources[{kind!r}]={value!r}"
    if kind == "memory":
        try:
            return parse_memory(value)
        except ValueError as exc:
            raise TaskDefinitionError(f"{where}: {exc}.") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TaskDefinitionError(f"{where} must be a number, e.g. resources={{{kind!r}: 2}}.")
    if not math.isfinite(value) or value < 0:
        raise TaskDefinitionError(f"{where} must be a number >= 0.")
    if kind == "gpus":
        if value != int(value):
            raise TaskDefinitionError(f"{where} must be a whole number of GPUs.")
        return int(value)
    return int(value) if value == int(value) else float(value)


def parse_resources(label: str, value: Any) -> dict[str, int | float]:
    """The normalized resources of task `label` (see the module docstring).

    Raises `TaskDefinitionError` naming the task, the resource and the fix.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TaskDefinitionError(
            f"@task on {label!r}: resources={value!r} must be a dict such as "
            '{"vcpus": 2, "memory": "4GiB", "gpus": 0}.'
        )
    unknown = [k for k in value if k not in RESOURCE_KINDS]
    if unknown:
        raise TaskDefinitionError(
            f"@task on {label!r}: unknown resource(s) {unknown!r} in resources=; the "
            f"resources a task can ask for are {list(RESOURCE_KINDS)} (use limits= for "
            "counting other things, e.g. limits={'db': 1})."
        )
    parsed = {kind: _amount(label, kind, amount) for kind, amount in value.items()}
    return {kind: parsed[kind] for kind in RESOURCE_KINDS if parsed.get(kind)}
