"""Reading stored values back: bytes checked before anything unpickles them.

Unpickling runs whatever code a pickle names, and a shared store's rows can be written
by others, so every path that turns stored bytes into an object goes through here:

- `read_values` fetches the bytes of many values (database rows or blobs) and checks
  each against its seal (`signing.check`); what fails is an `Unreadable` saying why,
  never an exception: for a run it is a cache miss.
- `load_value` unpickles one value that passed the check; the verified-load API of
  read-only tools (``lazyflow lineage --values``, the provenance browser) is
  ``load_value(store, h, signed_only=True)``: only values signed with a key the reader
  holds are unpickled.
- `plain_data` decodes a pickle of built-in data only (numbers, strings, bytes, lists,
  tuples, dicts, sets) and refuses anything that names a class or function, so it can
  never run code: read-only commands use it to look inside containers without asking.
- `DryRunReader` is the store as a dry run (``explain``) reads cached results: values
  that are data (built-in data, `File`, `Dir`: `safe_data` decodes them without running
  anything) as a run would, others only when asked and signed, else `Withheld`.
"""

from __future__ import annotations

import io
import logging
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from .blobs import BlobError
from .signing import MissingValue, UnverifiedValue, check, check_signed

if TYPE_CHECKING:
    from .sql import Store

log = logging.getLogger("lazyflow.store")


@dataclass(frozen=True, slots=True)
class Unreadable:
    """Why a stored value cannot be used (read after "cannot be loaded: ")."""

    reason: str
    # True for a value that is fine but that this reader chose not to unpickle
    withheld: ClassVar[bool] = False

    def __str__(self) -> str:
        return self.reason


class Withheld(Unreadable):
    """A value a dry run does not unpickle (it may well load in a run): not damage."""

    __slots__ = ()
    withheld: ClassVar[bool] = True


def read_values(
    store: Store, value_hashes: Sequence[str], *, signed_only: bool = False
) -> dict[str, bytes | Unreadable]:
    """The checked bytes of each stored value, or why it cannot be used.

    Values with no row are absent from the result. With `signed_only`, a value must carry
    a signature by one of the store's keys (`signing.check_signed`); otherwise the run's
    rule applies (`signing.check`: signed when the store has keys, else a matching
    checksum where one was recorded).
    """
    rows = store._select_in(
        "SELECT hash, data, blob, signature FROM lf_values WHERE hash IN ({marks})",
        value_hashes,
    )
    verify = check_signed if signed_only else check
    keys = store.signing
    out: dict[str, bytes | Unreadable] = {}
    for value_hash, data, blob, seal in rows:
        # SQLite gives a row's bytes as bytes: no copy, no call (once per cache hit)
        raw = data if type(data) is bytes else _raw(store, data, blob)
        if isinstance(raw, Unreadable):
            out[value_hash] = raw
            continue
        problem = verify(keys, value_hash, raw, seal)
        out[value_hash] = raw if problem is None else Unreadable(problem)
    return out


def _raw(store: Store, data: Any, blob: str | None) -> bytes | Unreadable:
    if data is not None:
        return bytes(data)
    if not blob:
        return Unreadable("it was recorded without its bytes (it could not be pickled)")
    if store.blobs is None:
        return Unreadable(
            f"it is in blob {blob}, and this store has no blob root (set LAZYFLOW_BLOBS)"
        )
    try:
        raw = store.blobs.get(blob)
    except BlobError as exc:
        return Unreadable(f"its blob cannot be read ({exc})")
    return Unreadable(f"its blob {blob} is gone") if raw is None else raw


def load_value(store: Store, value_hash: str, *, signed_only: bool = False) -> Any:
    """The stored value with this hash, unpickled once its bytes passed the check.

    Raises `MissingValue` (a `StoreError` and a `KeyError`) when the store has no such
    value and `UnverifiedValue` (a `StoreError`) when it has one that may not or cannot
    be loaded.
    """
    store.ensure_schema()
    got = read_values(store, [value_hash], signed_only=signed_only).get(value_hash)
    if got is None:
        raise MissingValue(
            f"no value {value_hash!r} in this store: check the hash (`lazyflow "
            "log EXECUTION` lists the calls and their results), or whether `lazyflow gc` "
            "deleted it; re-run the workflow that makes it to store it again"
        )
    if isinstance(got, Unreadable):
        raise UnverifiedValue(f"stored value {value_hash[:12]} cannot be loaded: {got}")
    try:
        return pickle.loads(got)
    except Exception as exc:
        raise UnverifiedValue(
            f"stored value {value_hash[:12]} cannot be loaded: {type(exc).__name__}: {exc}"
        ) from exc


class _PlainUnpickler(pickle.Unpickler):
    """Refuses every global but three built-in types whose construction from data runs
    nothing else (older protocols pickle sets and frozensets by name): nothing else a
    pickle names can be called (REDUCE, BUILD and NEWOBJ need such an object first)."""

    ALLOWED = frozenset({("builtins", "set"), ("builtins", "frozenset"), ("builtins", "complex")})

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not plain data")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not plain data")


def plain_data(data: bytes) -> Any:
    """Decode a pickle of built-in data (None, bools, numbers, complex, str, bytes,
    bytearray, lists, tuples, dicts, sets, frozensets); `pickle.UnpicklingError` for
    anything else.

    Safe on untrusted bytes as far as code goes: the only way a pickle runs code is by
    naming a callable, and every name is refused here.
    """
    return _PlainUnpickler(io.BytesIO(data)).load()


class _DataUnpickler(_PlainUnpickler):
    """Plain data, `File` and `Dir` too: a pickle can only make one with ``File.__new__``
    and its ``__setstate__``, which store the path and a flag and run nothing else."""

    ALLOWED = _PlainUnpickler.ALLOWED | {
        ("lazyflow_core.files", "File"),
        ("lazyflow_core.files", "Dir"),
    }


class _ExpressionUnpickler(_DataUnpickler):
    """Data, `File`, `Dir`, calls of tasks named by reference (looked up in the live
    registry, never rebuilt from the pickle): ``CallExpression(task, args, kwargs)``
    only stores its arguments, so decoding a stored call expression runs nothing."""

    ALLOWED = _DataUnpickler.ALLOWED | {
        ("lazyflow_core.expression", "CallExpression"),
        ("lazyflow_core.reductions", "live_task"),  # looks a task up by name, runs nothing
    }

    def persistent_load(self, pid: Any) -> Any:
        from ..reductions import live_task

        return live_task(pid)


def safe_expression(data: bytes) -> Any:
    """Decode a stored returned expression (`lazyflow_core.reductions`) made only of calls
    and data; `pickle.UnpicklingError` (or `ExpressionUnusable`) for anything else."""
    return _ExpressionUnpickler(io.BytesIO(data)).load()


def load_expressions(
    store: Store, call_hashes: Sequence[str], decode: Callable[[bytes], Any]
) -> dict[str, Any]:
    """``{call_hash: expression}``: the stored returned expression of each of these calls
    that has one that passes the store's check and decodes with `decode`; the others are
    left out (their bodies run)."""
    found = store.lookup_reductions(call_hashes)
    datas = read_values(store, sorted(set(found.values()))) if found else {}
    out: dict[str, Any] = {}
    for call_hash, value_hash in found.items():
        data = datas.get(value_hash)
        if not isinstance(data, bytes):
            continue
        try:
            out[call_hash] = decode(data)
        except Exception as exc:  # a task it names is not loaded, refused, or damaged
            log.debug("lazyflow: stored expression of call %s unusable: %s", call_hash[:12], exc)
    return out


def safe_data(data: bytes) -> Any:
    """Decode a pickle of plain data (`plain_data`) or of `File` and `Dir` objects, in any
    containers; `pickle.UnpicklingError` for anything else. As safe on untrusted bytes."""
    return _DataUnpickler(io.BytesIO(data)).load()


WITHHELD = (
    "a dry run unpickles stored values other than built-in data, File and Dir only when "
    "asked (--values), and then only signed ones"
)


def dry_run_values(
    store: Store, value_hashes: Sequence[str], *, signed: bool = False
) -> dict[str, bytes | Unreadable]:
    """The checked bytes a dry run may unpickle: a value that is data (`safe_data` decodes
    it, so unpickling it runs nothing) and, with `signed`, a value signed with one of the
    store's keys. Any other value is `Withheld`, and its bytes are never unpickled."""
    out = read_values(store, value_hashes)
    others = []
    for value_hash, data in out.items():
        if isinstance(data, bytes):
            try:
                safe_data(data)
            except Exception:  # names another class, or is damaged: a run would tell
                others.append(value_hash)
    verified = read_values(store, others, signed_only=True) if signed and others else {}
    for value_hash in others:
        got = verified.get(value_hash)
        if isinstance(got, bytes):
            out[value_hash] = got
        else:
            why = f"{got}; " if got is not None else ""
            out[value_hash] = Withheld(f"not loaded: {why}{WITHHELD}")
    return out


class DryRunReader:
    """The store as a dry run's cache lookups read it (`lookups.StoreReader`): calls,
    task versions and validation sets as a run sees them, values from `dry_run_values`.

    A dry run (``lazyflow explain``) is a read-only command: pointed at a shared store,
    it must not run code that someone planted in a stored pickle. A cached call whose
    value it may not load is still reported as cached; what needs its value is unknown.
    """

    def __init__(self, store: Store, *, signed: bool = False) -> None:
        self.store = store
        self.signed = signed

    def tasks_with_calls(self, task_hashes: Sequence[str]) -> set[str]:
        return self.store.tasks_with_calls(task_hashes)

    def lookup_calls(self, call_hashes: Sequence[str]) -> dict[str, tuple[str, str]]:
        return self.store.lookup_calls(call_hashes)

    def load_validation_sets(
        self, hashes: Sequence[str]
    ) -> dict[str, tuple[list[list[str]], list[list[Any]]]]:
        return self.store.load_validation_sets(hashes)

    def load_value_data(self, value_hashes: Sequence[str]) -> dict[str, bytes | object]:
        return dict(dry_run_values(self.store, value_hashes, signed=self.signed))

    def load_expressions(self, call_hashes: Sequence[str]) -> dict[str, Any]:
        """Stored returned expressions made of calls and data only (`safe_expression`):
        a dry run sees below a parent whose task below changed without unpickling code."""
        return load_expressions(self.store, call_hashes, safe_expression)
