"""The web application: `create_app` builds it over one store, `serve` runs it.

FastAPI serves the JSON API (`api`), the server-rendered pages (`pages`) and the static
front end (templates and vendored scripts are package data). The store is opened
read-only (`readonly`); grouped call graphs of finished executions are kept in a small
cache, since grouping 100k calls is the one costly step and its answer cannot change.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from .. import __version__
from ..errors import StoreError
from ..provenance import AmbiguousPrefix, CallGroups, NoSuchRecord, Provenance, call_groups
from .readonly import open_read_only

HERE = Path(__file__).parent
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


class Browser:
    """What the routes share: the read-only store and the cache of grouped graphs."""

    def __init__(self, prov: Provenance, cache_size: int = 8) -> None:
        self.prov = prov
        self._groups: OrderedDict[str, CallGroups] = OrderedDict()
        self._lock = threading.Lock()
        self._cache_size = cache_size

    def groups(self, ident: str) -> CallGroups:
        """The execution's grouped calls; cached once the execution has finished."""
        eid = self.prov.resolve_execution(ident)
        with self._lock:
            cached = self._groups.get(eid)
            if cached is not None:
                self._groups.move_to_end(eid)
                return cached
        groups = call_groups(self.prov, eid)
        if groups.execution.status != "running":
            with self._lock:
                self._groups[eid] = groups
                while len(self._groups) > self._cache_size:
                    self._groups.popitem(last=False)
        return groups


def create_app(db: str | None = None, *, prov: Provenance | None = None) -> FastAPI:
    """The provenance browser over `db` (a URL; None: $LAZYFLOW_DB or the default store)."""
    from . import api, pages

    browser = Browser(prov if prov is not None else open_read_only(db))
    app = FastAPI(
        title="lazyflow provenance browser",
        version=__version__,
        description="Read-only JSON API over a lazyflow store: executions, jobs, "
        "grouped call graphs, lineage and diffs.",
        openapi_url="/api/openapi.json",
        docs_url=None,  # Swagger UI and ReDoc load their scripts from a CDN
        redoc_url=None,
    )
    app.state.browser = browser
    app.state.templates = Jinja2Templates(directory=str(HERE / "templates"))
    pages.setup_templates(app.state.templates)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.include_router(api.router)
    app.include_router(pages.router)
    _error_handlers(app)
    return app


def _error_handlers(app: FastAPI) -> None:
    def wants_json(request: Request) -> bool:
        return request.url.path.startswith("/api/")

    def answer(request: Request, status: int, message: str) -> Response:
        if wants_json(request):
            return JSONResponse({"detail": message}, status_code=status)
        templates: Jinja2Templates = request.app.state.templates
        return templates.TemplateResponse(
            request, "error.html", {"status": status, "message": message}, status_code=status
        )

    @app.exception_handler(NoSuchRecord)
    async def _missing(request: Request, exc: NoSuchRecord) -> Response:
        return answer(request, 404, str(exc))

    @app.exception_handler(AmbiguousPrefix)
    async def _ambiguous(request: Request, exc: AmbiguousPrefix) -> Response:
        return answer(request, 400, str(exc))

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError) -> Response:
        return answer(request, 503, str(exc))


def serve(
    db: str | None = None,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    open_browser: bool = False,
    ready: Any = None,
) -> None:
    """Run the browser until interrupted. `port` 0 picks a free port; `ready` (a
    callable) is given the URL once the server listens."""
    import socket

    import uvicorn

    app = create_app(db)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)  # connections wait from now on, so `ready` may tell the URL already
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}/"
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    if ready is not None:
        ready(url)
    if open_browser:
        import webbrowser

        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        app.state.browser.prov.close()


__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "Browser", "StoreError", "create_app", "serve"]
