/* lazyflow call graph: cytoscape.js with the dagre layout (vendored, see vendor/README.md).
 *
 * The server groups siblings of one task into one node (lazyflow_core.provenance.graph),
 * so 100k calls are a handful of nodes. A group node shows its task, how many calls it
 * holds and their states; clicking it lists (and draws) its first calls, clicking again
 * folds them back. Dashed blue edges are data flow: results of one group that reached
 * another. The same script draws `lazyflow ui`'s execution page (data fetched from
 * /api/) and `lazyflow viz` files (data inlined, no server).
 */
(function () {
  "use strict";
  var COLORS = {done: "#c8e6c9", cached: "#b3e5fc", failed: "#ffcdd2", running: "#fff9c4",
                cancelled: "#e1bee7", more: "#eeeeee"};
  var ORDER = ["failed", "running", "cancelled", "done", "cached"];
  var MEMBERS = 50;

  function esc(s) {
    var d = document.createElement("div"); d.textContent = s == null ? "" : String(s);
    return d.innerHTML;
  }
  function secs(s) { return s == null ? "-" : (s < 60 ? s.toFixed(2) + "s" : Math.round(s) + "s"); }
  function cut(s, n) { s = String(s == null ? "" : s); return s.length > n ? s.slice(0, n - 1) + "\u2026" : s; }
  function worst(states) {
    for (var i = 0; i < ORDER.length; i++) if (states[ORDER[i]]) return ORDER[i];
    return "done";
  }
  function stateText(states) {
    return ORDER.filter(function (s) { return states[s]; })
      .map(function (s) { return states[s] + " " + s; }).join(" \u00b7 ");
  }

  function groupElement(g) {
    var label = g.count > 1 ? g.short + "  \u00d7" + g.count + "\n" + stateText(g.states)
                            : cut(g.call || g.short, 48) + "\n" + stateText(g.states);
    if (g.hidden_children) label += "\n(+" + g.hidden_children + " groups not drawn)";
    return {group: "nodes", data: {id: g.key, label: label, kind: g.count > 1 ? "group" : "call",
      state: worst(g.states), w: Math.min(340, 24 + 7 * Math.max(cut(g.call || g.short, 48).length,
      stateText(g.states).length, g.short.length + 8)), g: g}};
  }
  function memberElement(groupKey, j) {
    return {group: "nodes", data: {id: "m:" + j.job, label: cut(j.call, 44) + "\n" + j.state +
      (j.seconds != null && !j.cached ? " " + secs(j.seconds) : ""), kind: "member",
      state: j.state, w: Math.min(320, 24 + 7 * Math.min(44, String(j.call).length)),
      j: j, owner: groupKey}};
  }

  function style() {
    return [
      {selector: "node", style: {"shape": "round-rectangle", "width": "data(w)", "height": 44,
        "label": "data(label)", "text-wrap": "wrap", "text-valign": "center", "font-size": 11,
        "font-family": "ui-monospace, monospace", "border-width": 1, "border-color": "#777",
        "background-color": "#eeeeee"}},
      {selector: "node[kind = 'group']", style: {"border-width": 3, "height": 52}},
      {selector: "node[kind = 'member']", style: {"height": 36, "font-size": 10}},
      {selector: "node[kind = 'more']", style: {"border-style": "dashed", "height": 30}},
      {selector: "node[state = 'done']", style: {"background-color": COLORS.done}},
      {selector: "node[state = 'cached']", style: {"background-color": COLORS.cached}},
      {selector: "node[state = 'failed']", style: {"background-color": COLORS.failed, "border-color": "#c62828"}},
      {selector: "node[state = 'running']", style: {"background-color": COLORS.running}},
      {selector: "node[state = 'cancelled']", style: {"background-color": COLORS.cancelled}},
      {selector: "node.expanded", style: {"border-color": "#1565c0"}},
      {selector: "node.hit", style: {"border-color": "#ff6f00", "border-width": 4}},
      {selector: "node.dim", style: {"opacity": 0.25}},
      {selector: "node:selected", style: {"border-color": "#000", "border-width": 4}},
      {selector: "edge", style: {"width": 1.2, "line-color": "#aaa", "target-arrow-color": "#aaa",
        "target-arrow-shape": "triangle", "curve-style": "bezier", "arrow-scale": 0.8}},
      {selector: "edge.member", style: {"line-style": "dotted", "target-arrow-shape": "none"}},
      {selector: "edge.flow", style: {"line-color": "#1f77b4", "target-arrow-color": "#1f77b4",
        "line-style": "dashed", "label": "data(label)", "font-size": 9, "color": "#1f77b4",
        "text-background-color": "#fff", "text-background-opacity": 0.8, "text-background-padding": 1}},
      {selector: "edge.flow.hidden", style: {"display": "none"}}
    ];
  }

  function Graph(container, side, data, source) {
    this.container = container; this.side = side; this.data = data; this.source = source;
    this.expanded = {};
    var elements = [];
    var keys = {};
    data.groups.forEach(function (g) { keys[g.key] = true; elements.push(groupElement(g)); });
    data.groups.forEach(function (g) {
      if (g.parent && keys[g.parent]) {
        elements.push({group: "edges", data: {id: "c:" + g.key, source: g.parent, target: g.key}});
      }
    });
    (data.flows || []).forEach(function (f, i) {
      elements.push({group: "edges", classes: "flow", data: {id: "f:" + i, source: f.from,
        target: f.to, label: (f.count > 1 ? f.count + "\u00d7 " : "") + f.label}});
    });
    this.cy = cytoscape({container: container, elements: elements, style: style(),
      minZoom: 0.02, maxZoom: 4, boxSelectionEnabled: false});
    this.layout();
    var self = this;
    this.cy.on("tap", "node", function (ev) { self.tap(ev.target); });
  }

  Graph.prototype.layout = function () {
    this.cy.layout({name: "dagre", rankDir: "LR", nodeSep: 12, rankSep: 70, edgeSep: 6,
      animate: false, fit: true, padding: 20}).run();
  };

  Graph.prototype.tap = function (node) {
    var kind = node.data("kind"), g = node.data("g"), j = node.data("j");
    if (kind === "group") { this.toggle(node.id()); this.showGroup(g); }
    else if (kind === "call") {
      this.showCall(g);
      if (g.job && worst(g.states) === "cached") this.subtree(node.id(), g.job);
    } else if (kind === "member") {
      this.showJob(j);
      if (j.cached && (j.reused ? j.children : true)) this.subtree(node.id(), j.job);
    } else if (kind === "more" && node.data("href")) window.location = node.data("href");
  };

  /* Remove what `owner` drew (its members, their subtrees), recursively. */
  Graph.prototype.fold = function (owner) {
    var cy = this.cy, self = this;
    cy.nodes().filter(function (n) { return n.data("owner") === owner; }).forEach(function (n) {
      if (self.expanded[n.id()]) self.fold(n.id());
      cy.remove(n);
    });
    delete this.expanded[owner];
    cy.getElementById(owner).removeClass("expanded");
  };

  /* Draw (or fold back) the calls a cached call reused: its subtree as recorded by the
     execution that ran it (/api/jobs/JOB/children), shown as cached. Returns a promise. */
  Graph.prototype.subtree = function (nodeId, job) {
    var self = this, cy = this.cy;
    if (!this.source.children) return Promise.resolve(0);
    if (this.expanded[nodeId]) { this.fold(nodeId); this.layout(); return Promise.resolve(0); }
    this.expanded[nodeId] = true;
    return this.source.children(job).then(function (page) {
      if (!self.expanded[nodeId]) return 0;
      var added = [];
      page.jobs.forEach(function (j) {
        var el = memberElement(nodeId, j);
        el.data.id = "s:" + nodeId + ":" + j.job;  // one origin may be reused twice
        if (j.children) el.data.label += "  (+" + j.children + ")";
        added.push(el);
        added.push({group: "edges", classes: "member", data: {id: "e:" + el.data.id,
          source: nodeId, target: el.data.id, owner: nodeId}});
      });
      if (page.total > page.jobs.length) {
        added.push({group: "nodes", data: {id: "more:" + nodeId, kind: "more", state: "more",
          owner: nodeId, w: 220, label: (page.total - page.jobs.length) + " more calls", href: null}});
        added.push({group: "edges", classes: "member", data: {id: "e:more:" + nodeId,
          source: nodeId, target: "more:" + nodeId, owner: nodeId}});
      }
      cy.add(added);
      cy.getElementById(nodeId).addClass("expanded");
      self.layout();
      return page.jobs.length;
    });
  };

  /* Draw (or fold back) the first calls of a group. Returns a promise. */
  Graph.prototype.toggle = function (key) {
    var self = this, cy = this.cy;
    if (this.expanded[key]) {
      this.fold(key);
      this.layout();
      return Promise.resolve(0);
    }
    this.expanded[key] = true;
    return this.source.members(key).then(function (page) {
      if (!self.expanded[key]) return 0;
      var added = [];
      page.jobs.forEach(function (j) {
        added.push(memberElement(key, j));
        added.push({group: "edges", classes: "member", data: {id: "e:" + j.job, source: key,
          target: "m:" + j.job, owner: key}});
      });
      if (page.total > page.jobs.length) {
        var more = page.total - page.jobs.length;
        added.push({group: "nodes", data: {id: "more:" + key, kind: "more", state: "more",
          owner: key, w: 220, label: more + " more calls" + (self.source.jobsPage ? " \u2192 list" : ""),
          href: self.source.jobsPage ? self.source.jobsPage + "?group=" + encodeURIComponent(key) : null}});
        added.push({group: "edges", classes: "member", data: {id: "e:more:" + key, source: key,
          target: "more:" + key, owner: key}});
      }
      cy.add(added);
      cy.getElementById(key).addClass("expanded");
      self.layout();
      return page.jobs.length;
    });
  };

  Graph.prototype.panel = function (rows, links) {
    var h = "<dl>";
    rows.forEach(function (r) {
      if (r[1] != null && r[1] !== "") h += "<dt>" + esc(r[0]) + "</dt><dd>" + esc(r[1]) + "</dd>";
    });
    h += "</dl>" + (links || "");
    this.side.innerHTML = h;
  };
  Graph.prototype.showGroup = function (g) {
    var link = this.source.jobsPage ? "<p><a id=\"group-calls\" href=\"" + esc(this.source.jobsPage +
      "?group=" + encodeURIComponent(g.key)) + "\">list all " + g.count + " calls</a></p>" : "";
    this.panel([["task", g.task], ["calls", g.count], ["states", stateText(g.states)],
      ["time (executed, in all)", secs(g.seconds)],
      ["", this.expanded[g.key] ? "Click again to fold the calls back." : ""]], link);
  };
  Graph.prototype.showCall = function (g) {
    this.showJob({job: g.job, call: g.call, task: g.task, state: worst(g.states),
      seconds: g.seconds, error: g.error});
  };
  Graph.prototype.showJob = function (j) {
    var link = j.job && this.source.jobUrl ? "<p><a id=\"open-job\" href=\"" +
      esc(this.source.jobUrl(j.job)) + "\">open job " + esc(j.job) + "</a></p>"
      : (j.job ? "<p>More: <code>lazyflow log --job " + esc(j.job) + "</code></p>" : "");
    this.panel([["call", j.call], ["task", j.task], ["state", j.state],
      ["seconds", secs(j.seconds)], ["error", j.error], ["job", j.job]], link);
  };

  /* Highlight nodes whose task or call contains `q`; dim the others. */
  Graph.prototype.search = function (q) {
    q = (q || "").toLowerCase();
    var hits = 0;
    this.cy.nodes().forEach(function (n) {
      var g = n.data("g") || n.data("j") || {};
      var text = ((g.task || "") + " " + (g.call || "") + " " + n.data("label")).toLowerCase();
      var hit = q && text.indexOf(q) >= 0;
      if (hit) hits++;
      n.toggleClass("hit", !!hit); n.toggleClass("dim", !!q && !hit);
    });
    return hits;
  };

  function toolbar(graph, wrap) {
    var bar = document.createElement("div");
    bar.className = "graph-bar";
    bar.innerHTML = "<input id=\"graph-search\" type=\"search\" placeholder=\"find in graph\"> " +
      "<button id=\"graph-fit\" type=\"button\">fit</button> " +
      (graph.data.flows ? "<label><input id=\"graph-flows\" type=\"checkbox\" checked> data flow (" +
        graph.data.flows.length + ")</label> " : "") +
      "<span class=\"dim\">" + graph.data.jobs + " calls in " + graph.data.groups.length +
      " nodes" + (graph.data.hidden_groups ? ", " + graph.data.hidden_groups + " deeper groups not drawn" : "") +
      (graph.data.flows === null ? "; data flow not drawn for this many calls" : "") + "</span>";
    wrap.parentNode.insertBefore(bar, wrap);
    bar.querySelector("#graph-search").addEventListener("input", function (ev) { graph.search(ev.target.value); });
    bar.querySelector("#graph-fit").addEventListener("click", function () { graph.cy.fit(undefined, 20); });
    var flows = bar.querySelector("#graph-flows");
    if (flows) flows.addEventListener("change", function (ev) {
      graph.cy.edges(".flow").toggleClass("hidden", !ev.target.checked);
    });
  }

  function start(container, side, data, source) {
    var t0 = performance.now();
    var graph = new Graph(container, side, data, source);
    toolbar(graph, container.parentNode);
    window.lfGraph = {graph: graph, cy: graph.cy, ready: true, renderMs: performance.now() - t0,
      readyAt: performance.now(), expand: function (key) { return graph.toggle(key); },
      subtree: function (id, job) { return graph.subtree(id, job); }};
    container.setAttribute("data-ready", "1");
    return graph;
  }

  function fromServer(container, side) {
    var membersUrl = container.getAttribute("data-members");
    var jobTemplate = container.getAttribute("data-job");
    var childrenTemplate = container.getAttribute("data-children");
    var source = {
      children: function (job) {
        return fetch(childrenTemplate.replace("JOB", encodeURIComponent(job)))
          .then(function (r) { return r.json(); });
      },
      members: function (key) {
        return fetch(membersUrl + "?limit=" + MEMBERS + "&group=" + encodeURIComponent(key))
          .then(function (r) { return r.json(); });
      },
      jobUrl: function (ref) { return jobTemplate.replace("JOB", encodeURIComponent(ref)); },
      jobsPage: container.getAttribute("data-jobs-page")
    };
    // the page started the request before loading the graph library (execution.html)
    var asked = window.lfGraphFetch || fetch(container.getAttribute("data-graph"));
    window.lfGraphFetch = null;
    asked.then(function (r) {
      if (!r.ok) throw new Error("graph: HTTP " + r.status);
      return r.json();
    }).then(function (data) { start(container, side, data, source); })
      .catch(function (err) { container.textContent = "The graph could not be loaded: " + err; });
  }

  function inline(container, side) {
    var data = JSON.parse(document.getElementById("lf-graph-data").textContent);
    var byKey = {};
    data.groups.forEach(function (g) { byKey[g.key] = g; });
    start(container, side, data, {
      members: function (key) {
        var g = byKey[key];
        return Promise.resolve({jobs: g.members || [], total: g.count});
      }
    });
  }

  window.LazyflowGraph = {Graph: Graph, start: start};
  document.addEventListener("DOMContentLoaded", function () {
    var container = document.getElementById("graph");
    if (!container) return;
    var side = document.getElementById("graph-side");
    if (document.getElementById("lf-graph-data")) inline(container, side);
    else fromServer(container, side);
  });
})();
