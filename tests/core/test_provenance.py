"""The provenance query API, on every store: what produced a value or file, what a run
executed and reused, which calls consumed a value."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lazyflow_core import File, Scheduler, StoreError, task
from lazyflow_core.hashing import value_digest
from lazyflow_core.provenance import AmbiguousPrefix, NoSuchRecord, Provenance, job_ref


@task
def square(x: int) -> int:
    return x * x


@task
def total(values: list[int]) -> int:
    return sum(values)


@task
def main(n: int) -> int:
    return total([square(i) for i in range(n)])


@task
def write(text: str, path: str) -> File:
    with open(path, "w") as fh:
        fh.write(text)
    return File(path)


@task
def shout(src: File, path: str) -> File:
    with open(src.path) as fh, open(path, "w") as out:
        out.write(fh.read().upper())
    return File(path)


@task
def pipeline(folder: str) -> File:
    return shout(write("hi", os.path.join(folder, "a.txt")), os.path.join(folder, "b.txt"))


def _h(value: object) -> str:
    return value_digest(value).hex()


def _run(db: str, expr: object, **kwargs: object) -> str:
    with Scheduler(db=db) as sched:
        sched.run(expr, **kwargs)  # type: ignore[arg-type]
        assert sched.last_run is not None
        return sched.last_run.execution_id


@pytest.fixture
def runs(db_url: str) -> dict[str, str]:
    return {
        "first": _run(db_url, main(4), tags={"env": "test"}),
        "again": _run(db_url, main(4)),
        "more": _run(db_url, main(5)),
    }


def test_executions_jobs_and_prefixes(db_url: str, runs: dict[str, str]) -> None:
    with Provenance(db_url) as prov:
        listed = prov.executions()
        assert [e.id for e in listed] == [runs["more"], runs["again"], runs["first"]]
        assert prov.executions(tags={"env": "test"})[0].id == runs["first"]
        assert [e.id for e in prov.executions(task="square")] == [runs["more"], runs["first"]]
        assert prov.executions(status="failed") == []
        first = prov.execution(runs["first"][:6])
        assert (first.jobs, first.executed, first.cached, first.status) == (6, 6, 0, "done")
        assert first.tags["env"] == "test" and "lazyflow_version" in first.tags
        jobs = prov.jobs(first.id)
        assert sorted(j.args_preview or "" for j in jobs)[0] == "main(4)"
        ref = job_ref(jobs[0].id, first.id)
        assert prov.job(ref).id == jobs[0].id
        with pytest.raises(AmbiguousPrefix):
            prov.job(first.id[:10])  # every job id of an execution starts like it
        with pytest.raises(NoSuchRecord):
            prov.execution("ffffffffff")


def test_run_report_executed_vs_reused(db_url: str, runs: dict[str, str]) -> None:
    with Provenance(db_url) as prov:
        again = prov.run_report(runs["again"])
        assert (len(again.executed), len(again.cached), again.reused_calls) == (0, 1, 6)
        more = prov.run_report(runs["more"])
        assert sorted(j.args_preview or "" for j in more.executed) == [
            "main(5)",
            "square(4)",
            "total([0, 1, 4, 9, 16])",
        ]
        assert len(more.cached) == 4
        tree = prov.call_tree(runs["again"], expand_cached=True)
        assert [n.preview for n in tree] == ["main(4)"]
        assert sorted(c.preview for c in tree[0].children)[0] == "square(0)"
        calls = prov.execution_calls(runs["again"])
        assert len(calls) == 6 and all(n.cached for n in calls.values())


def test_producer_is_the_innermost_call(db_url: str, runs: dict[str, str]) -> None:
    with Provenance(db_url) as prov:
        # main(4) returns total's result: total produced 14, main only passed it on
        call, others = prov.producer(_h(14))
        assert call is not None and call.task_name.endswith(".total")
        assert others == 0
        assert call.result is not None and call.result.preview == "14"
        assert [a.name for a in call.args] == ["values"]
        task_version = prov.task(call.task_hash)
        assert task_version is not None and "return sum(values)" in (task_version.source or "")


def test_lineage_through_a_list_and_given_arguments(db_url: str, runs: dict[str, str]) -> None:
    with Provenance(db_url) as prov:
        lineage = prov.lineage(_h(14)[:12])
        assert lineage.kind == "value" and lineage.producer is not None
        [values] = lineage.producer.inputs
        assert values.name == "values" and values.producer is None
        assert [p.name for p in values.parts] == [
            "values[0]",
            "values[1]",
            "values[2]",
            "values[3]",
        ]
        producers = [p.producer for p in values.parts]
        assert [s.call.preview for s in producers if s] == [f"square({i})" for i in range(4)]
        # each x came from range(), not from a call, although square(1) also returned 1
        for step in producers:
            assert step is not None and step.inputs[0].producer is None  # x was given
        assert producers[0] is not None and producers[0].parent is not None
        assert producers[0].parent.preview in ("main(4)", "main(5)")


def test_consumers(db_url: str, runs: dict[str, str]) -> None:
    with Provenance(db_url) as prov:
        used = {(c.preview, arg) for c, arg in prov.consumers(_h(9))}
        assert ("total([0, 1, 4, 9])", "values[3]") in used
        assert ("total([0, 1, 4, 9, 16])", "values[3]") in used
        tree = prov.consumer_tree(_h(3), depth=2)  # 3 was square(3)'s argument
        [use] = tree
        assert use.call.preview == "square(3)" and use.arg == "x"
        assert {u.call.preview for u in use.uses} == {
            "total([0, 1, 4, 9])",
            "total([0, 1, 4, 9, 16])",
        }


def test_file_lineage(db_url: str, tmp_path: Path) -> None:
    _run(db_url, pipeline(str(tmp_path)))
    b = str(tmp_path / "b.txt")
    with Provenance(db_url) as prov:
        [(record, call)] = prov.file_producers(b)
        assert record.role == "output" and call.task_name.endswith(".shout")
        lineage = prov.lineage(b)
        assert (lineage.kind, lineage.file_state) == ("file", "unchanged")
        assert lineage.producer is not None
        src = lineage.producer.inputs[0]
        assert src.name == "src" and src.producer is not None
        assert src.producer.call.task_name.endswith(".write")
        [(_, reader)] = prov.file_consumers(str(tmp_path / "a.txt"))
        assert reader.call_hash == call.call_hash
        (tmp_path / "b.txt").write_text("edited by hand, much longer than before")
        assert prov.lineage(b).file_state == "modified"
        (tmp_path / "b.txt").unlink()
        assert prov.lineage(b).file_state == "missing"


def test_execution_files_lists_what_each_job_read_and_wrote(db_url: str, tmp_path: Path) -> None:
    """One query per execution; a re-run's jobs are cached, with the same files."""
    first = _run(db_url, pipeline(str(tmp_path)))
    second = _run(db_url, pipeline(str(tmp_path)))
    a, b = str(tmp_path / "a.txt"), str(tmp_path / "b.txt")
    with Provenance(db_url) as prov:
        files = prov.execution_files(first)
        cached = prov.execution_files(second)
    got = {(f.task_name.rsplit(".", 1)[1], f.role, f.path, f.cached) for f in files}
    assert got == {
        ("pipeline", "output", b, False),
        ("write", "output", a, False),
        ("shout", "input", a, False),
        ("shout", "output", b, False),
    }
    assert all(f.file_hash for f in files)
    assert {(f.role, f.path, f.cached) for f in cached} == {("output", b, True)}


def test_unknown_targets_and_missing_store(db_url: str, tmp_path: Path) -> None:
    _run(db_url, square(2))
    with Provenance(db_url) as prov:
        with pytest.raises(NoSuchRecord, match=r"no file 'nope\.csv'"):
            prov.lineage("nope.csv")
        with pytest.raises(NoSuchRecord):
            prov.lineage("ffffffffffff")
        assert prov.counts()["lf_calls"] == 1
    with pytest.raises(StoreError, match="does not exist"):
        Provenance(f"sqlite:///{tmp_path / 'missing.db'}")
    assert not (tmp_path / "missing.db").exists()


def test_equal_value_from_an_unrelated_call_is_not_a_producer(db_url: str) -> None:
    """square(16) gets 16 from range(); square(4) returned 16 earlier but did not feed it."""
    _run(db_url, main(17))
    with Provenance(db_url) as prov:
        step = prov.lineage(_h(256)).producer
        assert step is not None and step.call.preview == "square(16)"
        assert step.inputs[0].producer is None
        # while a real dependency is found: total's list holds square(4)'s 16
        total = prov.lineage(_h(sum(i * i for i in range(17)))).producer
        assert total is not None
        part = total.inputs[0].parts[4]
        assert part.producer is not None and part.producer.call.preview == "square(4)"
        assert prov.flows(part.producer.call.call_hash, total.call.call_hash)
        assert not prov.flows(part.producer.call.call_hash, step.call.call_hash)


@task
def outer(src: File, path: str) -> File:
    return shout(src, path)


@task
def nested(folder: str) -> File:
    return outer(write("hi", os.path.join(folder, "a.txt")), os.path.join(folder, "b.txt"))


def test_lineage_follows_arguments_passed_down_by_the_enclosing_call(
    db_url: str, tmp_path: Path
) -> None:
    """shout's src came from outer's src, which write produced."""
    _run(db_url, nested(str(tmp_path)))
    with Provenance(db_url) as prov:
        step = prov.lineage(str(tmp_path / "b.txt")).producer
        assert step is not None and step.call.task_name.endswith(".shout")
        src = step.inputs[0]
        assert src.passed_by is not None and src.passed_by[0].task_name.endswith(".outer")
        assert src.producer is not None and src.producer.call.task_name.endswith(".write")
