"""Code hashing: what counts as a change to a task."""

from __future__ import annotations

import functools
import json

from lazyflow_core import task
from lazyflow_core.codehash import function_hash, normalized_source

FACTOR = 3


def helper(x: int) -> int:
    return x * FACTOR


def uses_helper(x: int) -> int:
    return helper(x) + 1


def test_normalized_source_ignores_docstrings_and_comments() -> None:
    def a(x):
        """Doc."""
        # comment
        return x + 1

    def b(x):
        return x + 1  # different comment

    assert normalized_source(a).replace("'a'", "'b'") == normalized_source(b)


def test_hash_follows_helpers_and_constants() -> None:
    global FACTOR
    before = function_hash(uses_helper)
    FACTOR = 4
    from lazyflow_core import codehash

    codehash._memo.clear()
    try:
        assert function_hash(uses_helper) != before
    finally:
        FACTOR = 3
        codehash._memo.clear()
    assert function_hash(uses_helper) == before


def test_closures_and_defaults_count() -> None:
    def make(k: int):
        def inner(x: int) -> int:
            return x + k

        return inner

    assert function_hash(make(1)) != function_hash(make(2))

    def with_default(x, k=1):
        return x + k

    def with_other_default(x, k=2):
        return x + k

    assert normalized_source(with_default) != normalized_source(with_other_default)


class Scaler:
    def scale(self, x: int) -> int:
        return x * 2


def uses_class(x: int) -> int:
    return Scaler().scale(x)


def test_project_classes_are_hashed_by_source_and_third_party_by_version() -> None:
    h = function_hash(uses_class)
    assert h == function_hash(uses_class)

    def uses_json(x):
        return json.dumps(x)

    def uses_partial(x):
        return functools.partial(int)(x)

    assert function_hash(uses_json) != function_hash(uses_partial)


@task
def child(x: int) -> int:
    return x


@task
def parent(x: int):
    return child(x)


def test_task_hash_covers_name_and_version_but_not_child_task_code() -> None:
    pinned = task(version="7")(lambda x: x)
    repinned = task(version="8")(lambda x: x)
    assert pinned.hash != repinned.hash
    # A parent references its child task by name only: editing the child does not
    # change the parent's hash (the child and its consumers re-run instead).
    from lazyflow_core.codehash import _CodeHasher

    assert _CodeHasher().ref(child) == b"task:" + child.name.encode()
    assert (
        parent.dependencies["child"]
        == __import__("hashlib").sha256(b"task:" + child.name.encode()).hexdigest()[:16]
    )


def test_recursive_helpers_terminate() -> None:
    def even(n):
        return True if n == 0 else odd(n - 1)

    def odd(n):
        return False if n == 0 else even(n - 1)

    assert function_hash(even) and function_hash(odd)
