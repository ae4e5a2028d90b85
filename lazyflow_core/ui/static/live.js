/* Live view of a running execution: polls /api/executions/ID every 2 s while it runs and
 * updates the summary and the per-task table in place (no reload). */
(function () {
  "use strict";
  var STATES = ["done", "cached", "failed", "running", "cancelled"];
  function cell(text, cls) {
    var td = document.createElement("td"); td.className = cls || "n"; td.textContent = text; return td;
  }
  function secs(s) { return s == null ? "-" : (s < 60 ? s.toFixed(2) + "s" : Math.round(s) + "s"); }
  function update(data) {
    var body = document.querySelector("#task-counts tbody");
    data.tasks.forEach(function (t) {
      var row = body.querySelector("tr[data-task=\"" + CSS.escape(t.task) + "\"]");
      if (!row) {
        row = document.createElement("tr"); row.setAttribute("data-task", t.task);
        row.appendChild(cell(t.task, ""));
        row.appendChild(cell(""));
        STATES.forEach(function (s) { var td = cell("", "n " + s); td.setAttribute("data-state", s); row.appendChild(td); });
        row.appendChild(cell(""));
        body.appendChild(row);
      }
      var cells = row.children;
      cells[1].textContent = t.jobs;
      STATES.forEach(function (s, i) { cells[2 + i].textContent = t.states[s] || ""; });
      cells[cells.length - 1].textContent = secs(t.seconds);
    });
    var total = document.getElementById("jobs-total");
    if (total) {
      total.textContent = data.recorded_jobs + " recorded: " + STATES.filter(function (s) {
        return data.states[s]; }).map(function (s) { return data.states[s] + " " + s; }).join(", ");
    }
    var summary = document.getElementById("summary");
    summary.setAttribute("data-status", data.status);
    summary.setAttribute("data-polls", String(+(summary.getAttribute("data-polls") || 0) + 1));
    var seconds = document.getElementById("seconds");
    if (seconds && data.seconds != null) seconds.textContent = secs(data.seconds);
  }
  function poll() {
    var summary = document.getElementById("summary");
    if (!summary || summary.getAttribute("data-status") !== "running") return;
    fetch(summary.getAttribute("data-api")).then(function (r) { return r.json(); })
      .then(function (data) { update(data); setTimeout(poll, data.status === "running" ? 2000 : 0); })
      .catch(function () { setTimeout(poll, 5000); });
  }
  document.addEventListener("DOMContentLoaded", function () { setTimeout(poll, 2000); });
})();
