"""Load a task from a reference: ``package.module:task`` or ``path/to/file.py:task``.

A file is imported as a module named after the file (its directory goes on ``sys.path``
so worker processes can import it too), which is also how a script run as ``__main__``
names its tasks: ``python wf.py``, ``lazyflow run wf.py`` and an orchestrator share a cache.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types

from .errors import WorkflowImportError
from .task import Task


def load_module(workflow: str) -> types.ModuleType:
    """Import a workflow given as a ``.py`` path or a dotted module name."""
    if workflow.endswith(".py") or os.sep in workflow:
        path = os.path.abspath(workflow)
        if not os.path.exists(path):
            raise WorkflowImportError(
                f"workflow file {workflow!r} does not exist (looked at {path}). Check the path."
            )
        name = os.path.splitext(os.path.basename(path))[0]
        directory = os.path.dirname(path)
        if directory not in sys.path:
            sys.path.insert(0, directory)
        existing = sys.modules.get(name)
        if (
            existing is not None
            and os.path.abspath(getattr(existing, "__file__", "") or "") == path
        ):
            return existing
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise WorkflowImportError(f"cannot import workflow file {workflow!r}.")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[name]
            raise WorkflowImportError(
                f"importing workflow file {workflow!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
        return module
    try:
        return importlib.import_module(workflow)
    except ModuleNotFoundError as exc:
        raise WorkflowImportError(
            f"cannot import workflow module {workflow!r}: {exc}. Pass a module importable on "
            "sys.path (e.g. 'mypkg.flows') or a path to a .py file."
        ) from exc
    except Exception as exc:
        raise WorkflowImportError(
            f"importing workflow module {workflow!r} failed: {type(exc).__name__}: {exc}"
        ) from exc


def load_task(ref: str | Task, task_name: str | None = None) -> Task:
    """The `Task` named by ``"module:task"`` / ``"file.py:task"`` (or `task_name`)."""
    if isinstance(ref, Task):
        return ref
    if not isinstance(ref, str):
        raise WorkflowImportError(
            f"workflow {ref!r} is neither a lazyflow Task nor a 'module:task' string."
        )
    if task_name is None:
        if ":" not in ref:
            raise WorkflowImportError(
                f"workflow reference {ref!r} has no task name; write it as "
                "'package.module:task' or 'path/to/file.py:task'."
            )
        ref, task_name = ref.rsplit(":", 1)
    module = load_module(ref)
    obj = module
    try:
        for part in task_name.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        tasks = sorted(n for n, v in vars(module).items() if isinstance(v, Task))
        raise WorkflowImportError(
            f"workflow {ref!r} has no task {task_name!r}. Tasks defined there: "
            f"{', '.join(tasks) or '(none)'}."
        ) from None
    if not isinstance(obj, Task):
        raise WorkflowImportError(
            f"{ref}:{task_name} is a {type(obj).__name__}, not a lazyflow task; decorate it "
            "with @task."
        )
    return obj
