"""Workers never run stale code under a new hash.

A worker that lives longer than one run (a process pool's worker, a Dask worker) keeps
the modules it imported. When the scheduler's process has since edited and reloaded one
(a notebook's ``importlib.reload``) or changed state its tasks read, a task sent by
reference would unpickle as the worker's old import and run the old code, and its result
would be stored under the new code's hash: a wrong cached answer, forever. So each job
travels with the task's code hash as the scheduler computed it, and the worker checks
its own task against it before running (`current_task`). A Batch worker starts fresh,
but its code package may still disagree with the scheduler's memory (state changed
there only): the same check fails those jobs instead of recording a lie.
"""

from __future__ import annotations

import importlib
import sys
import threading

from ..errors import ExecutorError
from ..task import Task

_checked: dict[tuple[int, str], Task] = {}  # (id of the task sent, its hash) -> task to run
_reloading = threading.Lock()  # a Dask worker runs bundles on several threads


def current_task(task: Task, digest: str, fix: str) -> Task:
    """The task to run for `task` sent with the code hash `digest` the scheduler computed.

    A task sent by reference is this worker's import of its module, which may predate
    an edit the scheduler has since reloaded: its code hash then differs. The module is
    reloaded once; if the hashes still differ (module state changed in the scheduler
    only, or a library it uses has another version here), running it would store another
    code's result under `digest`, so the job fails with an `ExecutorError` ending with
    `fix` instead. Tasks sent by value carry their own code and are run as sent.
    Checked once per task and hash.
    """
    key = (id(task), digest)
    known = _checked.get(key)
    if known is not None:
        return known
    module = sys.modules.get(task.func.__module__)
    imported = None if module is None else getattr(module, task.func.__qualname__, None)
    if module is None or task.func.__module__ == "__main__" or imported is not task:
        return task  # sent by value: its own code
    if task.hash == digest:
        _checked[key] = task
        return task
    with _reloading:
        checked = _checked.get(key)
        if checked is None:
            checked = getattr(importlib.reload(module), task.func.__qualname__, None)
            if not isinstance(checked, Task) or checked.hash != digest:
                raise ExecutorError(
                    f"task {task.name}: its code on the worker differs from the "
                    f"scheduler's (module {task.func.__module__}, state it reads, or the "
                    "version of a library it uses changed in the scheduler's process "
                    f"only); {fix}"
                )
            _checked[key] = checked
    return checked
