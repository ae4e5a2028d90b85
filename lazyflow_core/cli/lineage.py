"""``lazyflow lineage``: where a file or value came from, or (``--consumers``) where it went."""

from __future__ import annotations

import json
from typing import Any

import click

from .common import console, cut, db_option, jref, open_provenance, plural, short


@click.command("lineage", short_help="Where a file or value came from.")
@click.argument("target", metavar="PATH_OR_HASH")
@db_option
@click.option(
    "--depth",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Levels of producers (or consumers) to follow.",
)
@click.option("--consumers", is_flag=True, help="Show the calls that used it instead.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--values",
    is_flag=True,
    help="Also unpickle signed stored values to follow containers of objects other than "
    "built-in data (needs the store's signing key; unsigned values are never unpickled).",
)
def lineage_command(
    target: str, db: str | None, depth: int, consumers: bool, as_json: bool, values: bool
) -> None:
    """Show the call that produced PATH_OR_HASH, that call's inputs, and recursively
    their producers, with the code hash and execution of each step.

    PATH_OR_HASH is a file path as the workflow wrote it (relative to the current
    directory or absolute), or a value or call hash (a unique prefix is enough; see
    `lazyflow log --job JOB`).
    """
    with open_provenance(db, values=values) as prov:
        if consumers:
            show_consumers(prov, target, depth, as_json)
            return
        readers = prov.file_consumers(target)
        if readers and not prov.file_producers(target):
            # an input file: no call wrote it
            click.echo(
                f"file {target} was not written by a recorded call: it is an input, read by "
                f"{plural(len(readers), 'call')} (--consumers lists them)."
            )
            return
        lineage = prov.lineage(target, depth=depth)
        if as_json:
            click.echo(json.dumps(_lineage_dict(lineage), indent=2))
            return
        render_lineage(lineage)


def _head(lineage: Any) -> str:
    if lineage.kind == "file":
        f = lineage.file
        state = {
            "unchanged": "unchanged since it was written",
            "modified": "modified since it was written",
            "missing": "missing now",
        }.get(lineage.file_state or "", "")
        return f"file {f.path}  ({state}; recorded hash {short(f.file_hash)})"
    v = lineage.value
    if v is None:
        return f"value {lineage.target} (not stored)"
    return f"value {cut(v.preview, 80)}  ({v.type_name}, {short(v.hash)})"


def _step_text(step: Any) -> Any:
    from rich.text import Text

    c = step.call
    text = Text.assemble(
        (cut(c.preview, 80), "bold"),
        ("  ", ""),
        (
            f"{c.task_name} code {short(c.task_hash)}, execution {short(c.execution_id)}, "
            f"job {jref(c.job_id)}",
            "dim",
        ),
    )
    if step.parent is not None:
        text.append(f"  inside {cut(step.parent.preview, 40)}", style="dim")
    if step.repeated:
        text.append("  (shown above)", style="dim")
    if step.truncated and c.args:
        text.append("  (--depth stops here)", style="dim")
    return text


def _input_text(inp: Any) -> Any:
    from rich.text import Text

    if inp.file is not None:
        text = Text.assemble(
            ("file ", "cyan"), inp.file.path, (f"  ({short(inp.file.file_hash)})", "dim")
        )
    else:
        preview = inp.value.preview if inp.value is not None else "?"
        text = Text.assemble(
            (inp.name, "cyan"), " = ", cut(preview, 80), (f"  ({short(inp.value_hash)})", "dim")
        )
    if inp.passed_by is not None:
        outer, arg = inp.passed_by
        text.append(f"  = argument {arg} of {cut(outer.preview, 40)}", style="dim")
    if inp.producer is None and not inp.parts:
        text.append("  given", style="dim italic")
    return text


def render_lineage(lineage: Any) -> None:
    from rich.tree import Tree

    out = console()
    tree = Tree(_head(lineage), guide_style="dim")
    if lineage.producer is None:
        tree.add("no recorded call produced it")
    else:
        note = (
            f"  (+{plural(lineage.alternatives, 'other call')} produced it too)"
            if lineage.alternatives
            else ""
        )
        _add_step(tree, lineage.producer, note)
    out.print(tree)


def _add_step(branch: Any, step: Any, note: str = "") -> None:
    stack: list[tuple[Any, Any, str]] = [(branch, step, note)]
    while stack:
        parent, item, extra = stack.pop()
        if hasattr(item, "call"):  # a Step
            text = _step_text(item)
            if extra:
                text.append(extra, style="dim")
            node = parent.add(text)
            for inp in reversed(item.inputs):
                stack.append((node, inp, ""))
        elif isinstance(item, str):
            parent.add(item, style="dim")
        else:  # an Input
            node = parent.add(_input_text(item))
            if item.more_parts:
                stack.append((node, f"... {item.more_parts} more items", ""))
            for part in reversed(item.parts):
                stack.append((node, part, ""))
            if item.producer is not None:
                stack.append((node, item.producer, ""))


def show_consumers(prov: Any, target: str, depth: int, as_json: bool) -> None:
    from rich.tree import Tree

    file_uses = prov.file_consumers(target)
    if file_uses:
        if as_json:
            click.echo(
                json.dumps(
                    [
                        {"path": f.path, "file_hash": f.file_hash, "call": _call_dict(c)}
                        for f, c in file_uses
                    ],
                    indent=2,
                )
            )
            return
        tree = Tree(f"file {target} was read by", guide_style="dim")
        for f, call in file_uses:
            node = tree.add(_call_text(call, f"as input file ({short(f.file_hash)})"))
            for use in (
                prov.consumer_tree(call.result_hash, depth=max(depth - 1, 1)) if depth > 1 else []
            ):
                _add_use(node, use)
        console().print(tree)
        return
    kind, full = prov.resolve_hash(target)
    value_hash = prov.calls([full])[full].result_hash if kind == "call" else full
    uses = prov.consumer_tree(value_hash, depth=depth)
    if as_json:
        click.echo(json.dumps([_use_dict(u) for u in uses], indent=2))
        return
    value = prov.values([value_hash]).get(value_hash)
    head = (
        f"value {cut(value.preview, 80)}  ({value.type_name}, {short(value_hash)})"
        if value
        else f"value {short(value_hash)}"
    )
    tree = Tree(
        head + (" was used by" if uses else ": no recorded call used it"), guide_style="dim"
    )
    for use in uses:
        _add_use(tree, use)
    console().print(tree)


def _call_text(call: Any, how: str) -> Any:
    from rich.text import Text

    return Text.assemble(
        (cut(call.preview, 80), "bold"),
        f"  {how}",
        (
            f"  {call.task_name}, execution {short(call.execution_id)}, job {jref(call.job_id)}",
            "dim",
        ),
    )


def _add_use(branch: Any, use: Any) -> None:
    stack = [(branch, use)]
    while stack:
        parent, u = stack.pop()
        text = _call_text(u.call, f"as {u.arg}")
        if u.repeated:
            text.append("  (shown above)", style="dim")
        node = parent.add(text)
        stack.extend((node, child) for child in reversed(u.uses))


def _value_dict(v: Any) -> dict[str, Any] | None:
    if v is None:
        return None
    return {"hash": v.hash, "type": v.type_name, "size": v.size, "preview": v.preview}


def _call_dict(c: Any) -> dict[str, Any]:
    return {
        "call_hash": c.call_hash,
        "task": c.task_name,
        "task_hash": c.task_hash,
        "call": c.preview,
        "execution_id": c.execution_id,
        "job_id": c.job_id,
        "result": _value_dict(c.result),
    }


def _step_dict(step: Any) -> dict[str, Any]:
    return {
        **_call_dict(step.call),
        "parent": step.parent.preview if step.parent else None,
        "repeated": step.repeated,
        "truncated": step.truncated,
        "inputs": [_input_dict(i) for i in step.inputs],
    }


def _input_dict(inp: Any) -> dict[str, Any]:
    return {
        "name": inp.name,
        "value": _value_dict(inp.value),
        "value_hash": inp.value_hash,
        "file": {"path": inp.file.path, "hash": inp.file.file_hash} if inp.file else None,
        "producer": _step_dict(inp.producer) if inp.producer else None,
        "parts": [_input_dict(p) for p in inp.parts],
        "more_parts": inp.more_parts,
        "passed_by": {"call": inp.passed_by[0].preview, "argument": inp.passed_by[1]}
        if inp.passed_by
        else None,
    }


def _lineage_dict(lineage: Any) -> dict[str, Any]:
    return {
        "target": lineage.target,
        "kind": lineage.kind,
        "value": _value_dict(lineage.value),
        "file": {
            "path": lineage.file.path,
            "hash": lineage.file.file_hash,
            "state": lineage.file_state,
        }
        if lineage.file
        else None,
        "producer": _step_dict(lineage.producer) if lineage.producer else None,
        "alternatives": lineage.alternatives,
    }


def _use_dict(u: Any) -> dict[str, Any]:
    return {**_call_dict(u.call), "as": u.arg, "used_by": [_use_dict(x) for x in u.uses]}
