"""Hashing of code: a task's hash covers everything of the user's own code it reaches.

How it works. A function is fingerprinted by its *normalized* AST (docstrings and the
decorator line removed, no line numbers), so comments, docstrings and formatting do not
count. Then every global name its bytecode refers to (``co_names`` of the function and its
nested code objects), every closure cell and every default value is resolved and folded in:

- the user's own functions and classes (defined in a module that is not in the standard
  library or in site-packages) are hashed recursively, the same way;
- module-level constants and other plain values are hashed by value;
- lazyflow tasks contribute only their name: a task's own code is checked separately
  when a cached parent is validated, so editing a child task never changes its parent's
  hash (only the child and its consumers re-run);
- third-party functions, classes and modules contribute their distribution's version.

Reference cycles between helpers are cut by name. Results are memoized per function for the
life of the process; a result computed with a cut is not memoized, so the hash of a function
never depends on which function was hashed first.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.metadata
import inspect
import site
import sys
import sysconfig
import textwrap
import types
from typing import Any

from .hashing import DIGEST_SIZE, UnhashableValue, hash_value, qualified_name

_memo: dict[object, bytes] = {}


@functools.cache
def _external_prefixes() -> tuple[str, ...]:
    paths = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            paths.add(path)
    paths.update(site.getsitepackages())
    paths.add(site.getusersitepackages())
    paths.add(sys.base_prefix + "/lib")
    return tuple(sorted(paths))


@functools.cache
def _module_is_external(module_name: str) -> bool:
    top = module_name.split(".", 1)[0]
    if top in sys.stdlib_module_names or top in ("builtins", "lazyflow_core"):
        return True
    if top in ("lazyflow_airflow", "lazyflow_prefect"):
        return True
    module = sys.modules.get(module_name)
    filename = getattr(module, "__file__", None) if module is not None else None
    if filename is None:
        return module_name != "__main__"
    return filename.startswith(_external_prefixes())


@functools.cache
def _packages_distributions() -> dict[str, list[str]]:
    # Scans every installed distribution's metadata: seconds with Airflow installed, so
    # once per process.
    return dict(importlib.metadata.packages_distributions())


@functools.cache
def _distribution_version(module_name: str) -> str:
    top = module_name.split(".", 1)[0]
    dists = _packages_distributions().get(top)
    if not dists:
        return top
    name = dists[0]
    try:
        return f"{name}=={importlib.metadata.version(name)}"
    except importlib.metadata.PackageNotFoundError:
        return name


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]


def normalized_source(obj: Any) -> str | None:
    """The normalized AST dump of a function or class, or None without source."""
    try:
        source = textwrap.dedent(inspect.getsource(obj))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError, IndentationError):
        return None
    if not tree.body:
        return None
    node = tree.body[0]
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        node.decorator_list = []
    elif getattr(obj, "__name__", "") == "<lambda>":
        return None  # a lambda's source line may hold unrelated code; use bytecode
    _strip_docstrings(node)
    return ast.dump(node, annotate_fields=False, include_attributes=False)


def readable_source(obj: Any) -> str:
    """Source text with docstrings removed (for the store and for ``explain`` diffs)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(obj)))
    except (OSError, TypeError, SyntaxError, IndentationError):
        return f"# source not available for {getattr(obj, '__qualname__', obj)!r}"
    _strip_docstrings(tree)
    return ast.unparse(tree)


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def _bytecode_fingerprint(code: types.CodeType) -> bytes:
    h = hashlib.sha256(code.co_code)
    h.update(repr(code.co_names).encode())
    h.update(repr(code.co_varnames).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            h.update(_bytecode_fingerprint(const))
        else:
            h.update(repr(const).encode())
    return h.digest()


class _CodeHasher:
    """One traversal; `active` holds the objects being hashed, to cut cycles."""

    def __init__(self) -> None:
        self.active: set[int] = set()
        self.cut = False

    def function(self, func: types.FunctionType) -> bytes:
        cached = _memo.get(func)
        if cached is not None:
            return cached
        if id(func) in self.active:
            self.cut = True
            return f"cycle:{func.__module__}.{func.__qualname__}".encode()
        self.active.add(id(func))
        outer_cut, self.cut = self.cut, False
        try:
            h = hashlib.sha256(b"F")
            source = normalized_source(func)
            h.update(source.encode() if source else _bytecode_fingerprint(func.__code__))
            for name in sorted(_code_names(func.__code__)):
                if name in func.__globals__:
                    h.update(b"|g:" + name.encode() + b"=" + self.ref(func.__globals__[name]))
            if func.__closure__:
                for name, cell in zip(func.__code__.co_freevars, func.__closure__, strict=False):
                    try:
                        contents = cell.cell_contents
                    except ValueError:
                        continue
                    h.update(b"|c:" + name.encode() + b"=" + self.ref(contents))
            if func.__defaults__:
                h.update(b"|d:" + self.ref(func.__defaults__))
            if func.__kwdefaults__:
                h.update(b"|k:" + self.ref(func.__kwdefaults__))
            digest = h.digest()[:DIGEST_SIZE]
            if not self.cut:
                _memo[func] = digest
            return digest
        finally:
            self.active.discard(id(func))
            self.cut = self.cut or outer_cut

    def klass(self, cls: type) -> bytes:
        cached = _memo.get(cls)
        if cached is not None:
            return cached
        if id(cls) in self.active:
            self.cut = True
            return f"cycle:{qualified_name(cls)}".encode()
        self.active.add(id(cls))
        outer_cut, self.cut = self.cut, False
        try:
            h = hashlib.sha256(b"K" + qualified_name(cls).encode())
            source = normalized_source(cls)
            if source:
                h.update(source.encode())
            for attr in sorted(vars(cls)):
                value = vars(cls)[attr]
                func = getattr(value, "__func__", value)  # static/class methods
                if isinstance(func, types.FunctionType) and func.__qualname__.startswith(
                    cls.__qualname__
                ):
                    globals_ = func.__globals__
                    for name in sorted(_code_names(func.__code__)):
                        if name in globals_ and globals_[name] is not cls:
                            h.update(b"|g:" + name.encode() + b"=" + self.ref(globals_[name]))
                    if not source:
                        h.update(_bytecode_fingerprint(func.__code__))
            for base in cls.__bases__:
                h.update(b"|b:" + self.ref(base))
            digest = h.digest()[:DIGEST_SIZE]
            if not self.cut:
                _memo[cls] = digest
            return digest
        finally:
            self.active.discard(id(cls))
            self.cut = self.cut or outer_cut

    def ref(self, obj: Any) -> bytes:
        """What a referenced object contributes to the hash of the code using it."""
        task_name = getattr(type(obj), "__lazyflow_task_ref__", None)
        if task_name is not None:
            return b"task:" + obj.__lazyflow_task_ref__().encode()
        if isinstance(obj, types.ModuleType):
            if _module_is_external(obj.__name__):
                return b"mod:" + _distribution_version(obj.__name__).encode()
            return b"mod:" + obj.__name__.encode()
        if isinstance(obj, types.FunctionType):
            if _module_is_external(obj.__module__):
                return f"ext:{obj.__module__}.{obj.__qualname__}@".encode() + (
                    _distribution_version(obj.__module__).encode()
                )
            return self.function(obj)
        if isinstance(obj, type):
            if _module_is_external(obj.__module__):
                return f"ext:{qualified_name(obj)}@".encode() + (
                    _distribution_version(obj.__module__).encode()
                )
            return self.klass(obj)
        if isinstance(obj, types.BuiltinFunctionType | types.MethodType):
            owner = getattr(obj, "__module__", None) or type(obj).__module__
            return f"ext:{owner}.{getattr(obj, '__qualname__', '?')}".encode()
        if isinstance(obj, functools.partial):
            return b"partial:" + self.ref(obj.func) + self.ref((obj.args, obj.keywords))
        if isinstance(obj, tuple | list) and any(callable(x) for x in obj):
            return b"seq:" + b"".join(self.ref(x) for x in obj)
        try:
            return b"val:" + hash_value(obj).encode()
        except (UnhashableValue, TypeError):
            return b"type:" + qualified_name(type(obj)).encode()


def function_hash(func: Any) -> str:
    """Hex hash of a function (or other callable) and the user's code it reaches."""
    if isinstance(func, types.FunctionType):
        return _CodeHasher().function(func).hex()
    return code_ref_hash(func)


def dependency_hashes(func: Any) -> dict[str, str]:
    """``{name: hash}`` of each global and closure variable a function refers to.

    Stored with each task version, so ``explain`` can say *which* helper, constant or
    class changed when a task's own source did not.
    """
    if not isinstance(func, types.FunctionType):
        return {}
    hasher = _CodeHasher()
    out = {}
    for name in sorted(_code_names(func.__code__)):
        if name in func.__globals__:
            out[name] = hashlib.sha256(hasher.ref(func.__globals__[name])).hexdigest()[:16]
    if func.__closure__:
        for name, cell in zip(func.__code__.co_freevars, func.__closure__, strict=False):
            try:
                out[name] = hashlib.sha256(hasher.ref(cell.cell_contents)).hexdigest()[:16]
            except ValueError:
                continue
    return out


def code_ref_hash(obj: Any) -> str:
    """Hex hash of anything a task may list in ``hash_includes`` (code or value)."""
    return hashlib.sha256(_CodeHasher().ref(obj)).digest()[:DIGEST_SIZE].hex()
