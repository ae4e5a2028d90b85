"""Basic provenance lookups: executions, jobs, values, task versions, files and calls by
id, and what one execution ran and reused.

`Queries` holds the connection to the store and every query that reads rows directly;
`lineage.Provenance` builds producers, lineage and consumers on top of it. Ids may be
given as unique prefixes (`job_ref` writes job ids in their short ``EXECUTION.N`` form).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Self

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.exc import DBAPIError

from .. import liveness
from ..codechange import CodeVersion
from ..errors import StoreError
from ..preview import ellipsize
from ..store import schema
from ..store.sql import Store, chunks, open_existing_store, redact
from .records import (
    AmbiguousPrefix,
    Arg,
    Call,
    CallNode,
    Execution,
    FileRecord,
    Job,
    JobFile,
    NoSuchRecord,
    RunReport,
    TaskCount,
    TaskVersion,
    Value,
)


def job_ref(job_id: str, execution_id: str | None = None) -> str:
    """A short, unique way to write a job id.

    Job ids are the execution's id prefix plus a counter, so their first characters do
    not tell the jobs of one execution apart: ``EXECUTION.N`` (e.g. ``5c6607b5.17``) does,
    and `Provenance.resolve_job` accepts it. Other ids are shortened to 12 characters.
    """
    head, tail = job_id[:16], job_id[16:]
    if execution_id is not None:
        ours = execution_id[:16] == head
    else:
        ours = tail.startswith("0000")  # a counter, not the rest of a random id
    if ours and len(tail) == 16 and all(ch in "0123456789abcdef" for ch in tail):
        return f"{head[:8]}.{int(tail, 16)}"
    return job_id[:12]


def _prefix_range(column: Any, prefix: str) -> Any:
    # hex ids sort below "g": a range scan uses the primary-key index on every backend
    return and_(column >= prefix, column < prefix + "g")


class Queries:
    """Read-only lookups over a lazyflow store (URL, `Store`, or None for the default):
    the rows of every table by id, and an execution's call tree and report. `Provenance`
    adds producers, lineage and consumers.

    A missing store is an error (`StoreError`) rather than a new empty one. Stored
    values are never unpickled unless `values` is true, and then only values signed with
    one of the store's keys (`load_value`).
    """

    def __init__(self, db: str | Store | None = None, *, values: bool = False) -> None:
        self.load_values = values
        self.store = open_existing_store(db)
        # container parts by value hash, filled by `Provenance.parts` during a lineage walk
        self._parts_cache: dict[str, list[tuple[str, str]] | None] = {}

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------
    def _rows(self, statement: Any) -> list[Any]:
        try:
            with self.store.engine.connect() as conn:
                return list(conn.execute(statement).all())
        except DBAPIError as exc:
            raise StoreError(
                f"reading the lazyflow store at {redact(self.store.url)!r} failed: "
                f"{exc.orig if exc.orig is not None else exc}"
            ) from exc

    def _resolve(self, column: Any, ident: str, what: str, hint: str) -> str:
        """The full id in `column` starting with `ident` (exact match wins)."""
        prefix = ident.strip().lower()
        if not prefix or any(ch not in "0123456789abcdef" for ch in prefix):
            raise NoSuchRecord(f"{ident!r} is not a valid {what} id (ids are hexadecimal). {hint}")
        found = [
            r[0]
            for r in self._rows(
                select(column).where(_prefix_range(column, prefix)).order_by(column).limit(6)
            )
        ]
        if prefix in found:
            return prefix
        if not found:
            raise NoSuchRecord(f"no {what} matches {ident!r} in {redact(self.store.url)}. {hint}")
        if len(found) > 1:
            if what == "job":
                shown = ", ".join(job_ref(f) for f in found[:5])
            else:
                shown = ", ".join(f[: max(len(prefix) + 4, 8)] for f in found[:5])
            more = " and more" if len(found) > 5 else ""
            raise AmbiguousPrefix(
                f"{what} id prefix {ident!r} is ambiguous: it matches {shown}{more}. "
                "Give more characters"
                + (" or write the job as EXECUTION.N." if what == "job" else ".")
            )
        return str(found[0])

    # -- executions ------------------------------------------------------------------
    def resolve_execution(self, ident: str) -> str:
        return self._resolve(
            schema.executions.c.id, ident, "execution", "`lazyflow log` lists executions."
        )

    def execution(self, ident: str) -> Execution:
        """One execution by id or unique prefix, with its tags."""
        eid = self.resolve_execution(ident)
        e = schema.executions
        row = self._rows(select(e).where(e.c.id == eid))[0]
        return self._execution(row, self._tags([eid]).get(eid, {}))

    def executions(
        self,
        *,
        task: str | None = None,
        tags: Mapping[str, str] | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Execution]:
        """Executions, newest first. `task` matches the root task or any task that ran,
        by full name (``wf.main``) or short name (``main``). `offset` skips that many of
        the matching executions (with `limit`, one page of a long history)."""
        e = schema.executions
        query = select(e).order_by(e.c.started_at.desc(), e.c.id)
        if task:
            j = schema.jobs
            query = query.where(
                or_(
                    _name_matches(e.c.root_task, task),
                    exists(
                        select(j.c.id).where(
                            j.c.execution_id == e.c.id, _name_matches(j.c.task_name, task)
                        )
                    ),
                )
            )
        for key, value in (tags or {}).items():
            t, v = schema.execution_tags, schema.entity_tags
            query = query.where(
                or_(
                    exists(
                        select(t.c.key).where(
                            t.c.execution_id == e.c.id, t.c.key == key, t.c.value == value
                        )
                    ),
                    exists(  # set by apply_tags on a value or job of the execution
                        select(v.c.key).where(
                            v.c.execution_id == e.c.id, v.c.key == key, v.c.value == value
                        )
                    ),
                )
            )
        live = status in ("running", "interrupted")  # told apart here, not in the table
        if status:
            query = query.where(e.c.status == ("running" if live else status))
        if since is not None:
            query = query.where(e.c.started_at >= since)
        if until is not None:
            query = query.where(e.c.started_at < until)
        if limit is not None and not live:
            query = query.limit(limit)
        if offset and not live:
            query = query.offset(offset)
        rows = self._rows(query)
        if live:
            rows = [r for r in rows if self._status(r) == status]
            rows = rows[offset:][:limit] if limit is not None else rows[offset:]
        tag_map = self._tags([r.id for r in rows])
        return [self._execution(r, tag_map.get(r.id, {})) for r in rows]

    def _tags(self, ids: Sequence[str]) -> dict[str, dict[str, str]]:
        t = schema.execution_tags
        out: dict[str, dict[str, str]] = {}
        for chunk in chunks(ids):
            for eid, key, value in self._rows(
                select(t.c.execution_id, t.c.key, t.c.value)
                .where(t.c.execution_id.in_(chunk))
                .order_by(t.c.key)
            ):
                out.setdefault(eid, {})[key] = value
        return out

    def entity_tags(self, kind: str, ids: Iterable[str]) -> dict[str, dict[str, str]]:
        """The `apply_tags` tags of values (`kind` "value", ids: hashes) or jobs ("job"):
        {id: {key: value}}, the latest run's value of a key when several set it."""
        t = schema.entity_tags
        out: dict[str, dict[str, str]] = {}
        for chunk in chunks(list(dict.fromkeys(ids))):
            for eid, key, value in self._rows(
                select(t.c.entity_id, t.c.key, t.c.value)
                .where(t.c.entity_kind == kind, t.c.entity_id.in_(chunk))
                .order_by(t.c.key, t.c.created_at)
            ):
                out.setdefault(eid, {})[key] = value
        return out

    def _tree_tags(self, execution_id: str, nodes: Iterable[CallNode]) -> None:
        """Fill the call tree's job and result tags (two queries when the store has any
        value tags, one otherwise: a 100k-call tree does not pay for tags it lacks)."""
        t = schema.entity_tags
        job_tags: dict[str, dict[str, str]] = {}
        for job_id, key, value in self._rows(
            select(t.c.entity_id, t.c.key, t.c.value)
            .where(t.c.execution_id == execution_id, t.c.entity_kind == "job")
            .order_by(t.c.key)
        ):
            job_tags.setdefault(job_id, {})[key] = value
        any_values = self._rows(select(t.c.key).where(t.c.entity_kind == "value").limit(1))
        listed = list(nodes)
        value_tags = (
            self.entity_tags("value", (n.result.hash for n in listed if n.result))
            if any_values
            else {}
        )
        for n in listed:
            if n.job is not None:
                n.job_tags = job_tags.get(n.job.id, {})
            if n.result is not None:
                n.result_tags = value_tags.get(n.result.hash, {})

    @staticmethod
    def _status(r: Any) -> str:
        """The recorded status, or "interrupted" for a run whose process is gone."""
        gone = liveness.interrupted(
            r.status, r.started_at, r.heartbeat_at, r.hostname, r.host_id, r.pid
        )
        return "interrupted" if gone else str(r.status)

    @classmethod
    def _execution(cls, r: Any, tags: dict[str, str]) -> Execution:
        return Execution(
            id=r.id,
            started_at=r.started_at,
            finished_at=r.finished_at,
            status=cls._status(r),
            root_task=r.root_task,
            root_call_hash=r.root_call_hash,
            result_hash=r.result_hash,
            command=r.command,
            hostname=r.hostname,
            pid=r.pid,
            jobs=r.jobs or 0,
            cached=r.cached or 0,
            executed=r.executed or 0,
            failed=r.failed or 0,
            error=r.error,
            tags=tags,
            heartbeat_at=r.heartbeat_at,
        )

    # -- jobs ------------------------------------------------------------------------
    def resolve_job(self, ident: str) -> str:
        """A job id from a prefix, or from the short form ``EXECUTION.N`` (`job_ref`)."""
        hint = "`lazyflow log EXECUTION` shows job ids."
        execution, dot, number = ident.strip().partition(".")
        if dot and number.isdigit():
            eid = self.resolve_execution(execution)
            jid = f"{eid[:16]}{int(number):016x}"
            j = schema.jobs
            if self._rows(select(j.c.id).where(j.c.id == jid, j.c.execution_id == eid)):
                return jid
            raise NoSuchRecord(f"execution {eid[:8]} has no job {number}. {hint}")
        return self._resolve(schema.jobs.c.id, ident, "job", hint)

    def job(self, ident: str) -> Job:
        jid = self.resolve_job(ident)
        j = schema.jobs
        return _job(self._rows(select(j).where(j.c.id == jid))[0])

    def jobs(self, execution_id: str) -> list[Job]:
        """Every job of an execution, in start order."""
        j = schema.jobs
        rows = self._rows(
            select(j).where(j.c.execution_id == execution_id).order_by(j.c.started_at, j.c.id)
        )
        return [_job(r) for r in rows]

    def child_jobs(self, job: Job) -> list[Job]:
        """The jobs a job's call made in its execution, in start order."""
        j = schema.jobs
        rows = self._rows(
            select(j)
            .where(j.c.execution_id == job.execution_id, j.c.parent_id == job.id)
            .order_by(j.c.started_at, j.c.id)
        )
        return [_job(r) for r in rows]

    def task_counts(self, execution_id: str) -> list[TaskCount]:
        """Per task, how many of the execution's jobs are in each state, counted by the
        database (one grouped query: cheap on a 100k-call execution, and current while a
        run is still writing its jobs). Tasks in order of their first job."""
        j = schema.jobs
        rows = self._rows(
            select(
                j.c.task_name,
                j.c.status,
                j.c.cached,
                func.count(),
                func.min(j.c.started_at),
                func.sum(j.c.finished_at - j.c.started_at),
            )
            .where(j.c.execution_id == execution_id)
            # in the order of the covering index (`schema.jobs`): read from it alone
            .group_by(j.c.task_name, j.c.cached, j.c.status)
        )
        out: dict[str, TaskCount] = {}
        first: dict[str, float] = {}
        for name, status, cached, n, started, seconds in rows:
            tc = out.setdefault(name, TaskCount(name))
            state = "cached" if cached else status
            tc.states[state] = tc.states.get(state, 0) + n
            tc.jobs += n
            if not cached and seconds is not None:
                tc.seconds += float(seconds)
            if started is not None:
                first[name] = min(first.get(name, started), started)
        return sorted(out.values(), key=lambda t: (first.get(t.name, float("inf")), t.name))

    def _jobs_by_id(self, ids: Iterable[str]) -> dict[str, Job]:
        j = schema.jobs
        out: dict[str, Job] = {}
        for chunk in chunks(sorted(set(ids))):
            for r in self._rows(select(j).where(j.c.id.in_(chunk))):
                out[r.id] = _job(r)
        return out

    # -- values, tasks, files ----------------------------------------------------------
    def resolve_value(self, ident: str) -> str:
        return self._resolve(schema.values.c.hash, ident, "value", "")

    def value(self, ident: str) -> Value:
        vid = self.resolve_value(ident)
        return self.values([vid])[vid]

    def values(self, hashes: Iterable[str]) -> dict[str, Value]:
        v = schema.values
        out: dict[str, Value] = {}
        for chunk in chunks(sorted(set(hashes))):
            for r in self._rows(
                select(
                    v.c.hash, v.c.type_name, v.c.size, v.c.preview, v.c.blob, v.c.created_at
                ).where(v.c.hash.in_(chunk))
            ):
                out[r.hash] = Value(r.hash, r.type_name, r.size, r.preview, r.blob, r.created_at)
        return out

    def load_value(self, value_hash: str) -> Any:
        """The stored value itself, unpickled only if it is signed with one of the store's
        keys (the verified load of read-only tools). Raises `UnverifiedValue` (a
        `StoreError`) when it is not, and `MissingValue` (a `StoreError` and a `KeyError`)
        when the store has no such value."""
        return self.store.load_value(self.resolve_value(value_hash), signed_only=True)

    def task(self, task_hash: str) -> TaskVersion | None:
        """The recorded task version (name, module, normalized source) with this hash."""
        t = schema.tasks
        rows = self._rows(select(t).where(t.c.hash == task_hash))
        return _task(rows[0]) if rows else None

    def code_version(self, task_hash: str) -> CodeVersion | None:
        """A task version's code as recorded: source, dependencies and their sources
        (what `codechange` compares)."""
        t = schema.tasks
        rows = self._rows(
            select(t.c.name, t.c.source, t.c.dependencies, t.c.dependency_sources).where(
                t.c.hash == task_hash
            )
        )
        return CodeVersion.stored(*rows[0]) if rows else None

    def task_versions(self, name: str) -> list[TaskVersion]:
        """Every recorded version of a task (full or short name), newest first."""
        t = schema.tasks
        rows = self._rows(
            select(t).where(_name_matches(t.c.name, name)).order_by(t.c.created_at.desc())
        )
        return [_task(r) for r in rows]

    def files(self, call_hash: str) -> list[FileRecord]:
        """Input and output files recorded for a call."""
        f = schema.files
        rows = self._rows(select(f).where(f.c.call_hash == call_hash).order_by(f.c.role, f.c.path))
        return [_file(r) for r in rows]

    def execution_files(self, execution_id: str) -> list[JobFile]:
        """Every file the calls of an execution read or wrote, one query for the whole
        execution (orchestrators report them as lineage datasets and asset events)."""
        j, f = schema.jobs, schema.files
        rows = self._rows(
            select(j.c.id, j.c.task_name, j.c.cached, f.c.role, f.c.path, f.c.file_hash)
            .join(f, f.c.call_hash == j.c.call_hash)
            .where(j.c.execution_id == execution_id)
            .order_by(j.c.started_at, j.c.id, f.c.role, f.c.path)
        )
        return [JobFile(r[0], r[1], bool(r[2]), r[3], r[4], r[5]) for r in rows]

    # -- calls -----------------------------------------------------------------------
    def resolve_call(self, ident: str) -> str:
        return self._resolve(schema.calls.c.call_hash, ident, "call", "")

    def call(self, ident: str) -> Call:
        """One recorded call with its arguments and result."""
        h = self.resolve_call(ident)
        return self.calls([h])[h]

    def calls(self, hashes: Iterable[str], *, details: bool = True) -> dict[str, Call]:
        """Recorded calls by hash; with `details`, their arguments and result values."""
        c = schema.calls
        rows: list[Any] = []
        for chunk in chunks(sorted(set(hashes))):
            rows += self._rows(select(c).where(c.c.call_hash.in_(chunk)))
        if not rows:
            return {}
        previews = {
            jid: job.args_preview
            for jid, job in self._jobs_by_id(r.job_id for r in rows if r.job_id).items()
        }
        args: dict[str, list[tuple[int, str, str, str | None]]] = {}
        values: dict[str, Value] = {}
        if details:
            a = schema.call_args
            for chunk in chunks([r.call_hash for r in rows]):
                for ch, pos, name, vh, producer in self._rows(
                    select(a.c.call_hash, a.c.position, a.c.name, a.c.value_hash, a.c.producer)
                    .where(a.c.call_hash.in_(chunk))
                    .order_by(a.c.call_hash, a.c.position)
                ):
                    args.setdefault(ch, []).append((pos, name, vh, producer))
            wanted = {r.result_hash for r in rows}
            wanted.update(vh for lst in args.values() for _, _, vh, _ in lst)
            values = self.values(wanted)
        out: dict[str, Call] = {}
        for r in rows:
            call_args = tuple(
                Arg(p, n, vh, values.get(vh), producer)
                for p, n, vh, producer in args.get(r.call_hash, [])
            )
            preview = previews.get(r.job_id) or _preview(r.task_name, call_args)
            out[r.call_hash] = Call(
                call_hash=r.call_hash,
                task_hash=r.task_hash,
                task_name=r.task_name,
                result_hash=r.result_hash,
                validation_hash=r.validation_hash,
                execution_id=r.execution_id,
                job_id=r.job_id,
                created_at=r.created_at,
                preview=preview,
                args=call_args,
                result=values.get(r.result_hash),
            )
        return out

    def children(self, call_hash: str) -> list[str]:
        """Child calls (in call order) that a call made while computing its result."""
        return self._children([call_hash]).get(call_hash, [])

    def _children(self, hashes: Sequence[str]) -> dict[str, list[str]]:
        cc = schema.call_children
        out: dict[str, list[str]] = {}
        for chunk in chunks(sorted(set(hashes))):
            for parent, child in self._rows(
                select(cc.c.parent_hash, cc.c.child_hash)
                .where(cc.c.parent_hash.in_(chunk))
                .order_by(cc.c.parent_hash, cc.c.position)
            ):
                out.setdefault(parent, []).append(child)
        return out

    def parents(self, call_hash: str) -> list[str]:
        """Calls that made this call (usually one)."""
        cc = schema.call_children
        return sorted(
            {r[0] for r in self._rows(select(cc.c.parent_hash).where(cc.c.child_hash == call_hash))}
        )

    # -- executions in depth ---------------------------------------------------------------
    def call_tree(
        self, execution_id: str, *, expand_cached: bool = False, max_nodes: int = 200_000
    ) -> list[CallNode]:
        """The execution's calls as a tree (from job parent links). With `expand_cached`,
        each reused call lists the calls under it, as recorded when they ran."""
        jobs = self.jobs(execution_id)
        # Jobs older than schema 0005 have no result of their own: the call's row says.
        old = [j.call_hash for j in jobs if j.call_hash and j.task_hash is None]
        call_rows = self.calls(old, details=False) if old else {}
        own = {j.id: job_outcome(j, call_rows.get(j.call_hash or "")) for j in jobs}
        results = self.values(r for r, _ in own.values() if r)
        nodes: dict[str, CallNode] = {}
        for j in jobs:
            result_hash, task_hash = own[j.id]
            nodes[j.id] = CallNode(
                task_name=j.task_name,
                preview=j.args_preview or j.task_name,
                status=j.status,
                cached=j.cached,
                call_hash=j.call_hash,
                job=j,
                seconds=j.seconds,
                result=results.get(result_hash) if result_hash else None,
                task_hash=task_hash,
            )
        roots: list[CallNode] = []
        for j in jobs:
            parent = nodes.get(j.parent_id or "")
            (parent.children if parent is not None else roots).append(nodes[j.id])
        self._tree_tags(execution_id, nodes.values())
        if expand_cached:
            self._expand([n for n in nodes.values() if n.cached and n.call_hash], max_nodes)
        return roots

    def _expand(self, tops: list[CallNode], max_nodes: int) -> None:
        """Attach recorded child calls below reused calls, breadth first."""
        frontier = tops
        top_ids = {id(n) for n in tops}
        expanded: set[str] = set()
        count = 0
        while frontier and count < max_nodes:
            todo = []
            for n in frontier:
                if n.call_hash not in expanded:
                    expanded.add(n.call_hash or "")
                    todo.append(n)
                elif id(n) not in top_ids:
                    n.repeated = True
            kids = self._children([n.call_hash for n in todo if n.call_hash])
            calls = self.calls({h for hs in kids.values() for h in hs}, details=False)
            results = self.values(c.result_hash for c in calls.values())
            frontier = []
            for n in todo:
                for h in kids.get(n.call_hash or "", []):
                    call = calls.get(h)
                    if call is None:
                        continue
                    child = CallNode(
                        task_name=call.task_name,
                        preview=call.preview,
                        status="cached",
                        cached=True,
                        call_hash=h,
                        job=None,
                        seconds=None,
                        result=results.get(call.result_hash),
                        task_hash=call.task_hash,
                    )
                    n.children.append(child)
                    frontier.append(child)
                    count += 1

    def run_report(self, ident: str) -> RunReport:
        """What an execution executed, reused from the cache, and failed."""
        execution = self.execution(ident)
        jobs = self.jobs(execution.id)
        cached = [j for j in jobs if j.cached]
        reused: set[str] = set()
        frontier = [j.call_hash for j in cached if j.call_hash]
        while frontier:
            frontier = [h for h in frontier if h not in reused]
            reused.update(frontier)
            kids = self._children(frontier)
            frontier = [h for hs in kids.values() for h in hs]
        return RunReport(
            execution=execution,
            executed=[j for j in jobs if j.status == "done" and not j.cached],
            cached=cached,
            failed=[j for j in jobs if j.status == "failed"],
            reused_calls=len(reused),
        )

    def execution_calls(self, ident: str) -> dict[str, CallNode]:
        """Every call in effect in an execution, the calls under reused ones included,
        keyed by call hash (by job id for a call that could not be hashed)."""
        out: dict[str, CallNode] = {}
        stack = list(reversed(self.call_tree(self.resolve_execution(ident), expand_cached=True)))
        while stack:
            node = stack.pop()
            key = node.call_hash or (node.job.id if node.job else "")
            out.setdefault(key, node)
            stack.extend(reversed(node.children))
        return out

    def arg_producers(self, call_hashes: Iterable[str]) -> dict[str, dict[str, str]]:
        """``{call_hash: {argument name: producing call hash}}``, where recorded."""
        a = schema.call_args
        out: dict[str, dict[str, str]] = {}
        for chunk in chunks(sorted(set(call_hashes))):
            for ch, name, producer in self._rows(
                select(a.c.call_hash, a.c.name, a.c.producer).where(
                    a.c.call_hash.in_(chunk), a.c.producer.is_not(None)
                )
            ):
                out.setdefault(ch, {})[name] = producer
        return out

    def arg_hashes(self, call_hashes: Iterable[str]) -> dict[str, dict[str, str]]:
        """``{call_hash: {argument name: value hash}}`` for recorded calls."""
        a = schema.call_args
        out: dict[str, dict[str, str]] = {}
        for chunk in chunks(sorted(set(call_hashes))):
            for ch, name, vh in self._rows(
                select(a.c.call_hash, a.c.name, a.c.value_hash)
                .where(a.c.call_hash.in_(chunk))
                .order_by(a.c.call_hash, a.c.position)
            ):
                out.setdefault(ch, {})[name] = vh
        return out

    # -- store statistics ----------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Row count of every store table."""
        out: dict[str, int] = {}
        for table in schema.metadata.sorted_tables:
            out[table.name] = self._rows(select(func.count()).select_from(table))[0][0]
        return out


# -- helpers -------------------------------------------------------------------------


def job_outcome(job: Job, call: Call | None) -> tuple[str | None, str | None]:
    """A job's own result hash and task hash: history, as that job recorded them.

    Jobs recorded before schema 0005 hold neither: the call's row (`call`) is all there
    is, and a later run of the same call may have rewritten it.
    """
    if job.task_hash is not None:
        return job.result_hash, job.task_hash
    if call is None or job.status == "failed":
        return None, call.task_hash if call else None
    return call.result_hash, call.task_hash


def _name_matches(column: Any, name: str) -> Any:
    """Full task name, or the short name after the last dot."""
    return or_(column == name, column.endswith("." + name, autoescape=True))


def _preview(task_name: str, args: Sequence[Arg]) -> str:
    short = task_name.rsplit(".", 1)[-1]
    shown = ", ".join(
        f"{a.name}={ellipsize(a.value.preview if a.value and a.value.preview else '?', 40)}"
        for a in args
    )
    return f"{short}({shown})"


def _job(r: Any) -> Job:
    return Job(
        id=r.id,
        execution_id=r.execution_id,
        call_hash=r.call_hash,
        task_name=r.task_name,
        parent_id=r.parent_id,
        status=r.status,
        cached=bool(r.cached),
        started_at=r.started_at,
        finished_at=r.finished_at,
        attempts=r.attempts,
        args_preview=r.args_preview,
        error=r.error,
        result_hash=r.result_hash,
        task_hash=r.task_hash,
        error_type=r.error_type,
        traceback=r.traceback,
    )


def _task(r: Any) -> TaskVersion:
    return TaskVersion(r.hash, r.name, r.module, r.source, r.created_at)


def _file(r: Any) -> FileRecord:
    return FileRecord(r.call_hash, r.role, r.path, r.file_hash, r.created_at)
