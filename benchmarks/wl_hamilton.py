"""Hamilton with its cache on; runs under ``.venv-hamilton``.

Hamilton builds its graph from a module's functions, one node per function, so the
fan-out is N nodes ``inc_0 .. inc_{N-1}`` (one ``@parameterize``-d function) feeding
``total`` through ``@inject(group(...))``, and the chain is nodes ``c_1 .. c_D`` each
depending on the one before. The module is generated into the case's work directory
(the same file for the cold run and its cached re-run) and imported before the clock
starts, as a user's module would be. Timed: building the driver with
``.with_cache(path)`` (graph construction included) and ``execute``. ``executed``
counts the node bodies that ran (0 in a fully cached re-run). Telemetry is off.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from types import ModuleType
from typing import Any

os.environ.setdefault("HAMILTON_TELEMETRY_ENABLED", "false")

from hamilton import base, driver

FANOUT = """
from hamilton.function_modifiers import group, inject, parameterize, source, value

N = {n}
EXECUTED = []


@parameterize(**{{f"inc_{{i}}": {{"x": value(i)}} for i in range(N)}})
def inc(x: int) -> int:
    EXECUTED.append(1)
    return x + 1


@inject(xs=group(*[source(f"inc_{{i}}") for i in range(N)]))
def total(xs: list[int]) -> int:
    EXECUTED.append(1)
    return sum(xs)
"""

CHAIN = """
from hamilton.function_modifiers import parameterize, source

D = {depth}
EXECUTED = []


def c_0() -> int:
    return 0


@parameterize(**{{f"c_{{i}}": {{"x": source(f"c_{{i - 1}}")}} for i in range(1, D + 1)}})
def c(x: int) -> int:
    EXECUTED.append(1)
    return x + 1
"""


def _module(workdir: str, name: str, source: str) -> ModuleType:
    path = os.path.join(workdir, f"{name}.py")
    if not os.path.exists(path):
        with open(path, "w") as fh:
            fh.write(source)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _run(module: ModuleType, workdir: str, output: str) -> tuple[float, Any]:
    t0 = time.perf_counter()
    dr = (
        driver.Builder()
        .with_modules(module)
        .with_adapters(base.DictResult())
        .with_cache(path=os.path.join(workdir, "hamilton-cache"))
        .build()
    )
    value = dr.execute([output])[output]
    return time.perf_counter() - t0, value


def fanout(n: int, workdir: str, **_: Any) -> dict[str, Any]:
    """N ``inc_i`` nodes into ``total``, cold or cached."""
    module = _module(workdir, f"hamilton_fanout_{n}", FANOUT.format(n=n))
    wall, value = _run(module, workdir, "total")
    return {"wall": wall, "calls": n + 1, "value": value, "executed": len(module.EXECUTED)}


def chain(depth: int, workdir: str, **_: Any) -> dict[str, Any]:
    """``c_i = c_{i-1} + 1`` for i = 1 .. depth."""
    module = _module(workdir, f"hamilton_chain_{depth}", CHAIN.format(depth=depth))
    wall, value = _run(module, workdir, f"c_{depth}")
    return {"wall": wall, "calls": depth, "value": value, "executed": len(module.EXECUTED)}
