"""An execution's calls as a graph that stays readable at 100k calls, and the data flow
between calls.

Grouping. Siblings of one task are one node: the children of a group are the children
of all its members, grouped again by task. ``main`` making 100,000 ``inc`` calls and one
``total`` call is three groups whatever the fan-out; ``process(i)`` making ``load`` and
``fit`` a thousand times is four. A group's key is a hash of its parent's key and its
task name, so it is the same on every request and in every process (the browser asks
for a group's members by key). Counts per state come with each group; the members
themselves are listed on demand (`CallGroups.members`), in start order.

Data flow. A call's result that is an argument of another call (or an item of a list or
dict argument) is an edge from producer to consumer. The store records, per argument,
the call that produced it (`dataflow`; ``FlowSource.producer``): that edge is taken as
recorded. Items of container arguments, and stores older than schema 0005, have no
recorded producer: the flow is inferred, the value must be the result of a call that
finished before the consumer started (`could_feed`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .lineage import Provenance, could_feed
from .records import CallNode, Execution, Job

CONTAINERS = ("list", "tuple", "dict", "set", "frozenset")
PAGE_PARENTS = 500
"""A page of a group's calls is one query when its parent group has at most this many
members that made calls (else the task's calls are filtered here); also the chunk size
of ``IN`` lists."""


def group_key(parent_key: str, task_name: str) -> str:
    """The stable key of the group of `task_name` calls under the group `parent_key`."""
    return hashlib.blake2b(f"{parent_key}\0{task_name}".encode(), digest_size=6).hexdigest()


def state(job: Job) -> str:
    """How a job shows: ``cached`` for a reused call, else its status."""
    return "cached" if job.cached else job.status


@dataclass(eq=False, slots=True)
class CallGroup:
    """The calls of one task made by the members of the parent group: counted, not
    loaded (`CallGroups.members` reads a page of them)."""

    key: str
    parent: str | None
    task_name: str
    depth: int
    count: int = 0
    states: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0  # executed members, in all
    children: list[str] = field(default_factory=list)
    job_id: str | None = None  # the member, when there is exactly one
    job: Job | None = None  # and its record
    first_start: float = float("inf")


@dataclass(eq=False)
class CallGroups:
    """An execution's jobs grouped by task under their parents (see the module doc).

    Built from aggregates (one ``GROUP BY`` over the execution's jobs) and the jobs that
    made calls; the members of a group are read when asked for, so a 100k-call fan-out
    costs a few rows, not 100k `Job` objects."""

    execution: Execution
    groups: dict[str, CallGroup]  # breadth first: parents before their children
    roots: list[str]
    prov: Provenance
    parents: dict[str, tuple[str | None, str]]  # job that made calls -> (parent id, task)
    parent_group: dict[str, str]  # job that made calls -> its group key
    _members: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    _parents_of: dict[str, list[str]] | None = None

    @property
    def jobs(self) -> int:
        return sum(g.count for g in self.groups.values())

    def members(
        self, key: str, *, offset: int = 0, limit: int = 100, state: str | None = None
    ) -> tuple[list[Job], int]:
        """One page of a group's jobs (optionally of one state), and how many there are."""
        g = self.groups[key]
        made_by = self._made_by().get(g.parent or "", [])
        if g.parent is not None and len(made_by) <= PAGE_PARENTS:
            # the page in SQL: the group's calls are the task's calls made by these jobs
            total = g.states.get(state, 0) if state else g.count
            where = [schema_jobs().c.task_name == g.task_name, _of_state(state)]
            where.append(schema_jobs().c.parent_id.in_(made_by))
            return _jobs(self.prov, self.execution.id, where, offset=offset, limit=limit), total
        ids = self._member_ids(key)
        if state:
            ids = [m for m in ids if m[1] == state]
        page = [jid for jid, _ in ids[offset : offset + limit]]
        found = {j.id: j for j in _jobs_by_id(self.prov, self.execution.id, page)}
        return [found[jid] for jid in page if jid in found], len(ids)

    def _made_by(self) -> dict[str, list[str]]:
        """Group key -> the ids of its members that made calls."""
        if self._parents_of is None:
            self._parents_of = {}
            for jid, key in self.parent_group.items():
                self._parents_of.setdefault(key, []).append(jid)
        return self._parents_of

    @property
    def group_of(self) -> dict[str, str]:
        """Job id -> group key for every job (reads every job's id: for small graphs)."""
        out: dict[str, str] = {}
        for key in self.groups:
            out.update((jid, key) for jid, _ in self._member_ids(key))
        return out

    def _member_ids(self, key: str) -> list[tuple[str, str]]:
        """The group's (job id, state) in start order: the task's jobs, lean rows, kept
        when their parent is a member of the parent group."""
        cached = self._members.get(key)
        if cached is not None:
            return cached
        from sqlalchemy import select

        from ..store import schema

        g, j = self.groups[key], schema.jobs
        rows = self.prov._rows(
            select(j.c.id, j.c.parent_id, j.c.cached, j.c.status)
            .where(j.c.execution_id == self.execution.id, j.c.task_name == g.task_name)
            .order_by(j.c.started_at, j.c.id)
        )
        pg = self.parent_group
        out = [
            (jid, "cached" if cached_ else status)
            for jid, parent, cached_, status in rows
            if pg.get(parent) == g.parent  # parent None: a top-level job
        ]
        self._members[key] = out
        return out


_state = state


def call_groups(prov: Provenance, ident: str) -> CallGroups:
    """Group an execution's jobs: one aggregate query (per parent job, task and state),
    one for the jobs that made calls, one for the members of single-call groups."""
    execution = prov.execution(ident)
    eid = execution.id
    parents = _parents(prov, eid)
    parent_group: dict[str, str] = {}

    def group_of(job_id: str | None) -> str | None:
        """The group key of a job that made calls (None: not one of this execution's)."""
        if job_id is None or job_id not in parents:
            return None
        chain: list[str] = []
        cur: str | None = job_id
        while cur is not None and cur in parents and cur not in parent_group:
            chain.append(cur)
            cur = parents[cur][0]
        key = parent_group.get(cur, "") if cur is not None else ""
        for jid in reversed(chain):
            key = parent_group[jid] = group_key(key, parents[jid][1])
        return parent_group[job_id]

    groups: dict[str, CallGroup] = {}
    for task, cached, status, parent, n, secs, first, one in _aggregates(prov, eid):
        up = group_of(parent)
        key = group_key(up or "", task)
        g = groups.get(key)
        if g is None:
            g = groups[key] = CallGroup(key, up, task, 0)
        g.count += n
        s = "cached" if cached else status
        g.states[s] = g.states.get(s, 0) + n
        g.seconds += secs or 0.0
        g.first_start = min(g.first_start, first if first is not None else float("inf"))
        g.job_id = None if g.count > 1 else one
    return _arrange(prov, execution, groups, parents, parent_group)


def _arrange(
    prov: Provenance,
    execution: Execution,
    groups: dict[str, CallGroup],
    parents: dict[str, tuple[str | None, str]],
    parent_group: dict[str, str],
) -> CallGroups:
    """Order the groups breadth first (siblings by their first call's start), set depths
    and children, and load the one member of single-call groups."""
    kids: dict[str | None, list[CallGroup]] = {}
    for g in sorted(groups.values(), key=lambda g: (g.first_start, g.task_name)):
        kids.setdefault(g.parent, []).append(g)
    ordered: dict[str, CallGroup] = {}
    frontier = kids.get(None, [])
    roots = [g.key for g in frontier]
    depth = 0
    while frontier:
        nxt: list[CallGroup] = []
        for g in frontier:
            g.depth = depth
            ordered[g.key] = g
            below = kids.get(g.key, [])
            g.children = [c.key for c in below]
            nxt += below
        frontier, depth = nxt, depth + 1
    singles = {g.job_id: g for g in ordered.values() if g.job_id is not None}
    for j in _jobs_by_id(prov, execution.id, list(singles)):
        singles[j.id].job = j
    return CallGroups(execution, ordered, roots, prov, parents, parent_group)


def _aggregates(prov: Provenance, execution_id: str) -> list[Any]:
    """Per (task, cached, status, parent job): count, executed seconds, first start, and
    one job id (the member, when the count is 1)."""
    from sqlalchemy import case, func, select

    from ..store import schema

    j = schema.jobs
    ran = (j.c.cached == False) & j.c.started_at.isnot(None) & j.c.finished_at.isnot(None)  # noqa: E712
    seconds = func.sum(case((ran, j.c.finished_at - j.c.started_at), else_=0.0))
    # in the order of the covering index (`schema.jobs`): grouped as it is read
    cols = (j.c.task_name, j.c.cached, j.c.status, j.c.parent_id)
    return prov._rows(
        select(*cols, func.count(), seconds, func.min(j.c.started_at), func.min(j.c.id))
        .where(j.c.execution_id == execution_id)
        .group_by(*cols)
    )


def _parents(prov: Provenance, execution_id: str) -> dict[str, tuple[str | None, str]]:
    """The execution's jobs that made calls: id -> (their parent's id, their task)."""
    from sqlalchemy import select

    from ..store import schema

    j, k = schema.jobs, schema.jobs.alias("k")
    made = select(k.c.parent_id).where(k.c.execution_id == execution_id)
    rows = prov._rows(
        select(j.c.id, j.c.parent_id, j.c.task_name).where(
            j.c.execution_id == execution_id, j.c.id.in_(made)
        )
    )
    return {jid: (parent, task) for jid, parent, task in rows}


def schema_jobs() -> Any:
    """The jobs table (imported on use: the store pulls in SQLAlchemy)."""
    from ..store import schema

    return schema.jobs


def _of_state(state: str | None) -> Any:
    """A condition on the jobs' state as `state` names it (``cached``, else a status)."""
    from sqlalchemy import true

    j = schema_jobs()
    if not state:
        return true()
    if state == "cached":
        return j.c.cached == True  # noqa: E712
    return (j.c.cached == False) & (j.c.status == state)  # noqa: E712


def find_jobs(
    prov: Provenance,
    execution_id: str,
    *,
    text: str = "",
    task: str = "",
    state: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[list[Job], int]:
    """One page of the execution's jobs whose call preview or task name contains `text`
    (any case), of `task` (its full or short name) and in `state`, and how many match:
    filtered, counted and paged by the database (a 100k-call execution is not read)."""
    from sqlalchemy import func, or_, select

    j = schema_jobs()
    where = [_of_state(state)]
    if task:
        where.append(
            or_(j.c.task_name == task, j.c.task_name.endswith("." + task, autoescape=True))
        )
    if text:
        haystack = func.lower(func.coalesce(j.c.args_preview, "") + " " + j.c.task_name)
        where.append(haystack.contains(text.lower(), autoescape=True))
    counted = prov._rows(
        select(func.count()).select_from(j).where(j.c.execution_id == execution_id, *where)
    )
    return _jobs(prov, execution_id, where, offset=offset, limit=limit), counted[0][0]


def child_page(
    prov: Provenance, job: Job, *, offset: int = 0, limit: int = 50
) -> tuple[list[Job], int, dict[str, int]]:
    """One page of the jobs `job`'s call made in its execution (start order), how many
    it made, and how many calls each job of the page made in turn."""
    from sqlalchemy import func, select

    j = schema_jobs()
    eid = job.execution_id
    page = _jobs(prov, eid, [j.c.parent_id == job.id], offset=offset, limit=limit)
    total = prov._rows(
        select(func.count()).select_from(j).where(j.c.execution_id == eid, j.c.parent_id == job.id)
    )[0][0]
    made: dict[str, int] = {}
    if page:
        rows = prov._rows(
            select(j.c.parent_id, func.count())
            .where(j.c.execution_id == eid, j.c.parent_id.in_([c.id for c in page]))
            .group_by(j.c.parent_id)
        )
        made = {parent: n for parent, n in rows}
    return page, total, made


def _jobs_by_id(prov: Provenance, execution_id: str, ids: Sequence[str]) -> list[Job]:
    """Some of the execution's jobs, in chunks under the databases' parameter limits."""
    j = schema_jobs()
    out: list[Job] = []
    for i in range(0, len(ids), PAGE_PARENTS):
        out += _jobs(prov, execution_id, [j.c.id.in_(ids[i : i + PAGE_PARENTS])])
    return out


def _jobs(
    prov: Provenance,
    execution_id: str,
    where: Sequence[Any],
    *,
    offset: int = 0,
    limit: int | None = None,
) -> list[Job]:
    """The execution's jobs matching `where` in start order, in full, read as plain tuples
    (building rows by column name costs more than the query)."""
    from sqlalchemy import select

    j = schema_jobs()
    columns = (
        j.c.id,
        j.c.call_hash,
        j.c.task_name,
        j.c.parent_id,
        j.c.status,
        j.c.cached,
        j.c.started_at,
        j.c.finished_at,
        j.c.attempts,
        j.c.args_preview,
        j.c.error,
        j.c.result_hash,
        j.c.task_hash,
        j.c.error_type,
        j.c.traceback,
    )
    query = (
        select(*columns)
        .where(j.c.execution_id == execution_id, *where)
        .order_by(j.c.started_at, j.c.id)
        .offset(offset)
        .limit(limit)
    )
    return [
        Job(jid, execution_id, ch, name, parent, status, bool(cached), s, f, att, pv, *rest)
        for jid, ch, name, parent, status, cached, s, f, att, pv, *rest in prov._rows(query)
    ]


# -- data flow -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlowSource:
    """A value a call received: its argument label (``values[2]`` for an item of a
    container argument), the value's hash, and the producing call when the store
    recorded it (None: to be inferred)."""

    label: str
    value_hash: str
    producer: str | None = None


@dataclass(frozen=True, slots=True)
class Flow:
    """A result that reached another call: indexes into the nodes given to `data_flows`."""

    producer: int
    consumer: int
    label: str


def flow_sources(
    prov: Provenance, call_hashes: Iterable[str], results: Container[str] = ()
) -> dict[str, list[FlowSource]]:
    """What each call received: each argument, and the items of a container argument
    that is not itself one of `results` (``total([inc(i) ...])`` got a list no call
    returned, made of values that calls did return)."""
    hashes = list(call_hashes)
    args = prov.arg_hashes(hashes)
    recorded = prov.arg_producers(hashes)
    values = prov.values(h for a in args.values() for h in a.values())
    out: dict[str, list[FlowSource]] = {}
    for call_hash, named in args.items():
        sources = out.setdefault(call_hash, [])
        producers = recorded.get(call_hash, {})
        for name, vh in named.items():
            sources.append(FlowSource(name, vh, producers.get(name)))
            value = values.get(vh)
            if vh not in results and value is not None and value.type_name in CONTAINERS:
                sources += [FlowSource(name + label, h) for label, h in prov.parts(vh) or []]
    return out


def data_flows(
    prov: Provenance, nodes: Sequence[CallNode], parent: Mapping[int, int] | None = None
) -> list[Flow]:
    """Edges from the node whose result another node received to that node.

    `parent` maps a node's index to its parent's (it tells siblings apart inside a reused
    subtree, where there are no jobs to order calls by). A consumer is fed by at most
    one producer per argument label.
    """
    parent = parent or {}
    produced: dict[str, list[int]] = {}
    by_call: dict[str, list[int]] = {}
    for i, n in enumerate(nodes):
        if n.call_hash:
            by_call.setdefault(n.call_hash, []).append(i)
        if n.result is not None and n.status != "failed":
            produced.setdefault(n.result.hash, []).append(i)
    if not produced:
        return []
    sources = flow_sources(prov, by_call, produced)
    flows: list[Flow] = []
    seen: set[tuple[int, int]] = set()
    for c, n in enumerate(nodes):
        for src in sources.get(n.call_hash or "", ()):
            recorded = bool(src.producer)
            if src.producer:
                candidates = by_call.get(src.producer, [])
            else:
                candidates = produced.get(src.value_hash, [])
            for p in candidates:
                if (
                    p != c
                    and (p, c) not in seen
                    and (recorded or _before(nodes, parent, p, c))  # a record is exact
                ):
                    seen.add((p, c))
                    flows.append(Flow(p, c, src.label))
                    break
    return flows


def _before(nodes: Sequence[CallNode], parent: Mapping[int, int], p: int, c: int) -> bool:
    jp, jc = nodes[p].job, nodes[c].job
    if jp is not None and jc is not None:
        return could_feed(jp.id, jp.finished_at, jc.id, jc.started_at)
    return parent.get(p) == parent.get(c)  # inside a reused subtree: siblings only
