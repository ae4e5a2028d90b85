"""Cache lookups: which calls of a run are already in the store, and why the others are not.

Every call frame that reaches ``LOOKUP`` during one pass over the ready queue waits in
`CacheLookups`; `resolve` then looks them all up at once, with a handful of queries
whatever their number (one per 500 keys):

1. task versions never seen in the store are remembered as such, and their calls skip
   the lookup (a cold run of a new task costs one query, not one per call);
2. the call hashes are looked up (``lf_calls``: result and validation set hash);
3. the validation sets not loaded yet are loaded: a cached call is reused only if every
   task below it still has the hash it had and every File it touched is unchanged (then
   its subtree is not walked at all: a fully cached run costs O(distinct tasks + files),
   not O(calls));
4. the results of the valid hits are read and unpickled (a dry run's reader may
   withhold a value it will not unpickle: ``VALUE_NOT_LOADED``);
5. a stored call invalid only because a task below it changed (its own code and
   arguments are unchanged: its call hash matched, and no file it touched changed) has
   its returned expression loaded (``lf_reductions``, `reductions`): its body does not
   run again, the expression is evaluated and only the changed tasks run (redun's single
   reduction; reverting the edit is then fully cached).

Each call then gets one decision, through the caller's callbacks: reused (`on_hit`), its
expression reused (`on_reduce`), or run with a `Reason` and a detail (`on_miss`): the
same reasons in real runs and in dry runs, so listeners, tests and ``explain`` see the
same thing (``explain`` asks the store's history for more where the reason is
``NOT_CACHED``).

The store is read through `StoreReader`, a protocol: nothing here imports the store.
"""

from __future__ import annotations

import logging
import operator
import pickle
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .events import Reason
from .expression import format_args
from .files import hash_now
from .frames import UNCACHED, CallFrame
from .task import get_task

log = logging.getLogger("lazyflow.evaluator")

TaskSet = frozenset[tuple[str, str]]
"""A validation set's tasks: (name, hash) of every task a cached result depends on."""
FileSet = frozenset[tuple[str, bool, str | None]]
"""A validation set's files: (path, content hashing, hash) of every file it touched."""


class StoreReader(Protocol):
    """What cache lookups read from a store (`lazyflow_core.store.Store` implements it).

    Each method takes many keys at once and returns only what it found."""

    def tasks_with_calls(self, task_hashes: Sequence[str]) -> set[str]:
        """Which of these task versions have ever recorded a call."""
        ...

    def lookup_calls(self, call_hashes: Sequence[str]) -> dict[str, tuple[str, str]]:
        """``{call_hash: (result_hash, validation_hash)}`` of the stored calls."""
        ...

    def load_validation_sets(
        self, hashes: Sequence[str]
    ) -> dict[str, tuple[list[list[str]], list[list[Any]]]]:
        """``{hash: (tasks, files)}``: tasks as [name, hash], files as [path, content,
        hash]; a set the store cannot read is absent (its calls run again)."""
        ...

    def load_expressions(self, call_hashes: Sequence[str]) -> dict[str, Any]:
        """``{call_hash: expression}`` of the calls whose returned expression (their first
        reduction) is stored, checked and decodes, its tasks the live definitions (a dry
        run's reader decodes only calls and data)."""
        ...

    def load_value_data(self, value_hashes: Sequence[str]) -> dict[str, bytes | object]:
        """Pickled bytes of each stored value that passed the store's checks (signature,
        checksum, blob), or an object whose ``str()`` says why it may not be unpickled
        (with a true ``withheld`` attribute if the value is fine but not to be loaded)."""
        ...


Hit = Callable[[CallFrame, Any, str, str], None]
"""``on_hit(frame, value, result_hash, validation_hash)``: the call is reused."""
Miss = Callable[[CallFrame, Reason, str], None]
"""``on_miss(frame, reason, detail)``: the call must run."""
Reduce = Callable[[CallFrame, Any, str], None]
"""``on_reduce(frame, expression, detail)``: the call's body need not run; the expression
it returned last time is evaluated instead (a task below it changed, see `resolve`)."""


class CacheLookups:
    """Batched cache lookups of one run (see the module docstring)."""

    def __init__(self, store: StoreReader) -> None:
        self.store = store
        self.waiting: list[CallFrame] = []
        # task hash -> whether the store had any call of it when this run first asked
        self.task_has_calls: dict[str, bool] = {}
        # validation set hash -> (tasks, files), loaded once per run
        self.vsets: dict[str, tuple[TaskSet, FileSet]] = {}
        self.valid_task_sets: dict[str, bool] = {}  # tasks don't change during a run
        # result hashes found unreadable: the call runs and its value is written again
        self.unreadable: set[str] = set()

    def worth_asking(self, task_hash: str) -> bool:
        """False for a task version (`Task.hash`) known to have no call in the store."""
        return self.task_has_calls.get(task_hash, True)

    def resolve(self, on_hit: Hit, on_miss: Miss, on_reduce: Reduce) -> None:
        """Decide every waiting call: reused, its returned expression reused, or run
        (with why)."""
        frames, self.waiting = self.waiting, []
        frames = self._skip_new_versions(frames, on_miss)
        if not frames:
            return
        hits = self.store.lookup_calls([f.call_hash for f in frames])  # type: ignore[misc]
        if not hits:
            for f in frames:
                on_miss(f, Reason.NOT_CACHED, "no stored call of it has these arguments")
            return
        valid = self._validate(frames, hits, on_miss, on_reduce)
        if valid:
            self._load_values(valid, on_hit, on_miss)

    def _validate(
        self,
        frames: list[CallFrame],
        hits: dict[str, tuple[str, str]],
        on_miss: Miss,
        on_reduce: Reduce,
    ) -> list[tuple[CallFrame, tuple[str, str]]]:
        """The stored calls whose validation set still holds; the others are misses or,
        when only a task below them changed, reductions."""
        self._load_validation_sets({v for _, v in hits.values()})
        # Each validation set is checked once per resolve, not once per call: a fan-out's
        # hundred thousand hits share one (its files are hashed once per resolve, too).
        checked: dict[str, bool] = {}
        # why an invalid set is invalid, and whether its calls can be reduced: also once
        invalid: dict[str, tuple[Reason, str, bool]] = {}
        valid: list[tuple[CallFrame, tuple[str, str]]] = []
        reducible: list[tuple[CallFrame, str]] = []
        for f in frames:
            hit = hits.get(f.call_hash)  # type: ignore[arg-type]
            if hit is None:
                on_miss(f, Reason.NOT_CACHED, "no stored call of it has these arguments")
                continue
            ok = checked.get(hit[1])
            if ok is None:
                ok = checked[hit[1]] = self._valid(hit[1])
            if ok:
                valid.append((f, hit))
                continue
            verdict = invalid.get(hit[1])
            if verdict is None:
                verdict = invalid[hit[1]] = self._invalid(hit[1])
            reason, detail, reduce = verdict
            if reduce:
                reducible.append((f, detail))
            else:
                on_miss(f, reason, detail)
        if reducible:
            self._reduce(reducible, on_miss, on_reduce)
        return valid

    def _invalid(self, vset_hash: str) -> tuple[Reason, str, bool]:
        """Why the stored calls of an invalid validation set cannot be reused, and whether
        they can be reduced (only a task below them changed, no file)."""
        vset = self.vsets.get(vset_hash)
        reason, detail = invalid_reason(vset)
        reduce = reason in _REDUCIBLE and vset is not None and not any_changed(vset)
        return reason, detail, reduce

    def _load_values(
        self, valid: list[tuple[CallFrame, tuple[str, str]]], on_hit: Hit, on_miss: Miss
    ) -> None:
        """Read and unpickle the values of valid stored calls: a hit each, or a miss
        saying why the value could not be used."""
        datas = self.store.load_value_data(sorted({hit[0] for _, hit in valid}))
        loads = pickle.loads
        for f, (result_hash, vset_hash) in valid:
            data = datas.get(result_hash)
            if type(data) is bytes:  # checked (signature or checksum) by the store
                try:
                    value = loads(data)
                except Exception as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                else:
                    on_hit(f, value, result_hash, vset_hash)
                    continue
            elif data is None:
                problem = "its value row is missing"
            elif getattr(data, "withheld", False):  # a dry run's choice, not damage
                on_miss(f, Reason.VALUE_NOT_LOADED, str(data))
                continue
            else:  # why the store's check refused it: signature, checksum, blob
                problem = str(data)
            on_miss(f, Reason.VALUE_UNREADABLE, self._unreadable(f, result_hash, problem))

    def _reduce(
        self, frames: list[tuple[CallFrame, str]], on_miss: Miss, on_reduce: Reduce
    ) -> None:
        """Calls whose own code and arguments are unchanged (their call hash is) but a
        task below them changed: the expression the body returned is a function of code
        and arguments only, so it is evaluated again instead of running the body (redun's
        single reduction). Only the changed tasks, and what needs their results, run.

        A call with no stored expression, or one that cannot be read, runs as before."""
        found = self.store.load_expressions([f.call_hash for f, _ in frames])  # type: ignore[misc]
        for f, detail in frames:
            expr = found.get(f.call_hash)  # type: ignore[arg-type]
            if expr is None:
                on_miss(f, Reason.CHILD_CHANGED, detail)
            else:
                on_reduce(f, expr, detail)

    def _skip_new_versions(self, frames: list[CallFrame], on_miss: Miss) -> list[CallFrame]:
        """Ask once about task versions not seen yet; their calls cannot be stored."""
        known = self.task_has_calls
        # Per distinct task, not per frame: a fan-out's hundred thousand calls have one
        # task, whose hash (a property) is then read once, not twice per call.
        hashes = {t: t.hash for t in set(map(_task_of, frames))}
        unknown = set(hashes.values()) - known.keys()
        if unknown:
            found = self.store.tasks_with_calls(sorted(unknown))
            for h in unknown:
                known[h] = h in found
        new = {t for t, h in hashes.items() if not known[h]}
        if not new:
            return frames
        for f in frames:
            if f.task in new:
                on_miss(f, Reason.NOT_CACHED, "no call of this task version is stored")
        return [f for f in frames if f.task not in new]

    def _load_validation_sets(self, hashes: set[str]) -> None:
        missing = sorted(h for h in hashes if h not in self.vsets)
        if not missing:
            return
        for h, (tasks, files) in self.store.load_validation_sets(missing).items():
            self.vsets[h] = (
                frozenset((n, th) for n, th in tasks),
                frozenset((p, bool(c), fh) for p, c, fh in files),
            )

    def _valid(self, vset_hash: str) -> bool:
        """A cached call is reusable: no task below it changed and no file it touched."""
        vset = self.vsets.get(vset_hash)
        if vset is None:
            return False
        tasks, files = vset
        ok = self.valid_task_sets.get(vset_hash)
        if ok is None:
            ok = self.valid_task_sets[vset_hash] = stale_task(tasks) is None
        return ok and (not files or changed_file(files) is None)

    def _unreadable(self, f: CallFrame, result_hash: str, problem: str) -> str:
        """A cached result that does not load (`problem`): one warning naming the call,
        which then runs, and its value is stored again."""
        log.warning(
            "lazyflow: cached result of %s (%s(%s), value %s) cannot be loaded: %s; "
            "re-running the call",
            f.task.name,
            f.task.short_name,
            format_args(f.args, f.kwargs),
            result_hash[:12],
            problem,
        )
        self.unreadable.add(result_hash)
        return problem


_task_of = operator.attrgetter("task")

_REDUCIBLE = (Reason.CHILD_CHANGED, Reason.CACHE_DISABLED)
"""Why a stored call may be invalid with its returned expression still good: a task below
it changed, or is ``cache=False`` (it runs every time; the parent's body need not)."""


def stale_task(tasks: TaskSet) -> str | None:
    """The first task of a validation set that changed, is no longer loaded or was
    called with ``cache=False`` (it runs every time), if any."""
    for name, task_hash in sorted(tasks):
        if task_hash.startswith(UNCACHED):
            return name
        current = get_task(name)
        if current is None or current.hash != task_hash:
            return name
    return None


def changed_file(files: FileSet) -> tuple[str, str | None] | None:
    """The first file of a validation set whose hash is not the recorded one: (path, now)."""
    for path, content, file_hash in sorted(files, key=lambda f: f[0]):
        now = hash_now(path, content)
        if now != file_hash:
            return path, now
    return None


def any_changed(vset: tuple[TaskSet, FileSet]) -> bool:
    """Whether a file of the validation set changed: then the body runs again (it may
    have written that file itself, which evaluating its returned expression would not)."""
    return bool(vset[1]) and changed_file(vset[1]) is not None


def invalid_reason(vset: tuple[TaskSet, FileSet] | None) -> tuple[Reason, str]:
    """Why a stored call failed validation: which task below it changed, or which file."""
    if vset is None:
        return (Reason.CHILD_CHANGED, "its record of the tasks below it is missing")
    tasks, files = vset
    name = stale_task(tasks)
    if name is not None:
        if any(n == name and h.startswith(UNCACHED) for n, h in tasks):
            return (
                Reason.CACHE_DISABLED,
                f"task {name} it called is cache=False, so it runs every time",
            )
        state = "is not loaded any more" if get_task(name) is None else "has changed"
        return (Reason.CHILD_CHANGED, f"task {name} it called {state}")
    changed = changed_file(files)
    if changed is not None:
        path, now = changed
        return (
            Reason.FILE_CHANGED,
            f"file {path} {'was deleted' if now is None else 'was modified'}",
        )
    return (Reason.CHILD_CHANGED, "cached result is not valid any more")
