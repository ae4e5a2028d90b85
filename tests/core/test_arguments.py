"""coerce_arguments: text from an orchestrator becomes what a task's type hints ask for."""

from __future__ import annotations

import pathlib

import pytest

from lazyflow_core import Dir, File, Scheduler, TaskCallError, task
from lazyflow_core.arguments import coerce_arguments


@task
def typed(
    n: int,
    src: File,
    out: Dir | None = None,
    ids: list[int] | None = None,
    ok: bool = False,
    ratio: float = 1.0,
    names: tuple[str, ...] = (),
    files: dict[str, File] | None = None,
    label: str = "",
    where: pathlib.Path | None = None,
) -> str:
    return "ok"


def test_strings_are_converted_per_hint_keeping_positions_and_keywords() -> None:
    args, kwargs = coerce_arguments(
        typed,
        ("9", "data/in.csv"),
        {
            "out": "results/",
            "ids": "[1, 2]",
            "ok": "true",
            "ratio": "2.5",
            "names": '["a", "b"]',
            "files": '{"x": "x.txt"}',
            "label": "5",
            "where": "/tmp",
        },
    )
    assert args == (9, File("data/in.csv"))
    assert kwargs == {
        "out": Dir("results"),
        "ids": [1, 2],
        "ok": True,
        "ratio": 2.5,
        "names": ("a", "b"),
        "files": {"x": File("x.txt")},
        "label": "5",  # a str parameter keeps its text
        "where": pathlib.Path("/tmp"),
    }


def test_values_of_the_right_type_are_left_alone() -> None:
    ids = [1, 2]
    args, kwargs = coerce_arguments(typed, (9, File("a")), {"ids": ids, "out": None})
    assert args == (9, File("a"))
    assert kwargs["ids"] is ids and kwargs["out"] is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": "nine"}, "argument 'n' = 'nine' is not an integer"),
        ({"n": 1, "ok": "maybe"}, "argument 'ok' = 'maybe' is not a boolean"),
        ({"n": 1, "ids": "[1, "}, "argument 'ids' = '[1, ' is not JSON"),
        ({"n": 1, "src": 3}, "argument 'src' = 3 is a int: expected a path string"),
    ],
)
def test_text_that_does_not_fit_names_task_argument_and_type(
    kwargs: dict[str, object], message: str
) -> None:
    kwargs.setdefault("src", "a.txt")
    with pytest.raises(TaskCallError, match=r"task 'tests\.core\.test_arguments\.typed'") as info:
        coerce_arguments(typed, (), kwargs)
    assert message in str(info.value)


def test_a_converted_call_is_the_call_python_makes(tmp_path: pathlib.Path, sqlite_url: str) -> None:
    """ "3" converted to 3 hits the cache of head(File(p), 3): same call hash."""
    src = tmp_path / "in.txt"
    src.write_text("a\nb\nc\nd\n")

    @task
    def head(path: File, n: int) -> list[str]:
        return path.read().splitlines()[:n]

    with Scheduler(db=sqlite_url) as sched:
        assert sched.run(head(File(str(src)), 3)) == ["a", "b", "c"]
        args, kwargs = coerce_arguments(head, (str(src), "3"), {})
        assert sched.run(head(*args, **kwargs)) == ["a", "b", "c"]
        assert sched.last_run is not None and sched.last_run.cached == 1
