"""Workflow results as XCom values, and references that load large results back.

Airflow keeps XComs in its metadata database, so a workflow result goes there as it is
only when it is plain JSON (None, bool, int, finite float, str, and lists, tuples and
string-keyed dicts of those) and small. Anything else, say a DataFrame, a File or a
10 MB list, stays in the lazyflow store, where the run already saved it, and the XCom
holds a reference::

    {"lazyflow_ref": "<value hash>", "db": "<store URL, password hidden>",
     "conn_id": "<Airflow connection id or null>", "type": "pandas.DataFrame"}

`load_result` turns a reference back into the value (and passes plain values through),
so a downstream task can call it on whatever it pulled.
"""

from __future__ import annotations

import json
import math
from typing import Any

REF_KEY = "lazyflow_ref"
DEFAULT_XCOM_MAX_BYTES = 64 * 1024
_MAX_DEPTH = 100


def is_json_friendly(value: Any, _depth: int = 0) -> bool:
    """True when `value` is plain JSON data that survives an XCom round trip."""
    if value is None or type(value) in (bool, str):
        return True
    if isinstance(value, int):
        return type(value) is int  # subclasses (enums) do not come back as themselves
    if isinstance(value, float):
        return type(value) is float and math.isfinite(value)
    if _depth >= _MAX_DEPTH:
        return False
    if type(value) in (list, tuple):
        return all(is_json_friendly(v, _depth + 1) for v in value)
    if type(value) is dict:
        return all(isinstance(k, str) and is_json_friendly(v, _depth + 1) for k, v in value.items())
    return False


def fits_in_xcom(value: Any, max_bytes: int) -> bool:
    """True when `value` is JSON-friendly and its JSON text is at most `max_bytes`."""
    if not is_json_friendly(value):
        return False
    return len(json.dumps(value).encode()) <= max_bytes


def is_result_ref(value: Any) -> bool:
    """True when `value` is a reference made by `make_ref`."""
    return type(value) is dict and isinstance(value.get(REF_KEY), str)


def make_ref(value: Any, value_hash: str, *, db: str, conn_id: str | None) -> dict[str, Any]:
    """A JSON reference to `value`, which the store holds under `value_hash`."""
    cls = type(value)
    return {
        REF_KEY: value_hash,
        "db": db,
        "conn_id": conn_id,
        "type": f"{cls.__module__}.{cls.__qualname__}",
    }


def load_result(ref: Any, *, db: str | None = None, signing_key: str | None = None) -> Any:
    """The value behind a LazyFlowOperator result; plain (non-reference) values pass through.

    The store is `db` when given, else the Airflow connection named in the reference
    (inside a task, or wherever Airflow connections resolve), else the URL in the
    reference (whose password was hidden when the reference was made). The value is
    verified like a cached result: with `signing_key`, the connection's key, or
    lazyflow's own (``LAZYFLOW_SIGNING_KEY``), only a validly signed value is unpickled.
    """
    if not is_result_ref(ref):
        return ref
    url, key = (db, None) if db else _store_from_ref(ref)
    from lazyflow_core import Scheduler

    with Scheduler(db=url, signing_key=signing_key or key) as sched:
        return sched.store.load_value(ref[REF_KEY])


def _store_from_ref(ref: dict[str, Any]) -> tuple[str, str | None]:
    """The store URL of a reference, and the signing key of its connection if any."""
    conn_id = ref.get("conn_id")
    if conn_id:
        from lazyflow_airflow.hooks import LazyFlowHook

        return LazyFlowHook(conn_id).get_store()
    url = ref.get("db")
    if not url or "***" in url:
        from lazyflow_core.integration import IntegrationValueError

        raise IntegrationValueError(
            f"cannot tell which lazyflow store holds result {ref[REF_KEY]!r}: the reference "
            f"names store {url!r} without its password; pass the full URL as "
            "load_result(ref, db='postgresql+psycopg://user:password@host/db')."
        )
    return str(url), None
