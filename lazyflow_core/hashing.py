"""Deterministic, type-tagged hashing of values.

A value's hash depends on its value only: not on object identity, process, machine, or the
insertion order of dicts and sets. Every hash is computed over a tagged canonical encoding,
so ``1``, ``1.0``, ``"1"`` and ``True`` all differ, and containers are Merkle nodes over
their elements' digests. That structure is what lets the evaluator reuse the digest of a
task's result (computed once, by the worker) when the result later appears inside another
call's arguments: pass ``known={id(value): digest}`` and the value is not walked again.

This module imports nothing else from lazyflow. Higher layers extend it through
`register_hasher` (files, tasks and functions register themselves) and objects may define
``__lazyflow_hash__(self) -> str`` returning a hex digest.
"""

from __future__ import annotations

import copyreg
import dataclasses
import datetime as _dt
import decimal
import enum
import hashlib
import math
import pathlib
import uuid
from collections.abc import Callable, Mapping
from typing import Any

DIGEST_SIZE = 20
"""Bytes kept from SHA-256: 160 bits is ample for cache keys and keeps rows small."""
_sha256 = hashlib.sha256

Hasher = Callable[[Any], Any]
"""A user hasher returns bytes, or any value that lazyflow can hash (e.g. a tuple)."""

_user_hashers: dict[type, Hasher] = {}


class _Unhashable(Exception):
    """Internal: carries the path to the offending value up through containers."""

    def __init__(self, value: Any, reason: str) -> None:
        super().__init__(reason)
        self.value = value
        self.reason = reason
        self.path: list[str] = []


def digest_bytes(data: bytes | bytearray | memoryview) -> bytes:
    """SHA-256 of raw bytes, truncated to `DIGEST_SIZE`."""
    return hashlib.sha256(data).digest()[:DIGEST_SIZE]


def hash_struct(tag: str, *parts: str | bytes) -> str:
    """Hash a tagged record of strings/bytes, e.g. ``hash_struct("Call", task, args)``.

    Parts are length-prefixed so that ("ab", "c") and ("a", "bc") differ.
    """
    h = hashlib.sha256(tag.encode())
    for part in parts:
        raw = part.encode() if isinstance(part, str) else part
        h.update(len(raw).to_bytes(8, "little"))
        h.update(raw)
    return h.digest()[:DIGEST_SIZE].hex()


class CallKeys:
    """Call hashes of one run, ``hash_struct("Call", task_hash, *parts)`` with each part
    an argument's ``name=digest``, computed without repeating per call what every call
    of a task shares: the SHA-256 state after the tag and the task hash is kept per task
    version and copied, and each argument name's encoded length prefix is kept per name
    (a fan-out hashes a hundred thousand calls of one task with one argument name)."""

    __slots__ = ("_names", "_states")

    def __init__(self) -> None:
        self._states: dict[str, Any] = {}
        self._names: dict[str, bytes] = {}

    def call(self, task_hash: str, digests: list[tuple[str, bytes]]) -> str:
        """``hash_struct("Call", task_hash, *(name.encode() + b"=" + d ...))``."""
        state = self._states.get(task_hash)
        if state is None:
            state = self._states[task_hash] = hashlib.sha256(b"Call")
            raw = task_hash.encode()
            state.update(len(raw).to_bytes(8, "little"))
            state.update(raw)
        h = state.copy()
        names = self._names
        for name, d in digests:
            # the part's length prefix and ``name=``, for a digest of the usual size
            head = names.get(name)
            if head is None:
                raw = name.encode() + b"="
                head = names[name] = (len(raw) + DIGEST_SIZE).to_bytes(8, "little") + raw
            if len(d) == DIGEST_SIZE:
                h.update(head + d)
            else:
                raw = head[8:]
                h.update((len(raw) + len(d)).to_bytes(8, "little") + raw + d)
        return h.digest()[:DIGEST_SIZE].hex()


def register_hasher(cls: type, fn: Hasher) -> None:
    """Teach lazyflow to hash instances of `cls` (and subclasses).

    `fn(obj)` returns bytes or any hashable stand-in (e.g. ``(obj.id, obj.version)``).
    The class's qualified name is part of the hash, so two types never collide.
    """
    _user_hashers[cls] = fn
    _dispatch.pop(cls, None)


def qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def hash_value(value: Any, known: Mapping[int, bytes] | None = None) -> str:
    """Hex digest of a value.

    Raises `UnhashableValue` (a TypeError) naming the path to the offending part, e.g.
    ``[1]['k']``; the evaluator turns it into a `HashingError` naming the task.
    """
    return value_digest(value, known).hex()


class UnhashableValue(TypeError):
    """A value (or a part of it, at `path`) cannot be hashed."""

    def __init__(self, path: str, value: Any, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.value = value
        self.reason = reason


def value_digest(value: Any, known: Mapping[int, bytes] | None = None, root: str = "") -> bytes:
    """Binary digest of a value; `root` prefixes the path in error messages."""
    if type(value) is int:  # the commonest argument: b"i" + str(value), inlined
        return _sha256(b"i%d" % value).digest()[:DIGEST_SIZE]
    prim = _PRIMITIVES.get(type(value))
    if prim is not None:  # most arguments and results: no walker needed
        return hashlib.sha256(prim(value)).digest()[:DIGEST_SIZE]
    try:
        return _Walker(known or {}).digest(value)
    except _Unhashable as exc:
        path = root + "".join(reversed(exc.path))
        raise UnhashableValue(path or "value", exc.value, exc.reason) from None
    except RecursionError:
        raise UnhashableValue(root or "value", value, "nested too deeply to hash") from None


def _tagged(tag: bytes, payload: bytes) -> bytes:
    return hashlib.sha256(tag + payload).digest()[:DIGEST_SIZE]


def _float_bytes(x: float) -> bytes:
    if math.isnan(x):
        return b"nan"
    return float.hex(x).encode()


# Primitive encoders: type -> (tag, encoder). Exact type match keeps bool apart from int.
_PRIMITIVES: dict[type, Callable[[Any], bytes]] = {
    type(None): lambda v: b"N",
    bool: lambda v: b"b1" if v else b"b0",
    int: lambda v: b"i" + str(v).encode(),
    float: lambda v: b"f" + _float_bytes(v),
    complex: lambda v: b"c" + _float_bytes(v.real) + b"," + _float_bytes(v.imag),
    str: lambda v: b"s" + v.encode("utf-8", "surrogatepass"),
}

CHEAP_TO_HASH = frozenset({type(None), bool, int, float, complex})
"""Types hashed again wherever they appear rather than remembered by identity: hashing
one costs about as much as a dict lookup would save, and the evaluator keeps no
``known`` entry for them (a million-call fan-out of ints would hold ~60 MB of entries)."""

_dispatch: dict[type, Callable[[_Walker, Any], bytes]] = {}


class _Walker:
    """One hashing pass. Tracks the objects on the current path to reject cycles."""

    __slots__ = ("active", "known")

    def __init__(self, known: Mapping[int, bytes]) -> None:
        self.known = known
        self.active: set[int] = set()

    def digest(self, value: Any) -> bytes:
        cls = type(value)
        if cls in CHEAP_TO_HASH:  # never in `known`: no lookup
            return hashlib.sha256(_PRIMITIVES[cls](value)).digest()[:DIGEST_SIZE]
        # Other values that calls produced are known (by identity, while alive): a dict
        # lookup instead of hashing, e.g. each string of a fanned-in list of results.
        if self.known:
            hit = self.known.get(id(value))
            if hit is not None:
                return hit
        prim = _PRIMITIVES.get(cls)
        if prim is not None:
            return hashlib.sha256(prim(value)).digest()[:DIGEST_SIZE]
        handler = _dispatch.get(cls)
        if handler is None:
            handler = _resolve_handler(cls)
            _dispatch[cls] = handler
        key = id(value)
        if key in self.active:
            raise _Unhashable(value, "it contains itself (a reference cycle)")
        self.active.add(key)
        try:
            return handler(self, value)
        finally:
            self.active.discard(key)

    def child(self, value: Any, path: str) -> bytes:
        try:
            return self.digest(value)
        except _Unhashable as exc:
            exc.path.append(path)
            raise

    # The containers below name the failing element only on failure: formatting a path
    # (or a repr) for every element would cost more than hashing it.
    def seq(self, tag: bytes, items: Any) -> bytes:  # the tag, then each item's digest
        h = hashlib.sha256(tag)
        update, digest = h.update, self.digest
        i = 0
        try:
            for i, item in enumerate(items):  # noqa: B007 (used by the except clause)
                if type(item) is int:  # a fanned-in list of results: inlined, as above
                    update(_sha256(b"i%d" % item).digest()[:DIGEST_SIZE])
                else:
                    update(digest(item))
        except _Unhashable as exc:
            exc.path.append(f"[{i}]")
            raise
        return h.digest()[:DIGEST_SIZE]

    def unordered(self, tag: bytes, items: Any) -> bytes:
        digests = []
        for item in items:
            try:
                digests.append(self.digest(item))
            except _Unhashable as exc:
                exc.path.append(f"{{{item!r:.40}}}")
                raise
        digests.sort()
        return _tagged(tag, b"".join(digests))

    def mapping(self, tag: bytes, items: Any) -> bytes:
        pairs = []
        for k, v in items:
            try:
                key = self.digest(k)
            except _Unhashable as exc:
                exc.path.append(f"<key {k!r:.40}>")
                raise
            try:
                pairs.append(key + self.digest(v))
            except _Unhashable as exc:
                exc.path.append(f"[{k!r:.40}]")
                raise
        pairs.sort()
        return _tagged(tag, b"".join(pairs))


BULK_BYTES = 1 << 20
"""Buffers at least this large are hashed with multi-threaded BLAKE3 (GB/s), not SHA-256."""


def bulk_digest(tag: bytes, buffer: Any) -> bytes:
    """Digest of a large buffer: BLAKE3 over all cores, tagged apart from small values."""
    import blake3

    inner = blake3.blake3(buffer, max_threads=blake3.blake3.AUTO).digest()
    return _tagged(b"B" + tag, inner)


def _hash_bytes_like(w: _Walker, v: Any) -> bytes:
    if len(v) >= BULK_BYTES:
        return bulk_digest(b"y", v)
    h = hashlib.sha256(b"y")
    h.update(v)
    return h.digest()[:DIGEST_SIZE]


def _hash_list(w: _Walker, v: Any) -> bytes:
    return w.seq(b"l", v)


def list_digest(item_digests: list[bytes]) -> bytes:
    """The digest `value_digest` gives a list whose items have these digests (``seq``
    with the list's tag): a fan-in of results whose digests are known, not walked."""
    return hashlib.sha256(b"l" + b"".join(item_digests)).digest()[:DIGEST_SIZE]


def _hash_tuple(w: _Walker, v: Any) -> bytes:
    return w.seq(b"t", v)


def _hash_set(w: _Walker, v: Any) -> bytes:
    return w.unordered(b"S", v)


def _hash_dict(w: _Walker, v: Any) -> bytes:
    return w.mapping(b"d", v.items())


def _hash_namedtuple(w: _Walker, v: Any) -> bytes:
    head = b"T" + qualified_name(type(v)).encode()
    h = hashlib.sha256(head)
    for name, item in zip(v._fields, v, strict=True):
        h.update(name.encode() + b"=")
        h.update(w.child(item, f".{name}"))
    return h.digest()[:DIGEST_SIZE]


def _hash_dataclass(w: _Walker, v: Any) -> bytes:
    h = hashlib.sha256(b"D" + qualified_name(type(v)).encode())
    for field in dataclasses.fields(v):
        h.update(field.name.encode() + b"=")
        h.update(w.child(getattr(v, field.name), f".{field.name}"))
    return h.digest()[:DIGEST_SIZE]


def _hash_enum(w: _Walker, v: Any) -> bytes:
    return _tagged(b"E", f"{qualified_name(type(v))}.{v.name}".encode())


def _hash_via_str(tag: bytes) -> Callable[[_Walker, Any], bytes]:
    return lambda w, v: _tagged(tag, qualified_name(type(v)).encode() + b":" + str(v).encode())


def _hash_datetime(w: _Walker, v: Any) -> bytes:
    return _tagged(b"dt", qualified_name(type(v)).encode() + b":" + v.isoformat().encode())


def _hash_type(w: _Walker, v: type) -> bytes:
    return _tagged(b"C", qualified_name(v).encode())


def _hash_exception(w: _Walker, v: BaseException) -> bytes:
    return _tagged(b"X", qualified_name(type(v)).encode() + w.child(v.args, ".args"))


def _hash_own(w: _Walker, v: Any) -> bytes:
    own = v.__lazyflow_hash__()
    return _tagged(b"H", qualified_name(type(v)).encode() + b":" + str(own).encode())


def _user_handler(fn: Hasher) -> Callable[[_Walker, Any], bytes]:
    def handler(w: _Walker, v: Any) -> bytes:
        stand_in = fn(v)
        payload = (
            bytes(stand_in)
            if isinstance(stand_in, bytes | bytearray | memoryview)
            else w.digest(stand_in)
        )
        return _tagged(b"U", qualified_name(type(v)).encode() + b":" + payload)

    return handler


def _hash_numpy(w: _Walker, v: Any) -> bytes:
    import numpy as np

    if isinstance(v, np.generic):
        v = np.asarray(v)
    head = f"np:{v.dtype.str}:{v.shape}".encode()
    if v.dtype.hasobject:
        return _tagged(b"A", head + w.child(v.tolist(), ".tolist()"))
    data = np.ascontiguousarray(v).view(np.uint8).data
    if data.nbytes >= BULK_BYTES:
        return bulk_digest(b"A" + head, data)
    h = hashlib.sha256(b"A" + head)
    h.update(data)
    return h.digest()[:DIGEST_SIZE]


def _hash_pandas(w: _Walker, v: Any) -> bytes:
    import pandas as pd

    head = qualified_name(type(v)).encode()
    if isinstance(v, pd.DataFrame):
        meta = w.child(
            [[str(c) for c in v.columns], [str(t) for t in v.dtypes], list(v.index.names)],
            ".columns",
        )
    elif isinstance(v, pd.Series):
        meta = w.child([str(v.name), str(v.dtype), list(v.index.names)], ".name")
    else:  # Index and friends
        return _tagged(b"P", head + w.child(v.tolist(), ".tolist()"))
    rows = pd.util.hash_pandas_object(v, index=True).to_numpy()
    h = hashlib.sha256(b"P" + head + meta)
    h.update(memoryview(rows).cast("B"))
    return h.digest()[:DIGEST_SIZE]


def _hash_reduced(w: _Walker, v: Any) -> bytes:
    """Generic objects: hash what pickle would rebuild them from (class + state)."""
    try:
        reduced = v.__reduce_ex__(4)
    except Exception as exc:
        raise _Unhashable(v, f"{type(v).__name__} cannot be hashed ({exc})") from None
    if isinstance(reduced, str) or not isinstance(reduced, tuple):
        # A module-level singleton pickled by name.
        return _tagged(b"G", qualified_name(type(v)).encode() + b":" + str(reduced).encode())
    ctor, args, *rest = reduced
    if ctor is getattr(copyreg, "__newobj__", None) and args and args[0] is type(v):
        args = args[1:]
    state = rest[0] if rest else None
    h = hashlib.sha256(b"O" + qualified_name(type(v)).encode())
    h.update(w.child(args, ".__args__"))
    h.update(w.child(state, ".__dict__") if state is not None else b"-")
    for extra in rest[1:3]:  # list items / dict items iterators
        if extra is not None:
            h.update(w.child(list(extra), ".__items__"))
    return h.digest()[:DIGEST_SIZE]


_FIXED: dict[type, Callable[[_Walker, Any], bytes]] = {
    bytes: _hash_bytes_like,
    bytearray: _hash_bytes_like,
    memoryview: _hash_bytes_like,
    list: _hash_list,
    tuple: _hash_tuple,
    set: _hash_set,
    frozenset: _hash_set,
    dict: _hash_dict,
    range: _hash_via_str(b"r"),
    decimal.Decimal: _hash_via_str(b"dec"),
    uuid.UUID: _hash_via_str(b"uuid"),
    _dt.timedelta: _hash_via_str(b"td"),
    _dt.timezone: _hash_via_str(b"tz"),
}


def _resolve_handler(cls: type) -> Callable[[_Walker, Any], bytes]:
    for base in cls.__mro__:
        if base in _user_hashers:
            return _user_handler(_user_hashers[base])
    if hasattr(cls, "__lazyflow_hash__"):
        return _hash_own
    if cls in _FIXED:
        return _FIXED[cls]
    if issubclass(cls, tuple) and hasattr(cls, "_fields"):
        return _hash_namedtuple
    if dataclasses.is_dataclass(cls):
        return _hash_dataclass
    if issubclass(cls, enum.Enum):
        return _hash_enum
    if issubclass(cls, _dt.date | _dt.time):
        return _hash_datetime
    if issubclass(cls, pathlib.PurePath):
        return _hash_via_str(b"path")
    if issubclass(cls, type):
        return _hash_type
    if issubclass(cls, BaseException):
        return _hash_exception
    module = cls.__module__.split(".", 1)[0]
    if module == "numpy":
        return _hash_numpy
    if module == "pandas":
        return _hash_pandas
    for base, handler in _FIXED.items():  # subclasses of builtins (e.g. OrderedDict)
        if issubclass(cls, base):
            return handler
    return _hash_reduced
