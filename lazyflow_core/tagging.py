"""``apply_tags``: tags on the values and jobs a workflow produces, not only its runs.

Execution tags (``--tag``, `autotags`) describe a whole run. redun also lets a task body
mark *what it made* — "this model is the one we ship", "this sample failed QC" — with
``apply_tags(value, tags, job_tags=, execution_tags=)``, which returns the value
unchanged and records the tags as the run's provenance. lazyflow does the same:

- ``tags`` go on the value (by its hash, so every later job that produces or reuses the
  same value shows them);
- ``job_tags`` go on the job of the call whose body returned the ``apply_tags``
  expression (outside any task: on the call `value` is, e.g.
  ``apply_tags(align(x), job_tags={...})``);
- ``execution_tags`` go on the run, like ``--tag``.

It is a lazy expression (an `ApplyExpression` the evaluator recognises by type): the
value and the tags may be expressions, they are evaluated first, and the tags are queued
to the store writer with the run's other records (a dry run records nothing). Tags are
string keys with JSON values; a string is stored as it is, anything else as its JSON
text (``n=3`` is found by ``log --tag n=3``). A cached call's body does not run again,
so its ``job_tags`` stay on the job that ran it; value tags stay on the value.

``@task(tags={...})`` puts tags on every job of a task, reused ones too (redun's task
tags, which its jobs inherit); ``task.options(tags={...})`` adds to them for one call
site. They are not part of the task's hash.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import LazyflowError
from .expression import ApplyExpression, CallExpression, Expression, contains_expression

__all__ = ["TagsExpression", "apply_tags", "tag_items"]

TagsArg = Mapping[str, Any] | Iterable[tuple[str, Any]] | None


class TagsExpression(ApplyExpression):
    """``apply_tags(value, tags, job_tags, execution_tags)``: evaluates to `value`; the
    evaluator records the tags when it is evaluated (`Evaluator.apply_operands_ready`)."""

    __slots__ = ()

    def __reduce__(self) -> Any:
        return (TagsExpression, (self.fn, self.args, self.kwargs, self.label))

    @property
    def target_call(self) -> CallExpression | None:
        """The call the value is, if it is one (where top-level job tags go)."""
        value = self.args[0]
        return value if isinstance(value, CallExpression) else None


def _value_of(value: Any, *_tags: Any) -> Any:
    return value


def apply_tags(
    value: Any,
    tags: TagsArg = None,
    *,
    job_tags: TagsArg = None,
    execution_tags: TagsArg = None,
) -> Expression:
    """`value` (evaluated), with `tags` recorded on it, `job_tags` on the job of the call
    whose body returns this (or on the call `value` is, outside a task) and
    `execution_tags` on the run. Tags are a dict (or redun's list of (key, value)
    pairs) of string keys and JSON values; any of them may be lazy."""
    for name, given in (("tags", tags), ("job_tags", job_tags), ("execution_tags", execution_tags)):
        if given is not None and not contains_expression(given):
            tag_items(given, name)  # fail here, where the user wrote it, not in the run
    return TagsExpression(
        _value_of, (value, tags or {}, job_tags or {}, execution_tags or {}), label="apply_tags"
    )


def tag_items(
    tags: TagsArg, what: str = "tags", where: str = "apply_tags()"
) -> list[tuple[str, str]]:
    """`tags` as (key, stored text) pairs, in order; a bad key or value raises a
    `LazyflowError` naming it (and `where` it was given)."""
    if not tags:
        return []
    if isinstance(tags, Mapping):
        pairs = list(tags.items())
    else:
        pairs = [tuple(p) if isinstance(p, tuple | list) else (p,) for p in tags]
    out: list[tuple[str, str]] = []
    for pair in pairs:
        if len(pair) != 2 or not isinstance(pair[0], str) or not pair[0]:
            raise LazyflowError(
                f"{where}: {what} holds {pair!r}, not a (key, value) pair with a "
                f"non-empty string key. Pass a dict, e.g. {what}={{'env': 'prod'}}."
            )
        key, value = pair
        out.append((key, stored_text(key, value, what, where)))
    return out


def stored_text(key: str, value: Any, what: str = "tags", where: str = "apply_tags()") -> str:
    """How a tag value is stored: a string as it is, anything else as JSON text."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise LazyflowError(
            f"{where}: {what}[{key!r}] = {value!r:.80} is not a JSON value ({exc}). "
            "Tag values are strings, numbers, booleans, None, lists or dicts of them."
        ) from None
