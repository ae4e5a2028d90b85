"""Previews fit the type of the value: shape and dtype, not the first characters of a repr."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lazyflow_core import Scheduler, task
from lazyflow_core.preview import format_args, short_repr
from lazyflow_core.provenance import Provenance


class Model:
    pass


@pytest.mark.parametrize(
    ("value", "preview"),
    [
        (pd.DataFrame(np.zeros((2000, 4))), "DataFrame(2000x4)"),
        (np.zeros((1000, 3)), "ndarray(float64, 1000x3)"),
        (np.zeros(50, dtype=np.int32), "ndarray(int32, 50)"),
        (pd.Series(range(2000)), "Series(int64, 2000)"),
        (np.arange(3), "array([0, 1, 2])"),  # a handful of numbers: the repr shows them
        (b"\x00" * 100_000, "bytes(100000)"),
        (b"ab", "b'ab'"),
        (Model(), "<tests.core.test_preview.Model object>"),  # no address: same every run
        (list(range(1_000_000)), "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11..."),
        (set(range(3)), "{0, 1, 2}"),
        ("x" * 100, "'" + "x" * 36 + "..."),
        (1.5, "1.5"),
    ],
)
def test_preview_fits_the_type(value: object, preview: str) -> None:
    assert short_repr(value) == preview
    assert len(short_repr(value)) <= 40


def test_call_previews_use_the_same_function() -> None:
    assert format_args((np.ones((10, 10)),), {"df": pd.DataFrame({"a": [1, 2]})}) == (
        "ndarray(float64, 10x10), df=DataFrame(2x1)"
    )


@task(version="1")
def table(n: int) -> pd.DataFrame:
    return pd.DataFrame({"a": range(n), "b": 0.5, "c": "x", "d": True})


def test_the_store_records_typed_previews(sqlite_url: str) -> None:
    with Scheduler(db=sqlite_url) as sched:
        sched.run(table(2000))
        summary = sched.last_run
    assert summary is not None and summary.result_hash is not None
    with Provenance(sqlite_url) as prov:
        value = prov.value(summary.result_hash)
    assert value.preview == "DataFrame(2000x4)" and value.type_name.endswith("DataFrame")
