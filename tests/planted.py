"""What a hostile co-user with write access to a shared store can plant in it.

`evil` is a pickle that runs code when unpickled: it writes a marker file, so a test sees
whether anything unpickled it. `plant_value` puts such bytes in place of stored values
(an existing cached result); `plant_call` adds a call row the victim never made (its call
hash follows from the task's recorded source and the arguments, so it can be computed
in advance) whose result is the planted value.
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path

from sqlalchemy import text

from lazyflow_core.store import Store

FORGED = "s1:0badc0de:" + "A" * 43
"""A signature by a key no reader holds."""


class Payload:
    """Unpickling this runs code: it writes `marker` (an attacker's pickle would do worse)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, (f"with open({self.marker!r}, 'w') as f: f.write('pwned')",))


def evil(marker: Path, *, inside: bool = False) -> bytes:
    """The pickled payload; with `inside`, as an item of a list (a container argument)."""
    return pickle.dumps([Payload(marker), 1] if inside else Payload(marker), protocol=5)


def plant_value(store: Store | str, data: bytes, where: str = "1 = 1") -> None:
    """Overwrite the bytes of the stored values `where` selects (their seal is kept: it
    no longer matches, and a checksum can be recomputed by anyone; see `reseal`)."""
    s = Store(store) if isinstance(store, str) else store
    with s.engine.begin() as conn:
        conn.execute(
            text(f"UPDATE lf_values SET data = :d, blob = NULL WHERE {where}"), {"d": data}
        )
    if isinstance(store, str):
        s.close()


def reseal(store: Store | str) -> None:
    """Recompute every value's checksum (``c1:``) over its bytes, as anyone can: without
    a signing key, a checksum catches damage, not an attacker."""
    from lazyflow_core.store.signing import checksum

    s = Store(store) if isinstance(store, str) else store
    rows = s.query(text("SELECT hash, data FROM lf_values WHERE data IS NOT NULL"))
    with s.engine.begin() as conn:
        for value_hash, data in rows:
            conn.execute(
                text("UPDATE lf_values SET signature = :s WHERE hash = :h"),
                {"s": checksum(value_hash, bytes(data)), "h": value_hash},
            )
    if isinstance(store, str):
        s.close()


PLANTED_VALUE = "e" * 40
PLANTED_VSET = "f" * 40


def plant_call(
    store: Store, call_hash: str, task_hash: str, task_name: str, payload: bytes
) -> None:
    """A call row (with its value and an empty validation set) for `call_hash`, which
    nobody ran: the value is `payload`, with a forged signature."""
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO lf_values (hash, type_name, size, preview, data, signature, "
                "created_at) VALUES (:h, 'int', 1, '42', :d, :s, :t)"
            ),
            {"h": PLANTED_VALUE, "d": payload, "s": FORGED, "t": time.time()},
        )
        conn.execute(
            text("INSERT INTO lf_validation_sets (hash, tasks, files) VALUES (:h, '[]', '[]')"),
            {"h": PLANTED_VSET},
        )
        conn.execute(
            text(
                "INSERT INTO lf_calls (call_hash, task_hash, task_name, result_hash, "
                "validation_hash, created_at) VALUES (:c, :t, :n, :v, :s, :at)"
            ),
            {
                "c": call_hash,
                "t": task_hash,
                "n": task_name,
                "v": PLANTED_VALUE,
                "s": PLANTED_VSET,
                "at": time.time(),
            },
        )


def unplant_call(store: Store, call_hash: str) -> None:
    """Remove what `plant_call` added (to plant it again for another reader)."""
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM lf_calls WHERE call_hash = :c"), {"c": call_hash})
        conn.execute(text("DELETE FROM lf_values WHERE hash = :h"), {"h": PLANTED_VALUE})
        conn.execute(text("DELETE FROM lf_validation_sets WHERE hash = :h"), {"h": PLANTED_VSET})
