"""A function's source without `tokenize` (`sourcetext`): the same as `inspect.getsource`
wherever it answers, and no answer (so `inspect` decides) where it cannot tell."""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import linecache
import pkgutil
import subprocess
import sys
import textwrap
import types

import pytest

import lazyflow_core
from lazyflow_core import sourcetext
from lazyflow_core.codehash import function_hash, normalized_source

from .user_code import UserModules

SHAPES = '''
import functools

def deco(*args):
    def wrap(f):
        return f
    return wrap

def trailing_pass(x):
    y = x + 1
    if y:
        return y
    else:
        pass

def trailing_string(x):
    x += 1
    "a string statement, which compiles to nothing"

def long_signature(
    a: int,
    b: int = 2,
) -> int:
    return a + b

@deco(
    "decorator arguments",
)
@deco()
def decorated(x):
    return [
        x,
        x,
    ]

def nested(x):
    def inner(y):
        return (y +
                x)
    class Local:
        attr = 1
    return inner, Local

async def coroutine(x):
    return x

def only_docstring():
    """Nothing else."""

def comments_after(x):
    return x
    # a comment at the end of the body

# a comment between functions
def after_comment(x): return x

def continued(x):
    return x + \\
1

def text_at_column_zero():
    return """
first
second
"""

def wrapped_inner(x):
    return x * 2

@functools.wraps(wrapped_inner)
def wrapper(x):
    return wrapped_inner(x)

def renamed(x):
    return x
renamed.__name__ = "other_name"

import dataclasses

@dataclasses.dataclass(
    frozen=True,
)
class Point:
    """A point."""
    x: int = 0
    y: int = 0

    def norm(self):
        return abs(self.x) + abs(self.y)
    # a comment at the end of the class

class Outer:
    class Inner:
        value = (1,
                 2)

def make_local():
    class Local:
        def method(self):
            return 1
    return Local

class Twice:
    first = True

class Twice:  # the second of a name: inspect finds the first, so does this
    second = True
'''

NAMES = [
    "trailing_pass",
    "trailing_string",
    "long_signature",
    "decorated",
    "nested",
    "coroutine",
    "only_docstring",
    "comments_after",
    "after_comment",
    "continued",
    "text_at_column_zero",
    "wrapper",
    "renamed",
]


CLASSES = ["Point", "Outer", "Outer.Inner", "make_local", "Twice"]


def _inspect_tree(obj: object) -> str | None:
    try:
        return ast.dump(ast.parse(textwrap.dedent(inspect.getsource(obj))))  # type: ignore[arg-type]
    except (OSError, TypeError, SyntaxError):
        return None


@pytest.mark.parametrize("name", NAMES)
def test_each_shape_parses_as_inspect_does(modules: UserModules, name: str) -> None:
    module = modules.write(modules.unique("shapes"), SHAPES)
    func = getattr(module, name)
    tree = sourcetext.parsed_source(func)
    assert tree is not None
    assert ast.dump(tree) == _inspect_tree(func)


@pytest.mark.parametrize("name", CLASSES)
def test_each_class_shape_parses_as_inspect_does(modules: UserModules, name: str) -> None:
    module = modules.write(modules.unique("shapes"), SHAPES)
    obj: object = module
    for part in name.split("."):
        obj = getattr(obj, part)
    cls = obj() if name == "make_local" else obj  # (a class made inside a function)
    assert isinstance(cls, type)
    tree = sourcetext._class_tree(cls)
    assert tree is not None
    assert ast.dump(tree) == _inspect_tree(cls)


def test_unsafe_shapes_are_left_to_inspect(modules: UserModules) -> None:
    """A function renamed after its ``def``, and one whose file changed under it (its
    first line is no longer a ``def``), give no fast answer: `parsed_source` asks
    inspect for them."""
    name = modules.unique("shapes")
    module = modules.write(name, SHAPES)
    assert sourcetext._function_tree(module.renamed) is None
    assert sourcetext._function_tree(module.trailing_pass) is not None
    (modules.root / f"{name}.py").write_text("\n" * 200)  # edited, not re-imported
    assert sourcetext._function_tree(module.trailing_pass) is None


def test_lambdas_and_builtins_have_no_fast_source() -> None:
    assert sourcetext._function_tree(lambda x: x) is None  # the line may hold more code
    assert sourcetext.parsed_source(len) is None


def test_an_edited_file_is_read_again(modules: UserModules) -> None:
    """As with inspect, the file's current lines are read (`linecache.checkcache`): a
    module re-imported after an edit gets the new source."""
    name = modules.unique("edited")
    first = modules.write(name, "def f(x):\n    return x + 1\n").f
    assert "Add" in ast.dump(sourcetext.parsed_source(first))  # type: ignore[arg-type]
    second = modules.write(name, "def f(x):\n    return x * 1000\n").f
    assert "Mult" in ast.dump(sourcetext.parsed_source(second))  # type: ignore[arg-type]


def _functions() -> list[types.FunctionType | type]:
    """Every function, method and class that lazyflow_core's modules define."""
    seen: list[types.FunctionType | type] = []
    for info in pkgutil.walk_packages(lazyflow_core.__path__, "lazyflow_core."):
        if info.name.endswith("__main__") or ".migrations" in info.name:
            continue  # (a script run by python -m, alembic's scripts run by alembic)
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional extra this environment lacks
            continue
        for value in vars(module).values():
            if getattr(value, "__module__", None) != module.__name__:
                continue
            if isinstance(value, type):
                seen.append(value)
                seen += [v for v in vars(value).values() if isinstance(v, types.FunctionType)]
            elif isinstance(value, types.FunctionType):
                seen.append(value)
    return seen


def test_equal_to_inspect_over_lazyflow_itself() -> None:
    """Every function and method of lazyflow_core: where the fast path answers, its tree
    is the one inspect's source gives (most answer: the fallback is the exception)."""
    everything = _functions()
    classes = [c for c in everything if isinstance(c, type) and _inspect_tree(c) is not None]
    for cls in classes:
        tree = sourcetext._class_tree(cls)
        assert tree is not None, cls.__qualname__
        assert ast.dump(tree) == _inspect_tree(cls), cls.__qualname__
    assert len(classes) > 100
    functions = [f for f in everything if isinstance(f, types.FunctionType)]
    functions = [f for f in functions if _inspect_tree(f) is not None]  # (not generated)
    answered = 0
    for func in functions:
        tree = sourcetext._function_tree(inspect.unwrap(func))  # type: ignore[arg-type]
        if tree is None:
            continue
        answered += 1
        assert ast.dump(tree) == _inspect_tree(func), func.__qualname__
    assert len(functions) > 500
    assert answered > 0.98 * len(functions)


def test_code_hashing_does_not_tokenize(modules: UserModules) -> None:
    """The point of it: hashing a task's code in a fresh process does not load the
    tokenizer's regular expressions (~8 ms of every run's start)."""
    probe = (
        "import sys, tokenize\n"
        "from lazyflow_core.codehash import function_hash\n"
        f"sys.path.insert(0, {str(modules.root)!r})\n"
        "import shapes_probe as m\n"
        "tokenize._compile.cache_clear()\n"
        "for f in (m.trailing_pass, m.decorated, m.nested, m.long_signature, m.Point):\n"
        "    function_hash(f)\n"
        "print(tokenize._compile.cache_info().misses)\n"
    )
    modules.write("shapes_probe", SHAPES)
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "0"


def test_normalized_source_unchanged_for_wrapped_functions() -> None:
    def inner(x: int) -> int:
        return x + 1

    @functools.wraps(inner)
    def outer(x: int) -> int:
        return inner(x)

    assert normalized_source(outer) == normalized_source(inner)


def _cell(name: str, source: str) -> dict[str, object]:
    """Run `source` as a notebook cell: IPython compiles each cell under a file name of
    its own and puts its lines in `linecache` (no file on disk, no mtime)."""
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    namespace: dict[str, object] = {"__name__": "__main__"}
    exec(compile(source, name, "exec"), namespace)
    return namespace


def test_notebook_cells_are_read_from_linecache() -> None:
    """A function defined in a cell has its source in `linecache` only; redefining it in
    a later cell gives the new source and a new hash (the trust rule "last definition
    wins" relies on it)."""
    first = _cell("<ipython-input-1-0a1b>", "def step(x):\n    return x * 10\n")["step"]
    second = _cell("<ipython-input-2-2c3d>", "def step(x):\n    return x * 100\n")["step"]
    for func in (first, second):
        tree = sourcetext._function_tree(func)  # type: ignore[arg-type]
        assert tree is not None
        assert ast.dump(tree) == _inspect_tree(func)
    assert normalized_source(first) != normalized_source(second)
    assert function_hash(first) != function_hash(second)  # type: ignore[arg-type]
