"""Large results the Dask executor keeps on the cluster for the next call that takes them.

A result whose pickled bytes exceed `dask.SCATTER_BYTES` must still come to lazyflow's
process (its scheduler is the store's only writer), but it need not go out again: the
Dask future of the bundle that produced it is kept (`HeldResults.hold`), so the wires,
with the very bytes the store recorded, stay in the producing worker's memory. When a
later bundle is pickled, `HeldResults.dumper` writes a *reference* (a pickle persistent
id) instead of each held value it meets; the bundle's Dask task depends on the held
futures, Dask moves their data worker to worker, and `resolver` turns a reference back
into the value on the worker.

How a value is recognised: by identity. `hold` maps ``id(value)`` of the object handed
to the evaluator (the one the next call receives as its argument, as the evaluator's
own ``known`` digests are keyed) to the held copy, and keeps that object alive, so an
id is never reused for another object while the entry exists. A digest would need the
evaluator to tell executors its arguments' digests, and hashing a large argument again
to find it would cost what is being saved. A reference stands for the value as the call
returned it (the recorded bytes), also if it was mutated here in place since.

Bounds and correctness:

- Held bundles are released oldest first beyond `budget` bytes (the whole bundle's
  wires stay on the worker while any of its values is held, so it counts whole), and
  all at shutdown. A bundle already submitted with a reference keeps its input: Dask
  releases a key only when its dependents are done.
- A held future that is no longer ``finished`` (cancelled, its worker lost) is not
  referred to: the value is pickled and sent from here, as before.
- A copy lost after the reference was sent may be recomputed by Dask (it recomputes a
  lost key someone holds); the worker then checks the recomputed wire's digest against
  the one recorded, and on a mismatch raises `HeldCopyLost`, on which the executor
  sends the call again with the value itself.
"""

from __future__ import annotations

import io
import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .wire import Wire, _Pickler

_TAG = "lazyflow-held"


class HeldCopyLost(Exception):
    """Worker side: a held value's copy is gone or is not the recorded one; the executor
    then sends the call again with the value itself (never a user-visible error)."""


@dataclass(slots=True)
class _Entry:
    value: Any  # kept alive: its id must not be reused while held
    future: Any  # the Dask future of the producing bundle (a list of wires)
    index: int  # this value's wire in that list
    digest: bytes


@dataclass(slots=True)
class _Bundle:
    future: Any
    nbytes: int
    ids: list[int] = field(default_factory=list)


# A reference as the worker receives it: (the bundle's wires, index, recorded digest).
Ref = tuple[Any, int, bytes]


class HeldResults:
    """The large results one Dask executor keeps on its cluster (see the module doc)."""

    def __init__(self, budget: int, threshold: int) -> None:
        self.budget = budget
        self.threshold = threshold
        self._lock = threading.Lock()
        self._entries: dict[int, _Entry] = {}
        self._bundles: OrderedDict[str, _Bundle] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def hold(self, dfut: Any, wires: list[Wire], values: list[Any]) -> None:
        """A bundle's results came back: keep its future if a value is large."""
        large = [
            i
            for i, w in enumerate(wires)
            if w[0] is None
            and w[2] is not None
            and w[3] is not None
            and not w[5]
            and len(w[3]) > self.threshold
        ]
        if not large or self.budget <= 0:
            return
        nbytes = sum(len(w[3]) for w in wires if w[3] is not None)
        if nbytes > self.budget:
            return
        bundle = _Bundle(dfut, nbytes)
        with self._lock:
            for i in large:
                value = values[i]
                digest = wires[i][2]
                assert digest is not None
                self._entries[id(value)] = _Entry(value, dfut, i, digest)
                bundle.ids.append(id(value))
            self._bundles[dfut.key] = bundle
            self._bytes += nbytes
            while self._bytes > self.budget and self._bundles:
                self._drop(next(iter(self._bundles)))

    def _drop(self, key: str) -> None:
        bundle = self._bundles.pop(key)
        self._bytes -= bundle.nbytes
        for i in bundle.ids:
            entry = self._entries.get(i)
            if entry is not None and entry.future is bundle.future:
                del self._entries[i]

    def forget(self, futures: list[Any]) -> None:
        """Stop referring to these held futures (their copies are gone)."""
        with self._lock:
            for f in futures:
                if f.key in self._bundles:
                    self._drop(f.key)

    def release(self) -> None:
        """Release every held future (shutdown): the workers free their copies."""
        with self._lock:
            self._entries.clear()
            self._bundles.clear()
            self._bytes = 0

    def dumper(self) -> tuple[Callable[[Any], bytes], list[tuple[Any, int, bytes]]]:
        """A pickling function for `wire.pack` that writes held values as references,
        and the list it fills with (future, index, digest) per reference, in order."""
        refs: list[tuple[Any, int, bytes]] = []
        with self._lock:
            if not self._entries:
                from .wire import dumps

                return dumps, refs
            entries = dict(self._entries)
        slots: dict[int, int] = {}

        class Pickler(_Pickler):
            def persistent_id(self, obj: Any) -> Any:
                entry = entries.get(id(obj))
                if entry is None or entry.value is not obj:
                    return None
                if entry.future.status != "finished":  # released or lost: send the value
                    return None
                slot = slots.get(id(obj))
                if slot is None:
                    slot = slots[id(obj)] = len(refs)
                    refs.append((entry.future, entry.index, entry.digest))
                return (_TAG, slot)

        def dump(obj: Any) -> bytes:
            buf = io.BytesIO()
            Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
            return buf.getvalue()

        return dump, refs


def resolver(refs: list[Ref]) -> Callable[[bytes], Any]:
    """Worker side: `wire.iter_wires`'s `loads` that turns references back into values
    (each unpickled once per bundle), checking each against its recorded digest."""
    values: dict[int, Any] = {}

    def held(slot: int) -> Any:
        if slot not in values:
            wires, index, digest = refs[slot]
            wire = wires[index]
            if wire[2] != digest or wire[3] is None:
                raise HeldCopyLost(
                    f"the held copy of a large result (digest {digest.hex()[:12]}) is not "
                    "the recorded one (its worker was lost and Dask recomputed it)"
                )
            values[slot] = pickle.loads(wire[3])
        return values[slot]

    class Unpickler(pickle.Unpickler):
        def persistent_load(self, pid: Any) -> Any:
            tag, slot = pid
            if tag != _TAG:
                raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
            return held(slot)

    def loads(blob: bytes) -> Any:
        return Unpickler(io.BytesIO(blob)).load()

    return loads
