"""`script()` and file staging, translated from redun's tests/test_script.py.

Each test names the redun test it mirrors. Staging runs on local paths, on memory://,
and on s3:// through moto's server with the real s3fs (the `aws` fixture), and one script
runs on the AWS Batch executor (moto's Batch, containers as host processes), where the
staging copies happen inside the container.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import pytest

from lazyflow_core import Dir, File, LazyflowError, Scheduler, task
from lazyflow_core.expression import CallExpression
from lazyflow_core.scripting import (
    ScriptError,
    exec_script,
    prepare_command,
    script,
)


@pytest.fixture
def sched(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Scheduler:
    monkeypatch.chdir(tmp_path)  # relative paths of a test are its own
    return Scheduler(db=sqlite_url)


def test_commands_are_dedented_and_get_bash_unless_they_name_an_interpreter() -> None:
    """redun: test_prepare_command, test_prepare_command_default_interpreter."""
    assert prepare_command("\n    #!/bin/sh\n    echo hello\n    ") == "#!/bin/sh\necho hello"
    assert prepare_command("\n    echo hello\n") == (
        "#!/usr/bin/env bash\nset -exo pipefail\necho hello"
    )


def test_exec_script_runs_any_interpreter() -> None:
    """redun: test_exec_script."""
    assert exec_script("#!/usr/bin/env python3\nprint('hello')") == b"hello\n"


def test_script_returns_stdout_by_default_with_bash_as_the_shell(sched: Scheduler) -> None:
    """redun: test_python_script_task2, test_default_shell, test_script_list."""
    expr = script("\n        #!/usr/bin/env python3\n        print('Hello, World!')\n        ")
    assert isinstance(expr, CallExpression)
    assert sched.run(expr) == b"Hello, World!\n"
    assert sched.run(script("cat <(echo ok)  # process substitution: bash only")) == b"ok\n"
    assert sched.run(script(["echo", "hello  world"])) == b"hello  world\n"


def test_a_failing_command_raises_with_its_stderr_tail(sched: Scheduler) -> None:
    """redun: test_script_error, test_script_task_error (set -e stops at the first error)."""

    @task
    def step() -> Any:
        return script(
            """
            echo message > /dev/stderr
            bad_prog 1 2 3
            echo never printed
            """
        )

    with pytest.raises(ScriptError) as caught:
        sched.run(step())
    err = caught.value
    assert isinstance(err, LazyflowError) and err.returncode == 127
    assert "message" in err.message and "bad_prog: command not found" in str(err)
    assert b"never printed" not in err.stdout
    assert "lazyflow.script" in "".join(getattr(err, "__notes__", []))
    again = pickle.loads(pickle.dumps(err))  # errors travel back from workers
    assert (again.returncode, again.stderr) == (err.returncode, err.stderr)


def test_outputs_shape_the_result(sched: Scheduler) -> None:
    """redun: test_script_outputs, test_script_file."""
    result = sched.run(
        script(
            "#!/bin/sh\necho 'Hello, World!'\necho hello > hello.txt\necho 'good bye' > bye.txt",
            outputs={"n": 10, "stdout": File("-"), "hello": File("hello.txt"), "bye": "bye.txt"},
        )
    )
    assert result["n"] == 10 and result["stdout"] == b"Hello, World!\n"
    assert result["hello"] == File("hello.txt") and result["hello"].read() == "hello\n"
    assert result["bye"] == "bye.txt"  # a plain string is a value, not a declaration


def test_tempdir_runs_in_a_fresh_directory_that_is_removed(sched: Scheduler) -> None:
    """redun: test_script_tempdir. A relative output File is copied out of the temporary
    directory to the same relative path where the script runs (redun loses it)."""
    result = sched.run(
        script(
            "pwd > where.txt; echo hello > hello.txt",
            tempdir=True,
            outputs={"where": File("where.txt").stage("where.txt"), "hello": File("hello.txt")},
        )
    )
    workdir = result["where"].read().strip()
    assert workdir != os.getcwd() and not os.path.exists(workdir)
    assert result["hello"].read() == "hello\n"


def test_staged_outputs_are_returned_as_their_remote_files(
    sched: Scheduler, tmp_path: Path
) -> None:
    """redun: test_script_staging."""
    remote = tmp_path / "remote"
    result = sched.run(
        script(
            "echo hello > hello.txt; echo 'good bye' > bye.txt",
            tempdir=True,
            outputs={
                "hello": File(remote / "hello.txt").stage("hello.txt"),
                "bye": File(remote / "bye.txt").stage("bye.txt"),
            },
        )
    )
    assert result["hello"].path == str(remote / "hello.txt")
    assert result["hello"].read() == "hello\n" and result["bye"].read() == "good bye\n"


def test_staged_directories_in_and_out(sched: Scheduler, tmp_path: Path) -> None:
    """redun: test_script_staging_dir."""
    remote = tmp_path / "remote"
    File(remote / "in" / "a.txt").write("a")
    File(remote / "in" / "b.txt").write("b")
    File(remote / "in" / "c" / "d.txt").write("d")
    result = sched.run(
        script(
            "mkdir -p out; cat in/a.txt in/b.txt in/c/d.txt > out/z; echo hello > out/y",
            tempdir=True,
            inputs=[Dir(remote / "in").stage("in")],
            outputs={"out": Dir(remote / "out").stage("out")},
        )
    )
    assert result["out"] == Dir(remote / "out")
    assert result["out"].file("z").read() == "abd" and result["out"].file("y").read() == "hello\n"


def test_an_overwritten_or_deleted_output_makes_the_script_run_again(sched: Scheduler) -> None:
    """redun: test_script_invalid."""
    expr = script("echo hi > local", outputs=[File("remote").stage("local")])
    [out] = sched.run(expr)
    assert out.read() == "hi\n"
    sched.run(expr)
    assert sched.last_run is not None and sched.last_run.cached == 1
    File("remote").write("bye")
    [out] = sched.run(expr)
    assert out.read() == "hi\n" and sched.last_run.executed == 1
    File("remote").remove()
    sched.run(expr)
    assert File("remote").read() == "hi\n" and sched.last_run.executed == 1


def test_a_changed_input_makes_the_script_run_again(sched: Scheduler) -> None:
    """redun: test_script_staging_input_change. The command text is unchanged: the input's
    data is part of the call (and recorded as what the script read)."""

    def copy() -> Any:
        return script(
            "cat input_local > output_local",
            inputs=[File("input_remote").stage("input_local")],
            outputs=File("output_remote").stage("output_local"),
        )

    File("input_remote").write("hello")
    assert sched.run(copy()).read() == "hello"
    assert sched.run(copy()).read() == "hello"
    assert sched.last_run is not None and sched.last_run.cached == 1
    File("input_remote").write("hello2")
    assert sched.run(copy()).read() == "hello2"
    assert sched.last_run.executed == 1


def test_a_declared_output_the_command_did_not_write_is_an_error(sched: Scheduler) -> None:
    with pytest.raises(LazyflowError, match=r"did not write its declared output 'missing.txt'"):
        sched.run(script("true", outputs=File("missing.txt")))


def test_script_inside_a_task_with_lazy_inputs(sched: Scheduler) -> None:
    """A task returns a script built from its evaluated arguments; inputs may be lazy."""

    @task
    def make(text: str) -> File:
        return File("made.txt").write(text)

    @task
    def count_words(f: File) -> Any:
        return script(
            f"wc -w < {f.path} > count.txt", inputs=[f], outputs=File("count.txt").stage()
        )

    assert sched.run(count_words(make("one two three"))).read().strip() == "3"
    lazy = script("cat in.txt", inputs=[make("lazy input").stage("in.txt")], tempdir=True)
    assert sched.run(lazy) == b"lazy input"


def test_script_options_choose_the_executor(sched: Scheduler) -> None:
    """executor= and other task options apply to this one call (``Task.options``)."""
    expr = script("echo $$", executor="processes", retries=1)
    assert expr.task.options.executor == "processes" and expr.task.options.retries == 1
    assert int(sched.run(expr)) != os.getpid()
    with pytest.raises(LazyflowError, match="retries"):
        script("true", retries=-1)


def test_staging_through_memory_filesystem(sched: Scheduler) -> None:
    """The same script on fsspec's memory:// store: staged in, run locally, staged out."""
    base = f"memory://lf-staging-{os.getpid()}"
    File(f"{base}/in/reads.txt").write("ACGT\nTTGA\n")
    result = sched.run(
        script(
            "sort reads.txt > sorted.txt",
            tempdir=True,
            inputs=[File(f"{base}/in/reads.txt").stage("reads.txt")],
            outputs=File(f"{base}/out/sorted.txt").stage("sorted.txt"),
        )
    )
    assert result == File(f"{base}/out/sorted.txt")
    assert result.read() == "ACGT\nTTGA\n"


def test_staging_through_s3_and_on_aws_batch(aws: Any, sched: Scheduler, tmp_path: Path) -> None:
    """redun: _test_script_staging_s3 (skipped in redun), and the same script on Batch.

    S3 is moto's server reached by the real s3fs; on Batch the job's container (a host
    process of the real worker, see tests/batch/moto_batch.py) stages from and to S3.
    """
    from lazyflow_core.executors import AWSBatchExecutor

    prefix = f"s3://{aws.bucket}/staging-{os.urandom(4).hex()}"
    File(f"{prefix}/in.fastq").write("@r1\nACGT\n")

    def rev(executor: str = "default") -> Any:
        return script(
            "rev reads.fastq > reversed.fastq; hostname > where",
            tempdir=True,
            inputs=[File(f"{prefix}/in.fastq").stage("reads.fastq")],
            outputs=File(f"{prefix}/{executor}/reversed.fastq").stage("reversed.fastq"),
            executor=executor,
        )

    local = sched.run(rev())
    assert local.path == f"{prefix}/default/reversed.fastq"
    assert local.read() == "1r@\nTGCA\n"
    batch = AWSBatchExecutor(
        aws.queue, aws.job_definition, f"file://{tmp_path}/scratch", linger=0.05, poll_seconds=0.1
    )
    with batch, Scheduler(db=sched.store, executors={"batch": batch}) as on_batch:
        remote = on_batch.run(rev("batch"))
        assert remote.read() == "1r@\nTGCA\n" and len(batch.submitted) == 1
        on_batch.run(rev("batch"))
        assert on_batch.last_run is not None and on_batch.last_run.cached == 1
