"""The server-rendered pages: each formats the dict its API route returns (`views`).

The executions list and a job's page are complete HTML without JavaScript; the
execution page's graph and its live counts are added by ``static/graph.js`` and
``static/live.js``, and its per-task table is there without them.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context

from ..cli.common import fmt_seconds, fmt_size, fmt_time
from ..provenance import ProvenanceError
from . import views
from .api import browser, list_executions

router = APIRouter(include_in_schema=False)
PAGE = 25


@pass_context
def path_for(context: Any, name: str, /, **params: Any) -> str:
    """A route's path (not an absolute URL: pages work behind a proxy and on any host)."""
    request: Request = context["request"]
    return str(request.app.url_path_for(name, **params))


def setup_templates(templates: Jinja2Templates) -> None:
    env = templates.env
    env.globals["path_for"] = path_for
    env.filters.update(
        time=fmt_time, seconds=fmt_seconds, size=fmt_size, short=lambda s, n=8: (s or "-")[:n]
    )
    env.globals["state_names"] = ("done", "cached", "failed", "running", "cancelled")


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, name, context, status_code=status)


def _day(text: str | None, end: bool = False) -> str | None:
    """A date field of the filter form (``2026-01-31``) as an ISO bound for the API."""
    if not text:
        return None
    if end and len(text) == 10:  # a whole day: until the next midnight
        return (dt.date.fromisoformat(text) + dt.timedelta(days=1)).isoformat()
    return text


@router.get("/favicon.ico")
def favicon() -> Response:
    return Response(status_code=204)


@router.get("/", response_class=HTMLResponse)
def executions_page(
    request: Request,
    tag: str = "",
    status: str = "",
    task: str = "",
    since: str = "",
    until: str = "",
    page: Annotated[int, Query(ge=1)] = 1,
) -> Response:
    b = browser(request)
    tags = tag.split()
    rows = list_executions(
        b,
        tag=tags,
        status=status,
        task=task,
        since=_day(since),
        until=_day(until, True),
        limit=PAGE + 1,
        offset=(page - 1) * PAGE,
    )
    filters = {"tag": tag, "status": status, "task": task, "since": since, "until": until}
    kept = {k: v for k, v in filters.items() if v}
    return render(
        request,
        "executions.html",
        {
            "rows": rows[:PAGE],
            "filters": filters,
            "page": page,
            "prev": urlencode({**kept, "page": page - 1}) if page > 1 else None,
            "next": urlencode({**kept, "page": page + 1}) if len(rows) > PAGE else None,
        },
    )


@router.get("/executions/{execution}", response_class=HTMLResponse)
def execution_page(request: Request, execution: str) -> Response:
    detail = views.execution_detail(browser(request).prov, execution)
    return render(request, "execution.html", {"e": detail})


@router.get("/executions/{execution}/jobs", response_class=HTMLResponse)
def jobs_page(
    request: Request,
    execution: str,
    group: str = "",
    q: str = "",
    task: str = "",
    state: str = "",
    page: Annotated[int, Query(ge=1)] = 1,
) -> Response:
    b = browser(request)
    offset = (page - 1) * 100
    if group:
        found = views.members_payload(
            b.groups(execution), group, offset=offset, limit=100, state=state or None
        )
    else:
        found = views.search_jobs(
            b.prov, execution, q=q, task=task, state_filter=state or None, offset=offset
        )
    e = b.prov.execution(execution)
    kept = {k: v for k, v in {"group": group, "q": q, "task": task, "state": state}.items() if v}
    return render(
        request,
        "jobs.html",
        {
            "e": views.execution_dict(e),
            "found": found,
            "filters": {"group": group, "q": q, "task": task, "state": state},
            "page": page,
            "prev": urlencode({**kept, "page": page - 1}) if page > 1 else None,
            "next": urlencode({**kept, "page": page + 1})
            if offset + 100 < found["total"]
            else None,
        },
    )


@router.get("/jobs/{job}", response_class=HTMLResponse)
def job_page(request: Request, job: str, values: bool = False) -> Response:
    prov = browser(request).prov
    detail = views.job_detail(prov, job)
    if values:
        views.load_values(prov, detail)
    return render(
        request, "job.html", {"j": detail, "values_note": views.VALUES_NOTE if values else None}
    )


@router.get("/lineage", response_class=HTMLResponse)
def lineage_page(
    request: Request, target: str = "", depth: Annotated[int, Query(ge=1, le=20)] = 5
) -> Response:
    result, error = None, None
    if target.strip():
        try:
            result = views.lineage_payload(browser(request).prov, target.strip(), depth)
        except ProvenanceError as exc:
            error = str(exc)
    return render(
        request, "lineage.html", {"target": target, "depth": depth, "l": result, "error": error}
    )


@router.get("/diff", response_class=HTMLResponse)
def diff_page(request: Request, a: str = "", b: str = "") -> Response:
    result, error = None, None
    prov = browser(request).prov
    if a.strip() and b.strip():
        try:
            result = views.diff_payload(prov, a.strip(), b.strip())
        except ProvenanceError as exc:
            error = str(exc)
    recent = [views.execution_dict(e) for e in prov.executions(limit=20)]
    return render(
        request, "diff.html", {"a": a, "b": b, "d": result, "error": error, "recent": recent}
    )
