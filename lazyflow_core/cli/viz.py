"""``lazyflow viz``: an execution's call graph as Graphviz DOT or one self-contained HTML.

DOT: nodes are the execution's calls, coloured by status. Solid edges go from a call to
the calls it made; dashed edges show data flow (`provenance.data_flows`): a call's
result passed as an argument (or as an item of a list/dict argument) to a call that
started after it finished. Graphviz lays it out.

HTML: the front end of ``lazyflow ui`` (`lazyflow_core.ui`), inlined with its data, so
the file needs no network and no server: siblings of one task are grouped into one node
(`provenance.call_groups`) and laid out by the vendored cytoscape.js + dagre.
"""

from __future__ import annotations

import html
import json
import sys
from dataclasses import dataclass, field

import click

from ..provenance import CallGroups, CallNode, Execution, Provenance, call_groups, data_flows
from .common import cut, db_option, fmt_seconds, fmt_time, open_provenance, short

COLORS = {"done": "#c8e6c9", "cached": "#b3e5fc", "failed": "#ffcdd2", "running": "#fff9c4"}


@dataclass(eq=False)
class Graph:
    execution: Execution
    nodes: list[CallNode] = field(default_factory=list)
    calls: list[tuple[int, int]] = field(default_factory=list)  # parent -> child
    flows: list[tuple[int, int, str]] = field(default_factory=list)  # producer -> consumer
    parent: dict[int, int] = field(default_factory=dict)
    truncated: int = 0


def build_graph(
    prov: Provenance, ident: str, *, expand: bool = False, max_nodes: int = 5000
) -> Graph:
    execution = prov.execution(ident)
    roots = prov.call_tree(execution.id, expand_cached=expand, max_nodes=max_nodes)
    g = Graph(execution)
    stack: list[tuple[CallNode, int | None]] = [(r, None) for r in reversed(roots)]
    while stack:
        node, parent = stack.pop()
        if len(g.nodes) >= max_nodes:
            g.truncated += 1
            continue
        index = len(g.nodes)
        g.nodes.append(node)
        if parent is not None:
            g.calls.append((parent, index))
            g.parent[index] = parent
        stack.extend((c, index) for c in reversed(node.children))
    _data_flow(prov, g)
    return g


def _status(n: CallNode) -> str:
    return "cached" if n.cached else n.status


def _data_flow(prov: Provenance, g: Graph) -> None:
    g.flows = [(f.producer, f.consumer, f.label) for f in data_flows(prov, g.nodes, g.parent)]


# -- DOT -----------------------------------------------------------------------------


def _dot_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(g: Graph) -> str:
    e = g.execution
    title = f"execution {short(e.id)} {e.status}: {e.root_task or ''}"
    lines = [
        f"digraph {_dot_str('lazyflow ' + short(e.id))} {{",
        f"  graph [rankdir=LR, fontname=Helvetica, labelloc=t, label={_dot_str(title)}];",
        '  node [shape=box, style="rounded,filled", fontname=Helvetica, fontsize=10];',
        '  edge [color="#999999"];',
    ]
    for i, n in enumerate(g.nodes):
        status = _status(n)
        label = f"{cut(n.preview, 50)}\n{status}"
        if n.seconds is not None and not n.cached:
            label += f" {fmt_seconds(n.seconds)}"
        if n.result is not None:
            label += f"\n-> {cut(n.result.preview, 40)}"
        tooltip = f"{n.task_name}\ncall {n.call_hash or '-'}"
        if n.job is not None and n.job.error:
            tooltip += f"\n{n.job.error}"
            if n.job.traceback:  # the innermost frames: where it raised
                tooltip += "\n" + "\n".join(n.job.traceback.rstrip().splitlines()[-8:])
        lines.append(
            f"  n{i} [label={_dot_str(label)}, fillcolor={_dot_str(COLORS.get(status, '#eeeeee'))}"
            f", tooltip={_dot_str(tooltip)}];"
        )
    for p, c in g.calls:
        lines.append(f"  n{p} -> n{c};")
    for p, c, label in g.flows:
        lines.append(
            f'  n{p} -> n{c} [style=dashed, color="#1f77b4", fontcolor="#1f77b4", '
            f"fontsize=9, constraint=false, label={_dot_str(label)}];"
        )
    if g.truncated:
        lines.append(
            f"  more [shape=note, label={_dot_str(f'{g.truncated} more calls not shown')}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- HTML ----------------------------------------------------------------------------


def to_html(prov: Provenance, ident: str) -> str:
    """One self-contained page: the front end of ``lazyflow ui`` (its graph script, the
    vendored cytoscape.js and dagre, its style sheet) inlined, with the grouped graph and
    the first calls of each group as data. Nothing is fetched when it is opened."""
    from ..ui import STATIC
    from ..ui.views import INLINE_MEMBERS, graph_payload

    groups = call_groups(prov, ident)
    payload = graph_payload(prov, groups, flows=True, inline_members=INLINE_MEMBERS)
    e = groups.execution
    scripts = "\n".join(
        "<script>\n" + (STATIC / name).read_text(encoding="utf-8") + "\n</script>"
        for name in ("vendor/cytoscape.min.js", "vendor/cytoscape-dagre.min.js", "graph.js")
    )
    title = f"lazyflow execution {short(e.id)}"
    summary = (
        f"{e.status} · {fmt_time(e.started_at)} · {fmt_seconds(e.seconds)} · "
        f"{e.jobs} jobs: {e.executed} executed, {e.cached} cached, {e.failed} failed"
    )
    return _PAGE.format(
        title=html.escape(title),
        summary=html.escape(summary),
        command=html.escape(e.command or e.root_task or ""),
        execution=html.escape(e.id),
        style=(STATIC / "style.css").read_text(encoding="utf-8"),
        data=json.dumps(payload).replace("</", "<\\/"),
        scripts=scripts,
        calls=_call_list(groups),
    )


def _call_list(groups: CallGroups, limit: int = 20) -> str:
    """The groups as plain HTML too (readable without scripts, and searchable text)."""
    items = []
    for g in list(groups.groups.values())[:200]:
        members, _ = groups.members(g.key, limit=limit)
        calls = ", ".join(html.escape(cut(j.args_preview or j.task_name, 60)) for j in members)
        more = f" … {g.count - limit} more" if g.count > limit else ""
        states = ", ".join(f"{n} {s}" for s, n in sorted(g.states.items()))
        items.append(
            f"<li><b>{html.escape(g.task_name)}</b> \u00d7{g.count} ({states}): {calls}{more}</li>"
        )
    return "\n".join(items)


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{title}</title>
<style>
{style}
</style></head>
<body><main>
<h1>{title}</h1>
<p>{summary}<br><code>{command}</code> · id {execution}</p>
<div class="graph-wrap"><div id="graph" class="graph"></div>
<aside id="graph-side" class="side"><p class="dim">Select a node. Scroll to zoom, drag to
pan.</p></aside></div>
<details><summary>calls by task</summary><ul id="calls">
{calls}
</ul></details>
</main>
<script type="application/json" id="lf-graph-data">{data}</script>
{scripts}
</body></html>
"""


# -- command -------------------------------------------------------------------------


@click.command("viz", short_help="Draw an execution's call graph (DOT or HTML).")
@click.argument("execution", required=False)
@db_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["dot", "html"]),
    help="Output format (default: html if -o ends with .html, else dot).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to this file instead of stdout.",
)
@click.option("--expand", is_flag=True, help="DOT: also draw the calls under reused (cached) ones.")
@click.option(
    "--max-nodes",
    type=click.IntRange(min=1),
    default=5000,
    show_default=True,
    help="DOT: calls drawn at most.",
)
def viz_command(
    execution: str | None,
    db: str | None,
    fmt: str | None,
    output: str | None,
    expand: bool,
    max_nodes: int,
) -> None:
    """Draw EXECUTION's calls (default: the latest execution): solid edges from a call to
    the calls it made, dashed edges where a result flowed into another call.

    HTML output is one self-contained file drawn by the front end of `lazyflow ui`:
    siblings of one task are one node (click it to see its first calls), so it stays
    readable at 100k calls. DOT output draws every call (up to --max-nodes).

    \b
      lazyflow viz 1a2b | dot -Tsvg > run.svg
      lazyflow viz -o run.html           the latest execution
    """
    if fmt is None:
        fmt = "html" if output and output.lower().endswith((".html", ".htm")) else "dot"
    with open_provenance(db) as prov:
        ident = execution if execution not in (None, "-") else _latest(prov)
        if fmt == "html":
            text = to_html(prov, ident)
            what = "grouped calls"
        else:
            graph = build_graph(prov, ident, expand=expand, max_nodes=max_nodes)
            text = to_dot(graph)
            what = f"{len(graph.nodes)} calls"
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
        click.echo(f"wrote {output} ({what}, {fmt})", err=True)
    else:
        sys.stdout.write(text)


def _latest(prov: Provenance) -> str:
    latest = prov.executions(limit=1)
    if not latest:
        raise click.ClickException(
            f"the store at {prov.store.url} holds no executions yet: run a workflow first."
        )
    return latest[0].id
