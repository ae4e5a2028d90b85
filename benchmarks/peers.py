"""The peer systems measured beside lazyflow, each in a virtual environment of its own.

A peer's workloads (``benchmarks/wl_<system>.py``) run under its own interpreter, so
its dependencies never meet lazyflow's (redun pins old SQLAlchemy, Prefect brings a
server, Hamilton pandas). The runner creates each environment the first time a case
needs it (`ensure_venv`), from PyPI, and checks it the same way on every later run, so
``make bench`` on a fresh clone needs no set-up. Two systems may share an environment
(dask.delayed and dask.distributed both use ``.venv-dask``).

``provenance`` is what the report's "records provenance" column says of the system:
whether a run leaves a queryable record of which call produced which value from which
inputs and code, as lazyflow's store does, or only a cache.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Peer:
    """A system measured in a venv of its own."""

    system: str
    title: str
    venv: str
    requirements: tuple[str, ...]
    check: str  # Python that fails unless the environment is usable
    provenance: str

    @property
    def python(self) -> Path:
        return REPO / self.venv / "bin" / "python"


PEERS: dict[str, Peer] = {
    p.system: p
    for p in (
        Peer(
            "redun",
            "redun 0.44",
            ".venv-redun",
            ("redun==0.44.*", "numpy"),
            "import redun, numpy; assert redun.__version__.startswith('0.44')",
            "yes: every call, its arguments' and result's hashes and its code, in its "
            "SQLite/PostgreSQL database",
        ),
        Peer(
            "dask_delayed",
            "dask.delayed (threaded)",
            ".venv-dask",
            ("dask[distributed]>=2024.1",),
            "import dask, distributed",
            "no (no cache either)",
        ),
        Peer(
            "dask_distributed",
            "dask.distributed (LocalCluster)",
            ".venv-dask",
            ("dask[distributed]>=2024.1",),
            "import dask, distributed",
            "no (no cache either; the dashboard shows live tasks only)",
        ),
        Peer(
            "joblib",
            "joblib.Memory",
            ".venv-joblib",
            ("joblib>=1.3",),
            "import joblib",
            "no: a cache of results by function code and arguments",
        ),
        Peer(
            "hamilton",
            "Hamilton (cache on)",
            ".venv-hamilton",
            ("sf-hamilton>=1.80",),
            "from hamilton import driver; driver.Builder().with_cache",
            "partly: its cache's metadata store keeps, per run, each node's code and data versions",
        ),
        Peer(
            "prefect",
            "Prefect 3 (.submit, INPUTS + TASK_SOURCE)",
            ".venv-prefect",
            ("prefect>=3.0,<4",),
            "import prefect; assert prefect.__version__.startswith('3.')",
            "yes: flow and task runs, states and task inputs in its server's database; "
            "results by cache key",
        ),
    )
}


def interpreter(system: str) -> Path:
    """The Python that runs ``system``'s workloads."""
    peer = PEERS.get(system)
    return peer.python if peer else Path(sys.executable)


def ensure_venv(system: str, log: Callable[[str], None] = print) -> str | None:
    """Create ``system``'s venv if it is missing or broken; return an error text or None.

    Idempotent: a venv whose check passes is left alone (no network); otherwise it is
    (re)created and its requirements installed from PyPI.
    """
    peer = PEERS.get(system)
    if peer is None:
        return None
    python = peer.python
    check = [str(python), "-c", peer.check]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return None
    log(f"setting up {peer.venv} ({', '.join(peer.requirements)}, once) ...")
    base = shutil.which("python3") or sys.executable
    steps = []
    if not python.exists():
        steps.append([base, "-m", "venv", str(REPO / peer.venv)])
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    steps.append([*pip, *peer.requirements])
    for step in steps:
        proc = subprocess.run(step, capture_output=True, text=True)
        if proc.returncode != 0:
            return f"{' '.join(step)} failed: {proc.stderr.strip()[-500:]}"
    proc = subprocess.run(check, capture_output=True, text=True)
    if proc.returncode != 0:
        return f"{peer.title} is not usable from {python}: {proc.stderr.strip()[-300:]}"
    return None
