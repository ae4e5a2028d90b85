"""``lazyflow viz``: an execution's call graph as Graphviz DOT or one self-contained HTML.

Nodes are the execution's calls, coloured by status. Solid edges go from a call to the
calls it made; dashed edges show data flow: a call's result passed as an argument (or as
an item of a list/dict argument) to a call that started after it finished.

The HTML page needs no network: the graph is an inline SVG laid out here (a tidy tree,
left to right), and a small inline script adds zoom, pan, search and a details panel.
"""

from __future__ import annotations

import html
import json
import sys
from dataclasses import dataclass, field

import click

from ..provenance import CallNode, Execution, Provenance, could_feed
from .common import cut, db_option, fmt_seconds, fmt_time, jref, open_provenance, short

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
    produced: dict[str, list[int]] = {}
    for i, n in enumerate(g.nodes):
        if n.result is not None and n.status != "failed":
            produced.setdefault(n.result.hash, []).append(i)
    if not produced:
        return
    args = prov.arg_hashes(n.call_hash for n in g.nodes if n.call_hash)
    values = prov.values(h for a in args.values() for h in a.values())

    def before(p: int, c: int) -> bool:
        jp, jc = g.nodes[p].job, g.nodes[c].job
        if jp is not None and jc is not None:
            return could_feed(jp.id, jp.finished_at, jc.id, jc.started_at)
        return g.parent.get(p) == g.parent.get(c)  # inside a reused subtree: siblings only

    seen: set[tuple[int, int]] = set()
    for c, n in enumerate(g.nodes):
        for name, vh in args.get(n.call_hash or "", {}).items():
            sources: list[tuple[str, str]] = [(name, vh)]
            value = values.get(vh)
            if (
                vh not in produced
                and value is not None
                and value.type_name in ("list", "tuple", "dict", "set", "frozenset")
            ):
                sources = [(name + label, h) for label, h in prov.parts(vh) or []]
            for label, h in sources:
                for p in produced.get(h, ()):
                    if p != c and (p, c) not in seen and before(p, c):
                        seen.add((p, c))
                        g.flows.append((p, c, label))
                        break


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

_W, _H, _GAP_X, _GAP_Y, _PAD = 270, 30, 60, 10, 20


def _layout(g: Graph) -> list[tuple[float, float]]:
    """A tidy tree left to right: x by depth, leaves stacked, parents centred."""
    kids: dict[int, list[int]] = {}
    for p, c in g.calls:
        kids.setdefault(p, []).append(c)
    pos: list[tuple[float, float]] = [(0.0, 0.0)] * len(g.nodes)
    next_y = 0.0
    roots = [i for i in range(len(g.nodes)) if i not in g.parent]
    # iterative post-order: place leaves in order, centre parents over their children
    stack: list[tuple[int, int, bool]] = [(r, 0, False) for r in reversed(roots)]
    while stack:
        i, depth, done = stack.pop()
        x = _PAD + depth * (_W + _GAP_X)
        children = kids.get(i, [])
        if not children:
            pos[i] = (x, next_y + _PAD)
            next_y += _H + _GAP_Y
        elif done:
            ys = [pos[c][1] for c in children]
            pos[i] = (x, (min(ys) + max(ys)) / 2)
        else:
            stack.append((i, depth, True))
            stack.extend((c, depth + 1, False) for c in reversed(children))
    return pos


def to_html(g: Graph) -> str:
    e = g.execution
    pos = _layout(g)
    width = max((x for x, _ in pos), default=0) + _W + _GAP_X + 2 * _PAD
    height = max((y for _, y in pos), default=0) + _H + 2 * _PAD
    svg: list[str] = []
    for p, c in g.calls:
        (x1, y1), (x2, y2) = pos[p], pos[c]
        sx, sy, tx, ty = x1 + _W, y1 + _H / 2, x2, y2 + _H / 2
        mx = (sx + tx) / 2
        svg.append(
            f'<path class="call" d="M{sx:.0f},{sy:.0f} C{mx:.0f},{sy:.0f} '
            f'{mx:.0f},{ty:.0f} {tx:.0f},{ty:.0f}"/>'
        )
    for p, c, label in g.flows:
        # right edge to right edge, bulging right: visible between stacked siblings
        (x1, y1), (x2, y2) = pos[p], pos[c]
        sx, sy, tx, ty = x1 + _W, y1 + _H / 2, x2 + _W, y2 + _H / 2
        bend = min(_GAP_X * 0.8, 18 + abs(ty - sy) * 0.1)
        svg.append(
            f'<path class="flow" marker-end="url(#arrow)" d="M{sx:.0f},{sy:.0f} '
            f'C{sx + bend:.0f},{sy:.0f} {tx + bend:.0f},{ty:.0f} {tx + 2:.0f},{ty:.0f}">'
            f"<title>{html.escape(label)}</title></path>"
        )
    details = []
    for i, n in enumerate(g.nodes):
        x, y = pos[i]
        status = _status(n)
        label = cut(n.preview, 38)
        svg.append(
            f'<g class="node {status}" data-i="{i}" transform="translate({x:.0f},{y:.0f})">'
            f'<rect width="{_W}" height="{_H}" rx="6"/>'
            f'<text x="8" y="19">{html.escape(label)}</text>'
            f"<title>{html.escape(n.preview)} ({status})</title></g>"
        )
        details.append(
            {
                "task": n.task_name,
                "call": n.preview,
                "status": status,
                "seconds": n.seconds,
                "call_hash": n.call_hash,
                "job": jref(n.job.id) if n.job else None,
                "result": n.result.preview if n.result else None,
                "result_type": n.result.type_name if n.result else None,
                "error": n.job.error if n.job else None,
            }
        )
    data = json.dumps(details).replace("</", "<\\/")
    title = f"lazyflow execution {short(e.id)}"
    summary = (
        f"{e.status} · {fmt_time(e.started_at)} · {fmt_seconds(e.seconds)} · "
        f"{e.jobs} jobs: {e.executed} executed, {e.cached} cached, {e.failed} failed"
    )
    more = f" · {g.truncated} more calls not shown" if g.truncated else ""
    return _PAGE.format(
        title=html.escape(title),
        summary=html.escape(summary + more),
        command=html.escape(e.command or e.root_task or ""),
        execution=html.escape(e.id),
        width=f"{width:.0f}",
        height=f"{height:.0f}",
        svg="\n".join(svg),
        data=data,
        flows=len(g.flows),
    )


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{title}</title>
<style>
body {{ margin: 0; font: 13px system-ui, sans-serif; color: #222; display: flex;
        flex-direction: column; height: 100vh; }}
header {{ padding: 8px 14px; border-bottom: 1px solid #ddd; background: #fafafa; }}
header h1 {{ font-size: 15px; margin: 0 0 2px 0; }}
header .meta {{ color: #555; }} header code {{ color: #333; }}
.bar {{ margin-top: 6px; display: flex; gap: 14px; align-items: center; }}
.legend span {{ display: inline-block; padding: 1px 8px; border-radius: 4px; margin-right: 4px; }}
main {{ flex: 1; display: flex; min-height: 0; }}
#view {{ flex: 1; overflow: hidden; cursor: grab; background: #fff; }}
#side {{ width: 340px; border-left: 1px solid #ddd; padding: 10px 14px; overflow: auto;
         background: #fcfcfc; }}
#side dt {{ font-weight: 600; margin-top: 8px; }} #side dd {{ margin: 2px 0 0 0;
         word-break: break-all; font-family: ui-monospace, monospace; font-size: 12px; }}
svg text {{ font: 12px ui-monospace, monospace; pointer-events: none; }}
.node rect {{ stroke: #777; stroke-width: 1; }}
.node {{ cursor: pointer; }}
.node.done rect {{ fill: #c8e6c9; }} .node.cached rect {{ fill: #b3e5fc; }}
.node.failed rect {{ fill: #ffcdd2; stroke: #c62828; }} .node.running rect {{ fill: #fff9c4; }}
.node.hit rect {{ stroke: #ff6f00; stroke-width: 3; }}
.node.sel rect {{ stroke: #000; stroke-width: 2.5; }}
.node.dim {{ opacity: .25; }}
path.call {{ fill: none; stroke: #aaa; }}
path.flow {{ fill: none; stroke: #1f77b4; stroke-dasharray: 4 3; opacity: .7; }}
body.noflow path.flow {{ display: none; }}
</style></head>
<body>
<header><h1>{title}</h1>
<div class="meta">{summary}</div><div class="meta"><code>{command}</code> · id {execution}</div>
<div class="bar">
<input id="q" type="search" placeholder="search calls" size="30">
<label><input id="flows" type="checkbox" checked> data flow ({flows} edges)</label>
<button id="fit">fit</button>
<span class="legend"><span style="background:#c8e6c9">executed</span><span
 style="background:#b3e5fc">cached</span><span style="background:#ffcdd2">failed</span></span>
</div></header>
<main><div id="view"><svg id="svg" xmlns="http://www.w3.org/2000/svg" width="100%"
 height="100%" viewBox="0 0 {width} {height}">
<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6"
 markerHeight="6" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#1f77b4"/>
</marker></defs>
{svg}
</svg></div>
<aside id="side"><p>Click a call to see its details. Scroll to zoom, drag to pan.</p></aside>
</main>
<script type="application/json" id="lf-data">{data}</script>
<script>
(function () {{
  var data = JSON.parse(document.getElementById("lf-data").textContent);
  var svg = document.getElementById("svg"), view = document.getElementById("view");
  var full = svg.viewBox.baseVal, box = {{x: full.x, y: full.y, w: full.width, h: full.height}};
  var home = Object.assign({{}}, box);
  function apply() {{
    svg.setAttribute("viewBox", [box.x, box.y, box.w, box.h].join(" "));
  }}
  view.addEventListener("wheel", function (ev) {{
    ev.preventDefault();
    var r = svg.getBoundingClientRect(), k = ev.deltaY > 0 ? 1.15 : 1 / 1.15;
    var fx = (ev.clientX - r.left) / r.width, fy = (ev.clientY - r.top) / r.height;
    var nw = box.w * k, nh = box.h * k;
    box.x += (box.w - nw) * fx; box.y += (box.h - nh) * fy; box.w = nw; box.h = nh; apply();
  }}, {{passive: false}});
  var drag = null;
  view.addEventListener("mousedown", function (ev) {{
    drag = {{x: ev.clientX, y: ev.clientY}};
  }});
  window.addEventListener("mouseup", function () {{ drag = null; }});
  window.addEventListener("mousemove", function (ev) {{
    if (!drag) return;
    var r = svg.getBoundingClientRect(), s = Math.max(box.w / r.width, box.h / r.height);
    box.x -= (ev.clientX - drag.x) * s; box.y -= (ev.clientY - drag.y) * s;
    drag = {{x: ev.clientX, y: ev.clientY}}; apply();
  }});
  document.getElementById("fit").onclick = function () {{
    box = Object.assign({{}}, home); apply();
  }};
  document.getElementById("flows").onchange = function (ev) {{
    document.body.classList.toggle("noflow", !ev.target.checked); }};
  var nodes = Array.prototype.slice.call(document.querySelectorAll("g.node"));
  function esc(s) {{
    var d = document.createElement("div"); d.textContent = s; return d.innerHTML;
  }}
  function show(i) {{
    var d = data[i], rows = [["call", d.call], ["task", d.task], ["status", d.status],
      ["seconds", d.seconds == null ? "-" : d.seconds.toFixed(3)],
      ["result", d.result == null ? "-"
        : d.result + (d.result_type ? "  (" + d.result_type + ")" : "")],
      ["error", d.error], ["job", d.job], ["call hash", d.call_hash]];
    var h = "<dl>";
    rows.forEach(function (r) {{
      if (r[1] != null) h += "<dt>" + r[0] + "</dt><dd>" + esc(String(r[1])) + "</dd>";
    }});
    if (d.job) h += "<p>More: <code>lazyflow log --job " + esc(d.job) + "</code></p>";
    document.getElementById("side").innerHTML = h + "</dl>";
  }}
  nodes.forEach(function (g) {{
    g.addEventListener("click", function (ev) {{
      nodes.forEach(function (n) {{ n.classList.remove("sel"); }});
      g.classList.add("sel"); show(+g.getAttribute("data-i")); ev.stopPropagation();
    }});
  }});
  document.getElementById("q").oninput = function (ev) {{
    var q = ev.target.value.toLowerCase();
    nodes.forEach(function (g) {{
      var d = data[+g.getAttribute("data-i")];
      var hit = q && (d.call + " " + d.task).toLowerCase().indexOf(q) >= 0;
      g.classList.toggle("hit", !!hit); g.classList.toggle("dim", !!q && !hit);
    }});
  }};
}})();
</script>
</body></html>
"""


# -- command -------------------------------------------------------------------------


@click.command("viz", short_help="Draw an execution's call graph (DOT or HTML).")
@click.argument("execution")
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
@click.option("--expand", is_flag=True, help="Also draw the calls under reused (cached) ones.")
@click.option(
    "--max-nodes",
    type=click.IntRange(min=1),
    default=5000,
    show_default=True,
    help="Calls drawn at most.",
)
def viz_command(
    execution: str,
    db: str | None,
    fmt: str | None,
    output: str | None,
    expand: bool,
    max_nodes: int,
) -> None:
    """Draw EXECUTION's calls: solid edges from a call to the calls it made, dashed edges
    where a result flowed into another call. HTML output is one self-contained file.

    \b
      lazyflow viz 1a2b | dot -Tsvg > run.svg
      lazyflow viz 1a2b -o run.html
    """
    if fmt is None:
        fmt = "html" if output and output.lower().endswith((".html", ".htm")) else "dot"
    with open_provenance(db) as prov:
        graph = build_graph(prov, execution, expand=expand, max_nodes=max_nodes)
    text = to_html(graph) if fmt == "html" else to_dot(graph)
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
        click.echo(f"wrote {output} ({len(graph.nodes)} calls, {fmt})", err=True)
    else:
        sys.stdout.write(text)
