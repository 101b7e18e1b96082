// opsmith console: the few changes a person makes go to the REST API with the session cookie
// and the CSRF header; the run monitor follows a run over EventSource. No framework, no build.
(function () {
  "use strict";

  var LOG_LIMIT = 500; // lines kept in the DOM; older ones are dropped and can be paged back in
  var PAGE = 200; // events fetched per "show earlier"
  var REFRESH_MS = 300; // at most one progress refresh this often while events pour in
  var FRAME_MS = 100; // at most one log redraw this often
  var SETTLE_MS = 10000; // after a run control is accepted, its buttons wait this long at most for the run to move

  function csrf() {
    var found = document.cookie.split("; ").filter(function (c) { return c.indexOf("opsmith_csrf=") === 0; })[0];
    return found ? decodeURIComponent(found.slice("opsmith_csrf=".length)) : "";
  }

  // One call of the API: {ok, status, body}; a problem's body has detail and hint.
  function api(method, path, body) {
    var options = { method: method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (method !== "GET") {
      options.headers["X-CSRF-Token"] = csrf();
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body || {});
    }
    return fetch(path, options).then(function (response) {
      var type = response.headers.get("content-type") || "";
      var parsed = type.indexOf("json") >= 0 ? response.json() : Promise.resolve(null);
      return parsed.then(function (data) {
        if (data === null && !response.ok) {
          data = { detail: "the server answered " + response.status, hint: "reload the page and try again" };
        }
        return { ok: response.ok, status: response.status, body: data };
      });
    }, function () {
      return { ok: false, status: 0, body: { detail: "the server could not be reached", hint: "check that opsmith serve runs, then try again" } };
    });
  }

  // The run monitor's explanation, as the server renders it: {ok, html} (empty: nothing to explain)
  // or {ok: false, body: problem}. POST has the plan's read-only tools read again, which calls and
  // audits them: it carries the CSRF header as every change does.
  function analysisOf(runId, method) {
    var options = { method: method, credentials: "same-origin", headers: { Accept: "text/html" } };
    if (method !== "GET") { options.headers["X-CSRF-Token"] = csrf(); }
    return fetch("/runs/" + encodeURIComponent(runId) + "/analysis", options).then(function (response) {
      var type = response.headers.get("content-type") || "";
      if (response.status === 204) { return { ok: true, html: "" }; }
      if (response.ok && type.indexOf("html") >= 0) {
        return response.text().then(function (html) { return { ok: true, html: html }; });
      }
      var parsed = type.indexOf("json") >= 0 ? response.json() : Promise.resolve(null);
      return parsed.then(function (data) {
        return { ok: false, body: data || { detail: "the server answered " + response.status, hint: "reload the page and try again" } };
      });
    }, function () {
      return { ok: false, body: { detail: "the server could not be reached", hint: "check that opsmith serve runs, then try again" } };
    });
  }

  function showProblem(id, problem) {
    var box = document.getElementById(id);
    if (!box) { return; }
    box.querySelector(".detail").textContent = (problem && problem.detail) || "that did not work";
    box.querySelector(".hint").textContent = (problem && problem.hint) || "";
    box.hidden = false;
  }

  function hideProblem(id) {
    var box = document.getElementById(id);
    if (box) { box.hidden = true; }
  }

  function setText(id, text) {
    var el = document.getElementById(id);
    if (el && el.textContent !== text) { el.textContent = text; }
  }

  function statusBadge(value) {
    var span = document.createElement("span");
    span.className = "status status-" + value;
    span.dataset.status = value;
    span.textContent = value.replace(/_/g, " ");
    return span;
  }

  function setStatus(cell, value) {
    if (!cell) { return; }
    var current = cell.querySelector(".status");
    if (value === "" || value === null || value === undefined) {
      if (current) { cell.textContent = ""; }
      return;
    }
    if (current && current.dataset.status === value) { return; }
    cell.textContent = "";
    cell.appendChild(statusBadge(value));
  }

  // -- every page: log out -----------------------------------------------------------------

  function initLogout() {
    var form = document.querySelector("form[data-logout]");
    if (!form) { return; }
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      fetch("/logout", { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrf() } })
        .then(function (answer) {
          // Refused (no CSRF cookie any more): the reload gives this page a fresh one.
          if (answer.ok) { window.location.assign("/login"); } else { window.location.reload(); }
        });
    });
  }

  // -- dashboard: the request box ----------------------------------------------------------

  function initDashboard() {
    var form = document.getElementById("request-form");
    var text = document.getElementById("request");
    var send = document.getElementById("send");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var request = text.value.trim();
      if (!request) { return; }
      hideProblem("request-problem");
      send.disabled = true;
      setText("request-state", "planning…");
      api("POST", "/api/v1/plans", { request: request }).then(function (answer) {
        if (answer.ok && answer.body && answer.body.id) {
          setText("request-state", "planned: opening it…");
          window.location.assign("/plans/" + encodeURIComponent(answer.body.id));
          return;
        }
        send.disabled = false;
        setText("request-state", "");
        showProblem("request-problem", answer.body);
      });
    });
    text.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { form.requestSubmit(); }
    });
  }

  // -- plan: approve, reject, cancel, run --------------------------------------------------

  function initPlan() {
    var body = document.body;
    var planId = body.dataset.planId;
    var seenHash = body.dataset.planHash; // the hash this page shows: the pin of an approval
    var base = "/api/v1/plans/" + encodeURIComponent(planId);
    var comment = document.getElementById("comment");
    var buttons = document.querySelectorAll("#plan-actions button[data-action]");

    function busy(on) {
      buttons.forEach(function (b) { b.disabled = on; });
    }

    function act(action) {
      var note = comment ? comment.value : "";
      if (action === "approve") { return api("POST", base + "/approve", { hash: seenHash, comment: note }); }
      if (action === "reject") { return api("POST", base + "/reject", { comment: note }); }
      if (action === "cancel") { return api("POST", base + "/cancel"); }
      return api("POST", base + "/runs");
    }

    var CONFIRM = {
      "reject": "Reject this plan? It can no longer be approved or run.",
      "cancel": "Cancel this plan? It can no longer be approved or run."
    };

    buttons.forEach(function (button) {
      button.addEventListener("click", function () {
        var action = button.dataset.action;
        if (CONFIRM[action] && !window.confirm(CONFIRM[action])) { return; }
        hideProblem("action-problem");
        busy(true);
        setText("action-state", action === "run" ? "starting…" : "sending…");
        act(action).then(function (answer) {
          if (!answer.ok) {
            busy(false);
            setText("action-state", "");
            showProblem("action-problem", answer.body);
            return;
          }
          if (action === "run" && answer.body && answer.body.run_id) {
            window.location.assign("/runs/" + encodeURIComponent(answer.body.run_id));
            return;
          }
          window.location.reload();
        });
      });
    });
  }

  // -- run monitor -------------------------------------------------------------------------

  var STEP_STATUS = {
    "step.started": "running",
    "step.succeeded": "succeeded",
    "step.failed": "failed",
    "step.denied": "failed",
    "step.retrying": "retry_wait",
    "step.skipped": "skipped"
  };

  function logLine(event) {
    var li = document.createElement("li");
    li.dataset.seq = String(event.seq);
    li.className = "ev ev-" + String(event.type).replace(/\./g, "-");
    var parts = [["t", String(event.at || "").slice(11, 19)], ["ty", event.type]];
    if (event.step_id) { parts.push(["sp", "[" + event.step_id + "]"]); }
    parts.push(["m", String(event.message || "").slice(0, 500)]);
    parts.forEach(function (part, index) {
      if (index > 0) { li.appendChild(document.createTextNode(" ")); }
      var span = document.createElement("span");
      span.className = part[0];
      span.textContent = part[1];
      li.appendChild(span);
    });
    return li;
  }

  // The run controls: each posts to the API; which are offered is the server's to say.
  var RUN_CALLS = {
    "continue": { path: "/continue", sending: "continuing…", done: "continued" },
    "resume": { path: "/resume", sending: "resuming…", done: "resumed" },
    "pause": { path: "/pause", sending: "pausing…", done: "paused" },
    "cancel": {
      path: "/cancel", body: { rollback: false }, sending: "cancelling…", done: "cancelled",
      confirm: "Cancel this run? The steps not yet started will not run; what ran stays as it is."
    },
    "rollback": {
      path: "/rollback", sending: "rolling back…", done: "rolling back",
      confirm: "Roll back this run? Every step that changed something is undone, newest first."
    }
  };

  function initRun() {
    var body = document.body;
    var runId = body.dataset.runId;
    var log = document.getElementById("log");
    var earlier = document.getElementById("earlier");
    var firstSeq = Number(body.dataset.firstSeq);
    var lastSeq = Number(body.dataset.lastSeq);
    var limit = LOG_LIMIT;
    var queue = []; // events not yet drawn, oldest first
    var stepChanges = {}; // step id -> status, since the last frame
    var undoChanges = {};
    var hostCounts = {}; // step id -> the latest host counts of a step on many hosts
    var scheduled = false;
    var lastFlush = 0;
    var source = null;
    var refreshing = false;
    var refreshAgain = false;
    var lastRefresh = 0;
    var finished = body.dataset.final === "true";
    var stopAt = null; // the last event of a run that has ended
    var controls = document.getElementById("run-actions");
    var controlButtons = controls.querySelectorAll("button[data-run-action]");
    var shown = document.querySelector("#run-status .status");
    var runStatus = shown ? shown.dataset.status : "";
    var serverSeq = lastSeq; // the run's last event, as the server last said
    var settling = null; // a control the API accepted: {from: status, seq, until} until the run moves
    var analysisSlot = document.getElementById("analysis-slot");

    function row(stepId) {
      return document.querySelector('#steps tr[data-step="' + CSS.escape(stepId) + '"]');
    }

    function schedule() {
      if (scheduled) { return; }
      scheduled = true;
      // At most one redraw per FRAME_MS: under a flood of events, a few larger batches cost far
      // less layout than one small batch every frame, and still read as live. A hidden tab gets
      // no animation frames; the timer makes sure the queue still drains there.
      var wait = Math.max(0, lastFlush + FRAME_MS - Date.now());
      setTimeout(function () {
        var fallback = setTimeout(flush, 250);
        requestAnimationFrame(function () { clearTimeout(fallback); flush(); });
      }, wait);
    }

    function flush() {
      if (!scheduled) { return; }
      scheduled = false;
      lastFlush = Date.now();
      if (queue.length) {
        // Lines that would be dropped at once are never built.
        var drawn = queue.length > limit ? queue.slice(queue.length - limit) : queue;
        queue = [];
        var stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 24;
        var fragment = document.createDocumentFragment();
        drawn.forEach(function (event) { fragment.appendChild(logLine(event)); });
        log.appendChild(fragment);
        var extra = log.childElementCount - limit;
        while (extra > 0) {
          log.firstElementChild.remove();
          extra -= 1;
        }
        if (log.firstElementChild) {
          firstSeq = Number(log.firstElementChild.dataset.seq);
          earlier.hidden = firstSeq <= 1;
        }
        if (stick) { log.scrollTop = log.scrollHeight; }
      }
      Object.keys(stepChanges).forEach(function (stepId) {
        var tr = row(stepId);
        if (tr) { setStatus(tr.querySelector(".st"), stepChanges[stepId]); }
      });
      Object.keys(hostCounts).forEach(function (stepId) {
        var tr = row(stepId);
        var line = tr && tr.querySelector(".hosts");
        if (!line) { return; }
        var c = hostCounts[stepId];
        line.textContent = "done on " + (c.completed - c.failed) + " of " + c.total + " hosts, " + c.failed +
          " failed" + (c.pending ? ", " + c.pending + " pending" : "") + (c.host ? " (last: " + c.host + ")" : "");
        line.hidden = false;
      });
      hostCounts = {};
      Object.keys(undoChanges).forEach(function (stepId) {
        var tr = row(stepId);
        if (tr) { setStatus(tr.querySelector(".undo"), undoChanges[stepId]); }
        var item = document.querySelector('#undo-list li[data-undo="' + CSS.escape(stepId) + '"]');
        if (item) {
          setStatus(item.querySelector(".undo-state"), undoChanges[stepId]);
          item.hidden = false;
        }
        document.getElementById("rollback").hidden = false;
      });
      stepChanges = {};
      undoChanges = {};
    }

    function receive(event) {
      if (event.seq <= lastSeq) { return; } // already shown: a reconnect replays nothing twice
      lastSeq = event.seq;
      queue.push(event);
      if (queue.length > limit * 4) { queue = queue.slice(queue.length - limit); }
      if (event.step_id && STEP_STATUS[event.type]) { stepChanges[event.step_id] = STEP_STATUS[event.type]; }
      if (event.type === "rollback.calling" && event.step_id) { undoChanges[event.step_id] = "calling"; }
      if (event.type === "step.progress" && event.step_id && event.data) {
        hostCounts[event.step_id] = {
          total: Number(event.data.total) || 0, completed: Number(event.data.completed) || 0,
          failed: Number(event.data.failed) || 0, pending: Number(event.data.pending) || 0,
          host: String(event.data.host || "")
        };
      }
      if (event.type === "rollback.action" && event.step_id) {
        undoChanges[event.step_id] = event.data && event.data.ok === false ? "failed" : "done";
      }
      schedule();
      if (stopAt !== null && lastSeq >= stopAt) { stop("finished"); return; }
      if (event.type.indexOf("step.") === 0 || event.type.indexOf("run.") === 0 ||
          event.type.indexOf("rollback.") === 0 || event.type.indexOf("gate.") === 0) {
        refresh();
      }
    }

    // The server's figures (step count, ETA, statuses, undo) are the truth; events only hurry them.
    // A step on many hosts: the server's counts and each host that finished.
    function showHosts(tr, hosts) {
      var line = tr.querySelector(".hosts");
      if (line.textContent !== hosts.text) { line.textContent = hosts.text; }
      line.hidden = false;
      var details = tr.querySelector(".host-rows");
      var body = details.querySelector("tbody");
      var fragment = document.createDocumentFragment();
      hosts.rows.forEach(function (h) {
        var item = document.createElement("tr");
        item.dataset.host = h.host;
        [h.host, h.ok ? "ok" : "failed", h.why].forEach(function (text) {
          var cell = document.createElement("td");
          cell.textContent = text;
          item.appendChild(cell);
        });
        fragment.appendChild(item);
      });
      body.replaceChildren(fragment);
      var more = details.querySelector(".more-hosts");
      more.textContent = "and " + hosts.more + " more";
      more.hidden = !hosts.more;
      details.hidden = !hosts.rows.length;
    }

    function refresh() {
      if (refreshing) { refreshAgain = true; return; }
      var wait = Math.max(0, lastRefresh + REFRESH_MS - Date.now());
      refreshing = true;
      setTimeout(function () {
        lastRefresh = Date.now();
        api("GET", "/runs/" + encodeURIComponent(runId) + "/progress").then(function (answer) {
          refreshing = false;
          if (answer.ok && answer.body) { apply(answer.body); }
          if (refreshAgain) { refreshAgain = false; refresh(); }
        });
      }, wait);
    }

    function apply(state) {
      setText("step-text", state.step_text);
      var bar = document.getElementById("step-bar");
      if (bar && Number(bar.value) !== state.percent) { bar.value = state.percent; bar.textContent = state.percent + "%"; }
      setText("eta", state.eta);
      setText("next", state.next);
      var failure = document.getElementById("failure");
      failure.textContent = state.failure;
      failure.hidden = !state.failure;
      setStatus(document.getElementById("run-status"), state.status);
      var undoList = document.getElementById("undo-list");
      state.steps.forEach(function (step) {
        var tr = row(step.id);
        if (!tr) { return; }
        setStatus(tr.querySelector(".st"), step.status);
        setStatus(tr.querySelector(".undo"), step.undo);
        var cells = { ".att": String(step.attempts), ".dur": step.duration };
        Object.keys(cells).forEach(function (selector) {
          var cell = tr.querySelector(selector);
          if (cell.textContent !== cells[selector]) { cell.textContent = cells[selector]; }
        });
        var error = tr.querySelector(".step-error");
        if (error.textContent !== step.error) { error.textContent = step.error; }
        error.hidden = !step.error;
        tr.querySelector(".decide").hidden = !step.decide;
        if (step.hosts) {
          // Counts from events not yet drawn are no newer than these: a later frame must not
          // write them over the server's figures (newer events bring their own refresh).
          delete hostCounts[step.id];
          showHosts(tr, step.hosts);
        }
        var item = undoList.querySelector('li[data-undo="' + CSS.escape(step.id) + '"]');
        if (item) {
          setStatus(item.querySelector(".undo-state"), step.undo);
          item.hidden = !step.undo;
        }
      });
      document.getElementById("rollback").hidden = !state.rolling_back;
      runStatus = state.status;
      serverSeq = state.last_seq;
      offer(state);
      if (state.final && analysisSlot.dataset.loaded !== "true") {
        // A run that ended while followed: its explanation, if it failed (the server decides).
        analysisSlot.dataset.loaded = "true";
        analysisOf(runId, "GET").then(function (answer) {
          if (answer.ok && answer.html) { placeAnalysis(answer.html, false); }
        });
      }
      if (state.final) {
        // The stream may still carry the last events: stop once they are in.
        stopAt = state.last_seq;
        if (lastSeq >= stopAt) { stop("finished"); }
      }
    }

    // The buttons the server offers now. Right after a control was accepted the run may not have
    // moved yet: its buttons stay disabled until it has (or SETTLE_MS), so nothing is sent twice.
    function offer(state) {
      if (settling && !state.final && state.status === settling.from && state.last_seq <= settling.seq &&
          Date.now() < settling.until) {
        refresh();
        return;
      }
      settling = null;
      if (state.final) { setText("run-action-state", ""); } // the status says how it ended
      var any = false;
      controlButtons.forEach(function (button) {
        var on = Boolean(state.actions && state.actions[button.dataset.runAction]);
        button.hidden = !on;
        button.disabled = false;
        any = any || on;
      });
      controls.hidden = !any && !document.getElementById("run-action-state").textContent;
    }

    controlButtons.forEach(function (button) {
      button.addEventListener("click", function () {
        var call = RUN_CALLS[button.dataset.runAction];
        if (!call) { return; }
        // What cannot be taken back is asked once more: a stray click must not stop a rollout.
        if (call.confirm && !window.confirm(call.confirm)) { return; }
        hideProblem("run-problem");
        controlButtons.forEach(function (b) { b.disabled = true; });
        setText("run-action-state", call.sending);
        var from = runStatus;
        var seq = serverSeq;
        api("POST", "/api/v1/runs/" + encodeURIComponent(runId) + call.path, call.body).then(function (answer) {
          if (!answer.ok) {
            setText("run-action-state", "");
            showProblem("run-problem", answer.body);
            controlButtons.forEach(function (b) { b.disabled = false; });
            refresh(); // what may be done may have changed meanwhile: the server says
            return;
          }
          setText("run-action-state", (answer.body && answer.body.result) || call.done);
          settling = { from: from, seq: seq, until: Date.now() + SETTLE_MS };
          refresh();
        });
      });
    });

    // A step a crash interrupted mid-call, not idempotent: its person decides, one step at a time.
    var CHOICES = {
      "retry": "Run this step again? It may have done its work already, and would do it twice.",
      "skip": "Count this step as done? Only if you checked that its work was done."
    };
    document.getElementById("steps").addEventListener("click", function (event) {
      var button = event.target.closest("button[data-choice]");
      if (!button) { return; }
      var choice = button.dataset.choice;
      var stepId = button.closest("tr").dataset.step;
      if (!window.confirm(CHOICES[choice] + " (" + stepId + ")")) { return; }
      hideProblem("run-problem");
      button.closest(".decide").querySelectorAll("button").forEach(function (b) { b.disabled = true; });
      setText("run-action-state", "resuming…");
      var body = { choice: choice, step: stepId };
      api("POST", "/api/v1/runs/" + encodeURIComponent(runId) + "/resume", body).then(function (answer) {
        button.closest(".decide").querySelectorAll("button").forEach(function (b) { b.disabled = false; });
        if (!answer.ok) {
          setText("run-action-state", "");
          showProblem("run-problem", answer.body);
        } else {
          setText("run-action-state", (answer.body && answer.body.result) || "resumed");
        }
        refresh();
      });
    });

    function placeAnalysis(html, focus) {
      analysisSlot.innerHTML = html; // rendered and escaped by the server, like the page itself
      analysisSlot.dataset.loaded = "true";
      var title = document.getElementById("analysis-title");
      if (focus && title) { title.focus(); } // the keyboard goes on from the new explanation
    }

    analysisSlot.addEventListener("click", function (event) {
      var button = event.target.closest("button[data-analysis-fetch]");
      if (!button) { return; }
      button.disabled = true;
      hideProblem("analysis-problem");
      setText("analysis-state", "reading the logs…");
      analysisOf(runId, "POST").then(function (answer) {
        if (answer.ok && answer.html) { placeAnalysis(answer.html, true); return; }
        button.disabled = false;
        setText("analysis-state", "");
        showProblem("analysis-problem", answer.ok ? { detail: "this run has nothing to explain" } : answer.body);
      });
    });

    function stop(said) {
      finished = true;
      setText("live-state", said);
      if (source) { source.close(); source = null; }
    }

    function follow() {
      var url = "/api/v1/runs/" + encodeURIComponent(runId) + "/events?after=" + lastSeq;
      source = new EventSource(url);
      var handler = function (message) {
        var event;
        try { event = JSON.parse(message.data); } catch (ignored) { return; }
        receive(event);
      };
      (body.dataset.eventTypes || "").split(" ").forEach(function (type) {
        if (type) { source.addEventListener(type, handler); }
      });
      source.addEventListener("open", function () { if (!finished) { setText("live-state", "following"); } });
      // The browser reconnects by itself with Last-Event-ID; "dropped" is the server saying we fell
      // behind, and the reconnect picks up from the last id we saw.
      source.addEventListener("error", function () { if (!finished) { setText("live-state", "reconnecting…"); } });
      source.addEventListener("dropped", function () { setText("live-state", "catching up…"); });
    }

    earlier.addEventListener("click", function () {
      var before = firstSeq;
      var count = Math.min(PAGE, before - 1);
      if (count <= 0) { earlier.hidden = true; return; }
      earlier.disabled = true;
      var path = "/api/v1/runs/" + encodeURIComponent(runId) + "/events?after=" + (before - 1 - count) + "&limit=" + count;
      api("GET", path).then(function (answer) {
        earlier.disabled = false;
        if (!answer.ok || !answer.body) { return; }
        var older = answer.body.items.filter(function (e) { return e.seq < before; });
        if (!older.length) { earlier.hidden = true; return; }
        var fragment = document.createDocumentFragment();
        older.forEach(function (event) { fragment.appendChild(logLine(event)); });
        var height = log.scrollHeight;
        log.insertBefore(fragment, log.firstChild);
        log.scrollTop += log.scrollHeight - height; // the lines read before stay where they were
        limit += older.length; // asked for: kept until the page is left
        firstSeq = older[0].seq;
        earlier.hidden = firstSeq <= 1;
      });
    });

    log.scrollTop = log.scrollHeight;
    if (!finished) {
      follow();
      refresh();
    }
  }

  var PAGES = { dashboard: initDashboard, plan: initPlan, run: initRun };

  function start() {
    initLogout();
    var init = PAGES[document.body.dataset.page];
    if (init) { init(); }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
