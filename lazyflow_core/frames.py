"""Frames: the evaluation state of one expression each, as plain slotted records.

A frame holds state only: which phase it is in, how many dependencies it still waits
for (``pending``; each dependency lists its ``waiters``), its value or error, and for a
call what running and recording it needs. Every transition between phases is made by
the state machine in `evaluator` (its `Evaluator.on_ready` table and the handlers it
names); nothing here decides what happens next.

States: ``PENDING`` until the frame has its value (``DONE``) or its error (``FAILED``).
Phases (what a pending frame waits for; see docs/architecture.md for the diagram)::

    NEW     created and queued, not begun: its dependencies are not counted yet
    ARGS    waiting for the expressions inside it (a call's arguments, a value's items,
            an operation's operands, a catch's expression)
    LOOKUP  a call whose hash is known, waiting for a batched cache lookup
    RUN     a call handed to an executor (or running on the scheduler thread)
    RESULT  waiting for the frame of what it returned (a call's or operation's returned
            expressions, a catch handler's result)
    ALIAS   a call identical to one in flight, waiting for that one's result

(Finding the expressions inside a value, and substituting their values, is the
container walker's: `expression.collect` and `expression.substitute`.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .expression import ApplyExpression, CallExpression, CatchExpression
from .task import Task

if TYPE_CHECKING:
    from .awaiting import Awaiting

PENDING, DONE, FAILED = 0, 1, 2
NEW, ARGS, LOOKUP, RUN, RESULT, ALIAS = 0, 1, 2, 3, 4, 5
PHASES = ("NEW", "ARGS", "LOOKUP", "RUN", "RESULT", "ALIAS")
"""Phase names, by phase number (messages, docs)."""

EMPTY: frozenset[Any] = frozenset()
UNCACHED = "uncached:"
"""Prefix of the task hash a ``cache=False`` call puts in its validation set: a cached
result whose subtree made such a call is never reused whole (the call runs every time,
also under a cached parent)."""
# Shared placeholders for "none yet" / "released": never appended to (the evaluator
# replaces them with a fresh list on the first append). A million-call run would
# otherwise hold four empty containers per frame until its call is recorded.
NO_CHILDREN: list[Any] = []
NO_WAITERS: list[Any] = []
NO_ITEMS: list[Any] = []
NO_DIGESTS: tuple[tuple[str, bytes], ...] = ()
NO_KWARGS: dict[str, Any] = {}


class Frame:
    """Evaluation state of one expression.

    Slots are few on purpose: a run keeps every frame until it ends (deduplication and
    substitution look them up), so each slot is a million words in a million-call run.
    A failed frame keeps its exception in ``value`` (``error`` reads it back).
    """

    __slots__ = ("context", "pending", "phase", "state", "value", "waiters")

    def __init__(self, context: CallFrame | None) -> None:
        self.context = context
        self.waiters: list[Frame] = NO_WAITERS
        self.pending = 0
        self.phase = NEW
        self.state = PENDING
        self.value: Any = None

    @property
    def error(self) -> BaseException | None:
        """The exception a failed frame failed with (None unless ``state == FAILED``)."""
        return self.value if self.state == FAILED else None


class ValueFrame(Frame):
    """A plain value (list, dict, dataclass...) holding expressions."""

    __slots__ = ("template",)

    def __init__(self, template: Any, context: CallFrame | None) -> None:
        super().__init__(context)
        self.template = template


class AwaitFrame(ValueFrame):
    """What a coroutine of an async task awaits (`awaiting`): evaluated like a value, and
    on its end its ``awaiting`` future is resolved (or rejected) on the event loop."""

    __slots__ = ("awaiting",)

    def __init__(self, template: Any, context: CallFrame | None, awaiting: Awaiting) -> None:
        super().__init__(template, context)
        self.awaiting = awaiting


class ApplyFrame(Frame):
    """An operator or control form applied on the scheduler thread; ``result`` is the
    frame of the expressions it returned (phase ``RESULT``)."""

    __slots__ = ("expr", "result")

    def __init__(self, expr: ApplyExpression, context: CallFrame | None) -> None:
        super().__init__(context)
        self.expr = expr
        self.result: Frame | None = None


class CatchFrame(Frame):
    """Evaluates ``inner``; on a matching failure, the handler's result (``result``).

    ``handled`` is set once a handler took a failure: a second failure reaching the
    frame (its handler's result failed) propagates."""

    __slots__ = ("expr", "handled", "inner", "result")

    def __init__(self, expr: CatchExpression, context: CallFrame | None) -> None:
        super().__init__(context)
        self.expr = expr
        self.inner: Frame | None = None
        self.handled = False
        self.result: Frame | None = None


class CallFrame(Frame):
    """A task call: arguments, then cache lookup or execution, then its result.

    A run holds every call frame until it ends (identical later calls reuse it), so a
    frame has no slot it can do without (an alias keeps the call it waits for in
    ``result``, phase ``ALIAS``), containers start as shared empty placeholders, and
    what only running or recording needs (arguments, digests, children, start time) is
    released once the call is recorded (`release_call_state`). 22 slots: 208 bytes.
    """

    __slots__ = (
        "arg_digests",
        "arg_files",
        "args",
        "attempts",
        "call_hash",
        "children",
        "digest",
        "expr",
        "files",
        "job_no",
        "kwargs",
        "result",
        "started",
        "task",
        "tasks",
        "vset_hash",
    )

    def __init__(self, expr: CallExpression, context: CallFrame | None, job_no: int) -> None:
        super().__init__(context)
        self.expr = expr
        self.task: Task = expr.task
        self.children: list[CallFrame] = NO_CHILDREN
        self.call_hash: str | None = None
        self.arg_digests: Sequence[tuple[str, bytes]] = NO_DIGESTS
        self.arg_files: list[tuple[str, bool, str | None]] = NO_ITEMS
        self.args: tuple[Any, ...] = ()
        self.kwargs: dict[str, Any] = NO_KWARGS
        self.job_no = job_no
        self.attempts = 0
        # RESULT: the frame of the expressions the task returned; ALIAS: the identical
        # call this one takes its result from.
        self.result: Frame | None = None
        self.digest: bytes | None = None
        self.started = 0.0
        self.tasks: frozenset[tuple[str, str]] = EMPTY
        self.files: frozenset[tuple[str, bool, str | None]] = EMPTY
        self.vset_hash: str | None = None


def release_call_state(frame: CallFrame) -> None:
    """Drop what only running and recording a call needed, once it is recorded.

    A run keeps every call frame until it ends (a later identical call reuses it), so
    what stays must be what reuse needs: value, digest, call hash and validation set.
    The job record already queued keeps the arguments it shows until it is written.
    """
    frame.children = NO_CHILDREN
    frame.arg_digests = NO_DIGESTS
    frame.arg_files = NO_ITEMS
    frame.args = ()
    frame.kwargs = NO_KWARGS
    frame.result = None
    frame.started = 0.0
