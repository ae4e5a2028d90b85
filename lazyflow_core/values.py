"""Values: the one walker over containers, and how values are pickled for the store.

Several parts of lazyflow look *inside* values: the evaluator finds the expressions in a
call's arguments and replaces them by their results, the store finds the `File`s a call
read or returned, the code hasher finds the functions and classes a task reaches through
a constant such as ``HANDLERS = {"a": helper}``. They all walk containers with the same
`Walk`, so they agree on what a container is. The policy, for every use:

- containers are lists, tuples, sets, frozensets and dicts (and subclasses of these),
  namedtuples, dataclass instances, and the types registered with `register_container`
  (`PartialTask` registers its bound arguments);
- a dict's keys are searched like its values;
- any other object is a leaf: the attributes of a plain object are not searched;
- depth is not a limit up to `MAX_DEPTH` nested containers (the walk keeps its own stack,
  so it never raises RecursionError); a deeper value, or a container that contains itself,
  raises `ValueNestingError` instead of being silently cut off.

A `Walk` is built once per use with the types it looks for (its *targets*, say
`Expression`); it learns the role of each class it meets once (target, container kind or
leaf), so the per-call cost is a dict lookup per item. Atoms (ints, strings, ...) are
leaves without a lookup of their own. `replace` returns the very same object when nothing
inside it was replaced, so a million calls' argument tuples are not copied.

This module imports only `errors`: it sits right above `hashing` (see DESIGN.md), below
files, expressions and tasks, which build their walks from it.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import pickle
from collections.abc import Callable, Iterable, Sequence
from itertools import chain
from typing import Any

from .errors import ValueNestingError

MAX_DEPTH = 10_000
"""Containers nested deeper than this (or one containing itself) raise ValueNestingError."""
_SHALLOW = 8  # levels of lists/tuples searched by recursion before the walk's own stack

ATOMS = frozenset({type(None), bool, int, float, complex, str, bytes})
"""Types that are never containers: every walk skips them without learning anything."""

# Roles of a class in one walk. Containers have a kind; LEAF and TARGET are not walked.
LEAF, TARGET, LIST, TUPLE, NAMEDTUPLE, SET, DICT, DATACLASS, CUSTOM = range(9)

Children = Callable[[Any], Iterable[Any]]
Rebuild = Callable[[Any, list[Any]], Any]

_custom: dict[type, tuple[Children, Rebuild]] = {}
_walks: list[Walk] = []
_MISSING = object()  # a dataclass field that was never set (init=False, no default)


def register_container(cls: type, children: Children, rebuild: Rebuild) -> None:
    """Make instances of `cls` containers for every walk.

    ``children(obj)`` lists the values inside `obj`, always in the same order;
    ``rebuild(obj, new_children)`` makes a copy of `obj` holding `new_children` (called
    only when one of them was replaced).
    """
    _custom[cls] = (children, rebuild)
    for walk in _walks:
        walk.forget(cls)


def container_kind(cls: type) -> int:
    """The container kind of a class (LEAF if its instances are not containers)."""
    if cls in ATOMS or issubclass(cls, type | enum.Enum | str | bytes | bytearray):
        return LEAF
    for base in cls.__mro__:
        if base in _custom:
            return CUSTOM
    if issubclass(cls, tuple):
        return NAMEDTUPLE if hasattr(cls, "_fields") else TUPLE
    if issubclass(cls, list):
        return LIST
    if issubclass(cls, set | frozenset):
        return SET
    if issubclass(cls, dict):
        return DICT
    if dataclasses.is_dataclass(cls):
        return DATACLASS
    return LEAF


_field_names: dict[type, tuple[str, ...]] = {}


def _fields(cls: type) -> tuple[str, ...]:
    names = _field_names.get(cls)
    if names is None:
        names = _field_names[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def _children(value: Any, kind: int) -> Iterable[Any]:
    if kind == DICT:
        return chain.from_iterable(value.items())  # key, value, key, value...
    if kind == DATACLASS:
        return [getattr(value, name, _MISSING) for name in _fields(type(value))]
    if kind == CUSTOM:
        for base in type(value).__mro__:
            if base in _custom:
                return _custom[base][0](value)
    return value  # the sequences and sets


def _rebuild(value: Any, kind: int, items: list[Any]) -> Any:
    cls = type(value)
    if kind == LIST:
        if cls is list:
            return items
        new = copy.copy(value)
        new[:] = items
        return new
    if kind == TUPLE:
        return tuple(items) if cls is tuple else cls(items)
    if kind == NAMEDTUPLE:
        return cls._make(items)
    if kind == SET:
        return cls(items)
    if kind == DICT:
        pairs = zip(items[::2], items[1::2], strict=True)
        if cls is dict:
            return dict(pairs)
        new = copy.copy(value)  # keeps a subclass's own state (defaultdict's factory)
        new.clear()
        new.update(pairs)
        return new
    if kind == DATACLASS:
        new = copy.copy(value)
        for name, item in zip(_fields(cls), items, strict=True):
            if item is not _MISSING:
                object.__setattr__(new, name, item)  # frozen dataclasses too
        return new
    for base in cls.__mro__:
        if base in _custom:
            return _custom[base][1](value, items)
    raise AssertionError(f"not a container kind: {kind}")  # pragma: no cover


def _too_deep(value: Any) -> ValueNestingError:
    return ValueNestingError(
        f"a {type(value).__qualname__} value is nested more than {MAX_DEPTH} containers "
        "deep, or contains itself, so lazyflow cannot search it for expressions and files. "
        "Flatten the structure, or keep it in an object of your own class (its attributes "
        "are not searched)."
    )


class _Found(Exception):
    """Raised by `_First.append`: `contains` stops at the first target."""


class _First(list[Any]):
    __slots__ = ()

    def append(self, item: Any) -> None:
        raise _Found


class Walk:
    """A search of values for instances of target classes, under the one policy above.

    `is_target(cls)` says whether instances of `cls` are what this walk looks for; targets
    are never searched inside. The loops below are written out for speed: they run for
    every call's arguments and every task's result. ``roles`` is an exact dict, not one
    with ``__missing__``: CPython specializes lookups in exact dicts, and a miss (a class
    met for the first time, see `role`) is rare.
    """

    def __init__(self, is_target: Callable[[type], bool]) -> None:
        self.is_target = is_target
        self.roles: dict[type, int] = {t: TARGET if is_target(t) else LEAF for t in ATOMS}
        _walks.append(self)

    def role(self, cls: type) -> int:
        """Classify a class met for the first time."""
        role = TARGET if self.is_target(cls) else container_kind(cls)
        self.roles[cls] = role
        return role

    def forget(self, cls: type) -> None:
        """Classify `cls` (and its subclasses) again when next met."""
        for known in list(self.roles):
            if known not in ATOMS and issubclass(known, cls):
                del self.roles[known]

    # -- searching -------------------------------------------------------------------
    def find(self, value: Any, out: list[Any]) -> None:
        """Append every target inside `value` to `out`, depth first, left to right."""
        try:
            role = self.roles[type(value)]
        except KeyError:
            role = self.role(type(value))
        if role == TARGET:
            out.append(value)
        elif role:
            self._find_in(value, role, out, 0)

    def _find_in(self, value: Any, role: int, out: list[Any], depth: int) -> None:
        # Lists and tuples a few levels deep (a call's ``(args, kwargs)``) are searched by
        # plain recursion, which is cheapest; anything else by `_find_deep`'s own stack.
        if role > TUPLE or depth > _SHALLOW:
            if role != DICT or value:
                self._find_deep(value, role, out)
            return
        roles = self.roles
        append = out.append
        for item in value:
            try:
                r = roles[type(item)]
            except KeyError:
                r = self.role(type(item))
            if not r:  # LEAF
                continue
            if r == TARGET:
                append(item)
            elif r <= TUPLE:
                self._find_in(item, r, out, depth + 1)
            elif r != DICT or item:
                self._find_deep(item, r, out)

    def _find_deep(self, value: Any, role: int, out: list[Any]) -> None:
        roles = self.roles
        append = out.append
        stack = [iter(_children(value, role))]
        while stack:
            for item in stack[-1]:
                try:
                    r = roles[type(item)]
                except KeyError:
                    r = self.role(type(item))
                if r == TARGET:
                    append(item)
                elif r:
                    if len(stack) >= MAX_DEPTH:
                        raise _too_deep(value)
                    stack.append(iter(_children(item, r)))
                    break
            else:
                stack.pop()

    def found(self, value: Any) -> list[Any]:
        """The targets inside `value` (see `find`)."""
        out: list[Any] = []
        self.find(value, out)
        return out

    def contains(self, value: Any) -> bool:
        """True if `value` is or holds a target."""
        try:
            role = self.roles[type(value)]
        except KeyError:
            role = self.role(type(value))
        if role == TARGET:
            return True
        if not role:
            return False
        try:
            self._find_deep(value, role, _First())
        except _Found:
            return True
        return False

    # -- replacing -------------------------------------------------------------------
    def replace(self, value: Any, fn: Callable[[Any], Any]) -> Any:
        """`value` with every target `t` inside it replaced by ``fn(t)``.

        Containers holding no target are returned as they are (not copied); the others
        are rebuilt with the same type (see `register_container` for other types).
        """
        roles = self.roles
        try:
            role = roles[type(value)]
        except KeyError:
            role = self.role(type(value))
        if role == TARGET:
            return fn(value)
        if not role:
            return value
        return self._replace_in(value, role, fn, 0)

    def _replace_in(self, value: Any, role: int, fn: Callable[[Any], Any], depth: int) -> Any:
        # As `_find_in`: shallow lists and tuples by recursion, the rest with a stack.
        if role > TUPLE or depth > _SHALLOW:
            if role == DICT and not value:
                return value
            return self._replace_deep(value, role, fn)
        roles = self.roles
        items: list[Any] = []
        append = items.append
        changed = False
        for item in value:
            try:
                r = roles[type(item)]
            except KeyError:
                r = self.role(type(item))
            if not r:  # LEAF
                append(item)
            elif r == TARGET:
                append(fn(item))
                changed = True
            else:
                new = self._replace_in(item, r, fn, depth + 1)
                append(new)
                changed = changed or new is not item
        return _rebuild(value, role, items) if changed else value

    def _replace_deep(self, value: Any, role: int, fn: Callable[[Any], Any]) -> Any:
        roles = self.roles
        # One level per entry: [container, kind, iterator over its children, new children,
        # whether any child changed]. A finished level is rebuilt (if changed) and handed
        # to the level below, so the walk needs no recursion.
        stack: list[list[Any]] = [[value, role, iter(_children(value, role)), [], False]]
        while True:
            level = stack[-1]
            append = level[3].append
            for item in level[2]:
                try:
                    r = roles[type(item)]
                except KeyError:
                    r = self.role(type(item))
                if r == TARGET:
                    append(fn(item))
                    level[4] = True
                elif r:
                    if len(stack) >= MAX_DEPTH:
                        raise _too_deep(value)
                    stack.append([item, r, iter(_children(item, r)), [], False])
                    break
                else:
                    append(item)
            else:
                stack.pop()
                done = _rebuild(level[0], level[1], level[3]) if level[4] else level[0]
                if not stack:
                    return done
                below = stack[-1]
                below[3].append(done)
                if done is not level[0]:
                    below[4] = True


def is_instance_of(*classes: type) -> Callable[[type], bool]:
    """A target predicate for `Walk`: the given classes and their subclasses."""
    return lambda cls: issubclass(cls, classes)


def dumps_value(value: Any) -> bytes:
    """Pickle a value for the store; cloudpickle handles lambdas and local classes.

    Results and argument values go through here alike, so an argument whose class was
    defined inside a function is stored as well as such a result.
    """
    try:
        return pickle.dumps(value, protocol=5)
    except Exception:
        import cloudpickle

        return cloudpickle.dumps(value, protocol=5)


__all__: Sequence[str] = (
    "ATOMS",
    "MAX_DEPTH",
    "Walk",
    "container_kind",
    "dumps_value",
    "is_instance_of",
    "register_container",
)
