"""Provenance queries for the browser, on every store: pages of executions, per-task
counts, child jobs, calls grouped by task (stable keys, members in pages) and data flow."""

from __future__ import annotations

import contextlib

import pytest

from lazyflow_core import Scheduler, task
from lazyflow_core.provenance import NoSuchRecord, Provenance, call_groups, data_flows, group_key

from .tasks import fan_out, inc, total


@task
def pair(i: int) -> int:
    return total([inc(i), inc(i + 100)])


@task
def nested(n: int) -> int:
    return total([pair(i) for i in range(n)])


@task
def boom(x: int) -> int:
    raise ValueError(f"bad {x}")


@task
def some_fail(n: int) -> list[int]:
    return [inc(i) for i in range(n)] + [boom(n)]


def _run(db: str, expr: object, **kwargs: object) -> str:
    with Scheduler(db=db) as sched:
        with contextlib.suppress(ValueError):
            sched.run(expr, **kwargs)  # type: ignore[arg-type]
        assert sched.last_run is not None
        return sched.last_run.execution_id


def test_executions_page_by_page(db_url: str) -> None:
    ids = [_run(db_url, fan_out(n)) for n in (1, 2, 3)]
    with Provenance(db_url) as prov:
        first = [e.id for e in prov.executions(limit=2)]
        second = [e.id for e in prov.executions(limit=2, offset=2)]
    assert first + second == list(reversed(ids))


def test_task_counts_and_child_jobs(db_url: str) -> None:
    eid = _run(db_url, some_fail(3))
    with Provenance(db_url) as prov:
        counts = {t.name.rsplit(".", 1)[-1]: t for t in prov.task_counts(eid)}
        assert next(t.name.rsplit(".", 1)[-1] for t in prov.task_counts(eid)) == "some_fail"
        assert counts["inc"].jobs == 3 and counts["inc"].states == {"done": 3}
        assert counts["boom"].states == {"failed": 1}
        root = next(j for j in prov.jobs(eid) if j.parent_id is None)
        kids = prov.child_jobs(root)
        assert sorted(k.task_name.rsplit(".", 1)[-1] for k in kids) == ["boom", "inc", "inc", "inc"]
    again = _run(db_url, some_fail(3))
    with Provenance(db_url) as prov:
        inc_again = next(t for t in prov.task_counts(again) if t.name.endswith("inc"))
        assert inc_again.states == {"cached": 3}


def test_siblings_of_one_task_are_one_group(db_url: str) -> None:
    eid = _run(db_url, nested(4))
    with Provenance(db_url) as prov:
        groups = call_groups(prov, eid[:8])
    names = [(g.task_name.rsplit(".", 1)[-1], g.count, g.depth) for g in groups.groups.values()]
    # nested -> 4 pair + 1 total; each pair -> 2 inc + 1 total: grouped across the pairs
    assert names == [
        ("nested", 1, 0),
        ("pair", 4, 1),
        ("total", 1, 1),
        ("inc", 8, 2),
        ("total", 4, 2),
    ]
    root = groups.groups[groups.roots[0]]
    pair_group = groups.groups[root.children[0]]
    assert pair_group.key == group_key(root.key, pair_group.task_name)  # stable across requests
    assert pair_group.states == {"done": 4}
    page, n = groups.members(pair_group.children[0], offset=2, limit=3)
    assert n == 8 and [j.args_preview for j in page] == ["inc(1)", "inc(101)", "inc(2)"]
    assert len(groups.group_of) == 1 + 4 + 1 + 8 + 4


def test_groups_of_a_large_fan_out_stay_few(sqlite_url: str) -> None:
    eid = _run(sqlite_url, fan_out(3000))
    with Provenance(sqlite_url) as prov:
        groups = call_groups(prov, eid)
        with pytest.raises(NoSuchRecord):
            call_groups(prov, "ffffffffff")
    sizes = sorted(g.count for g in groups.groups.values())
    assert sizes == [1, 1, 3000]
    inc_group = next(g for g in groups.groups.values() if g.count == 3000)
    failed, n = groups.members(inc_group.key, state="failed")
    assert (failed, n) == ([], 0)


class _RowCounter(Provenance):
    """The real provenance reader, counting the rows its queries return."""

    read = 0

    def _rows(self, statement: object) -> list[object]:
        rows = super()._rows(statement)
        self.read += len(rows)
        return rows


def test_grouping_reads_aggregates_not_every_job(sqlite_url: str) -> None:
    """A fan-out's groups come from a GROUP BY: rows read do not grow with the calls, and
    a page of members reads that page (100k calls once took 8 s to group in Python)."""
    eid = _run(sqlite_url, fan_out(3000))
    with _RowCounter(sqlite_url) as prov:
        groups = call_groups(prov, eid)
        assert prov.read < 20, prov.read
        assert sorted(g.count for g in groups.groups.values()) == [1, 1, 3000]
        inc_group = next(g for g in groups.groups.values() if g.count == 3000)
        prov.read = 0
        page, n = groups.members(inc_group.key, offset=10, limit=5)
        assert n == 3000 and [j.args_preview for j in page] == [f"inc({i})" for i in range(10, 15)]
        assert prov.read == 5
        single = next(g for g in groups.groups.values() if g.task_name.endswith("fan_out"))
        assert single.job is not None and single.job.args_preview == "fan_out(3000)"


@pytest.mark.parametrize("page_parents", [1, 500])
def test_members_of_a_group_with_many_parents(
    db_url: str, page_parents: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages are the same whether SQL filters by the parent jobs (few) or the task's calls
    are filtered here (more parents than `PAGE_PARENTS`), also per state."""
    from lazyflow_core.provenance import graph

    monkeypatch.setattr(graph, "PAGE_PARENTS", page_parents)
    eid = _run(db_url, nested(4))
    failing = _run(db_url, some_fail(3))
    with Provenance(db_url) as prov:
        groups = call_groups(prov, eid)
        inc_group = next(g for g in groups.groups.values() if g.count == 8)
        page, n = groups.members(inc_group.key, state="done", offset=1, limit=3)
        assert n == 8 and [j.args_preview for j in page] == ["inc(100)", "inc(1)", "inc(101)"]
        assert groups.members(inc_group.key, state="cached") == ([], 0)
        assert len(groups.group_of) == 1 + 4 + 1 + 8 + 4
        failed = call_groups(prov, failing)
        boom_group = next(g for g in failed.groups.values() if g.task_name.endswith("boom"))
        bad, n = failed.members(boom_group.key, state="failed")
        assert n == 1 and [j.error_type for j in bad] == ["builtins.ValueError"]
        assert boom_group.job is not None and boom_group.job.id == bad[0].id


def test_data_flow_through_a_list_argument(db_url: str) -> None:
    eid = _run(db_url, fan_out(3))
    with Provenance(db_url) as prov:
        roots = prov.call_tree(eid)
        nodes = [roots[0], *roots[0].children]
        flows = data_flows(prov, nodes, {i: 0 for i in range(1, len(nodes))})
    names = [n.preview for n in nodes]
    edges = sorted((names[f.producer], names[f.consumer], f.label) for f in flows)
    assert edges == [
        ("inc(0)", "total([1, 2, 3])", "xs[0]"),
        ("inc(1)", "total([1, 2, 3])", "xs[1]"),
        ("inc(2)", "total([1, 2, 3])", "xs[2]"),
    ]
