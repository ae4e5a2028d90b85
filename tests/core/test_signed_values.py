"""Signed values end to end: every stored value is sealed; with a key, a value whose
signature is missing or wrong is never unpickled (a cache miss with one warning naming
the call), whether it sits behind a cached result or a planted call row; keys rotate."""

from __future__ import annotations

import json
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text

from lazyflow_core import File, LazyflowError, Scheduler, hash_value, task
from lazyflow_core.store import Store

from ..planted import FORGED, evil, plant_call, unplant_call
from .tasks import inc

KEY = "team-key-0123456789abcdef"
NEW = "next-key-fedcba9876543210"


@task
def small(x: int) -> int:
    return x


def _result_hash(store: Store, task_name: str) -> str:
    return str(
        store.query(
            text("SELECT result_hash FROM lf_calls WHERE task_name = :n"), {"n": task_name}
        )[0][0]
    )


def _set_value(store: Store, value_hash: str, data: bytes, signature: str | None) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            text("UPDATE lf_values SET data = :d, signature = :s WHERE hash = :h"),
            {"d": data, "s": signature, "h": value_hash},
        )


def _seals(store: Store) -> list[str]:
    rows = store.query(text("SELECT signature FROM lf_values WHERE data IS NOT NULL"))
    return sorted({(r[0] or "-")[:2] for r in rows})


def test_every_stored_value_is_signed_with_a_key_and_checksummed_without(
    sqlite_url: str, tmp_path: Path
) -> None:
    with Scheduler(db=sqlite_url, signing_key=KEY) as sched:
        sched.run(inc(1))
        assert _seals(sched.store) == ["s1"]
    other = f"sqlite:///{tmp_path / 'plain.db'}"
    with Scheduler(db=other) as sched:
        sched.run(inc(1))
        assert _seals(sched.store) == ["c1"]


def test_a_planted_pickle_behind_a_cached_result_never_runs_with_a_key(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "pwned"
    payload = evil(marker)
    with Scheduler(db=db_url, signing_key=KEY) as sched:
        assert sched.run(inc(1)) == 2
        store = sched.store
        value = _result_hash(store, inc.name)
        good = store.query(text("SELECT signature FROM lf_values WHERE hash = :h"), {"h": value})
        # unsigned, signed by a key no reader has, and a real signature of other bytes
        for signature in (None, FORGED, good[0][0]):
            _set_value(store, value, payload, signature)
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="lazyflow"):
                assert sched.run(inc(1)) == 2
            assert not marker.exists()
            assert sched.last_run is not None and sched.last_run.executed == 1
            warnings = [r.getMessage() for r in caplog.records if "inc(1)" in r.getMessage()]
            assert len(warnings) == 1 and "cannot be loaded" in warnings[0], caplog.text
        sched.run(inc(1))  # the re-run stored the value again, signed: a hit now
        assert sched.last_run is not None and sched.last_run.cached == 1


def test_a_planted_call_row_never_runs_with_a_key(db_url: str, tmp_path: Path) -> None:
    """...and without a key it does (what signing is for: this test can fail)."""
    marker = tmp_path / "pwned"
    with Scheduler(db=db_url, signing_key=KEY) as sched:
        sched.run(inc(40))  # the task is in the store; inc(41) has never run
        (decision,) = sched.explain(inc(41))
        assert decision.action == "run" and decision.call_hash is not None
        task_hash = str(sched.store.query(text("SELECT hash FROM lf_tasks"))[0][0])
        plant_call(sched.store, decision.call_hash, task_hash, inc.name, evil(marker))
        assert sched.run(inc(41)) == 42
        assert sched.last_run is not None and sched.last_run.executed == 1
    assert not marker.exists()
    store = Store(db_url)  # plant it again, for a reader without a key
    unplant_call(store, decision.call_hash)
    plant_call(store, decision.call_hash, task_hash, inc.name, evil(marker))
    with Scheduler(db=store) as unsigned:
        unsigned.run(inc(41))
    store.close()
    assert marker.exists()


def test_keys_rotate_the_first_signs_and_all_verify(sqlite_url: str) -> None:
    with Scheduler(db=sqlite_url, signing_key=KEY) as sched:
        sched.run(inc(1))
    with Scheduler(db=sqlite_url, signing_key=[NEW, KEY]) as sched:
        sched.run(inc(1))  # signed with the old key: still verifies
        assert sched.last_run is not None and sched.last_run.cached == 1
        sched.run(inc(2))  # new values are signed with the new key
        assert sched.store.signing is not None
        new_id, old_id = sched.store.signing.ids
        rows = sched.store.query(text("SELECT preview, signature FROM lf_values"))
        ids = {preview: sig.split(":")[1] for preview, sig in rows}
        assert ids["2"] == old_id and ids["3"] == new_id
    with Scheduler(db=sqlite_url, signing_key=NEW) as sched:
        sched.run(inc(2))
        assert sched.last_run is not None and sched.last_run.cached == 1
        sched.run(inc(1))  # only the retired key signed it: a miss, then signed anew
        assert sched.last_run is not None and sched.last_run.executed == 1
        sched.run(inc(1))
        assert sched.last_run is not None and sched.last_run.cached == 1


def test_a_valid_pickle_of_another_value_is_corruption(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Without a key, the checksum of the stored bytes catches small(5) returning 12345."""
    with Scheduler(db=sqlite_url) as sched:
        assert sched.run(small(5)) == 5
        value = _result_hash(sched.store, small.name)
        assert value == hash_value(5)
        signature = sched.store.query(
            text("SELECT signature FROM lf_values WHERE hash = :h"), {"h": value}
        )[0][0]
        _set_value(sched.store, value, pickle.dumps(12345, protocol=5), signature)
        with caplog.at_level(logging.WARNING, logger="lazyflow"):
            assert sched.run(small(5)) == 5
        assert "do not match their checksum" in caplog.text and "small(5)" in caplog.text
        assert sched.last_run is not None and sched.last_run.executed == 1
        assert sched.run(small(5)) == 5
        assert sched.last_run is not None and sched.last_run.cached == 1


def test_signing_keys_reach_the_store_from_the_environment(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAZYFLOW_SIGNING_KEY", f"{NEW},{KEY}")
    with Scheduler(db=sqlite_url) as sched:
        sched.run(inc(3))
        assert sched.store.signing is not None
        assert json.dumps(_seals(sched.store)) == '["s1"]'
        sig = sched.store.query(text("SELECT signature FROM lf_values LIMIT 1"))[0][0]
        assert sig.split(":")[1] == sched.store.signing.ids[0]


@dataclass
class Point:
    x: int


@task
def point(x: int) -> Point:
    return Point(x)


@task
def norm(p: Point) -> int:
    return p.x


@task
def paths(folder: str, n: int) -> list[File]:
    out = []
    for i in range(n):
        path = Path(folder) / f"out-{i}.txt"
        path.write_text(str(i))
        out.append(File(str(path)))
    return out


@task
def count(files: list[File]) -> int:
    return len(files)


def _actions(sched: Scheduler, expr: object, values: str) -> dict[str, tuple[str, str]]:
    return {d.call: (d.action, d.reason) for d in sched.explain(expr, values=values)}


def test_explain_unpickles_only_data_unless_asked_and_then_only_signed(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A dry run is a read-only command: a cached result of a class other than built-in
    data, File and Dir is not unpickled ("cached", value_not_loaded; what needs it is
    unknown), unless asked ("signed") and signed; "run" loads what a run would."""
    with Scheduler(db=sqlite_url, signing_key=KEY) as sched:
        assert sched.run(norm(point(3))) == 3
        assert sched.run(count(paths(str(tmp_path), 2))) == 2
        data = _actions(sched, norm(point(3)), "data")
        assert data["point(3)"] == ("cached", "value_not_loaded")
        assert [a for c, a in data.items() if c != "point(3)"] == [("unknown", "needs_result")]
        signed = _actions(sched, norm(point(3)), "signed")
        assert signed == {
            "point(3)": ("cached", "cached"),
            "norm(Point(x=3))": ("cached", "cached"),
        }
        assert _actions(sched, norm(point(3)), "run") == signed
        files = _actions(sched, count(paths(str(tmp_path), 2)), "data")  # File values are data
        assert set(files.values()) == {("cached", "cached")} and len(files) == 2
        with pytest.raises(LazyflowError, match="explain"):
            sched.explain(norm(point(3)), values="everything")
    with Scheduler(db=sqlite_url) as unsigned:  # a reader without the key
        keyless = _actions(unsigned, norm(point(3)), "signed")
        assert keyless["point(3)"] == ("cached", "value_not_loaded")
