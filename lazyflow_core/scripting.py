"""`script`: run a shell command as a cached, recorded task, with file staging.

``script(command, inputs=[...], outputs=..., tempdir=False, executor=..., **options)``
returns the lazy call of one built-in task, ``lazyflow.script``, whose arguments are

- the command text (after the caller formatted it): changing it re-runs the call;
- the input declarations (`StagingFile` / `StagingDir` pairs, Files, Dirs), and the
  *data* they name (each staged input's remote side, each File/Dir input) hashed by
  content or stat like any File argument: an input whose data changed re-runs the call,
  and ``lazyflow lineage`` shows the files the command read;
- the output declarations, hashed by path: they are what the command will write, so
  their current state (often: not there yet) is not part of the call.

Where the call runs (this process, a pool, a Batch container), it makes the working
directory (a fresh temporary one with `tempdir`), copies staged inputs in, runs the
command (``#!/usr/bin/env bash`` with ``set -exo pipefail`` unless the text starts with
its own ``#!``), copies staged outputs out and returns `outputs` with every declaration
replaced by what it names: a staged output by its remote `File`/`Dir`, a File/Dir by
itself, ``File("-")`` (the default) by the command's stdout as bytes. A non-zero exit
raises `ScriptError` with the tail of the command's stderr. A cached result is reused
only while the files it returned are unchanged (see `evaluator`): delete or overwrite an
output and the script runs again.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import textwrap
from collections.abc import Sequence
from typing import Any

from .errors import LazyflowError, TaskResultError
from .expression import ApplyExpression, CallExpression, contains_expression
from .files import Dir, File
from .hashing import register_hasher
from .staging import StagingDir, StagingFile
from .task import task
from .values import Walk, is_instance_of

DEFAULT_SHELL = "#!/usr/bin/env bash\nset -exo pipefail"
"""The interpreter line of a command that names none: bash, stop at the first error."""
STDERR_TAIL_LINES = 20
"""How many of the last lines of a failed command's stderr its `ScriptError` shows."""


class _Stdout:
    """The output declaration ``File("-")``: the command's standard output."""

    def __repr__(self) -> str:
        return "File('-')"

    def __reduce__(self) -> str:
        return "STDOUT"


STDOUT = _Stdout()
register_hasher(_Stdout, lambda _: b"stdout")


class ScriptError(LazyflowError):
    """A `script` command exited with a non-zero status.

    `returncode`, `stdout` and `stderr` (bytes) are the command's; the message shows the
    last `STDERR_TAIL_LINES` lines of stderr, where the cause usually is.
    """

    def __init__(self, command: str, returncode: int, stdout: bytes, stderr: bytes) -> None:
        self.command = command
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(self._message())

    def _message(self) -> str:
        text = self.stderr.decode("utf-8", "replace").rstrip("\n")
        lines = text.split("\n") if text else []
        tail = "\n".join(lines[-STDERR_TAIL_LINES:]) or "(stderr is empty)"
        body = self.command.removeprefix(DEFAULT_SHELL).splitlines()
        first = next((ln for ln in body if ln.strip() and not ln.startswith("#!")), "")
        return (
            f"script exited with status {self.returncode} (command: {first[:120]!r}...). "
            f"The last lines of its stderr:\n{tail}\n"
            "Fix the command, or the inputs it was given; ScriptError.stderr has all of it."
        )

    def __reduce__(self) -> Any:  # travels back from worker processes and containers
        return (ScriptError, (self.command, self.returncode, self.stdout, self.stderr))

    @property
    def message(self) -> str:
        """The whole stderr as text (redun's ``ScriptError.message``)."""
        return self.stderr.decode("utf-8", "replace")


def prepare_command(command: str, default_shell: str = DEFAULT_SHELL) -> str:
    """Dedent the command, strip blank lines around it, add `default_shell` if no ``#!``."""
    text = textwrap.dedent(command).strip()
    if not text.startswith("#!"):
        text = default_shell.rstrip("\n") + "\n" + text
    return text


def exec_script(command: str, cwd: str | None = None) -> bytes:
    """Run a prepared command (any interpreter) in `cwd`; its stdout, or `ScriptError`."""
    fd, path = tempfile.mkstemp(prefix="lazyflow-script-", suffix=".sh")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(command + "\n")
        os.chmod(path, 0o700)
        proc = subprocess.run([path], cwd=cwd, capture_output=True, check=False)
    finally:
        os.remove(path)
    if proc.returncode != 0:
        raise ScriptError(command, proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout


_STAGED = Walk(is_instance_of(StagingFile, StagingDir))
_INPUT_DATA = Walk(is_instance_of(StagingFile, StagingDir, File, Dir))
_OUTPUTS = Walk(is_instance_of(StagingFile, StagingDir, File, Dir, _Stdout))


def _is_stdout(value: Any) -> bool:
    return (
        value is STDOUT
        or isinstance(value, _Stdout)
        or (isinstance(value, File) and value.path == "-")
    )


def _declare_output(value: Any) -> Any:
    """An output as a declaration: hashed by its path, not by what is there now."""
    if _is_stdout(value):
        return STDOUT
    if isinstance(value, File):
        return StagingFile(value, value)
    if isinstance(value, Dir):
        return StagingDir(value, value)
    return value


def input_data(inputs: Any) -> list[File | Dir]:
    """The files and directories a script reads: staged inputs' remote sides, and Files."""
    return [
        item.remote if isinstance(item, StagingFile | StagingDir) else item
        for item in _INPUT_DATA.found(inputs)
    ]


@task(namespace="lazyflow", name="script", version="1")
def run_script(
    command: str, inputs: Any, data: list[File | Dir], outputs: Any, tempdir: bool
) -> Any:
    """The task behind `script` (`data` is there for the call hash and the record)."""
    root = tempfile.mkdtemp(prefix="lazyflow-script-") if tempdir else None
    try:
        for item in _STAGED.found(inputs):
            item.stage(root)
        stdout = exec_script(command, cwd=root)

        def produce(value: Any) -> Any:
            pair = _declare_output(value)
            if pair is STDOUT:
                return stdout
            if not pair.local_at(root).exists():
                raise TaskResultError(
                    f"script: the command did not write its declared output "
                    f"{pair.local.path!r}"
                    + (f" (in its temporary directory {root})" if root else "")
                    + ". Make the command write it, or remove it from outputs=."
                )
            return pair.unstage(root)

        return _OUTPUTS.replace(outputs, produce)
    finally:
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)


def script(
    command: str | Sequence[str],
    inputs: Any = (),
    outputs: Any = STDOUT,
    *,
    tempdir: bool = False,
    executor: str | None = None,
    **options: Any,
) -> CallExpression:
    """A shell command as a lazy, cached task call (see the module docstring).

    `command` is the script text (or an argv list, quoted for the shell); `inputs` and
    `outputs` are values holding `File`, `Dir` and staging pairs (``File(url).stage(local)``)
    in any containers; the result has the shape of `outputs`. `tempdir` runs the command
    in a fresh temporary directory (relative staged paths are below it). `executor` and
    the other `options` (``resources=``, ``retries=``, ``limits=``...) are task options
    of this one call, as ``task.options(...)``.
    """
    if not isinstance(command, str):
        command = shlex.join(command)
    if executor is not None:
        options["executor"] = executor
    runner = run_script.with_options(**options) if options else run_script
    outputs = _OUTPUTS.replace(outputs, _declare_output)
    data: Any = (
        ApplyExpression(input_data, (inputs,), label="script inputs")
        if contains_expression(inputs)
        else input_data(inputs)
    )
    return runner(prepare_command(command), inputs, data, outputs, tempdir)
