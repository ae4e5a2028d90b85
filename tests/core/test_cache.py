"""Incremental re-execution: what re-runs after code, data and store changes.

Each test drives a real workflow file through fresh interpreters, editing it between runs
as a user would, against SQLite and PostgreSQL; the tests marked `EVERY_EXECUTOR` also run
on the inline and process executors (each run is a fresh interpreter, so each costs a
process pool of its own: the others run on threads only).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .workflows import Workflow

ALL = ["combine", "main", "step 0", "step 1", "step 2"]
BELOW_MAIN = ["combine", "step 0", "step 1", "step 2"]


CASES = [("sqlite", "threads"), ("postgres", "threads")]
ALL_EXECUTORS = [*CASES, ("sqlite", "inline"), ("sqlite", "processes")]
EVERY_EXECUTOR = pytest.mark.parametrize(
    "case", ALL_EXECUTORS, indirect=True, ids=[f"{d}-{e}" for d, e in ALL_EXECUTORS]
)


@pytest.fixture(params=CASES, ids=[f"{d}-{e}" for d, e in CASES])
def case(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(store URL, executor name) for the workflow's runs."""
    db, executor = request.param
    url = request.getfixturevalue("sqlite_url" if db == "sqlite" else "pg_url")
    return url, executor


@pytest.fixture
def wf(tmp_path: Path, case: tuple[str, str]) -> Workflow:
    url, executor = case
    return Workflow(tmp_path, url, executor=executor)


@EVERY_EXECUTOR
def test_second_run_executes_nothing(wf: Workflow) -> None:
    first = wf.run()
    assert first["result"] == 30 and first["ran"] == ALL
    second = wf.run()
    assert second["result"] == 30 and second["ran"] == [] and second["executed"] == 0


def test_editing_a_constant_reruns_its_users(wf: Workflow) -> None:
    wf.run()
    wf.edit("SCALE = 10", "SCALE = 100")
    out = wf.run()
    # main does not use SCALE: its returned expression is evaluated again, its body not
    assert out["result"] == 300 and out["ran"] == BELOW_MAIN


def test_editing_a_helper_reruns_the_tasks_that_call_it(wf: Workflow) -> None:
    wf.run()
    wf.edit("return x * SCALE", "return x * SCALE + 1")
    out = wf.run()
    assert out["result"] == 33 and out["ran"] == BELOW_MAIN


def test_editing_comments_docstrings_and_formatting_reruns_nothing(wf: Workflow) -> None:
    wf.run()
    wf.edit('"""Scale one item."""', '"""Scale one item (documented better)."""  # why')
    wf.edit("return helper(x)", "return helper(  x  )   # formatting")
    assert wf.run()["ran"] == []


@EVERY_EXECUTOR
def test_editing_one_task_reruns_it_and_its_consumers_only(wf: Workflow) -> None:
    wf.run()
    wf.edit("return sum(xs)", "return sum(xs) * 2")
    out = wf.run()
    # main's body does not run again (its code and arguments are unchanged): the
    # expression it returned is evaluated again, and only the edited combine runs.
    assert out["result"] == 60 and out["ran"] == ["combine"]


@EVERY_EXECUTOR
def test_reverting_an_edit_below_a_cached_parent_is_fully_cached(wf: Workflow) -> None:
    wf.run()
    wf.edit("return sum(xs)", "return sum(xs) * 2")
    assert wf.run()["ran"] == ["combine"]
    wf.edit("return sum(xs) * 2", "return sum(xs)")
    out = wf.run()
    assert out["result"] == 30 and out["ran"] == [] and out["executed"] == 0


NESTED = """
import json, os, sys
from lazyflow_core import task, Scheduler

HERE = os.path.dirname(os.path.abspath(__file__))

def note(s):
    with open(os.path.join(HERE, "ran.log"), "a") as fh:
        fh.write(s + "\\n")

@task
def align(sample):
    note("align")
    return sample + ".bam"

@task
def run_gatk(bam):
    note("run_gatk")
    return bam + ".vcf"

@task
def workflow(samples):
    note("workflow")
    return [run_gatk(align(s)) for s in samples]

@task
def main():
    note("main")
    return {"calls": workflow(["a", "b"])}

if __name__ == "__main__":
    sched = Scheduler(db=sys.argv[1], executor=os.environ.get("LAZYFLOW_TEST_EXECUTOR", "threads"))
    result = sched.run(main())
    s = sched.last_run
    print(json.dumps({"result": result, "executed": s.executed, "cached": s.cached}))
"""


def test_only_the_edited_task_runs_below_nested_cached_parents(wf: Workflow) -> None:
    """redun's example: editing run_gatk re-runs run_gatk, not workflow or main."""
    wf.write(NESTED)
    assert wf.run()["ran"] == ["align", "align", "main", "run_gatk", "run_gatk", "workflow"]
    wf.edit('return bam + ".vcf"', 'return bam + ".g.vcf"')
    out = wf.run()
    assert out["ran"] == ["run_gatk", "run_gatk"]
    assert out["result"] == {"calls": ["a.bam.g.vcf", "b.bam.g.vcf"]}
    assert out["cached"] == 4  # main, workflow (their expressions), align x2
    wf.edit('return bam + ".g.vcf"', 'return bam + ".vcf"')
    assert wf.run()["ran"] == []


def test_early_cutoff_when_a_rerun_produces_the_same_value(wf: Workflow) -> None:
    wf.run()
    wf.edit("return helper(x)", "return helper(x) + 0")
    out = wf.run()
    assert out["result"] == 30
    assert out["ran"] == ["step 0", "step 1", "step 2"]  # combine: same inputs


def test_new_arguments_run_only_new_calls(wf: Workflow) -> None:
    wf.run("3")
    out = wf.run("5")
    assert out["result"] == 100
    assert out["ran"] == ["combine", "main", "step 3", "step 4"]


def test_script_and_imported_module_share_the_cache(wf: Workflow, tmp_path: Path) -> None:
    """A module run as __main__ is named after its file, like when it is imported."""
    wf.run()
    runner = tmp_path / "other.py"
    runner.write_text(
        "import json, sys\nimport wf\nfrom lazyflow_core import Scheduler\n"
        "s = Scheduler(db=sys.argv[1]); r = s.run(wf.main(3))\n"
        "print(json.dumps({'result': r, 'executed': s.last_run.executed}))\n"
    )
    other = Workflow.__new__(Workflow)
    other.dir, other.db_url, other.path, other.executor = tmp_path, wf.db_url, runner, "threads"
    out = other.run()
    assert out["result"] == 30 and out["executed"] == 0 and out["ran"] == []


FILES = """
import json, os, sys
from lazyflow_core import task, Scheduler, File

HERE = os.path.dirname(os.path.abspath(__file__))

def note(s):
    with open(os.path.join(HERE, "ran.log"), "a") as fh:
        fh.write(s + "\\n")

@task
def count_words(f: File) -> int:
    note(f"count {os.path.basename(f.path)}")
    return len(f.read().split())

@task
def shout(f: File) -> File:
    note(f"shout {os.path.basename(f.path)}")
    return File(f.path + ".upper").write(f.read().upper())

@task
def main(paths: list):
    files = [File(os.path.join(HERE, p)) for p in paths]
    return {"counts": [count_words(f) for f in files], "loud": [shout(f) for f in files]}

if __name__ == "__main__":
    sched = Scheduler(db=sys.argv[1], executor=os.environ.get("LAZYFLOW_TEST_EXECUTOR", "threads"))
    out = sched.run(main(["a.txt", "b.txt"]))
    print(json.dumps({"result": out["counts"], "executed": sched.last_run.executed}))
"""


FILE_CASES = [*CASES, ("sqlite", "processes")]  # processes: files are hashed in the worker


@pytest.mark.parametrize("case", FILE_CASES, indirect=True, ids=[f"{d}-{e}" for d, e in FILE_CASES])
def test_changed_or_deleted_files_rerun_exactly_their_calls(
    tmp_path: Path, case: tuple[str, str]
) -> None:
    (tmp_path / "a.txt").write_text("one two three")
    (tmp_path / "b.txt").write_text("four five")
    wf = Workflow(tmp_path, case[0], FILES, executor=case[1])
    first = wf.run()
    assert first["result"] == [3, 2]
    assert first["ran"] == ["count a.txt", "count b.txt", "shout a.txt", "shout b.txt"]
    assert wf.run()["ran"] == []

    (tmp_path / "a.txt").write_text("one two three four")  # input modified
    out = wf.run()
    assert out["result"] == [4, 2] and out["ran"] == ["count a.txt", "shout a.txt"]

    (tmp_path / "b.txt.upper").unlink()  # an output deleted: its producer re-runs
    out = wf.run()
    assert out["ran"] == ["shout b.txt"]
    assert (tmp_path / "b.txt.upper").read_text() == "FOUR FIVE"

    (tmp_path / "a.txt.upper").write_text("tampered")  # an output modified
    assert wf.run()["ran"] == ["shout a.txt"]
