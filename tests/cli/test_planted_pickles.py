"""A planted pickle (one that writes a marker file when unpickled) never runs through a
read-only command: log, lineage, diff, viz, explain, db info, gc and the browser's API,
with or without ``--values``, with or without a signing key; nor through a run with a
key. Planted as an existing cached result (its checksum recomputed, as anyone can) and
as a call the victim never made (its hash computed from the stored task source), on
SQLite and PostgreSQL. Each test ends with what the plant does to a run without a key
(it runs): so the plant is real and the test can fail."""

from __future__ import annotations

from pathlib import Path

from lazyflow_core.store import Store

from ..planted import PLANTED_VALUE, evil, plant_call, plant_value, reseal, unplant_call
from .conftest import Cli, one, prepare

KEY = "cli-key-0123456789abcdef"


def _api_reads(url: str, marker: Path, execution: str, job: str, targets: list[str]) -> None:
    """Every route of the browser over the store (in this process: unpickling here would
    write the marker too), jobs also with ``?values=1``."""
    from fastapi.testclient import TestClient

    from lazyflow_core.ui.app import create_app

    app = create_app(url)
    paths = [
        "/api/executions",
        f"/api/executions/{execution}",
        f"/api/executions/{execution}/graph?flows=true",
        f"/api/executions/{execution}/jobs",
        f"/api/jobs/{job}",
        f"/api/jobs/{job}?values=1",
        f"/jobs/{job}?values=1",
        f"/executions/{execution}",
        "/",
        *(f"/api/lineage?target={t}" for t in targets),
        *(f"/lineage?target={t}" for t in targets),
    ]
    try:
        with TestClient(app) as client:
            for path in paths:
                got = client.get(path)
                assert got.status_code == 200, (path, got.text[:300])
                assert not marker.exists(), f"GET {path} ran the planted pickle"
    finally:
        app.state.browser.prov.close()


def _commands_never_run_it(
    cli: Cli, url: str, marker: Path, commands: list[tuple[str, ...]], key: str | None = None
) -> None:
    env: dict[str, str | None] = {"LAZYFLOW_SIGNING_KEY": key}
    for command in commands:
        out = cli(*command, "--db", url, env=env)
        assert out.code == 0, (command, out.err)
        assert not marker.exists(), f"lazyflow {' '.join(command)} ran the planted pickle"


def _ids(url: str) -> list[str]:
    from sqlalchemy import text

    store = Store(url)
    try:
        return [r[0] for r in store.query(text("SELECT id FROM lf_executions ORDER BY started_at"))]
    finally:
        store.close()


def test_a_planted_cached_result_never_runs_through_a_read_only_command(
    cli: Cli, flows: Path, db_url: str
) -> None:
    prepare(flows, db_url, ("main", 3), ("main", 4))
    first, second = _ids(db_url)
    result = one(db_url, f"SELECT result_hash FROM lf_executions WHERE id = '{second}'")
    arg = one(
        db_url,
        "SELECT a.value_hash FROM lf_call_args a JOIN lf_calls c ON c.call_hash = a.call_hash "
        "WHERE c.task_name LIKE '%total' ORDER BY c.created_at",
    )
    job = one(db_url, f"SELECT id FROM lf_jobs WHERE execution_id = '{second}' LIMIT 1")
    marker = flows / "pwned"
    # every value, a container of the payload: lineage is tempted to look inside
    plant_value(db_url, evil(marker, inside=True))
    reseal(db_url)  # without a key a checksum is no obstacle: anyone can recompute it
    read_only: list[tuple[str, ...]] = [
        ("log",),
        ("log", second),
        ("log", "--job", job),
        ("lineage", result),
        ("lineage", result, "--json"),
        ("lineage", result, "--values"),  # asked, but nothing is signed: nothing loads
        ("lineage", arg, "--consumers", "--values"),
        ("diff", first, second),
        ("viz", second),
        ("explain", "flows.py", "main", "--n", "3"),  # main(3) is cached: not unpickled
        ("explain", "flows.py", "main", "--n", "4", "--all", "--json"),
        ("explain", "flows.py", "main", "--n", "3", "--load-values"),
        ("db", "info"),
        ("gc",),
        ("gc", "--delete", "--min-age", "0"),
    ]
    _commands_never_run_it(cli, db_url, marker, read_only)
    _api_reads(db_url, marker, second, job, [result, arg])
    keyed = [
        ("lineage", result, "--values"),
        ("explain", "flows.py", "main", "--n", "3", "--load-values"),
    ]
    _commands_never_run_it(cli, db_url, marker, keyed, key=KEY)
    # a run with a key treats the unsigned value as a miss and runs the call
    run = cli(
        "run", "flows.py", "main", "--n", "3", "--db", db_url, env={"LAZYFLOW_SIGNING_KEY": KEY}
    )
    assert run.code == 0 and run.last_line == "5", run.err
    assert "cannot be loaded: it is not signed" in run.err and not marker.exists()
    # without a key, a run unpickles it: what the plant is, and what signing stops
    cli("run", "flows.py", "main", "--n", "4", "--db", db_url)
    assert marker.exists()


def test_a_planted_call_nobody_made_never_runs_through_a_read_only_command(
    cli: Cli, flows: Path, db_url: str
) -> None:
    import os

    from lazyflow_core import Scheduler, load_task

    prepare(flows, db_url, ("main", 3))
    (execution,) = _ids(db_url)
    job = one(db_url, f"SELECT id FROM lf_jobs WHERE execution_id = '{execution}' LIMIT 1")
    marker = flows / "pwned"
    cwd = os.getcwd()
    os.chdir(flows)
    try:  # what the attacker computes: the hash of main(7), which nobody has run
        with Scheduler(db=db_url) as sched:
            decisions = sched.explain(load_task("flows.py:main")(7))
            main_hash = one(db_url, "SELECT hash FROM lf_tasks WHERE name LIKE '%main'")
            call = next(d for d in decisions if d.call.startswith("main("))
            assert call.action == "run" and call.call_hash is not None
            plant_call(sched.store, call.call_hash, main_hash, call.task_name, evil(marker))
    finally:
        os.chdir(cwd)
    read_only: list[tuple[str, ...]] = [
        ("explain", "flows.py", "main", "--n", "7"),
        ("explain", "flows.py", "main", "--n", "7", "--load-values"),
        ("lineage", PLANTED_VALUE),
        ("lineage", PLANTED_VALUE, "--values"),
        ("lineage", PLANTED_VALUE, "--consumers", "--values"),
        ("log",),
        ("db", "info"),
        ("gc",),
    ]
    _commands_never_run_it(cli, db_url, marker, read_only)
    _api_reads(db_url, marker, execution, job, [PLANTED_VALUE])
    _commands_never_run_it(cli, db_url, marker, read_only[:2], key=KEY)
    run = cli(
        "run", "flows.py", "main", "--n", "7", "--db", db_url, env={"LAZYFLOW_SIGNING_KEY": KEY}
    )
    assert run.code == 0 and run.last_line == "91", run.err
    assert not marker.exists()
    # planted again, a run without a key unpickles it: the plant is real
    store = Store(db_url)
    unplant_call(store, call.call_hash)
    plant_call(store, call.call_hash, main_hash, call.task_name, evil(marker))
    store.close()
    cli("run", "flows.py", "main", "--n", "7", "--db", db_url)
    assert marker.exists()
