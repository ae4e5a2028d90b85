"""``lazyflow repl``: a Python prompt over the store (redun's ``repl``).

The prompt starts with ``executions`` (newest first: ``executions[0]`` is the latest),
``execution(id)``, ``job(id)``, ``value(hash)`` and ``prov`` (the `Provenance` behind
them) defined. Records are read when they are first used, not when the prompt starts:
``executions[0].jobs`` reads that execution's jobs, ``job.result`` its result value.

Values are loaded as read-only commands load them: unpickled only when signed with one
of the store's keys (``LAZYFLOW_SIGNING_KEY``); otherwise a value that is plain data,
`File` or `Dir` is decoded without running anything (after its checksum matched), and
any other is refused with its preview. A shared store's rows may have been planted, so
the prompt never runs a pickle nobody signed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import click

from .common import db_option, fmt_time, short

BANNER = """lazyflow repl on {url}
  executions            newest first: executions[0] is the latest, executions(task=, tags=, status=)
  execution(id)         one execution (id or prefix): .jobs .root .result .tags .status
  job(id)               a job (id, EXECUTION.N): .args .result .call .children .parent .execution
  value(hash)           a value: .value (unpickled only if signed) .preview .type_name
  prov                  the Provenance queries (lineage, consumers, run_report, ...)"""


class ValueView:
    """A stored value, loaded on `.value` (see the module's rule)."""

    def __init__(self, prov: Any, record: Any) -> None:
        self._prov = prov
        self.record = record
        self.hash: str = record.hash

    def __getattr__(self, name: str) -> Any:
        return getattr(self.record, name)

    @property
    def value(self) -> Any:
        return load(self._prov, self.hash)

    def __repr__(self) -> str:
        return f"Value({short(self.hash, 12)} {self.record.type_name}: {self.record.preview})"


def load(prov: Any, value_hash: str) -> Any:
    """The value, if signed; else decoded as data only when it is data; else refused."""
    from ..store.signing import UnverifiedValue
    from ..store.values import read_values, safe_data

    try:
        return prov.load_value(value_hash)
    except UnverifiedValue as signed_error:
        if isinstance(
            read_values(prov.store, [value_hash], signed_only=True).get(value_hash), bytes
        ):
            raise  # signed, and unpickling failed (e.g. its class is not importable here)
        raw = read_values(prov.store, [value_hash]).get(value_hash)
        if isinstance(raw, bytes):
            try:
                return safe_data(raw)
            except Exception:
                pass
        raise UnverifiedValue(
            f"{signed_error}. Only plain data, File and Dir are decoded without a signature "
            "(set LAZYFLOW_SIGNING_KEY to the key the values were signed with to load others)"
        ) from None


class JobView:
    """A job, its call's arguments and its result read on first use."""

    def __init__(self, prov: Any, record: Any) -> None:
        self._prov = prov
        self.record = record
        self.id: str = record.id

    def __getattr__(self, name: str) -> Any:
        return getattr(self.record, name)

    @property
    def call(self) -> Any:
        h = self.record.call_hash
        return self._prov.calls([h]).get(h) if h else None

    @property
    def args(self) -> dict[str, ValueView]:
        call = self.call
        if call is None:
            return {}
        return {a.name: ValueView(self._prov, a.value) for a in call.args if a.value is not None}

    @property
    def result(self) -> Any:
        h = self.record.result_hash or getattr(self.call, "result_hash", None)
        if not h:
            raise AttributeError(f"job {self.ref} has no result ({self.record.status})")
        return load(self._prov, h)

    @property
    def children(self) -> list[JobView]:
        return [JobView(self._prov, j) for j in self._prov.child_jobs(self.record)]

    @property
    def parent(self) -> JobView | None:
        p = self.record.parent_id
        return JobView(self._prov, self._prov.job(p)) if p else None

    @property
    def execution(self) -> ExecutionView:
        return ExecutionView(self._prov, self._prov.execution(self.record.execution_id))

    @property
    def ref(self) -> str:
        from ..provenance import job_ref

        return job_ref(self.id, self.record.execution_id)

    def __repr__(self) -> str:
        r = self.record
        state = "cached" if r.cached else r.status
        return f"Job({self.ref} {state} {r.args_preview or r.task_name})"


class ExecutionView:
    """An execution; its jobs are read on first use of `.jobs`."""

    def __init__(self, prov: Any, record: Any) -> None:
        self._prov = prov
        self.record = record
        self.id: str = record.id
        self._jobs: list[JobView] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.record, name)

    @property
    def jobs(self) -> list[JobView]:
        if self._jobs is None:
            self._jobs = [JobView(self._prov, j) for j in self._prov.jobs(self.id)]
        return self._jobs

    @property
    def root(self) -> JobView | None:
        return next((j for j in self.jobs if j.record.parent_id is None), None)

    @property
    def result(self) -> Any:
        if not self.record.result_hash:
            raise AttributeError(f"execution {short(self.id)} has no result ({self.status})")
        return load(self._prov, self.record.result_hash)

    def __repr__(self) -> str:
        r = self.record
        return (
            f"Execution({short(self.id)} {r.status} {r.root_task or '-'}, {r.jobs} jobs, "
            f"started {fmt_time(r.started_at)})"
        )


class Executions:
    """The store's executions, newest first, read a page at a time when indexed."""

    PAGE = 50

    def __init__(self, prov: Any) -> None:
        self._prov = prov

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            rows = self._prov.executions(limit=max(stop - start, 0), offset=start)
            return [ExecutionView(self._prov, r) for r in rows][::step]
        if index < 0:
            index += len(self)
        rows = self._prov.executions(limit=1, offset=index) if index >= 0 else []
        if not rows:
            raise IndexError(f"the store has {len(self)} executions")
        return ExecutionView(self._prov, rows[0])

    def __len__(self) -> int:
        return int(self._prov.counts().get("lf_executions", 0))

    def __iter__(self) -> Iterator[ExecutionView]:
        offset = 0
        while True:
            rows = self._prov.executions(limit=self.PAGE, offset=offset)
            yield from (ExecutionView(self._prov, r) for r in rows)
            if len(rows) < self.PAGE:
                return
            offset += self.PAGE

    def __call__(self, **filters: Any) -> list[ExecutionView]:
        """``executions(task="main", tags={"env": "prod"}, status="failed", limit=5)``."""
        return [ExecutionView(self._prov, r) for r in self._prov.executions(**filters)]

    def __repr__(self) -> str:
        first = self[:10]
        lines = [f"{len(self)} executions, newest first:"] + [
            f"  [{i}] {e!r}" for i, e in enumerate(first)
        ]
        return "\n".join(lines)


def namespace(prov: Any) -> dict[str, Any]:
    """The names the prompt starts with."""
    return {
        "prov": prov,
        "executions": Executions(prov),
        "execution": lambda ident: ExecutionView(prov, prov.execution(ident)),
        "job": lambda ident: JobView(prov, prov.job(ident)),
        "value": lambda ident: ValueView(prov, prov.value(ident)),
    }


@click.command("repl", short_help="A Python prompt with the store's records loaded lazily.")
@db_option
def repl_command(db: str | None) -> None:
    """A Python prompt over the store: executions, jobs and values as objects read on
    first use (``executions[0].jobs``, ``job("1a2b.3").result``). Values are unpickled
    only when signed with the store's key; unsigned plain data is decoded safely."""
    import code

    from ..store.sql import redact
    from .common import open_provenance

    if "" not in sys.path:
        sys.path.insert(0, "")  # as `python`: the current directory's modules import
    with open_provenance(db, values=True) as prov:
        sys.ps1, sys.ps2 = ">>> ", "... "
        code.interact(
            banner=BANNER.format(url=redact(prov.store.url)), local=namespace(prov), exitmsg=""
        )
