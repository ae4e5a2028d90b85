"""Fixtures of the executor tests: the machine's SLURM test cluster (see slurm.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .slurm import SlurmUnavailable, slurm_cluster


@pytest.fixture(scope="session")
def slurm() -> Iterator[Path]:
    """The SLURM test cluster's slurm.conf (``SLURM_CONF`` points at it meanwhile).

    When SLURM cannot start, the tests that need it skip on a developer machine but FAIL
    under CI (``CI`` set): the SLURM path must not silently go untested.
    """
    try:
        cluster = slurm_cluster()
        conf = cluster.__enter__()
    except (SlurmUnavailable, OSError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the SLURM test cluster cannot start under CI: {exc}")
        pytest.skip(f"the SLURM test cluster cannot start: {exc}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLURM_CONF", str(conf))
        try:
            yield conf
        finally:
            cluster.__exit__(None, None, None)
