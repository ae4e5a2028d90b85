"""Code hashing: what counts as a change to a task."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lazyflow_core import task
from lazyflow_core.codehash import function_hash, new_epoch, normalized_source

from .user_code import UserModules


def test_normalized_source_ignores_docstrings_and_comments() -> None:
    def a(x):
        """Doc."""
        # comment
        return x + 1

    def b(x):
        return x + 1  # different comment

    assert normalized_source(a).replace("'a'", "'b'") == normalized_source(b)


HELPER_MODULE = """
from lazyflow_core import task

FACTOR = 3

def helper(x):
    return x * FACTOR

@task
def uses_helper(x):
    return helper(x) + 1
"""


def test_hash_follows_helpers_and_constants(modules: UserModules) -> None:
    """Editing a constant that a helper of the task reads changes the task's hash; editing
    it back restores it (the module is re-imported, as a user's next run would)."""
    name = modules.unique("helpers")
    before = modules.write(name, HELPER_MODULE).uses_helper.hash
    changed = modules.write(name, HELPER_MODULE.replace("FACTOR = 3", "FACTOR = 4"))
    assert changed.uses_helper.hash != before
    assert modules.write(name, HELPER_MODULE).uses_helper.hash == before


def test_closures_and_defaults_count() -> None:
    def make(k: int):
        def inner(x: int) -> int:
            return x + k

        return inner

    assert function_hash(make(1)) != function_hash(make(2))

    def with_default(x, k=1):
        return x + k

    def with_other_default(x, k=2):
        return x + k

    assert normalized_source(with_default) != normalized_source(with_other_default)


DEFAULTS_MODULE = """
from lazyflow_core import task

SCALE = 2

@task
def scaled(x, k=SCALE):
    return x * k

@task
def scaled_keyword(x, *, k=SCALE):
    return x * k
"""


@pytest.mark.parametrize("name", ["scaled", "scaled_keyword"])
def test_default_values_count_even_when_the_source_does_not_show_them(
    modules: UserModules, name: str
) -> None:
    """``def f(x, k=SCALE)``: the source is the same when SCALE changes, and `f`'s code
    does not read SCALE (defaults are evaluated where `f` is defined), so only the
    default values themselves (positional and keyword-only) tell the two apart."""
    module = modules.unique("defaults")
    before = getattr(modules.write(module, DEFAULTS_MODULE), name).hash
    edited = modules.write(module, DEFAULTS_MODULE.replace("SCALE = 2", "SCALE = 3"))
    assert getattr(edited, name).hash != before


class Scaler:
    def scale(self, x: int) -> int:
        return x * 2


def uses_class(x: int) -> int:
    return Scaler().scale(x)


def test_project_classes_are_hashed_by_source_and_third_party_by_version() -> None:
    h = function_hash(uses_class)
    assert h == function_hash(uses_class)

    def uses_json(x):
        return json.dumps(x)

    def uses_partial(x):
        return functools.partial(int)(x)

    assert function_hash(uses_json) != function_hash(uses_partial)


def test_standard_library_references_need_no_scan_of_installed_distributions() -> None:
    """A task using `time` or `json` is hashed without reading every installed
    distribution's metadata (importlib.metadata: 0.3 s to seconds per process)."""
    code = (
        "import sys, time, json\n"
        "from lazyflow_core.codehash import function_hash\n"
        "def uses_stdlib(x):\n"
        "    return json.dumps([x, time.time()])\n"
        "function_hash(uses_stdlib)\n"
        "print('importlib.metadata' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


PARENT_MODULE = """
from lazyflow_core import task

@task
def child(x):
    return x

@task
def parent(x):
    return child(x)
"""


def test_task_hash_covers_name_and_version_but_not_child_task_code(
    modules: UserModules,
) -> None:
    pinned = task(version="7")(lambda x: x)
    repinned = task(version="8")(lambda x: x)
    assert pinned.hash != repinned.hash
    # A parent references its child task by name only: editing the child does not
    # change the parent's hash (the child and its consumers re-run instead) ...
    name = modules.unique("parent")
    first = modules.write(name, PARENT_MODULE)
    parent_hash, child_hash = first.parent.hash, first.child.hash
    dependency = first.parent.dependencies["child"]
    edited = modules.write(name, PARENT_MODULE.replace("return x\n", "return x + 1\n", 1))
    assert edited.child.hash != child_hash
    assert edited.parent.hash == parent_hash
    assert edited.parent.dependencies["child"] == dependency
    # ... but calling another task is a change to the parent.
    renamed = PARENT_MODULE.replace("def child", "def kid").replace("child(x)", "kid(x)")
    other = modules.write(name, renamed)
    assert other.parent.hash != parent_hash
    assert other.parent.dependencies["kid"] != dependency


def _parity(base: bool):
    def even(n):
        return True if n == 0 else odd(n - 1)

    def odd(n):
        return base if n == 0 else even(n - 1)

    return even, odd


def _parity_edited(base: bool):
    def even(n):
        return True if n == 0 else odd(n - 1)

    def odd(n):
        return (not base) if n == 0 else even(n - 1)

    return even, odd


def test_recursive_helpers_terminate() -> None:
    """Mutually recursive helpers hash (the cycle is cut), to a value that depends on
    the code of both and not on the objects: fresh copies hash alike, an edit to
    `odd` changes the hash of `even` too."""
    even, odd = _parity(False)
    assert function_hash(even) != function_hash(odd)
    again_even, again_odd = _parity(False)
    assert function_hash(again_even) == function_hash(even) == function_hash(even)
    assert function_hash(again_odd) == function_hash(odd)
    assert function_hash(_parity(True)[0]) != function_hash(even)  # a closure value
    edited_even, edited_odd = _parity_edited(False)
    assert function_hash(edited_odd) != function_hash(odd)
    assert function_hash(edited_even) != function_hash(even)


HANDLERS_MODULE = """
from lazyflow_core import task

def double(x):
    return x * 2

def negate(x):
    return -x

HANDLERS = {"a": double, "b": [negate], "c": (1, {"d": negate})}

@task
def dispatch(kind, x):
    return HANDLERS[kind](x)
"""


@pytest.mark.parametrize(
    "edit",
    [
        ("return x * 2", "return x * 3"),  # the helper held as a dict value
        ("return -x", "return 0 - x - 1"),  # a helper held in a list and deeper
    ],
)
def test_helpers_held_in_containers_are_part_of_the_code_hash(
    modules: UserModules, edit: tuple[str, str]
) -> None:
    """``HANDLERS = {"a": helper}``: editing `helper` changes the task's hash."""
    name = modules.unique("handlers")
    before = modules.write(name, HANDLERS_MODULE).dispatch.hash
    after = modules.write(name, HANDLERS_MODULE.replace(*edit)).dispatch.hash
    assert after != before
    again = modules.write(name, HANDLERS_MODULE).dispatch.hash
    assert again == before  # the hash is a function of the code, not of the object


HELPER_BY_PATH = """
def scale(x):
    return x * 2
"""

LOADS_BY_PATH = """
import importlib.util

from lazyflow_core import task

# loaded by path, never registered in sys.modules (as plugin loaders do)
_spec = importlib.util.spec_from_file_location("{helper}", {path!r})
_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_helpers)
scale = _helpers.scale

@task
def scaled(x):
    return scale(x) + 1
"""


def test_a_helper_from_a_module_loaded_by_path_is_the_users_code(
    modules: UserModules, tmp_path: Path
) -> None:
    """Whose code a helper is follows from where its file lives, not from `sys.modules`:
    a module imported only through importlib by path is the project's, so editing its
    helper changes the task's hash (it was taken for third-party code, hashed by name)."""
    import sys

    helper_name = modules.unique("by_path")
    helper_file = tmp_path / "plugins" / f"{helper_name}.py"
    helper_file.parent.mkdir()
    helper_file.write_text(HELPER_BY_PATH)
    name = modules.unique("loads_by_path")
    source = LOADS_BY_PATH.format(helper=helper_name, path=str(helper_file))
    before = modules.write(name, source).scaled.hash
    assert helper_name not in sys.modules
    helper_file.write_text(HELPER_BY_PATH.replace("x * 2", "x * 3"))
    assert modules.write(name, source).scaled.hash != before
    helper_file.write_text(HELPER_BY_PATH)
    assert modules.write(name, source).scaled.hash == before


CLASS_MODULE = """
from lazyflow_core import task

class Scaler:
    def scale(self, x):
        return x * 2

@task
def scaled(x):
    return Scaler().scale(x)
"""


def test_a_class_edit_changes_the_hash_with_or_without_a_reload(modules: UserModules) -> None:
    """A class's normalized source is kept per version of its file: an edit is seen by
    the next run whether the module was re-imported (a new class) or not (the old class
    object, its file changed: the source is the file's, as inspect reads it)."""
    name = modules.unique("classes")
    module = modules.write(name, CLASS_MODULE)
    cls = module.Scaler
    new_epoch()
    before = function_hash(cls)
    new_epoch()
    assert function_hash(cls) == before  # kept: the file did not change
    path = modules.root / f"{name}.py"
    path.write_text(CLASS_MODULE.replace("x * 2", "x * 3"))  # edited, not re-imported
    new_epoch()
    edited = function_hash(cls)
    assert edited != before
    reloaded = modules.write(name, CLASS_MODULE.replace("x * 2", "x * 3"))
    new_epoch()
    assert function_hash(reloaded.Scaler) == edited
    assert reloaded.scaled.hash != before
