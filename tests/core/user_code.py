"""User code the way users change it: a module file written, imported, edited, reloaded.

Code-hash tests go through real modules (files under a temporary directory, imported as
the user's own code, not as a library) instead of clearing lazyflow's memo by hand.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
import types
import uuid
from pathlib import Path

# A task whose result depends on a module constant read by a plain helper function: what
# a notebook cell or an edited file changes, and what the code hash must follow.
SCALED_MODULE = """
from lazyflow_core import task

FACTOR = 2

def scale(x):
    return x * FACTOR

@task
def scaled(x: int) -> int:
    return scale(x)

@task
def total(n: int):
    return [scaled(i) for i in range(n)]
"""


class UserModules:
    """Writes modules into `root` (put on sys.path) and imports or reloads them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.names: list[str] = []
        sys.path.insert(0, str(root))

    def write(self, name: str, source: str) -> types.ModuleType:
        """Write `name`.py and import it; if it is already imported, reload it."""
        path = self.root / f"{name}.py"
        path.write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        module = sys.modules.get(name)
        if module is not None:
            return importlib.reload(module)
        self.names.append(name)
        return importlib.import_module(name)

    def unique(self, prefix: str) -> str:
        """A module name no other test uses (modules stay importable by name)."""
        return f"{prefix}_{uuid.uuid4().hex[:8]}"

    def close(self) -> None:
        for name in self.names:
            sys.modules.pop(name, None)
        if str(self.root) in sys.path:
            sys.path.remove(str(self.root))
