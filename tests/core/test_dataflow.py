"""Exact data flow (DESIGN.md "Trust"): each argument of each call records the call that
produced it, also when the calling task passed it on from its own arguments."""

from __future__ import annotations

from lazyflow_core import Scheduler, task
from lazyflow_core.provenance import Provenance, data_flows


@task
def make(x: int) -> int:
    return x * 10


@task
def first(xs: list[int]) -> int:
    return xs[0]  # passes a value on


@task
def show(value: int) -> str:
    return f"<{value}>"


@task
def outer(raw: int) -> str:
    return show(raw)  # `raw` passed on: its producer is the caller's argument's


@task
def main() -> list[str]:
    return [outer(make(1)), show(first([make(2), make(3)])), show(20)]


def test_every_argument_records_its_producer(store_url: str) -> None:
    with Scheduler(db=store_url) as sched:
        assert sched.run(main()) == ["<10>", "<20>", "<20>"]
        prov = Provenance(sched.store)
        calls = {c.preview: c for c in _calls(prov, sched.last_run.execution_id)}  # type: ignore[union-attr]
        make1, make2, firstc = calls["make(1)"], calls["make(2)"], calls["first([20, 30])"]
        assert calls["outer(10)"].args[0].producer == make1.call_hash
        # show(10) inside outer got `raw`, which make(1) produced
        assert calls["show(10)"].args[0].producer == make1.call_hash
        # show(20) twice: the same call hash, recorded once; the value came from
        # first(...) in the run that computed it (a given 20 is an identical call)
        assert calls["show(20)"].args[0].producer in (firstc.call_hash, None)
        assert calls["first([20, 30])"].args[0].producer is None  # a list no call returned
        lineage = prov.lineage(calls["show(10)"].call_hash, depth=5)
        assert lineage.producer is not None
        (value,) = lineage.producer.inputs
        assert value.producer is not None and value.producer.call.call_hash == make1.call_hash
        # The first's input list leads to make(2) through its items.
        step = prov.lineage(firstc.call_hash, depth=5).producer
        assert step is not None
        (xs,) = step.inputs
        assert [p.producer.call.call_hash for p in xs.parts if p.producer][:1] == [make2.call_hash]


def test_viz_flows_take_the_recorded_producer(store_url: str) -> None:
    with Scheduler(db=store_url) as sched:
        sched.run(main())
        prov = Provenance(sched.store)
        nodes = list(prov.execution_calls(sched.last_run.execution_id).values())  # type: ignore[union-attr]
        found = data_flows(prov, nodes)
    flows = {(nodes[f.producer].preview, nodes[f.consumer].preview) for f in found}
    assert ("make(1)", "outer(10)") in flows
    assert ("make(1)", "show(10)") in flows  # passed on by outer: an exact edge


def _calls(prov: Provenance, execution_id: str) -> list:  # type: ignore[type-arg]
    nodes = prov.execution_calls(execution_id)
    return list(prov.calls([n.call_hash for n in nodes.values() if n.call_hash]).values())


@task
def label(value: int, suffix: str = "!") -> str:
    return f"{value}{suffix}"


def test_a_call_on_results_has_the_call_hash_of_the_call_on_their_values(
    store_url: str,
) -> None:
    """Arguments that are calls' plain results (a chain, ``x = inc(x)``) are hashed by the
    digests those calls computed: the same call hashes as the values given directly, so
    each is reused from the other, and each argument records its producer."""
    with Scheduler(db=store_url) as sched:
        assert sched.run(label(make(make(1)), show(7))) == "100<7>"
        prov = Provenance(sched.store)
        calls = {c.preview: c for c in _calls(prov, sched.last_run.execution_id)}  # type: ignore[union-attr]
        top = calls["label(100, '<7>')"]
        assert [a.producer for a in top.args] == [
            calls["make(10)"].call_hash,
            calls["show(7)"].call_hash,
        ]
        assert calls["make(10)"].args[0].producer == calls["make(1)"].call_hash
        assert sched.run(label(100, "<7>")) == "100<7>"
        assert sched.last_run is not None and sched.last_run.cached == 1
        assert sched.run(make(10)) == 100
        assert sched.last_run.cached == 1
        assert sched.run(label(make(4))) == "40!"  # a default after a result
        assert sched.run(label(40)) == "40!"
        assert sched.last_run.cached == 1


@task
def added(xs: list[int]) -> int:
    return sum(xs)


def test_a_fan_in_over_results_has_the_call_hash_of_the_list_given(store_url: str) -> None:
    """A list of calls' plain results is hashed from the digests those calls computed
    (not walked and hashed again): the same call hash as the list of values given, so
    each is reused from the other; a list argument records no producer, as before."""
    with Scheduler(db=store_url) as sched:
        assert sched.run(added([make(1), make(2), make(3)])) == 60
        assert sched.last_run is not None and sched.last_run.executed == 4
        prov = Provenance(sched.store)
        calls = {c.preview: c for c in _calls(prov, sched.last_run.execution_id)}
        assert [a.producer for a in calls["added([10, 20, 30])"].args] == [None]
        assert sched.run(added([10, 20, 30])) == 60
        assert sched.last_run.cached == 1
        assert sched.run(added([10, 20, 31])) == 61
        assert sched.last_run.executed == 1
        assert sched.run(added([make(1), make(2), make(3.1)])) == 61
        assert (sched.last_run.cached, sched.last_run.executed) == (2, 2)  # 31.0 is not 31
