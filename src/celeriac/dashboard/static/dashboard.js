// celeriac dashboard: live updates from the server-sent events stream (/api/stream).
// Values are written with textContent only: nothing from the stream is parsed as HTML.
(function () {
  "use strict";
  var body = document.body;
  var prefix = body.dataset.prefix || "";
  var stream = body.dataset.stream;
  var chart = null;
  var SERIES = [
    ["received", "#3856d6"], ["started", "#a15c00"], ["succeeded", "#18794e"],
    ["failed", "#c2261d"], ["retried", "#8a3ffc"], ["revoked", "#5b6478"]
  ];

  function lookup(data, path) {
    return path.split(".").reduce(function (value, key) {
      return value == null ? undefined : value[key];
    }, data);
  }

  function show(value, format) {
    if (value == null) { return "–"; }
    if (format === "percent") { return (value * 100).toFixed(1) + " %"; }
    return String(value);
  }

  function cell(row, text, className) {
    var td = document.createElement("td");
    td.textContent = text;
    if (className) { td.className = className; }
    row.appendChild(td);
    return td;
  }

  function link(parent, href, text) {
    var a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    parent.appendChild(a);
    parent.appendChild(document.createTextNode(" "));
  }

  function updateOverview(data) {
    document.querySelectorAll("[data-live]").forEach(function (el) {
      el.textContent = show(lookup(data, el.dataset.live), el.dataset.format);
    });
    (data.queues || []).forEach(function (queue) {
      var row = document.querySelector('#queue-depths tr[data-queue="' + CSS.escape(queue.name) + '"]');
      if (!row) { return; }
      ["ready", "delayed", "dead_letters", "in_per_s", "out_per_s"].forEach(function (field) {
        row.querySelector('[data-field="' + field + '"]').textContent = show(queue[field]);
      });
    });
    if (data.series) { drawChart(data.series); }
  }

  function drawChart(series) {
    var holder = document.getElementById("chart");
    if (!holder || typeof uPlot === "undefined") { return; }
    var columns = [series.time].concat(SERIES.map(function (s) { return series[s[0]]; }));
    // The highest rate drawn, for whoever checks that the chart moved (tests, scripts).
    holder.dataset.max = String(Math.max.apply(null, columns.slice(1).map(function (c) {
      return Math.max.apply(null, c);
    })));
    if (chart) { chart.setData(columns); return; }
    chart = new uPlot({
      width: holder.clientWidth - 16, height: 240,
      scales: { x: { time: true } },
      // UTC, as every other time on the pages
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
      series: [{}].concat(SERIES.map(function (s) {
        return { label: s[0], stroke: s[1], width: 1.5 };
      })),
      axes: [{}, { label: "tasks/s" }]
    }, columns, holder);
  }

  function workerCells(w) {
    return [
      [w.hostname, ""], [w.online ? "online" : "offline", w.online ? "online" : "offline"],
      [show(w.pool_size), ""], [show(w.busy), ""], [show(w.free), ""], [show(w.processed), ""],
      [w.loadavg ? w.loadavg.join(" ") : "–", ""],
      [w.heartbeat_age == null ? "–" : w.heartbeat_age + " s", ""]
    ];
  }

  function actionsFor(hostname) {
    // The server-rendered buttons for a placeholder worker, pointed at this one.
    var td = document.createElement("td");
    td.className = "row-actions";
    var template = document.getElementById("worker-actions");
    if (!template) { return td; }
    td.appendChild(template.content.cloneNode(true));
    td.querySelectorAll("button").forEach(function (button) {
      ["hx-post", "hx-confirm"].forEach(function (name) {
        var value = button.getAttribute(name);
        if (value) {
          var host = name === "hx-post" ? encodeURIComponent(hostname) : hostname;
          button.setAttribute(name, value.split("HOSTNAME").join(host));
        }
      });
    });
    return td;
  }

  function updateWorkers(workers) {
    // Rows are updated in place (a button being clicked is never replaced under the pointer).
    var tbody = document.querySelector("#workers tbody");
    if (!tbody) { return; }
    var seen = {};
    workers.forEach(function (w) {
      seen[w.hostname] = true;
      var row = tbody.querySelector('tr[data-worker="' + CSS.escape(w.hostname) + '"]');
      var fresh = !row;
      if (fresh) {
        row = document.createElement("tr");
        row.dataset.worker = w.hostname;
        for (var i = 0; i < 9; i++) { row.appendChild(document.createElement("td")); }
        row.appendChild(actionsFor(w.hostname));
        tbody.appendChild(row);
        if (typeof htmx !== "undefined") { htmx.process(row); }
      }
      var cells = row.children;
      workerCells(w).forEach(function (pair, index) {
        cells[index].textContent = pair[0];
        cells[index].className = pair[1];
      });
      var running = cells[8];
      running.replaceChildren();
      (w.running || []).forEach(function (t) { link(running, prefix + "/tasks/" + t.id, t.name); });
      if (w.handed_back_in !== null && w.handed_back_in !== undefined) {
        var note = document.createElement("span");
        note.className = "handback";
        note.textContent = " back in the queue within " + w.handed_back_in + " s";
        running.appendChild(note);
      }
    });
    tbody.querySelectorAll("tr").forEach(function (row) {
      if (!row.dataset.worker || !seen[row.dataset.worker]) { row.remove(); }
    });
    if (!workers.length) {
      var empty = document.createElement("tr");
      empty.className = "empty";
      cell(empty, "No worker has been heard from yet.").colSpan = 10;
      tbody.appendChild(empty);
    }
  }

  function updateTask(task) {
    if (!task) { return; }
    if (!document.getElementById("task-state")) { window.location.reload(); return; }
    document.querySelectorAll("[data-live-task]").forEach(function (el) {
      var value = task[el.dataset.liveTask];
      el.textContent = value == null || value === "" ? "–" : String(value);
    });
    var state = document.getElementById("task-state");
    if (state) { state.className = "state state-" + String(task.state).toLowerCase(); }
    var timeline = document.getElementById("timeline");
    if (timeline) {
      var items = document.createDocumentFragment();
      (task.timeline || []).forEach(function (step) {
        var li = document.createElement("li");
        var name = document.createElement("span");
        name.className = "step";
        name.textContent = step.step;
        li.appendChild(name);
        var at = step.at ? new Date(step.at * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "";
        li.appendChild(document.createTextNode(" " + at + " " + (step.hostname || "")));
        items.appendChild(li);
      });
      timeline.replaceChildren(items);
    }
  }

  function connect() {
    var live = document.getElementById("live");
    if (!stream || typeof EventSource === "undefined") { live.hidden = true; return; }
    var query = stream === "workers" ? "?workers=1" : stream === "task" ? "?task=" + encodeURIComponent(body.dataset.task) : "";
    var source = new EventSource(prefix + "/api/stream" + query);
    source.addEventListener("open", function () { live.dataset.state = "open"; });
    source.addEventListener("error", function () { live.dataset.state = "closed"; });
    source.addEventListener("snapshot", function (message) {
      var data = JSON.parse(message.data);
      updateOverview(data.overview);
      if (data.workers) { updateWorkers(data.workers); }
      if (data.task) { updateTask(data.task); }
    });
  }

  document.addEventListener("DOMContentLoaded", connect);
})();
