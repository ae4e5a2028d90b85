"""Data flow: for each argument of a call, the call whose result it is.

The store records, per call argument, the hash of the call that produced the value
(``lf_call_args.producer``; None: the value was given). It is known from the structure
of the evaluation, not guessed from equal values:

- an argument written as a call (``combine(merge(left), merge(right))``) was produced by
  that call, whatever it returned (a call that returns its own input still is the
  producer; lineage then follows the value through it, see `provenance.lineage`);
- an argument the calling task passed on from its own arguments (``def outer(raw):
  return inner(raw)``) has the producer of the caller's argument of the same value.

Only calls that have such arguments pay for this: a fan-out of plain values under a
root call given plain values does one ``isinstance`` check per argument.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .expression import CallExpression
from .frames import CallFrame

Producers = tuple[str | None, ...]


def arg_producers(
    frame: CallFrame,
    digests: Sequence[tuple[str, bytes]],
    frames: Mapping[int, Any] | None,
    recorded: Mapping[CallFrame, Producers],
    direct: list[str | None] | None = None,
) -> Producers | None:
    """The producer of each of `frame`'s arguments (aligned with `digests`), or None
    when every argument was given. `frames`: the evaluator's frames by expression id
    (None: each expression holds its frame); `recorded`: producers of calls not
    recorded yet (the caller's, for arguments passed on); `direct`: the call hash of
    each positional argument written as a call (None where it is not), if the caller
    knows them already (`Evaluator._plain_results`)."""
    out = _own_producers(frame, digests, frames, direct)
    parent = frame.context
    inherited = recorded.get(parent) if parent is not None else None
    if inherited and parent is not None:
        by_digest = {d: p for (_, d), p in zip(parent.arg_digests, inherited, strict=False) if p}
        if by_digest:
            if out is None:
                out = [None] * len(digests)
            for i, (_, digest) in enumerate(digests):
                if out[i] is None:
                    out[i] = by_digest.get(digest)
    if out is None or (out is not direct and not any(out)):  # (any(direct) was seen)
        return None
    return tuple(out)


def _own_producers(
    frame: CallFrame,
    digests: Sequence[tuple[str, bytes]],
    frames: Mapping[int, Any] | None,
    direct: list[str | None] | None,
) -> list[str | None] | None:
    """The call hash of each argument `frame`'s expression wrote as a call (None where
    it did not), or None when it wrote none: `direct` itself when the caller knew them
    (so `arg_producers` can tell it from a list it built), else bound from the call."""
    if direct is not None:
        if not any(direct):
            return None
        missing = len(digests) - len(direct)  # defaults: given, not produced
        return direct + [None] * missing if missing else direct
    expr = frame.expr
    if any(type(a) is CallExpression for a in expr.args) or any(
        type(v) is CallExpression for v in expr.kwargs.values()
    ):
        raw = dict(frame.task.bind(expr.args, expr.kwargs))
        return [_call_hash(raw.get(name), frames) for name, _ in digests]
    return None


def _call_hash(value: Any, frames: Mapping[int, Any] | None) -> str | None:
    if type(value) is not CallExpression:
        return None
    frame = frames.get(id(value)) if frames is not None else getattr(value, "_lf_frame", None)
    return frame.call_hash if isinstance(frame, CallFrame) else None
