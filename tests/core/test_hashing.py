"""Value hashing: deterministic, by value, type-tagged, extensible."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import subprocess
import sys
import threading
from collections import OrderedDict, namedtuple
from decimal import Decimal
from pathlib import PurePosixPath

import numpy as np
import pandas as pd
import pytest

from lazyflow_core import hash_value, register_hasher
from lazyflow_core.hashing import UnhashableValue


class Color(enum.Enum):
    RED = 1
    BLUE = 2


@dataclasses.dataclass
class Point:
    x: int
    y: float


def test_type_tags_keep_equal_looking_values_apart() -> None:
    values = [1, 1.0, "1", True, b"1", (1,), [1], {1}, None, 0, False, ""]
    assert len({hash_value(v) for v in values}) == len(values)


def test_dict_and_set_order_do_not_matter() -> None:
    assert hash_value({"a": 1, "b": 2}) == hash_value({"b": 2, "a": 1})
    assert hash_value({3, 1, 2}) == hash_value({2, 3, 1})
    assert hash_value(frozenset("abc")) == hash_value(frozenset("cba"))
    assert hash_value([1, 2]) != hash_value([2, 1])


def test_by_value_not_identity() -> None:
    assert hash_value(Point(1, 2.0)) == hash_value(Point(1, 2.0))
    assert hash_value(Point(1, 2.0)) != hash_value(Point(1, 2.5))
    assert hash_value([[1], {"k": (2,)}]) == hash_value([[1], {"k": (2,)}])


def test_deterministic_across_processes() -> None:
    code = (
        "from lazyflow_core import hash_value\n"
        "print(hash_value({'a': [1, 2.5, 'x', None, (True,)], 'b': {3, 4}}))"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
        ).stdout.strip()
        for seed in ("0", "1", "random")
    }
    assert len(outs) == 1
    assert outs == {hash_value({"a": [1, 2.5, "x", None, (True,)], "b": {3, 4}})}


def test_many_builtin_types() -> None:
    Pair = namedtuple("Pair", "a b")
    values = [
        Color.RED,
        Color.BLUE,
        dt.datetime(2024, 1, 1, 12),
        dt.date(2024, 1, 1),
        dt.timedelta(seconds=5),
        Decimal("1.10"),
        PurePosixPath("/a/b"),
        b"bytes",
        bytearray(b"ba"),
        Pair(1, 2),
        (1, 2),
        OrderedDict(a=1),
        complex(1, 2),
        range(3),
        float("nan"),
        int,
        ValueError("x"),
    ]
    digests = [hash_value(v) for v in values]
    assert len(set(digests)) == len(values)
    assert hash_value(float("nan")) == hash_value(float("nan"))


def test_numpy_and_pandas_by_content() -> None:
    a = np.arange(1000, dtype=np.int64)
    assert hash_value(a) == hash_value(a.copy())
    assert hash_value(a) != hash_value(a.astype(np.int32))
    assert hash_value(a.reshape(10, 100)) != hash_value(a)
    assert hash_value(np.asfortranarray(a.reshape(10, 100))) == hash_value(a.reshape(10, 100))
    df = pd.DataFrame({"x": [1, 2], "y": ["a", "b"]})
    assert hash_value(df) == hash_value(df.copy())
    assert hash_value(df) != hash_value(df.rename(columns={"y": "z"}))
    assert hash_value(df["x"]) != hash_value(df["x"] + 1)


def test_registry_for_user_types() -> None:
    class Opaque:  # a class of its own per run: the registry is process-wide
        def __init__(self, key: str) -> None:
            self.key = key
            self.lock = threading.Lock()

    with pytest.raises(UnhashableValue):
        hash_value(Opaque("k"))
    register_hasher(Opaque, lambda o: o.key)
    assert hash_value(Opaque("k")) == hash_value(Opaque("k"))
    assert hash_value(Opaque("k")) != hash_value(Opaque("j"))
    assert hash_value(Opaque("k")) != hash_value("k")


def test_unhashable_value_reports_its_path() -> None:
    with pytest.raises(UnhashableValue) as info:
        hash_value({"outer": [0, {"lock": threading.Lock()}]})
    assert info.value.path == "['outer'][1]['lock']"
    lock = threading.Lock()
    with pytest.raises(UnhashableValue) as info:
        hash_value({"s": {lock}})
    assert info.value.path == "['s']{" + f"{lock!r:.40}" + "}"
    with pytest.raises(UnhashableValue) as info:
        hash_value([0, {lock: 1}])
    assert info.value.path == "[1]<key " + f"{lock!r:.40}" + ">"


def test_cycles_are_rejected() -> None:
    a: list = [1]
    a.append(a)
    with pytest.raises(UnhashableValue, match="cycle"):
        hash_value(a)


def test_plain_objects_hash_by_state() -> None:
    class Thing:
        def __init__(self, v: int) -> None:
            self.v = v

    assert hash_value(Thing(1)) == hash_value(Thing(1))
    assert hash_value(Thing(1)) != hash_value(Thing(2))


def test_fast_paths_keep_the_stored_hashes() -> None:
    """Ints inlined in `value_digest` and in sequences, and call hashes from a per-task
    prefix (`CallKeys`), give the hashes that stores already hold (frozen values)."""
    from lazyflow_core.hashing import CallKeys, hash_struct, value_digest

    assert hash_value([1, -2, True, 3.0, 10**30, "a", (4, 5)]) == (
        "b971a01d59d702bd553967b50959bab792709018"
    )
    assert hash_value(7) == "5a39f9a9c7598d32872c704ba30a672f2c3ebbfd"
    assert hash_value(-(10**20)) == "75cec89de450a5877c312bae77db8e6e4c5a4429"
    digests = [("x", value_digest(1)), ("ys", value_digest([1, 2]))]
    keys = CallKeys()
    expected = "f0ae689175d5102d7117c9b24d4c145a4fb0371b"
    assert keys.call("abc", digests) == expected
    assert keys.call("abc", digests) == expected  # from the kept prefix
    parts = [n.encode() + b"=" + d for n, d in digests[:1]]
    assert keys.call("abd", digests[:1]) == hash_struct("Call", "abd", *parts)
    assert keys.call("abd", []) == hash_struct("Call", "abd")
