"""SIGTERM during a run is handled like Ctrl+C: cancel, stop the workers, flush, record.

Orchestrators, container runtimes and ``timeout`` stop a process with SIGTERM (then
SIGKILL after a grace period). Python's default for SIGTERM is to die on the spot: the
run's workers, its unwritten records and its "running" execution row would be left
behind. While `Scheduler.run` evaluates in the main thread, `TermGuard` turns the
signal into what Ctrl+C does: the run is cancelled (so nothing new starts), the
exception `Terminated` unwinds it, the scheduler stops the workers, writes what it has
and records the execution as ``cancelled``, and `Terminated` (a `SystemExit` with status
143 = 128 + SIGTERM) then ends the program as the signal would have, unless the program
catches it.

A handler someone else installed (Airflow's, Prefect's, the program's own) is kept: the
run is cancelled, then that handler runs (and typically raises its own exception, which
unwinds the run the same way). A process that ignores SIGTERM keeps ignoring it. A
SIGTERM that arrives while the run is writing its last records waits until they are
written, then takes effect. Outside the main thread Python cannot handle signals, so a
run there is left to the program's own handling.

Threads cannot be stopped: with the threads executor, jobs already running go on in
their pool threads (their results are not recorded), and Python waits for them before
the process exits, unless the program exits with ``os._exit`` (``lazyflow run`` does,
once its records are written). Worker processes are stopped at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from .errors import Terminated

_ARMED, _DEFERRING, _OFF = "armed", "deferring", "off"


class TermGuard:
    """SIGTERM handling for one run: `arm` while it evaluates, `defer` while it records,
    `close` when done (which delivers a SIGTERM that came while deferring)."""

    def __init__(self, cancel: Callable[[], None]) -> None:
        self._cancel = cancel
        self._state = _OFF
        self._previous: Any = None
        self._pending: tuple[int, FrameType | None] | None = None
        self._handled = False

    @property
    def signalled(self) -> bool:
        """Whether SIGTERM came during the run (whatever exception then unwound it)."""
        return self._handled

    def arm(self) -> None:
        """Handle SIGTERM from now on (only in the main thread, and only if SIGTERM is
        not ignored)."""
        if threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGTERM)
        if previous is signal.SIG_IGN:
            return
        self._previous = previous
        signal.signal(signal.SIGTERM, self._handle)
        self._state = _ARMED

    def defer(self) -> None:
        """The run is recording its end: a SIGTERM now waits for `close`."""
        if self._state == _ARMED:
            self._state = _DEFERRING

    def close(self) -> None:
        """Restore the previous handler; deliver a SIGTERM that was deferred."""
        if self._state == _OFF:
            return
        state, self._state = self._state, _OFF
        if signal.getsignal(signal.SIGTERM) == self._handle:
            signal.signal(signal.SIGTERM, self._previous)
        pending, self._pending = self._pending, None
        if pending is not None and state == _DEFERRING:
            self._deliver(*pending)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._handled:
            return  # one SIGTERM is being handled already
        self._handled = True
        self._cancel()
        if self._state == _DEFERRING:
            self._pending = (signum, frame)
            return
        self._deliver(signum, frame)

    def _deliver(self, signum: int, frame: FrameType | None) -> None:
        previous = self._previous
        if callable(previous):
            previous(signum, frame)  # e.g. an orchestrator's: it raises its own exception
            return
        raise Terminated(signum)
