"""Stores, a server and a browser for the provenance browser's tests.

`ui_store` records a few executions once per test process and backend (SQLite file,
PostgreSQL schema) with real runs. `client` is an in-process HTTP client of the app
over it. The browser tests share one uvicorn server per test process (`site`): its
single ASGI app forwards to the app of the store a test asks for. `browser` is Debian's
chromium driven by Playwright; every page a test visits is screenshotted into
``.ci/artifacts/`` (git-ignored; CI keeps it).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lazyflow_core import Scheduler

from . import workflows as wf

ARTIFACTS = Path(__file__).resolve().parents[2] / ".ci" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class UiStore:
    """A store recorded by real runs; execution ids by name; the report's files."""

    url: str
    kind: str
    ids: dict[str, str]
    folder: Path
    apps: dict[str, Any] = field(default_factory=dict)

    def app(self) -> Any:
        if "app" not in self.apps:
            from lazyflow_core.ui.app import create_app

            self.apps["app"] = create_app(self.url)
        return self.apps["app"]


def run(url: str, expr: object, **kwargs: Any) -> str:
    with Scheduler(db=url) as sched:
        with contextlib.suppress(ZeroDivisionError):
            sched.run(expr, **kwargs)  # type: ignore[arg-type]
        assert sched.last_run is not None
        return sched.last_run.execution_id


def record(url: str, folder: Path) -> dict[str, str]:
    return {
        "first": run(url, wf.main(4), tags={"env": "test", "who": "ci"}),
        "again": run(url, wf.main(4)),
        "more": run(url, wf.main(5), tags={"env": "prod"}),
        "report": run(url, wf.report(str(folder))),
        "failed": run(url, wf.fails()),
    }


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def ui_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[UiStore]:
    folder = tmp_path_factory.mktemp(f"ui-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'lazyflow.db'}"
    else:
        url = request.getfixturevalue("pg_url_factory")()
    store = UiStore(url, request.param, record(url, folder), folder)
    yield store
    for app in store.apps.values():
        app.state.browser.prov.close()


@pytest.fixture
def client(ui_store: UiStore) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    with TestClient(ui_store.app()) as c:
        yield c


class Dispatch:
    """One ASGI app for the whole session that forwards to the current store's app."""

    def __init__(self) -> None:
        self.target: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            while message["type"] != "lifespan.shutdown":
                await send({"type": message["type"] + ".complete"})
                message = await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        await self.target(scope, receive, send)


@dataclass
class Server:
    url: str
    dispatch: Dispatch

    def serve(self, app: Any) -> str:
        self.dispatch.target = app
        return self.url


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    """uvicorn in a thread of this test process, on a free port of 127.0.0.1."""
    import uvicorn

    dispatch = Dispatch()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(dispatch, log_level="warning", access_log=False))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started:
        assert thread.is_alive() and time.time() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield Server(f"http://127.0.0.1:{port}", dispatch)
    srv.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing: run .ci/system-deps (Debian package chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page; JavaScript errors fail the test."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Callable[[Any, str], None]:
    """``shot(page, "name")`` saves a full-page screenshot under .ci/artifacts/ui/."""
    folder = ARTIFACTS / "ui"
    folder.mkdir(parents=True, exist_ok=True)

    def save(pg: Any, name: str) -> None:
        test = request.node.name.replace("[", "-").replace("]", "")
        pg.screenshot(path=str(folder / f"{test}-{name}.png"), full_page=True)

    return save
