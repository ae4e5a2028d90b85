"""``apply_tags`` on values, jobs and executions, translated from redun's tests
(test_tags.py: test_value_tags, test_apply_all_tags, test_namespace_tags), and where the
tags show: ``lazyflow log`` (the call tree, one job, ``--tag``) and the UI's job page.
Each translated test names the one it mirrors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from lazyflow_core import LazyflowError, Scheduler, apply_tags, task
from lazyflow_core.cli import cli
from lazyflow_core.provenance import Provenance


@task
def ten() -> int:
    return 10


@task(cache=False)
def tagged_ten() -> Any:
    return apply_tags(10, {"env": "prod", "project": "acme", "data": [1, "a", True]})


@task
def all_tags() -> Any:
    return apply_tags(10, [("a", 1)], job_tags=[("b", 2)], execution_tags=[("c", 3)])


@task(cache=False)
def namespaced() -> Any:
    return apply_tags(10, {"redun.project": "acme", "redun.sub.user": "alice", "env": "prod"})


@task
def label(x: int) -> str:
    return f"sample-{x}"


@task
def qc(x: int) -> Any:
    # the tags are lazy too: computed by a task, applied when known
    return apply_tags(x * 2, {"sample": label(x)}, job_tags={"qc": "pass" if x else "fail"})


@task
def qc_all(n: int) -> list[Any]:
    return [qc(i) for i in range(n)]


def _eid(sched: Scheduler) -> str:
    assert sched.last_run is not None
    return sched.last_run.execution_id


def _value_tags(url: str, value_hash: str) -> dict[str, str]:
    with Provenance(url) as prov:
        return prov.entity_tags("value", [value_hash]).get(value_hash, {})


def _jobs(url: str, execution_id: str) -> dict[str, Any]:
    with Provenance(url) as prov:
        return {j.task_name.rsplit(".", 1)[-1]: j for j in prov.jobs(execution_id)}


def test_value_tags(db_url: str) -> None:
    """redun: test_value_tags. Tags land on the value (JSON text for non-strings); a
    second run sets them again without duplicating the value's tags."""
    with Scheduler(db=db_url) as sched:
        assert sched.run(tagged_ten()) == 10
        first = _eid(sched)
        (job,) = _jobs(db_url, first).values()
        assert job.result_hash is not None
        expected = {"env": "prod", "project": "acme", "data": '[1, "a", true]'}
        assert _value_tags(db_url, job.result_hash) == expected
        sched.run(tagged_ten())
        assert _value_tags(db_url, job.result_hash) == expected
        # the same value produced by another task carries the tags too (tags follow the value)
        sched.run(ten())
        (plain,) = _jobs(db_url, _eid(sched)).values()
        assert plain.result_hash == job.result_hash
        assert _value_tags(db_url, plain.result_hash) == expected


def test_apply_all_tags(sqlite_url: str) -> None:
    """redun: test_apply_all_tags. Value, job and execution tags from one apply_tags."""
    with Scheduler(db=sqlite_url) as sched:
        assert sched.run(all_tags()) == 10
        eid = _eid(sched)
    with Provenance(sqlite_url) as prov:
        (job,) = prov.jobs(eid)
        assert job.result_hash is not None
        assert prov.entity_tags("value", [job.result_hash]) == {job.result_hash: {"a": "1"}}
        assert prov.entity_tags("job", [job.id]) == {job.id: {"b": "2"}}
        assert prov.execution(eid).tags["c"] == "3"


def test_namespace_tags(sqlite_url: str) -> None:
    """redun: test_namespace_tags. Dotted keys are kept as they are."""
    with Scheduler(db=sqlite_url) as sched:
        sched.run(namespaced())
        (job,) = _jobs(sqlite_url, _eid(sched)).values()
    assert _value_tags(sqlite_url, job.result_hash) == {
        "env": "prod",
        "redun.project": "acme",
        "redun.sub.user": "alice",
    }


def test_lazy_tags_go_on_each_calls_own_job_and_value(sqlite_url: str) -> None:
    with Scheduler(db=sqlite_url) as sched:
        assert sched.run(qc_all(3)) == [0, 2, 4]
        eid = _eid(sched)
    with Provenance(sqlite_url) as prov:
        qcs = sorted(
            (j for j in prov.jobs(eid) if j.task_name.endswith(".qc")),
            key=lambda j: j.args_preview,
        )
        job_tags = prov.entity_tags("job", [j.id for j in qcs])
        assert [job_tags[j.id] for j in qcs] == [{"qc": "fail"}, {"qc": "pass"}, {"qc": "pass"}]
        values = prov.entity_tags("value", [j.result_hash or "" for j in qcs])
        assert [values[j.result_hash or ""] for j in qcs] == [
            {"sample": "sample-0"},
            {"sample": "sample-1"},
            {"sample": "sample-2"},
        ]


def test_top_level_job_tags_go_on_the_call_tagged(sqlite_url: str) -> None:
    with Scheduler(db=sqlite_url) as sched:
        assert sched.run(apply_tags(label(7), job_tags={"batch": "b1"})) == "sample-7"
        eid = _eid(sched)
        (job,) = _jobs(sqlite_url, eid).values()
        with Provenance(sqlite_url) as prov:
            assert prov.entity_tags("job", [job.id]) == {job.id: {"batch": "b1"}}
        with pytest.raises(LazyflowError, match=r"job_tags .* have no job"):
            sched.run(apply_tags(label(7) + "!", job_tags={"batch": "b1"}))


def test_cached_rerun_keeps_value_tags_and_job_tags_stay_with_the_job_that_ran(
    sqlite_url: str,
) -> None:
    with Scheduler(db=sqlite_url) as sched:
        sched.run(qc(5))
        ran = _jobs(sqlite_url, _eid(sched))["qc"]
        sched.run(qc(5))
        assert sched.last_run.cached >= 1
        reused = _jobs(sqlite_url, _eid(sched))["qc"]
    assert reused.cached and reused.result_hash == ran.result_hash
    with Provenance(sqlite_url) as prov:
        assert prov.entity_tags("job", [ran.id, reused.id]) == {ran.id: {"qc": "pass"}}
    assert _value_tags(sqlite_url, reused.result_hash or "") == {"sample": "sample-5"}


def test_bad_tags_are_refused_where_they_are_written() -> None:
    with pytest.raises(LazyflowError, match=r"tags holds \(1, 'x'\)"):
        apply_tags(1, [(1, "x")])  # type: ignore[list-item]
    with pytest.raises(LazyflowError, match=r"job_tags\['when'\] = .* is not a JSON value"):
        apply_tags(1, job_tags={"when": object()})


def test_log_shows_and_filters_by_applied_tags(sqlite_url: str) -> None:
    with Scheduler(db=sqlite_url) as sched:
        sched.run(qc_all(2))
        tagged = _eid(sched)
        sched.run(ten())
    runner = CliRunner()
    found = runner.invoke(cli, ["log", "--json", "--tag", "qc=fail", "--db", sqlite_url])
    assert found.exit_code == 0, found.output
    assert [e["id"] for e in json.loads(found.output)] == [tagged]
    value_tagged = runner.invoke(
        cli, ["log", "--json", "--tag", "sample=sample-1", "--db", sqlite_url]
    )
    assert [e["id"] for e in json.loads(value_tagged.output)] == [tagged]
    tree = runner.invoke(cli, ["log", tagged, "--db", sqlite_url]).output
    assert "qc(0)  done" in tree and "[sample=sample-0]  job tags: qc=fail" in tree
    calls = json.loads(runner.invoke(cli, ["log", tagged, "--json", "--db", sqlite_url]).output)
    (root,) = calls["calls"]
    assert sorted(c["job_tags"]["qc"] for c in root["children"]) == ["fail", "pass"]
    qc1 = next(c for c in root["children"] if c["call"] == "qc(1)")
    one = runner.invoke(cli, ["log", "--job", qc1["job_id"], "--db", sqlite_url]).output
    assert "qc=pass" in one and "sample=sample-1" in one


def test_ui_job_page_shows_job_and_result_tags(sqlite_url: str) -> None:
    from fastapi.testclient import TestClient

    from lazyflow_core.ui.app import create_app

    with Scheduler(db=sqlite_url) as sched:
        sched.run(qc(3))
        job = _jobs(sqlite_url, _eid(sched))["qc"]
    app = create_app(sqlite_url)
    try:
        with TestClient(app) as client:
            detail = client.get(f"/api/jobs/{job.id}").json()
            assert detail["tags"] == {"qc": "pass"}
            assert detail["result_tags"] == {"sample": "sample-3"}
            html = client.get(f"/jobs/{job.id}").text
            assert "qc=pass" in html and "sample=sample-3" in html
            listed = client.get("/api/executions", params={"tag": "qc=pass"}).json()
            assert [e["id"] for e in listed] == [job.execution_id]
    finally:
        app.state.browser.prov.close()


@task(tags={"env": "dev"})
def tagged_task() -> int:
    return 10


def test_task_tags(sqlite_url: str) -> None:
    """redun: test_task_tags. A task's tags go on each of its jobs (reused ones too);
    options(tags=...) adds tags for one call site; neither changes the task's hash."""
    alice = tagged_task.options(tags=[("user", "alice")])
    assert alice.hash == tagged_task.hash
    with Scheduler(db=sqlite_url) as sched:
        sched.run(alice())
        ran = _jobs(sqlite_url, _eid(sched))["tagged_task"]
        sched.run(tagged_task())
        reused = _jobs(sqlite_url, _eid(sched))["tagged_task"]
    assert reused.cached
    with Provenance(sqlite_url) as prov:
        assert prov.entity_tags("job", [ran.id, reused.id]) == {
            ran.id: {"env": "dev", "user": "alice"},
            reused.id: {"env": "dev"},
        }
        assert [e.id for e in prov.executions(tags={"user": "alice"})] == [ran.execution_id]
    with pytest.raises(LazyflowError, match=r"@task on '.*bad': tags\['x'\] = .* not a JSON"):

        @task(tags={"x": object()})
        def bad() -> None: ...
