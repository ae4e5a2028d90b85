"""Lineage and consumers: which call produced a value or file, recursively with its
inputs, and which calls consumed a value, recursively with the calls its result reached.

Choosing a producer. Several calls may have returned the same value: ``inc(0)`` and
``dec(2)`` both give 1, and a call that returns its child's result has that result too.
The producer is the *innermost* call that returned the value (descend while a child call
returned the same hash), preferring calls near the consumer: a sibling under the same
parent call first, then a call of the same execution, then the most recent one.

Container arguments. ``total([inc(i) for i in ...])`` passes one list that no call
returned. Its parts are found by decoding the stored list (built-in containers only) and
hashing each item, so lineage goes through the list to the ``inc`` calls, and the
consumers of an ``inc`` result include ``total``. The list is decoded as plain data
(`store.values.plain_data`, which refuses every class, so no stored pickle can run code
here); a container holding other objects is unpickled only when the provenance was
opened with ``values=True`` (``lazyflow lineage --values``), and only if it is signed
with one of the reader's keys.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import case, select

from ..errors import StoreError
from ..store import schema
from ..store.sql import chunks, redact
from ..store.values import plain_data, read_values
from .queries import Queries, _file
from .records import (
    AmbiguousPrefix,
    Call,
    FileRecord,
    Input,
    Lineage,
    NoSuchRecord,
    ProvenanceError,
    Step,
    Use,
    Value,
)

_HEX = frozenset("0123456789abcdef")
_CONTAINERS = frozenset({"list", "tuple", "dict", "set", "frozenset"})
_MAX_PART_BYTES = 8 << 20
MAX_PARTS = 1000
"""Items hashed per container value; bigger containers are cut (reported as ``more``)."""


def could_feed(
    producer_job: str, finished: float | None, consumer_job: str, started: float | None
) -> bool:
    """Whether a job's result can have been an argument of another job of the execution.

    The producer must have finished before the consumer started. And the evaluator
    creates a call before the calls its arguments need (``g(f(x))`` numbers ``g`` before
    ``f``), so a producer numbered before its consumer was not its argument: ``square(4)``
    returned 16 before ``square(16)`` started, but 16 came from ``range``.
    """
    if finished is None or started is None or finished > started:
        return False
    p, c = _job_number(producer_job), _job_number(consumer_job)
    if p is None or c is None or p[0] != c[0]:
        return True
    return p[1] > c[1]


def _job_number(job_id: str) -> tuple[str, int] | None:
    """(execution prefix, creation number) of a job id made of both, else None."""
    tail = job_id[16:]
    if len(job_id) == 32 and tail.startswith("0000") and all(ch in _HEX for ch in tail):
        return job_id[:16], int(tail, 16)
    return None


class Provenance(Queries):
    """Read-only queries over a lazyflow store (URL, `Store`, or None for the default).

    A missing SQLite file is an error (`StoreError`) rather than a new empty store.
    The lookups by id come from `Queries`; this class adds producers, lineage and
    consumers.
    """

    # -- producers ---------------------------------------------------------------------
    def producers(self, value_hash: str, limit: int = 200) -> list[Call]:
        """The innermost calls that returned `value_hash`, most recent first."""
        hashes = self._returning(value_hash, limit)
        inner = self._innermost(hashes, value_hash)
        calls = self.calls(inner)
        return sorted(calls.values(), key=lambda x: -(x.created_at or 0))

    def _returning(self, value_hash: str, limit: int = 200) -> list[str]:
        """Hashes of the calls that returned `value_hash`, most recent first."""
        c = schema.calls
        return [
            r[0]
            for r in self._rows(
                select(c.c.call_hash)
                .where(c.c.result_hash == value_hash)
                .order_by(c.c.created_at.desc())
                .limit(limit)
            )
        ]

    def producer(self, value_hash: str, *, consumer: str | None = None) -> tuple[Call | None, int]:
        """The call that produced `value_hash`, and how many other calls also returned it.

        With `consumer` (a call hash), the producer is looked for in the execution where
        the consumer ran, among calls that finished before it started, a sibling under the
        same parent first; if there is none the value was given, not produced (None).
        Without it, the most recent producer is returned.
        """
        hashes = self._returning(value_hash)
        if not hashes:
            return None, 0
        alternatives = max(len(self._innermost(hashes, value_hash)) - 1, 0)
        chosen: str | None = hashes[0]
        if consumer is not None:
            known, found = self._producer_before(value_hash, consumer)
            if known:
                chosen = found
        if chosen is None:
            return None, alternatives + 1
        chosen = self._descend(chosen, value_hash)
        return self.calls([chosen]).get(chosen), alternatives

    def _producer_before(self, value_hash: str, consumer: str) -> tuple[bool, str | None]:
        """A call of the consumer's execution that returned the value and can have fed
        the consumer (see `could_feed`): ``(True, hash or None)``; ``(False, None)`` when
        the consumer's job is not recorded."""
        c, j = schema.calls, schema.jobs
        rows = self._rows(
            select(j.c.id, j.c.execution_id, j.c.started_at, j.c.parent_id)
            .join(c, c.c.job_id == j.c.id)
            .where(c.c.call_hash == consumer)
        )
        if not rows or rows[0].started_at is None:
            return False, None
        consumer_job = rows[0]
        found = self._rows(
            select(j.c.call_hash, j.c.id, j.c.finished_at, j.c.execution_id)
            .join(c, c.c.call_hash == j.c.call_hash)
            .where(
                j.c.execution_id == consumer_job.execution_id,
                c.c.result_hash == value_hash,
                j.c.status.in_(("done", "cached")),
                j.c.finished_at <= consumer_job.started_at,
                j.c.call_hash != consumer,
            )
            .order_by(
                case((j.c.parent_id == consumer_job.parent_id, 0), else_=1),
                j.c.finished_at.desc(),
            )
            .limit(50)
        )
        for call_hash, job_id, finished, _ in found:
            if could_feed(job_id, finished, consumer_job.id, consumer_job.started_at):
                return True, call_hash
        return True, None

    def flows(self, producer: str, consumer: str) -> bool:
        """Whether the result of call `producer` can have reached call `consumer`: in
        some execution that recorded both, the producer could feed the consumer (see
        `could_feed`); with no such execution, whether one parent call made both."""
        j1, j2 = schema.jobs.alias("jp"), schema.jobs.alias("jc")
        both = self._rows(
            select(j1.c.id, j1.c.finished_at, j2.c.id, j2.c.started_at)
            .join(j2, j2.c.execution_id == j1.c.execution_id)
            .where(j1.c.call_hash == producer, j2.c.call_hash == consumer)
            .limit(50)
        )
        if both:
            return any(could_feed(*r) for r in both)
        return bool(set(self.parents(producer)) & set(self.parents(consumer)))

    def _descend(self, call_hash: str, value_hash: str) -> str:
        """Follow child calls that returned the same value down to the innermost one."""
        c, cc = schema.calls, schema.call_children
        seen = {call_hash}
        while True:
            rows = self._rows(
                select(c.c.call_hash)
                .join(cc, cc.c.child_hash == c.c.call_hash)
                .where(cc.c.parent_hash == call_hash, c.c.result_hash == value_hash)
                .order_by(cc.c.position.desc())
                .limit(1)
            )
            if not rows or rows[0][0] in seen:
                return call_hash
            call_hash = rows[0][0]
            seen.add(call_hash)

    def _innermost(self, hashes: Sequence[str], value_hash: str) -> list[str]:
        if len(hashes) < 2:
            return list(hashes)
        cands = set(hashes)
        cc = schema.call_children
        outer: set[str] = set()
        for chunk in chunks(sorted(cands)):
            for parent, child in self._rows(
                select(cc.c.parent_hash, cc.c.child_hash).where(cc.c.parent_hash.in_(chunk))
            ):
                if child in cands and child != parent:
                    outer.add(parent)
        return [h for h in hashes if h not in outer] or list(hashes)

    def file_producers(self, path: str) -> list[tuple[FileRecord, Call]]:
        """Calls that wrote `path` (as given, absolute, or relative to the current
        directory), innermost only, newest first."""
        f = schema.files
        rows = self._rows(
            select(f)
            .where(f.c.role == "output", f.c.path.in_(_path_variants(path)))
            .order_by(f.c.created_at.desc())
        )
        if not rows:
            return []
        rows = self._writers(rows)
        by_hash: dict[str | None, list[Any]] = {}
        for r in rows:
            by_hash.setdefault(r.file_hash, []).append(r)
        out: list[tuple[FileRecord, Call]] = []
        for group in by_hash.values():
            hashes = [r.call_hash for r in group]
            inner = set(self._innermost(hashes, ""))
            calls = self.calls(inner)
            out += [(_file(r), calls[r.call_hash]) for r in group if r.call_hash in calls]
        out.sort(key=lambda fc: -(fc[0].created_at or 0))
        return out

    def _writers(self, rows: list[Any]) -> list[Any]:
        """The output records of calls that wrote the file, not of those that passed it
        on: a call that returned a file it was given (``merge([f])`` returning ``f``),
        unchanged, has it as an input of the same hash. Lineage follows such a call's
        input instead (when no call wrote the file, every record is kept)."""
        f = schema.files
        passed: set[tuple[str, str | None]] = set()
        for chunk in chunks(sorted({r.call_hash for r in rows})):
            for ch, path, file_hash in self._rows(
                select(f.c.call_hash, f.c.path, f.c.file_hash).where(
                    f.c.role == "input", f.c.call_hash.in_(chunk)
                )
            ):
                passed.add((ch, f"{path}\0{file_hash}"))
        kept = [r for r in rows if (r.call_hash, f"{r.path}\0{r.file_hash}") not in passed]
        return kept or rows

    # -- container parts -----------------------------------------------------------------
    def parts(self, value_hash: str) -> list[tuple[str, str]] | None:
        """``[(label, item_hash)]`` for a stored built-in container, else None.

        Labels are ``[0]``, ``['key']``...; nested containers are flattened
        (``[0][1]``). At most `MAX_PARTS` items.
        """
        if value_hash in self._parts_cache:
            return self._parts_cache[value_hash]
        result: list[tuple[str, str]] | None = None
        value = self.values([value_hash]).get(value_hash)
        if (
            value is not None
            and value.type_name in _CONTAINERS
            and (value.size is None or value.size <= _MAX_PART_BYTES)
        ):
            obj = self._container(value_hash)
            if obj is not None:
                result = []
                _flatten(obj, "", result, 0)
        self._parts_cache[value_hash] = result
        return result

    def _container(self, value_hash: str) -> Any:
        """A stored container value, decoded as plain data or (with ``values=True``)
        unpickled if signed; None when neither may or can be done."""
        data = read_values(self.store, [value_hash]).get(value_hash)
        if isinstance(data, bytes):
            try:
                return plain_data(data)
            except Exception:  # names a class (or is damaged): not plain data
                pass
        if self.load_values:
            with contextlib.suppress(StoreError):
                return self.store.load_value(value_hash, signed_only=True)
        return None

    # -- lineage -----------------------------------------------------------------------
    def lineage(self, target: str, depth: int = 5) -> Lineage:
        """Where `target` came from: a file path, a value hash or a call hash (prefixes
        accepted), as a tree of producing calls down to `depth` levels."""
        walker = _LineageWalker(self, depth)
        records = self.file_producers(target)
        if not records and not _is_hex(target):
            raise NoSuchRecord(
                f"no file {target!r} was written by a recorded call, and it is not a value "
                "or call hash. Give the path as the workflow saw it, or a hash from "
                "`lazyflow log --job JOB`."
            )
        if records:
            state_hash = _current_file_hash(records[0][0].path)
            chosen = next((fc for fc in records if fc[0].file_hash == state_hash), records[0])
            record, call = chosen
            if state_hash is None:
                state = "missing"
            elif state_hash == record.file_hash:
                state = "unchanged"
            else:
                state = "modified"
            others = len({fc[1].call_hash for fc in records}) - 1
            return Lineage(
                target=target,
                kind="file",
                file=record,
                file_state=state,
                producer=walker.step(call, 0),
                alternatives=others,
            )
        kind, full = self.resolve_hash(target)
        if kind == "call":
            call = self.calls([full])[full]
            return Lineage(
                target=target, kind="call", value=call.result, producer=walker.step(call, 0)
            )
        value = self.values([full]).get(full)
        producer, others = self.producer(full)
        lineage = Lineage(target=target, kind="value", value=value, alternatives=others)
        if producer is not None:
            lineage.producer = walker.step(producer, 0)
        return lineage

    def resolve_hash(self, ident: str) -> tuple[str, str]:
        """("value" | "call", full hash) for a hash prefix found in either table."""
        found: list[tuple[str, str]] = []
        errors: list[ProvenanceError] = []
        for kind, resolve in (("value", self.resolve_value), ("call", self.resolve_call)):
            try:
                found.append((kind, resolve(ident)))
            except AmbiguousPrefix as exc:
                raise exc
            except NoSuchRecord as exc:
                errors.append(exc)
        if not found:
            raise NoSuchRecord(
                f"no file, value or call matches {ident!r} in {redact(self.store.url)}. "
                "Pass a path written by a task, or a value/call hash (prefix)."
            )
        exact = [f for f in found if f[1] == ident.lower()]
        if len(found) > 1 and not exact:
            raise AmbiguousPrefix(
                f"{ident!r} matches both value {found[0][1][:12]} and call "
                f"{found[1][1][:12]}. Give more characters."
            )
        return (exact or found)[0]

    # -- consumers ---------------------------------------------------------------------
    def consumers(self, value_hash: str, limit: int = 500) -> list[tuple[Call, str]]:
        """Calls that took `value_hash` as an argument, or as an item of a container
        argument next to the value's producer: ``[(call, argument name)]``."""
        a = schema.call_args
        rows = self._rows(
            select(a.c.call_hash, a.c.name).where(a.c.value_hash == value_hash).limit(limit)
        )
        found: dict[str, str] = {ch: name for ch, name in rows}
        for ch, label in self._part_consumers(value_hash):
            found.setdefault(ch, label)
        calls = self.calls(found)
        out = [(calls[h], found[h]) for h in found if h in calls]
        out.sort(key=lambda cu: (cu[0].created_at or 0, cu[0].call_hash))
        return out

    def _part_consumers(self, value_hash: str) -> list[tuple[str, str]]:
        c, cc, a, v = schema.calls, schema.call_children, schema.call_args, schema.values
        producers = select(c.c.call_hash).where(c.c.result_hash == value_hash).limit(50)
        parents = select(cc.c.parent_hash).where(cc.c.child_hash.in_(producers))
        rows = self._rows(
            select(a.c.call_hash, a.c.name, a.c.value_hash)
            .join(cc, cc.c.child_hash == a.c.call_hash)
            .join(v, v.c.hash == a.c.value_hash)
            .where(cc.c.parent_hash.in_(parents), v.c.type_name.in_(sorted(_CONTAINERS)))
            .limit(200)
        )
        out: list[tuple[str, str]] = []
        for call_hash, name, container in rows:
            for label, item in self.parts(container) or []:
                if item == value_hash:
                    out.append((call_hash, name + label))
                    break
        return out

    def consumer_tree(self, value_hash: str, depth: int = 3) -> list[Use]:
        """`consumers` of a value, then recursively the calls its consumers' results
        reached (checked with `flows`, so equal values made elsewhere are left out)."""
        seen: set[str] = set()

        def uses(vh: str, producer: str | None, level: int) -> list[Use]:
            out = []
            for call, arg in self.consumers(vh):
                if producer is not None and not self.flows(producer, call.call_hash):
                    continue
                use = Use(call=call, arg=arg)
                if call.call_hash in seen:
                    use.repeated = True
                elif level + 1 >= depth:
                    use.truncated = True
                else:
                    seen.add(call.call_hash)
                    use.uses = uses(call.result_hash, call.call_hash, level + 1)
                out.append(use)
            return out

        return uses(value_hash, None, 0)

    def file_consumers(self, path: str) -> list[tuple[FileRecord, Call]]:
        """Calls that took `path` as an input file, newest first."""
        f = schema.files
        rows = self._rows(
            select(f)
            .where(f.c.role == "input", f.c.path.in_(_path_variants(path)))
            .order_by(f.c.created_at.desc())
        )
        calls = self.calls([r.call_hash for r in rows])
        return [(_file(r), calls[r.call_hash]) for r in rows if r.call_hash in calls]


# -- helpers -------------------------------------------------------------------------


class _LineageWalker:
    def __init__(self, prov: Provenance, depth: int) -> None:
        self.prov = prov
        self.depth = depth
        self.seen: set[str] = set()

    def step(self, call: Call, level: int) -> Step:
        step = Step(call=call)
        parents = self.prov.parents(call.call_hash)
        if parents:
            step.parent = self.prov.calls(parents[:1], details=False).get(parents[0])
        if call.call_hash in self.seen:
            step.repeated = True
            return step
        self.seen.add(call.call_hash)
        if level >= self.depth:
            step.truncated = True
            return step
        for arg in call.args:
            step.inputs.append(
                self.input(arg.name, arg.value_hash, arg.value, call, level, arg.producer)
            )
        # Calls already shown as producers of arguments, and the writers of the files
        # those passed on (``merge([f])`` returning its input: its file's writer).
        producers = [i.producer for i in step.inputs if i.producer]
        produced = {p.call.call_hash for p in producers}
        produced.update(
            i.producer.call.call_hash for p in producers for i in p.inputs if i.file and i.producer
        )
        for record in self.prov.files(call.call_hash):
            if record.role != "input":
                continue
            inp = Input(name=record.path, value_hash=None, file=record)
            writers = [
                fc
                for fc in self.prov.file_producers(record.path)
                if fc[0].file_hash == record.file_hash
            ]
            if writers and writers[0][1].call_hash in produced:
                continue  # already shown as the producer of an argument
            if writers:
                inp.producer = self.step(writers[0][1], level + 1)
            step.inputs.append(inp)
        return step

    def input(
        self,
        name: str,
        value_hash: str,
        value: Value | None,
        consumer: Call,
        level: int,
        recorded: str | None = None,
    ) -> Input:
        inp = Input(name=name, value_hash=value_hash, value=value)
        producer = self._recorded(inp, recorded, value_hash, consumer) or self._producer(
            inp, value_hash, consumer
        )
        if producer is not None:
            inp.producer = self.step(producer, level + 1)
            return inp
        parts = self.prov.parts(value_hash) if value is not None else None
        if parts:
            shown = parts[:10]
            inp.more_parts = len(parts) - len(shown)
            part_values = self.prov.values(h for _, h in shown)
            for label, item in shown:
                part = Input(name=name + label, value_hash=item, value=part_values.get(item))
                p = self._producer(part, item, consumer)
                if p is not None:
                    part.producer = self.step(p, level + 1)
                inp.parts.append(part)
        return inp

    def _recorded(
        self, inp: Input, producer: str | None, value_hash: str, consumer: Call
    ) -> Call | None:
        """The recorded producer of an argument (down to the innermost call below it
        that returned the same value: the call that made it), if it is stored; and the
        enclosing call that passed it on, when one did (`Input.passed_by`)."""
        if producer is None:
            return None
        for outer in self.prov.calls(self.prov.parents(consumer.call_hash)[:5]).values():
            arg = next(
                (a for a in outer.args if a.value_hash == value_hash and a.producer == producer),
                None,
            )
            if arg is not None:
                inp.passed_by = (outer, arg.name)
                break
        inner = self.prov._descend(producer, value_hash)
        return self.prov.calls([inner]).get(inner) or self.prov.calls([producer]).get(producer)

    def _producer(self, inp: Input, value_hash: str, consumer: Call) -> Call | None:
        """The producer of an argument; when the consumer got it from the call it ran in
        (``def outer(raw): return inner(raw)``), the producer of that call's argument."""
        call: Call | None = consumer
        for _ in range(8):
            assert call is not None
            producer, _ = self.prov.producer(value_hash, consumer=call.call_hash)
            if producer is not None and producer.call_hash != call.call_hash:
                return producer
            outer, arg = None, None
            for candidate in self.prov.calls(self.prov.parents(call.call_hash)[:5]).values():
                arg = next((a for a in candidate.args if a.value_hash == value_hash), None)
                if arg is not None:
                    outer = candidate
                    break
            if outer is None or arg is None:
                return None
            if inp.passed_by is None:
                inp.passed_by = (outer, arg.name)
            call = outer
        return None


def _flatten(obj: Any, label: str, out: list[tuple[str, str]], depth: int) -> None:
    from ..hashing import value_digest

    if isinstance(obj, dict):
        items: Iterable[tuple[str, Any]] = ((f"[{k!r}]", v) for k, v in obj.items())
    elif isinstance(obj, list | tuple | set | frozenset):
        items = ((f"[{i}]", v) for i, v in enumerate(obj))
    else:
        return
    for sub, item in items:
        if len(out) >= MAX_PARTS:
            return
        try:
            out.append((label + sub, value_digest(item).hex()))
        except Exception:
            continue
        if depth < 2 and isinstance(item, list | tuple | dict | set | frozenset):
            _flatten(item, label + sub, out, depth + 1)


def _path_variants(path: str) -> list[str]:
    variants = {path}
    if "://" not in path:
        absolute = os.path.abspath(path)
        variants.add(absolute)
        with contextlib.suppress(ValueError):
            variants.add(os.path.relpath(absolute))
    return sorted(variants)


def _is_hex(text: str) -> bool:
    return bool(text) and all(ch in "0123456789abcdefABCDEF" for ch in text)


def _current_file_hash(path: str) -> str | None:
    from ..files import hash_now

    try:
        return hash_now(path)
    except Exception:
        return None
