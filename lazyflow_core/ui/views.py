"""What the browser shows, as JSON-ready dicts built from provenance queries.

The JSON API returns these dicts, the server-rendered pages format them, and
``lazyflow viz`` inlines the graph payload in its HTML file: one description of each
page's data. Nothing here needs the web framework (``viz`` works without the ``ui``
extra), and nothing here unpickles a stored value unless asked: previews are what the
store recorded. Asked (a job with ``?values=1``: `load_values`), only values signed with
one of the reader's keys are unpickled (`Provenance.load_value`, the verified load).
"""

from __future__ import annotations

from typing import Any

from ..errors import LazyflowError
from ..preview import short_repr
from ..provenance import (
    Call,
    CallGroups,
    CallNode,
    Execution,
    Job,
    Lineage,
    NoSuchRecord,
    Provenance,
    Step,
    Use,
    Value,
    data_flows,
    job_ref,
)
from ..provenance.graph import child_page, find_jobs, state
from ..provenance.queries import job_outcome

GRAPH_GROUPS = 1500
"""Groups drawn at most (breadth first); deeper ones are counted, not drawn."""
FLOW_JOBS = 5000
"""Executions with more jobs get their data flow only when asked (``flows=1``)."""
INLINE_MEMBERS = 50
"""Members of each group listed in a ``viz`` file (the browser asks the server instead)."""
VALUE_CHARS = 2000
"""A loaded value is shown as its repr, cut to this many characters."""
VALUES_NOTE = (
    "Stored values are loaded only when signed with one of this server's keys "
    "(LAZYFLOW_SIGNING_KEY) and the signature verifies; any other value is not unpickled, "
    "and the reason is shown instead."
)


def short_name(task_name: str) -> str:
    return task_name.rsplit(".", 1)[-1]


def execution_dict(e: Execution) -> dict[str, Any]:
    return {
        "id": e.id,
        "started_at": e.started_at,
        "finished_at": e.finished_at,
        "seconds": e.seconds,
        "status": e.status,
        "root_task": e.root_task,
        "root_call_hash": e.root_call_hash,
        "result_hash": e.result_hash,
        "command": e.command,
        "hostname": e.hostname,
        "pid": e.pid,
        "jobs": e.jobs,
        "cached": e.cached,
        "executed": e.executed,
        "failed": e.failed,
        "error": e.error,
        "tags": e.tags,
    }


def value_dict(v: Value | None, value_hash: str | None = None) -> dict[str, Any] | None:
    if v is None:
        return None if value_hash is None else {"hash": value_hash, "preview": None}
    return {"hash": v.hash, "type": v.type_name, "size": v.size, "preview": v.preview}


def execution_detail(prov: Provenance, ident: str) -> dict[str, Any]:
    """An execution's summary, result and per-task counts (live while it runs)."""
    e = prov.execution(ident)
    result = prov.values([e.result_hash]).get(e.result_hash) if e.result_hash else None
    # a running execution's row is updated at the end: count its jobs as they are now
    counts = prov.task_counts(e.id)
    out = execution_dict(e)
    out["result"] = value_dict(result, e.result_hash)
    out["tasks"] = [
        {
            "task": t.name,
            "short": short_name(t.name),
            "jobs": t.jobs,
            "states": t.states,
            "seconds": t.seconds,
        }
        for t in counts
    ]
    totals: dict[str, int] = {}
    for t in counts:
        for s, n in t.states.items():
            totals[s] = totals.get(s, 0) + n
    out["states"] = totals
    out["recorded_jobs"] = sum(t.jobs for t in counts)
    return out


def job_summary(j: Job, execution_id: str | None = None) -> dict[str, Any]:
    return {
        "job": job_ref(j.id, execution_id or j.execution_id),
        "id": j.id,
        "task": j.task_name,
        "call": j.args_preview or short_name(j.task_name),
        "state": state(j),
        "cached": j.cached,
        "status": j.status,
        "started_at": j.started_at,
        "seconds": j.seconds,
        "attempts": j.attempts,
        "error": j.error,
        "error_type": j.error_type,
        "call_hash": j.call_hash,
    }


# -- the call graph --------------------------------------------------------------------


def graph_payload(
    prov: Provenance,
    groups: CallGroups,
    *,
    flows: bool | None = None,
    inline_members: int = 0,
    budget: int = GRAPH_GROUPS,
) -> dict[str, Any]:
    """The grouped call graph: groups breadth first up to `budget`, their call edges,
    data-flow edges between groups (by default only for executions of at most
    `FLOW_JOBS` jobs), and with `inline_members` the first members of every group."""
    e = groups.execution
    keys = list(groups.groups)[:budget]
    shown = set(keys)
    nodes = []
    for key in keys:
        g = groups.groups[key]
        node: dict[str, Any] = {
            "key": key,
            "parent": g.parent,
            "task": g.task_name,
            "short": short_name(g.task_name),
            "depth": g.depth,
            "count": g.count,
            "states": g.states,
            "seconds": g.seconds,
            "hidden_children": sum(1 for c in g.children if c not in shown),
        }
        if g.job is not None:
            node["job"] = job_ref(g.job.id, e.id)
            node["call"] = g.job.args_preview or node["short"]
            node["error"] = g.job.error
        if inline_members:
            members, _ = groups.members(key, limit=inline_members)
            node["members"] = [job_summary(j, e.id) for j in members]
        nodes.append(node)
    total_jobs = groups.jobs
    want_flows = flows if flows is not None else total_jobs <= FLOW_JOBS
    return {
        "execution": execution_dict(e),
        "jobs": total_jobs,
        "groups": nodes,
        "hidden_groups": len(groups.groups) - len(keys),
        "flows": group_flows(prov, groups, shown) if want_flows else None,
    }


def group_flows(prov: Provenance, groups: CallGroups, shown: set[str]) -> list[dict[str, Any]]:
    """Data flow between groups: how many results of one group reached the other."""
    roots = prov.call_tree(groups.execution.id)
    nodes: list[CallNode] = []
    parent: dict[int, int] = {}
    stack = [(r, -1) for r in reversed(roots)]
    while stack:
        node, up = stack.pop()
        index = len(nodes)
        nodes.append(node)
        if up >= 0:
            parent[index] = up
        stack.extend((c, index) for c in reversed(node.children))
    counts: dict[tuple[str, str], list[Any]] = {}
    group_of = groups.group_of
    for f in data_flows(prov, nodes, parent):
        jp, jc = nodes[f.producer].job, nodes[f.consumer].job
        if jp is None or jc is None:
            continue
        a, b = group_of.get(jp.id), group_of.get(jc.id)
        if a in shown and b in shown and a is not None and b is not None:
            entry = counts.setdefault((a, b), [0, f.label])
            entry[0] += 1
    return [
        {"from": a, "to": b, "count": n, "label": label if n == 1 else _arg_name(label)}
        for (a, b), (n, label) in counts.items()
    ]


def _arg_name(label: str) -> str:
    """``values`` for ``values[3]`` (several items of one argument share an edge)."""
    head, bracket, _ = label.partition("[")
    return head + ("[…]" if bracket else "")


def subtree_payload(prov: Provenance, ident: str, *, limit: int = 50) -> dict[str, Any]:
    """The calls a job's call made, a page of them, each with how many it made in turn.

    A cached job made none in its own execution: its call's subtree was reused as
    recorded by the execution that ran it, so that execution's jobs are read, and shown
    as cached (in this execution they were reused, not run)."""
    job = prov.job(ident)
    origin = job
    if job.cached and job.call_hash:
        call = prov.calls([job.call_hash]).get(job.call_hash)
        if call is not None and call.job_id:
            origin = prov.job(call.job_id)
    kids, total, made = child_page(prov, origin, limit=limit)
    jobs = []
    for k in kids:
        summary = job_summary(k, origin.execution_id)
        summary["children"] = made.get(k.id, 0)
        if job.cached:
            summary["state"], summary["cached"], summary["reused"] = "cached", True, True
        jobs.append(summary)
    return {
        "job": job_ref(job.id, job.execution_id),
        "from": job_ref(origin.id, origin.execution_id),
        "execution": origin.execution_id,
        "reused": job.cached,
        "total": total,
        "jobs": jobs,
    }


def members_payload(
    groups: CallGroups, key: str, *, offset: int, limit: int, state: str | None
) -> dict[str, Any]:
    if key not in groups.groups:
        raise NoSuchRecord(
            f"execution {groups.execution.id[:8]} has no call group {key!r}; group keys "
            "come from /api/executions/ID/graph."
        )
    jobs, total = groups.members(key, offset=offset, limit=limit, state=state)
    g = groups.groups[key]
    return {
        "group": key,
        "task": g.task_name,
        "total": total,
        "offset": offset,
        "jobs": [job_summary(j, groups.execution.id) for j in jobs],
    }


def search_jobs(
    prov: Provenance,
    ident: str,
    *,
    q: str | None = None,
    task: str | None = None,
    state_filter: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> dict[str, Any]:
    """An execution's jobs matching a text (in the call or task name), a task and a state."""
    e = prov.execution(ident)
    found, total = find_jobs(
        prov, e.id, text=q or "", task=task or "", state=state_filter, offset=offset, limit=limit
    )
    return {
        "execution": e.id,
        "total": total,
        "offset": offset,
        "jobs": [job_summary(j, e.id) for j in found],
    }


# -- one job ---------------------------------------------------------------------------


def call_ref(call: Call) -> dict[str, Any]:
    """A link to a call: its computing job (when recorded) and its preview."""
    return {
        "call": call.preview,
        "task": call.task_name,
        "call_hash": call.call_hash,
        "job": job_ref(call.job_id, call.execution_id) if call.job_id else None,
        "execution": call.execution_id,
    }


def job_detail(prov: Provenance, ident: str) -> dict[str, Any]:
    """A job in full: arguments (with the calls that produced them), result (with the
    calls that consumed it), the task's source at its hash, timing and error."""
    job = prov.job(ident)
    call = prov.calls([job.call_hash]).get(job.call_hash) if job.call_hash else None
    # The job's own result and code: the call's row may be a later run's.
    result_hash, task_hash = job_outcome(job, call)
    execution = prov.execution(job.execution_id)
    out = job_summary(job, execution.id)
    out.update(
        traceback=job.traceback,
        execution=execution_dict(execution),
        finished_at=job.finished_at,
        parent=_parent(prov, job),
        children=_children(prov, job),
        args=[],
        result=None,
        consumers=[],
        source=None,
        files=[],
        computed_by=None,
    )
    out["task_hash"] = task_hash
    out["source"] = _source(prov, job, task_hash)
    out["tags"] = prov.entity_tags("job", [job.id]).get(job.id, {})
    out["result_tags"] = (
        prov.entity_tags("value", [result_hash]).get(result_hash, {}) if result_hash else {}
    )
    if call is not None:
        _call_detail(prov, out, job, call, result_hash)
    return out


def _call_detail(
    prov: Provenance, out: dict[str, Any], job: Job, call: Call, result_hash: str | None
) -> None:
    """What the call's rows add to a job's page: arguments and their producers, the job's
    result and its consumers, files, and the job that computed a reused result."""
    if (
        job.cached
        and call.job_id
        and call.job_id != job.id
        and (call.created_at or 0) <= (job.started_at or 0)  # not rewritten since
    ):
        out["computed_by"] = call_ref(call)
    for a in call.args:
        out["args"].append(
            {
                "name": a.name,
                "value": value_dict(a.value, a.value_hash),
                "producers": _producers(prov, a.value_hash, a.value, call),
            }
        )
    if result_hash:
        result = call.result if result_hash == call.result_hash else None
        result = result or prov.values([result_hash]).get(result_hash)
        out["result"] = value_dict(result, result_hash)
        out["consumers"] = [
            {"arg": arg, **call_ref(c)} for c, arg in prov.consumers(result_hash, limit=50)
        ]
    out["files"] = [
        {"role": f.role, "path": f.path, "hash": f.file_hash} for f in prov.files(call.call_hash)
    ]


def _source(prov: Provenance, job: Job, task_hash: str | None) -> dict[str, Any] | None:
    """The job's task source at its own hash (else the latest recorded version, said so)."""
    task = prov.task(task_hash) if task_hash else None
    note = None
    if task is None:
        versions = prov.task_versions(job.task_name)
        task = versions[0] if versions else None
        note = "latest recorded version: this job did not record its own" if task else None
    if task is None:
        return None
    return {"hash": task.hash, "module": task.module, "text": task.source, "note": note}


def load_values(prov: Provenance, detail: dict[str, Any]) -> dict[str, Any]:
    """`detail` (a `job_detail`) with each argument's and the result's value loaded:
    ``loaded`` (its repr) when it is signed with one of the store's keys, else
    ``not_loaded`` (why not). Unsigned bytes are never unpickled: in a shared store anyone
    who can write a row could make this server run their code."""
    for v in [a["value"] for a in detail["args"]] + [detail["result"]]:
        if v is None:
            continue
        try:
            v["loaded"] = short_repr(prov.load_value(v["hash"]), VALUE_CHARS)
        except LazyflowError as exc:
            v["not_loaded"] = str(exc).strip("'\"")
    return detail


def _parent(prov: Provenance, job: Job) -> dict[str, Any] | None:
    if not job.parent_id:
        return None
    try:
        return job_summary(prov.job(job.parent_id))
    except NoSuchRecord:
        return None


def _children(prov: Provenance, job: Job, limit: int = 100) -> dict[str, Any]:
    kids = prov.child_jobs(job)
    return {"total": len(kids), "jobs": [job_summary(j) for j in kids[:limit]]}


def _producers(
    prov: Provenance, value_hash: str, value: Value | None, consumer: Call
) -> list[dict[str, Any]]:
    """The call that produced an argument, or for a container no call returned, the
    producers of its first items (``values[0]`` from ``square(0)``)."""
    producer, _ = prov.producer(value_hash, consumer=consumer.call_hash)
    if producer is not None:
        return [{"part": "", **call_ref(producer)}]
    if value is None or value.type_name not in ("list", "tuple", "dict", "set", "frozenset"):
        return []
    out = []
    for label, item in (prov.parts(value_hash) or [])[:10]:
        p, _ = prov.producer(item, consumer=consumer.call_hash)
        if p is not None:
            out.append({"part": label, **call_ref(p)})
    return out


# -- lineage ----------------------------------------------------------------------------


def lineage_payload(prov: Provenance, target: str, depth: int = 5) -> dict[str, Any]:
    """Both directions: where `target` came from, and which calls used it."""
    lin = prov.lineage(target, depth=depth)
    out = _lineage_dict(lin)
    if lin.kind == "file":
        out["consumers"] = [
            {"arg": f.path, "uses": [], **call_ref(c)} for f, c in prov.file_consumers(target)
        ]
    else:
        value_hash = lin.value.hash if lin.value else None
        if lin.kind == "call" and lin.producer is not None:
            value_hash = lin.producer.call.result_hash
        out["consumers"] = (
            [_use_dict(u) for u in prov.consumer_tree(value_hash)] if value_hash else []
        )
    return out


def _lineage_dict(lin: Lineage) -> dict[str, Any]:
    return {
        "target": lin.target,
        "kind": lin.kind,
        "value": value_dict(lin.value),
        "file": {"path": lin.file.path, "hash": lin.file.file_hash} if lin.file else None,
        "file_state": lin.file_state,
        "alternatives": lin.alternatives,
        "producer": _step_dict(lin.producer) if lin.producer else None,
    }


def _step_dict(step: Step) -> dict[str, Any]:
    return {
        **call_ref(step.call),
        "result": value_dict(step.call.result, step.call.result_hash),
        "parent": call_ref(step.parent) if step.parent else None,
        "repeated": step.repeated,
        "truncated": step.truncated,
        "inputs": [_input_dict(i) for i in step.inputs],
    }


def _input_dict(inp: Any) -> dict[str, Any]:
    return {
        "name": inp.name,
        "value": value_dict(inp.value, inp.value_hash),
        "file": {"path": inp.file.path, "hash": inp.file.file_hash} if inp.file else None,
        "producer": _step_dict(inp.producer) if inp.producer else None,
        "parts": [_input_dict(p) for p in inp.parts],
        "more_parts": inp.more_parts,
        "passed_by": (
            {"arg": inp.passed_by[1], **call_ref(inp.passed_by[0])} if inp.passed_by else None
        ),
    }


def _use_dict(use: Use) -> dict[str, Any]:
    return {
        "arg": use.arg,
        **call_ref(use.call),
        "repeated": use.repeated,
        "truncated": use.truncated,
        "uses": [_use_dict(u) for u in use.uses],
    }


# -- diff ---------------------------------------------------------------------------------


def diff_payload(prov: Provenance, a: str, b: str) -> dict[str, Any]:
    """Two executions compared: what ran again or changed, grouped by reason and task."""
    from ..cli.diff import diff_executions

    d = diff_executions(prov, a, b)
    groups: dict[tuple[str, str], dict[str, Any]] = {}

    def add(kind: str, reason: str, task: str, entry: dict[str, Any] | None) -> None:
        group = groups.setdefault(
            (reason, task),
            {"kind": kind, "reason": reason, "task": task, "short": short_name(task), "calls": []},
        )
        group["calls"].append(entry)

    for n in d.reran:
        add(
            "ran_again",
            "same call, ran again in B (a call below it changed, or the cache was bypassed)",
            n.task_name,
            _node(n),
        )
    for c in d.changes:
        entry = {
            "before": _node(c.before),
            "after": _node(c.after),
            "args": [{"name": x.name, "before": x.before, "after": x.after} for x in c.args],
        }
        add(c.kind, "; ".join(c.reasons), c.task_name, entry)
    return {
        "a": execution_dict(d.a),
        "b": execution_dict(d.b),
        "identical": d.identical,
        "ran_again": len(d.reran),
        "changed": sum(1 for c in d.changes if c.kind == "changed"),
        "only_a": sum(1 for c in d.changes if c.kind == "removed"),
        "only_b": sum(1 for c in d.changes if c.kind == "added"),
        "result": [value_dict(d.result_before), value_dict(d.result_after)],
        "groups": sorted(groups.values(), key=lambda g: (g["kind"], g["task"], g["reason"])),
        "tasks": [
            {
                "task": t.name,
                "before": t.before_hash,
                "after": t.after_hash,
                "source_diff": t.source_diff,
                "summary": t.summary,
            }
            for t in d.tasks
        ],
    }


def _node(n: Any) -> dict[str, Any] | None:
    if n is None:
        return None
    return {
        "call": n.preview,
        "task": n.task_name,
        "state": "cached" if n.cached else n.status,
        "job": job_ref(n.job.id, n.job.execution_id) if n.job else None,
        "call_hash": n.call_hash,
    }
