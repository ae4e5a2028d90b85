"""The JSON API under ``/api/`` (schema at ``/api/openapi.json``); the pages use it.

Every route reads; none writes. Stored values are never unpickled unless asked: a job's
arguments and result come as the previews the store recorded. ``?values=1`` on a job asks
for the values themselves, which are loaded only when signed with one of the server's
keys (``LAZYFLOW_SIGNING_KEY``) and the signature verifies (`views.load_values`); any
other value is left unloaded, with the reason, and its bytes are never unpickled.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel

from . import views
from .app import Browser

router = APIRouter(prefix="/api", tags=["provenance"])


class ExecutionOut(BaseModel):
    """One execution, as listed (newest first)."""

    id: str
    started_at: float
    finished_at: float | None
    seconds: float | None
    status: str
    root_task: str | None
    root_call_hash: str | None
    result_hash: str | None
    command: str | None
    hostname: str | None
    pid: int | None
    jobs: int
    cached: int
    executed: int
    failed: int
    error: str | None
    tags: dict[str, str]


def browser(request: Request) -> Browser:
    found: Browser = request.app.state.browser
    return found


def parse_time(text: str | None, name: str) -> float | None:
    """A timestamp from seconds since the epoch or an ISO date/time (local time)."""
    if text is None or not text.strip():
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise HTTPException(
            422,
            f"{name}={text!r} is not a time: give seconds since the epoch or an ISO "
            "date such as 2026-01-31 or 2026-01-31T14:00",
        ) from None
    return (moment if moment.tzinfo else moment.astimezone()).timestamp()


def parse_tags(tags: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in tags:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise HTTPException(422, f"tag={item!r} is not key=value (e.g. tag=env=prod)")
        out[key.strip()] = value
    return out


def list_executions(
    b: Browser,
    *,
    tag: list[str],
    status: str | None,
    task: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    offset: int,
) -> list[dict[str, Any]]:
    rows = b.prov.executions(
        task=task or None,
        tags=parse_tags(tag),
        status=status or None,
        since=parse_time(since, "since"),
        until=parse_time(until, "until"),
        limit=limit,
        offset=offset,
    )
    return [views.execution_dict(e) for e in rows]


@router.get("/executions", response_model=list[ExecutionOut])
def executions(
    request: Request,
    tag: Annotated[list[str], Query(description="key=value; repeat: all must match")] = [],  # noqa: B006
    status: Annotated[str | None, Query(description="running, done, failed, ...")] = None,
    task: Annotated[str | None, Query(description="root task or any task that ran")] = None,
    since: Annotated[str | None, Query(description="started at or after (epoch or ISO)")] = None,
    until: Annotated[str | None, Query(description="started before (epoch or ISO)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[dict[str, Any]]:
    """Executions, newest first, filtered and paginated (`limit`, `offset`)."""
    return list_executions(
        browser(request),
        tag=tag,
        status=status,
        task=task,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )


@router.get("/executions/{execution}")
def execution(request: Request, execution: str) -> dict[str, Any]:
    """One execution (id or unique prefix): summary, result preview and job counts per
    task and state, counted now (poll it to follow a running execution)."""
    return views.execution_detail(browser(request).prov, execution)


@router.get("/executions/{execution}/graph")
def graph(
    request: Request,
    execution: str,
    flows: Annotated[
        bool | None, Query(description="data-flow edges (default: small runs)")
    ] = None,
) -> dict[str, Any]:
    """The call graph with siblings of one task grouped: groups with counts per state,
    and (for small executions, or with flows=true) data flow between groups."""
    b = browser(request)
    return views.graph_payload(b.prov, b.groups(execution), flows=flows)


@router.get("/executions/{execution}/jobs")
def jobs(
    request: Request,
    execution: str,
    group: Annotated[str | None, Query(description="a group key from the graph")] = None,
    q: Annotated[str | None, Query(description="text in the call or task name")] = None,
    task: str | None = None,
    state: Annotated[str | None, Query(description="done, cached, failed, running")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """An execution's jobs: the members of one graph group, or a search."""
    b = browser(request)
    if group:
        return views.members_payload(
            b.groups(execution), group, offset=offset, limit=limit, state=state or None
        )
    return views.search_jobs(
        b.prov,
        execution,
        q=q,
        task=task,
        state_filter=state or None,
        offset=offset,
        limit=limit,
    )


@router.get("/jobs/{job}")
def job(
    request: Request,
    job: str,
    values: Annotated[
        bool,
        Query(description="also load the stored values, where signed with the server's key"),
    ] = False,
) -> dict[str, Any]:
    """One job (id, prefix or EXECUTION.N): arguments and their producers, result and
    its consumers, the task's source at its hash, timing, attempts and error. With
    ``values=1`` each argument and the result also carry ``loaded`` (the value's repr) if
    the value is signed with one of the server's keys, else ``not_loaded`` (why not)."""
    prov = browser(request).prov
    detail = views.job_detail(prov, job)
    return views.load_values(prov, detail) if values else detail


@router.get("/jobs/{job}/children")
def children(
    request: Request, job: str, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> dict[str, Any]:
    """The calls a job's call made (the first `limit`), each with how many it made. For a
    cached job, the subtree it reused: the calls recorded by the execution that ran it."""
    return views.subtree_payload(browser(request).prov, job, limit=limit)


@router.get("/lineage")
def lineage(
    request: Request,
    target: Annotated[str, Query(description="a file path, or a value or call hash")],
    depth: Annotated[int, Query(ge=1, le=20)] = 5,
) -> dict[str, Any]:
    """Where a file or value came from (producing calls, recursively, with their
    inputs) and which calls used it (consumers, recursively)."""
    return views.lineage_payload(browser(request).prov, target, depth)


@router.get("/diff")
def diff(
    request: Request,
    a: Annotated[str, Query(description="the earlier execution")],
    b: Annotated[str, Query(description="the later execution")],
) -> dict[str, Any]:
    """What differs between executions a and b: calls that ran again or changed (and
    why), grouped by reason and task, with source diffs of changed tasks."""
    return views.diff_payload(browser(request).prov, a, b)
