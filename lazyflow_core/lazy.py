"""Package attributes imported on first use (PEP 562), for packages that must import fast.

``__getattr__ = lazy_attributes(__name__, {"Scheduler": "scheduler"}, globals())`` makes
``package.Scheduler`` import ``package.scheduler`` the first time it is asked for, and
keeps the value in the package so the next access costs nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_attributes(
    package: str, names: dict[str, str], namespace: dict[str, Any]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` loading each of `names` from its submodule."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    return __getattr__
