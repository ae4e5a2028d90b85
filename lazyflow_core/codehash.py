"""Hashing of code: a task's hash covers everything of the user's own code it reaches.

How it works. A function is fingerprinted by its *normalized* AST (docstrings and the
decorator line removed, no line numbers), so comments, docstrings and formatting do not
count. Then every global name its bytecode refers to (``co_names`` of the function and its
nested code objects), every closure cell and every default value is resolved and folded in:

- the user's own functions and classes (defined in a file that is not in the standard
  library or in site-packages, whether or not its module is in ``sys.modules``) are
  hashed recursively, the same way;
- module-level constants and other plain values are hashed by value; functions and
  classes inside them (``HANDLERS = {"a": helper}``, found by the walker of `values`)
  count as code, like a function referenced directly;
- lazyflow tasks contribute only their name: a task's own code is checked separately
  when a cached parent is validated, so editing a child task never changes its parent's
  hash (only the child and its consumers re-run);
- third-party functions, classes and modules contribute their distribution's version.

Reference cycles between helpers are cut by name. A result computed with a cut is not
memoized, so the hash of a function never depends on which function was hashed first.

Hashes are memoized for one *epoch* only (`new_epoch`: every ``Scheduler.run`` starts
one), never for the process: a notebook cell that sets ``FACTOR = 4`` or rebinds a helper
is seen by the next run. Recomputing is O(distinct tasks) per run and cheap, because the
expensive part, parsing a function's source into its normalized AST, is memoized by code
object (`_sources`): a code object never changes, and a redefined function has a new one.
A class's is memoized while its file is unchanged (`_class_sources`). Sources are read
without the tokenizer (`sourcetext`), and third-party versions without importlib's map of
every installed distribution (`distributions`).
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import site
import sys
import sysconfig
import types
import weakref
from typing import Any

from .distributions import distribution_version
from .errors import ValueNestingError
from .hashing import (
    DIGEST_SIZE,
    UnhashableValue,
    hash_value,
    qualified_name,
    register_hasher,
)
from .sourcetext import class_file_version, parsed_source
from .values import LEAF, Walk, container_kind

_memo: dict[object, bytes] = {}
"""Code hashes of functions and classes, valid in the current epoch only."""
_epoch = 0
_sources: weakref.WeakKeyDictionary[types.CodeType, tuple[str, str | None]]
_sources = weakref.WeakKeyDictionary()
"""(file, normalized source) of a function by its code object: code objects compare by
value, so an edited function (other bytecode, constants, names or lines) misses."""
_class_sources: weakref.WeakKeyDictionary[type, tuple[object, str | None]]
_class_sources = weakref.WeakKeyDictionary()
"""(file version, normalized source) of a class: a class has no code object to key it
by, so it is kept while its file is unchanged (`sourcetext.class_file_version`)."""


def new_epoch() -> int:
    """Forget the code hashes computed so far: the code may have changed since (a run
    starts an epoch, see the module docstring). Returns the new epoch's number."""
    global _epoch
    _memo.clear()
    _epoch += 1
    return _epoch


def epoch() -> int:
    """The current epoch: a hash computed in an earlier one must be computed again."""
    return _epoch


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


_OWN_PACKAGES = frozenset({"builtins", "lazyflow_core", "lazyflow_airflow", "lazyflow_prefect"})


def _module_is_external(module_name: str, filename: str | None = None) -> bool:
    """Whether code of `module_name` is someone else's (stdlib, site-packages, lazyflow
    itself): hashed by its distribution's version, not by its source.

    Decided by where the module's file lives, never by whether it is in `sys.modules`: a
    helper from a module loaded by path with importlib (``spec_from_file_location``, not
    registered) is the user's own code, found by `filename`, the file that defined it.
    """
    top = module_name.split(".", 1)[0]
    if top in sys.stdlib_module_names or top in _OWN_PACKAGES:
        return True
    module = sys.modules.get(module_name)
    if module is not None:
        filename = getattr(module, "__file__", None)
    if filename is None:
        return module_name != "__main__"
    return _file_is_external(filename)


@functools.cache
def _file_is_external(filename: str) -> bool:
    return filename.startswith(_external_prefixes())


def _defining_file(obj: Any) -> str | None:
    """The source file of a function or class, read from its code (a class: from one of
    its methods), so it is known even when its module is not in `sys.modules`."""
    code = getattr(obj, "__code__", None)
    if isinstance(code, types.CodeType):
        return code.co_filename
    if isinstance(obj, type):
        for member in vars(obj).values():
            member = getattr(member, "__func__", member)
            code = getattr(member, "__code__", None)
            if isinstance(code, types.CodeType):
                return code.co_filename
    return None


def _is_external(obj: Any) -> bool:
    """`_module_is_external` for the module a function or class was defined in."""
    return _module_is_external(obj.__module__, _defining_file(obj))


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
    tree = parsed_source(obj)
    if tree is None or not tree.body:
        return None
    node = tree.body[0]
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        node.decorator_list = []
    elif getattr(obj, "__name__", "") == "<lambda>":
        return None  # a lambda's source line may hold unrelated code; use bytecode
    _strip_docstrings(node)
    return ast.dump(node, annotate_fields=False, include_attributes=False)


def _function_source(func: types.FunctionType) -> str | None:
    """`normalized_source` of a function, parsed once per code object."""
    code = func.__code__
    known = _sources.get(code)
    if known is not None and known[0] == code.co_filename:
        return known[1]
    source = normalized_source(func)
    _sources[code] = (code.co_filename, source)
    return source


def _class_source(cls: type) -> str | None:
    """`normalized_source` of a class, parsed once per version of its file (a class's
    hash is computed in every run; dumping a big class's tree costs ~1 ms per 100 lines)."""
    if hasattr(cls, "__wrapped__"):  # its source is another object's: not kept
        return normalized_source(cls)
    version = class_file_version(cls)
    known = _class_sources.get(cls)
    if version is not None and known is not None and known[0] is version:
        return known[1]
    source = normalized_source(cls)
    if version is not None:
        with contextlib.suppress(TypeError):  # (a class that refuses weak references)
            _class_sources[cls] = (version, source)
    return source


def readable_source(obj: Any) -> str:
    """Source text with docstrings removed (for the store and for ``explain`` diffs)."""
    tree = parsed_source(obj)
    if tree is None:
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
            source = _function_source(func)
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
                h.update(b"|d:" + self.ref(_file_paths(func.__defaults__)))
            if func.__kwdefaults__:
                h.update(b"|k:" + self.ref(_file_paths(func.__kwdefaults__)))
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
            source = _class_source(cls)
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
            if _module_is_external(obj.__name__, getattr(obj, "__file__", None)):
                return b"mod:" + distribution_version(obj.__name__).encode()
            return b"mod:" + obj.__name__.encode()
        if isinstance(obj, types.FunctionType):
            if _is_external(obj):
                return f"ext:{obj.__module__}.{obj.__qualname__}@".encode() + (
                    distribution_version(obj.__module__).encode()
                )
            return self.function(obj)
        if isinstance(obj, type):
            if _is_external(obj):
                return f"ext:{qualified_name(obj)}@".encode() + (
                    distribution_version(obj.__module__).encode()
                )
            return self.klass(obj)
        if isinstance(obj, types.BuiltinFunctionType | types.MethodType):
            owner = getattr(obj, "__module__", None) or type(obj).__module__
            return f"ext:{owner}.{getattr(obj, '__qualname__', '?')}".encode()
        if isinstance(obj, functools.partial):
            return b"partial:" + self.ref(obj.func) + self.ref((obj.args, obj.keywords))
        return self.value(obj)

    def value(self, obj: Any) -> bytes:
        """A value's contribution: its hash, with the code inside it hashed as code.

        Functions and classes held in containers (``HANDLERS = {"a": helper}``) are found
        by the same walker that finds expressions and files (see `values`), and each is
        replaced by the hash of its code before the container is hashed by value.
        """
        try:
            if container_kind(type(obj)) != LEAF and _CODE.contains(obj):
                obj = _CODE.replace(obj, lambda code: _CodeRef(self.ref(code)))
            return b"val:" + hash_value(obj).encode()
        except (UnhashableValue, ValueNestingError, TypeError):
            return b"type:" + qualified_name(type(obj)).encode()


class _PathRef:
    """Stands for a value that says how it counts in a code hash (``File`` and ``Dir``:
    their path only, ``__lazyflow_code_hash__``) inside a function's defaults.

    A default is bound into the call's arguments, where its content is hashed: editing
    the file is a change of data (the argument), not of code (DESIGN.md "Trust").
    """

    __slots__ = ("digest",)

    def __init__(self, digest: str) -> None:
        self.digest = digest

    def __lazyflow_hash__(self) -> str:
        return self.digest


_PATH_VALUES = Walk(lambda cls: hasattr(cls, "__lazyflow_code_hash__"))


def _file_paths(defaults: Any) -> Any:
    """`defaults` with each File or Dir replaced by its path (see `_PathRef`)."""
    if not _PATH_VALUES.contains(defaults):
        return defaults
    return _PATH_VALUES.replace(defaults, lambda v: _PathRef(v.__lazyflow_code_hash__()))


class _CodeRef:
    """Stands for a function or class inside a container: hashed as its code hash."""

    __slots__ = ("digest",)

    def __init__(self, digest: bytes) -> None:
        self.digest = digest

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _CodeRef) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    def __lazyflow_hash__(self) -> str:
        return self.digest.hex()


_CODE_TYPES = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.ModuleType,
    functools.partial,
    type,  # the class of a class: classes are code
)
_CODE = Walk(lambda cls: issubclass(cls, _CODE_TYPES) or hasattr(cls, "__lazyflow_task_ref__"))
"""Finds what `_CodeHasher.ref` hashes as code (functions, classes, tasks...) in values."""


def function_hash(func: Any) -> str:
    """Hex hash of a function (or other callable) and the user's code it reaches."""
    if isinstance(func, types.FunctionType):
        return _CodeHasher().function(func).hex()
    return code_ref_hash(func)


def dependency_hashes(func: Any) -> dict[str, str]:
    """``{name: hash}`` of each global and closure variable a function refers to, and
    of those the user's own helpers it calls refer to (`_reached`).

    Stored with each task version, so ``explain`` can say *which* helper, constant or
    class changed when a task's own source did not (also a constant read by a helper).
    """
    hasher = _CodeHasher()
    return {name: hashlib.sha256(hasher.ref(obj)).hexdigest()[:16] for name, obj in _reached(func)}


MAX_HELPER_DEPTH = 8
"""How many helper calls deep `_reached` looks for the names helpers refer to."""


def _refs(func: types.FunctionType) -> list[tuple[str, Any]]:
    """The global and closure variables `func`'s code refers to."""
    refs = [(n, func.__globals__[n]) for n in _code_names(func.__code__) if n in func.__globals__]
    if func.__closure__:
        for name, cell in zip(func.__code__.co_freevars, func.__closure__, strict=False):
            with contextlib.suppress(ValueError):
                refs.append((name, cell.cell_contents))
    return refs


def _reached(func: Any) -> list[tuple[str, Any]]:
    """``(name, object)`` of what a function refers to, and, through the user's own
    helper functions, what they refer to (breadth first, first name wins), sorted."""
    if not isinstance(func, types.FunctionType):
        return []
    out: dict[str, Any] = {}
    seen = {id(func)}
    frontier = [func]
    for _ in range(MAX_HELPER_DEPTH):
        nxt = []
        for f in frontier:
            for name, obj in _refs(f):
                out.setdefault(name, obj)
                if (
                    isinstance(obj, types.FunctionType)
                    and id(obj) not in seen
                    and not _is_external(obj)
                ):
                    seen.add(id(obj))
                    nxt.append(obj)
        if not nxt:
            break
        frontier = nxt
    return sorted(out.items(), key=lambda r: r[0])


MAX_CONSTANT_SOURCE = 2000
"""Characters of a constant's ``repr`` stored as its source (longer ones are cut)."""


def dependency_sources(func: Any) -> dict[str, str]:
    """``{name: source}`` of the user's own helpers, classes and constants a function
    reaches (the names of `dependency_hashes`): stored with each task version, so
    ``explain`` and ``diff`` can show a unified diff of the one that changed. Tasks,
    modules and third-party code have none (a task is checked on its own; the others
    are hashed by their distribution's version)."""
    out = {}
    for name, obj in _reached(func):
        text = _source_of(name, obj)
        if text is not None:
            out[name] = text
    return out


def _source_of(name: str, obj: Any) -> str | None:
    if hasattr(type(obj), "__lazyflow_task_ref__") or isinstance(obj, types.ModuleType):
        return None
    if isinstance(obj, types.FunctionType | type):
        if _is_external(obj):
            return None
        text = readable_source(obj)
        return None if text.startswith("# source not available") else text
    if callable(obj):
        return None
    text = f"{name} = {obj!r}"
    if len(text) > MAX_CONSTANT_SOURCE:
        text = text[:MAX_CONSTANT_SOURCE] + " ..."
    return text


def code_ref_hash(obj: Any) -> str:
    """Hex hash of anything a task may list in ``hash_includes`` (code or value)."""
    return hashlib.sha256(_CodeHasher().ref(obj)).digest()[:DIGEST_SIZE].hex()


# A plain function given as a task argument is hashed by its code, as a task is: editing
# it re-runs the calls it was given to (third-party ones: by name and version).
register_hasher(types.FunctionType, lambda f: function_hash(f).encode())
