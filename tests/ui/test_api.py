"""The browser's JSON API and server-rendered pages, on every store: what each route
returns, that pages read fine without JavaScript, and that nothing writes to the store or
unpickles a value."""

from __future__ import annotations

import os
import pickle
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from lazyflow_core import StoreError
from lazyflow_core.store.values import plain_data
from lazyflow_core.ui.readonly import ReadOnlyViolation, open_read_only

from .conftest import UiStore


def _job(client: Any, eid: str, task: str) -> dict[str, Any]:
    found = client.get(f"/api/executions/{eid}/jobs", params={"task": task}).json()
    assert found["total"] >= 1, found
    return found["jobs"][0]  # type: ignore[no-any-return]


def test_executions_are_a_list_of_ids_newest_first(client: Any, ui_store: UiStore) -> None:
    ids = ui_store.ids
    listed = client.get("/api/executions").json()
    assert [e["id"] for e in listed] == [
        ids[k] for k in ("failed", "report", "more", "again", "first")
    ]
    assert listed[0]["status"] == "failed"
    # the user's tags, beside the automatic ones (user, host, lazyflow version, ...)
    assert listed[-1]["tags"].items() >= {"env": "test", "who": "ci"}.items()
    by_tag = client.get("/api/executions", params={"tag": ["env=test", "who=ci"]}).json()
    assert [e["id"] for e in by_tag] == [ids["first"]]
    assert [e["id"] for e in client.get("/api/executions?status=failed").json()] == [ids["failed"]]
    squares = client.get("/api/executions?task=square").json()
    assert [e["id"] for e in squares] == [ids["more"], ids["first"]]  # "again" reused main
    page = client.get("/api/executions?limit=2&offset=2").json()
    assert [e["id"] for e in page] == [ids["more"], ids["again"]]
    assert client.get("/api/executions?since=2999-01-01").json() == []
    bad = client.get("/api/executions?tag=oops")
    assert bad.status_code == 422 and "key=value" in bad.json()["detail"]


def test_execution_counts_jobs_per_task(client: Any, ui_store: UiStore) -> None:
    e = client.get(f"/api/executions/{ui_store.ids['first'][:8]}").json()
    assert e["id"] == ui_store.ids["first"] and e["result"]["preview"] == "14"
    tasks = {t["short"]: t for t in e["tasks"]}
    assert tasks["square"]["jobs"] == 4 and tasks["square"]["states"] == {"done": 4}
    assert e["states"] == {"done": 6}
    again = client.get(f"/api/executions/{ui_store.ids['again']}").json()
    assert again["states"] == {"cached": 1}
    missing = client.get("/api/executions/ffffffff")
    assert missing.status_code == 404 and "no execution matches" in missing.json()["detail"]


def test_graph_groups_siblings_and_draws_data_flow(client: Any, ui_store: UiStore) -> None:
    g = client.get(f"/api/executions/{ui_store.ids['more']}/graph").json()
    nodes = {n["short"]: n for n in g["groups"]}
    assert g["jobs"] == 7 and set(nodes) == {"main", "square", "total"}
    assert nodes["square"]["count"] == 5 and nodes["square"]["parent"] == nodes["main"]["key"]
    assert nodes["main"]["job"] == f"{ui_store.ids['more'][:8]}.1"
    assert g["flows"] == [
        {
            "from": nodes["square"]["key"],
            "to": nodes["total"]["key"],
            "count": 5,
            "label": "values[…]",
        }
    ]
    members = client.get(
        f"/api/executions/{ui_store.ids['more']}/jobs",
        params={"group": nodes["square"]["key"], "limit": 2, "offset": 1},
    ).json()
    assert members["total"] == 5 and [j["call"] for j in members["jobs"]] == [
        "square(1)",
        "square(2)",
    ]
    unknown = client.get(f"/api/executions/{ui_store.ids['more']}/jobs?group=nope")
    assert unknown.status_code == 404


def test_job_search_by_text_task_and_state(client: Any, ui_store: UiStore) -> None:
    eid = ui_store.ids["failed"]
    hits = client.get(f"/api/executions/{eid}/jobs", params={"q": "divide(1, 0"}).json()
    assert [j["call"] for j in hits["jobs"]] == ["divide(1, 0)"]
    failed = client.get(f"/api/executions/{eid}/jobs", params={"state": "failed"}).json()
    assert sorted(j["task"].rsplit(".", 1)[-1] for j in failed["jobs"]) == ["divide", "fails"]


def test_job_shows_arguments_producers_result_consumers_and_source(
    client: Any, ui_store: UiStore
) -> None:
    total = _job(client, ui_store.ids["first"], "total")
    j = client.get(f"/api/jobs/{total['job']}").json()
    assert j["call"] == "total([0, 1, 4, 9])" and j["state"] == "done"
    (arg,) = j["args"]
    assert arg["name"] == "values" and arg["value"]["preview"] == "[0, 1, 4, 9]"
    assert [(p["part"], p["call"]) for p in arg["producers"]] == [
        ("[0]", "square(0)"),
        ("[1]", "square(1)"),
        ("[2]", "square(2)"),
        ("[3]", "square(3)"),
    ]
    assert j["result"]["preview"] == "14" and "def total(values" in j["source"]["text"]
    assert j["parent"]["call"] == "main(4)" and j["execution"]["id"] == ui_store.ids["first"]
    square = _job(client, ui_store.ids["first"], "square")
    consumers = client.get(f"/api/jobs/{square['job']}").json()["consumers"]
    assert any(c["call"] == "total([0, 1, 4, 9])" for c in consumers)
    divide = client.get(f"/api/executions/{ui_store.ids['failed']}/jobs?q=divide(1, 0").json()
    failed = client.get(f"/api/jobs/{divide['jobs'][0]['job']}").json()
    assert failed["state"] == "failed" and "ZeroDivisionError" in failed["error"]
    # A failed job keeps its exception type, traceback and code (issue 11, item 7).
    assert failed["error_type"] == "builtins.ZeroDivisionError"
    assert "ZeroDivisionError: division by zero" in failed["traceback"]
    assert "in divide" in failed["traceback"]
    assert failed["task_hash"] and "def divide" in failed["source"]["text"]
    page = client.get(f"/jobs/{divide['jobs'][0]['job']}").text
    assert 'id="job-traceback"' in page and "in divide" in page


def test_values_without_a_key_are_never_unpickled(
    client: Any, ui_store: UiStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ?values=1 and no signing key, every value says why it is not loaded, and
    nothing is unpickled (not even a container that names no class)."""

    def no_unpickling(*args: object, **kwargs: object) -> None:
        raise AssertionError("the browser unpickled a stored value")

    monkeypatch.setattr(pickle, "loads", no_unpickling)
    total = _job(client, ui_store.ids["first"], "total")
    asked = client.get(f"/api/jobs/{total['job']}?values=1")
    assert asked.status_code == 200, asked.text
    j = asked.json()
    for v in (j["args"][0]["value"], j["result"]):
        assert "loaded" not in v and "no signing key is configured" in v["not_loaded"], v
    assert "not_loaded" not in client.get(f"/api/jobs/{total['job']}").json()["result"]
    page = client.get(f"/jobs/{total['job']}?values=1")
    assert page.status_code == 200 and 'id="values-note"' in page.text
    assert "not loaded: stored value" in page.text


def test_signed_values_are_shown_when_asked_and_planted_ones_never_run(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    from lazyflow_core import Scheduler
    from lazyflow_core.ui.app import create_app

    from ..planted import evil, plant_value
    from . import workflows as wf

    key = "ui-key-0123456789abcdef"
    with Scheduler(db=db_url, signing_key=key) as sched:
        sched.run(wf.main(4))
        assert sched.last_run is not None
        eid = sched.last_run.execution_id
    monkeypatch.setenv("LAZYFLOW_SIGNING_KEY", key)  # the server's key
    app = create_app(db_url)
    marker = tmp_path / "pwned"
    try:
        with TestClient(app) as client:
            total = _job(client, eid, "total")
            url = f"/api/jobs/{total['job']}"
            j = client.get(url, params={"values": 1}).json()
            assert j["args"][0]["value"]["loaded"] == "[0, 1, 4, 9]"
            assert j["result"]["loaded"] == "14"
            assert "loaded" not in client.get(url).json()["result"]  # only when asked
            page = client.get(f"/jobs/{total['job']}?values=1").text
            assert "value: <code>14</code>" in page
            # a co-user replaces the result's bytes; its signature no longer matches
            plant_value(db_url, evil(marker), f"hash = '{j['result']['hash']}'")
            result = client.get(url, params={"values": 1}).json()["result"]
            assert "loaded" not in result and "signature does not match" in result["not_loaded"]
            assert not marker.exists()
    finally:
        app.state.browser.prov.close()


def test_a_container_is_read_only_when_it_names_no_class(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self) -> tuple[Any, tuple[str]]:
            return (os.mkdir, (str(marker),))

    assert plain_data(pickle.dumps([1, {"a": (2.5, None)}, {3}])) == [
        1,
        {"a": (2.5, None)},
        {3},
    ]
    with pytest.raises(pickle.UnpicklingError):
        plain_data(pickle.dumps([1, Evil()]))
    assert not marker.exists()


def test_lineage_of_a_file_both_ways(client: Any, ui_store: UiStore) -> None:
    out = str(ui_store.folder / "report.txt")
    lin = client.get("/api/lineage", params={"target": out}).json()
    assert lin["kind"] == "file" and lin["file_state"] == "unchanged"
    assert lin["producer"]["call"].startswith("upper(")
    (src,) = [i for i in lin["producer"]["inputs"] if i["name"] == "src"]
    assert src["producer"]["call"].startswith("write(")
    raw = client.get("/api/lineage", params={"target": str(ui_store.folder / "raw.txt")}).json()
    assert next(c["call"] for c in raw["consumers"]).startswith("upper(")
    unknown = client.get("/api/lineage", params={"target": "no/such/file.txt"})
    assert unknown.status_code == 404


def test_diff_groups_changes_by_reason_and_task(client: Any, ui_store: UiStore) -> None:
    d = client.get(
        "/api/diff", params={"a": ui_store.ids["first"], "b": ui_store.ids["more"]}
    ).json()
    assert (d["identical"], d["changed"], d["only_b"]) == (4, 2, 1)
    groups = {(g["kind"], g["short"]): g for g in d["groups"]}
    assert groups[("added", "square")]["calls"][0]["after"]["call"] == "square(4)"
    assert groups[("changed", "main")]["reason"] == "argument n changed"
    assert [r["preview"] for r in d["result"]] == ["14", "30"]


def test_openapi_schema_lists_every_route_and_no_cdn_docs(client: Any) -> None:
    schema = client.get("/api/openapi.json").json()
    assert set(schema["paths"]) >= {
        "/api/executions",
        "/api/executions/{execution}",
        "/api/executions/{execution}/graph",
        "/api/executions/{execution}/jobs",
        "/api/jobs/{job}",
        "/api/lineage",
        "/api/diff",
    }
    assert "ExecutionOut" in schema["components"]["schemas"]
    assert client.get("/docs").status_code == 404  # Swagger UI would load from a CDN


def test_pages_read_without_javascript(client: Any, ui_store: UiStore) -> None:
    listing = client.get("/?tag=env%3Dtest").text
    assert 'id="executions"' in listing and ui_store.ids["first"][:8] in listing
    assert ui_store.ids["more"][:8] not in listing and "env=test" in listing
    total = _job(client, ui_store.ids["first"], "total")
    job = client.get(f"/jobs/{total['job']}").text
    for expected in ("total([0, 1, 4, 9])", "square(2)", "def total(values", "main(4)", "14"):
        assert expected in job, expected
    execution = client.get(f"/executions/{ui_store.ids['first']}").text
    assert 'id="task-counts"' in execution and "tests.ui.workflows.square" in execution
    assert '<script src="http' not in execution  # scripts come from the package
    assert client.get("/static/vendor/cytoscape.min.js").status_code == 200
    missing = client.get("/jobs/ffffffff")
    assert missing.status_code == 404 and 'id="error"' in missing.text


def test_no_write_statement_reaches_sqlite(tmp_path: Path) -> None:
    """Every statement SQLite sees while every route is driven is a read."""
    from fastapi.testclient import TestClient

    from lazyflow_core.ui.app import create_app

    from .conftest import record

    url = f"sqlite:///{tmp_path / 'lazyflow.db'}"
    ids = record(url, tmp_path)
    prov = open_read_only(url)
    seen: list[str] = []
    event.listen(prov.store.engine, "connect", lambda c, _r: c.set_trace_callback(seen.append))
    prov.store.engine.dispose()
    with TestClient(create_app(prov=prov)) as client:
        total = _job(client, ids["first"], "total")
        for path in (
            "/",
            "/api/executions",
            f"/executions/{ids['more']}",
            f"/api/executions/{ids['more']}",
            f"/api/executions/{ids['more']}/graph?flows=1",
            f"/jobs/{total['job']}",
            f"/api/executions/{ids['more']}/jobs?q=square",
            f"/lineage?target={tmp_path / 'report.txt'}",
            f"/diff?a={ids['first']}&b={ids['more']}",
        ):
            assert client.get(path).status_code == 200, path
    assert seen
    writes = [s for s in seen if s.split(None, 1)[0].upper() not in ("SELECT", "PRAGMA", "WITH")]
    assert writes == []
    with pytest.raises(ReadOnlyViolation), prov.store.engine.connect() as conn:
        conn.execute(text("DELETE FROM lf_jobs"))
    prov.close()


@pytest.mark.postgres
def test_postgres_sessions_are_read_only(pg_url: str, tmp_path: Path) -> None:
    from .conftest import record

    record(pg_url, tmp_path)
    prov = open_read_only(pg_url)
    try:
        with prov.store.engine.connect() as conn:
            assert conn.execute(text("SHOW transaction_read_only")).scalar() == "on"
        assert prov.executions()
    finally:
        prov.close()


def test_opening_never_creates_a_store(tmp_path: Path) -> None:
    missing = tmp_path / "none.db"
    with pytest.raises(StoreError, match="does not exist"):
        open_read_only(f"sqlite:///{missing}")
    assert not missing.exists()
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(StoreError, match="holds no lazyflow store"):
        open_read_only(f"sqlite:///{empty}")
    with sqlite3.connect(empty) as conn:
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)


def test_the_ui_command_serves_the_store_on_127_0_0_1(ui_store: UiStore) -> None:
    """`lazyflow ui --port 0` prints the URL it listens on (127.0.0.1 by default)."""
    import json
    import subprocess
    import sys
    import urllib.request

    exe = str(Path(sys.executable).with_name("lazyflow"))
    proc = subprocess.Popen(
        [exe, "ui", "--db", ui_store.url, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line and "read-only" in line, proc.stderr
        url = line.split("serving the store on ", 1)[1].split()[0]
        with urllib.request.urlopen(url + "api/executions", timeout=30) as answer:
            assert [e["id"] for e in json.load(answer)][-1] == ui_store.ids["first"]
    finally:
        proc.terminate()
        proc.communicate(timeout=30)  # also closes the pipes


def test_children_of_a_cached_call_are_the_subtree_it_reused(
    client: Any, ui_store: UiStore
) -> None:
    again = client.get(f"/api/executions/{ui_store.ids['again']}/graph").json()
    (root,) = again["groups"]
    got = client.get(f"/api/jobs/{root['job']}/children").json()
    assert got["reused"] is True and got["execution"] == ui_store.ids["first"]
    assert got["total"] == 5 and {j["state"] for j in got["jobs"]} == {"cached"}
    assert sorted(j["call"] for j in got["jobs"])[-1] == "total([0, 1, 4, 9])"
    # a call that ran: its own children, in its own execution, as they ran
    first = client.get(f"/api/executions/{ui_store.ids['first']}/graph").json()
    main = next(g for g in first["groups"] if g["task"].endswith(".main"))
    ran = client.get(f"/api/jobs/{main['job']}/children").json()
    assert ran["reused"] is False and {j["state"] for j in ran["jobs"]} == {"done"}
