// The live study page: while the study runs, each message on its socket (a trial started,
// ended or finished an epoch) has the study's data read again, and redraws the trials table, the overlaid validation curves (pruned trials cut short, dashed), the best-so-far
// curve, a parallel-coordinates plot and Optuna's parameter importances.
(function () {
  "use strict";
  const live = window.FitboardLive;
  const cfg = live.config();
  const TERMINAL = live.TERMINAL;
  const layout = (title, extra) => Object.assign({
    title: window.plotlyTitle(title), margin: {l: 50, r: 20, t: window.PLOTLY_TITLE_TOP, b: 40},
    showlegend: false,
  }, extra || {});
  const fmt = (v) => (v === null || v === undefined) ? "" :
    (typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : String(v));

  function runUrl(id) { return live.urlFor(cfg.run, id); }

  function drawTable(data) {
    const body = document.querySelector("#trial-table tbody");
    const bestId = data.best_trial ? data.best_trial.experiment_id : null;
    const heads = Array.from(document.querySelectorAll("#trial-table thead th"),
                             (th) => th.textContent.trim());
    body.replaceChildren(...data.trials.map((t) => {
      const tr = document.createElement("tr");
      tr.dataset.id = t.id;
      tr.dataset.state = t.state;
      if (t.id === bestId) tr.className = "best-trial";
      // Built as nodes with text: trial parameters are the user's choices, never markup.
      const link = document.createElement("a");
      link.href = runUrl(Number(t.id));
      link.textContent = t.index;
      const badge = document.createElement("span");
      live.setBadge(badge, t.state, `${t.state}${t.pruned_at ? " @" + t.pruned_at : ""}`);
      const cells = [link]
        .concat(data.params.map((p) => fmt(t.params[p])))
        .concat([badge, fmt(t.value), t.epochs ? `${t.epoch || 0}/${t.epochs}` : "",
                 t.duration !== null ? t.duration.toFixed(1) + " s" : ""]);
      tr.replaceChildren(...cells.map((c, column) => {
        const td = document.createElement("td");
        td.append(c);  // a node, or a string appended as text
        // On a phone the row is a card: each value after the trial's number names its column.
        if (column > 0) td.dataset.label = heads[column] || "";
        return td;
      }));
      return tr;
    }));
  }

  // An empty chart says what will fill it, instead of a blank box or bare axes; ``text`` null
  // clears the note before the chart is drawn.
  function empty(id, text) {
    const gd = document.getElementById(id);
    if (text) {
      Plotly.purge(gd);
      const note = document.createElement("p");
      note.className = "chart-empty";
      note.textContent = text;
      gd.replaceChildren(note);
      return true;
    }
    gd.querySelectorAll(":scope > .chart-empty").forEach((note) => note.remove());
    return false;
  }
  function waiting(data) {
    return data.status === "queued" ? "The study is queued: its trials start when a worker takes it. "
      : TERMINAL.includes(data.status) ? `The study ended (${data.status}) before this was filled. ` : "";
  }

  function drawCurves(data) {
    if (empty("chart-curves", data.trials.some((t) => t.curve.length) ? null
      : `${waiting(data)}Each trial's ${data.objective} per epoch is drawn here after its first epoch.`)) return;
    const traces = data.trials.filter((t) => t.curve.length).map((t) => ({
      x: t.curve.map((p) => p[0]), y: t.curve.map((p) => p[1]), mode: "lines+markers",
      name: `trial ${t.index}`, line: {dash: t.state === "pruned" ? "dot" : "solid"},
      marker: {symbol: t.curve.map((_, i) => (t.state === "pruned" && i === t.curve.length - 1) ? "x" : "circle"),
               size: t.curve.map((_, i) => (t.state === "pruned" && i === t.curve.length - 1) ? 10 : 4)},
      hovertemplate: `trial ${t.index} (${t.state})<br>epoch %{x}: %{y:.4f}<extra></extra>`,
    }));
    const lastEpoch = Math.max(...traces.map((t) => Math.max(...t.x)));
    Plotly.react("chart-curves", traces, layout(`${data.objective} per epoch (pruned: dotted, ×)`,
      {xaxis: window.wholeNumberAxis({title: {text: "epoch"}}, lastEpoch, document.getElementById("chart-curves"))}),
      {responsive: true});
  }

  function drawBest(data) {
    const done = data.trials.filter((t) => t.state === "complete" && t.value !== null);
    if (empty("chart-best", done.length ? null
      : `${waiting(data)}The best ${data.objective} so far is drawn here once a trial completes.`)) return;
    Plotly.react("chart-best", [
      {x: done.map((t) => t.index), y: done.map((t) => t.value), mode: "markers", name: "trial"},
      {x: data.best_so_far.map((p) => p[0]), y: data.best_so_far.map((p) => p[1]),
       mode: "lines", line: {shape: "hv"}, name: "best so far"},
    ], layout(`best ${data.objective} so far (${data.direction})`,
      {xaxis: window.wholeNumberAxis({title: {text: "trial"}}, Math.max(...done.map((t) => t.index)),
        document.getElementById("chart-best"))}),
      {responsive: true});
  }

  function drawParallel(data) {
    const done = data.trials.filter((t) => t.state === "complete" && t.value !== null);
    if (empty("chart-parallel", done.length ? null
      : `${waiting(data)}The parameters of completed trials are drawn here, one line per trial.`)) return;
    const dims = data.params.map((p) => {
      const values = done.map((t) => t.params[p]);
      if (values.every((v) => typeof v === "number")) {
        const log = values.every((v) => v > 0) && Math.max(...values) / Math.min(...values) > 100;
        return {label: log ? `log10 ${p}` : p, values: log ? values.map(Math.log10) : values};
      }
      const levels = [...new Set(values.map(String))];
      return {label: p, values: values.map((v) => levels.indexOf(String(v))),
              tickvals: levels.map((_, i) => i), ticktext: levels.map(window.plotlyText)};
    });
    dims.push({label: data.objective, values: done.map((t) => t.value)});
    Plotly.react("chart-parallel", [{type: "parcoords", dimensions: dims,
      line: {color: done.map((t) => t.value), colorscale: "Viridis", showscale: true}}],
      layout("parameters of completed trials", {margin: {l: 60, r: 60, t: 110, b: 30}}),
      {responsive: true});
  }

  function drawImportance(data) {
    const entries = Object.entries(data.importances || {});
    const note = document.getElementById("importance-note");
    // Said inside the chart's box: below it, the note left an empty box of the chart's height.
    const needs = `${data.importance_min_trials} completed trials with different results`;
    if (empty("chart-importance", entries.length ? null
      : TERMINAL.includes(data.status)
        ? `The study ended (${data.status}) before Optuna could rank its parameters: that takes ${needs}.`
        : `${waiting(data)}Parameter importances appear here once there are ${needs}.`)) {
      note.textContent = "";
      return;
    }
    note.textContent = "Optuna's importance evaluator over the completed trials.";
    entries.sort((a, b) => a[1] - b[1]);
    Plotly.react("chart-importance", [{type: "bar", orientation: "h",
      x: entries.map((e) => e[1]), y: entries.map((e) => e[0])}],
      layout("parameter importance", {margin: {l: 140, r: 20, t: window.PLOTLY_TITLE_TOP, b: 40}}), {responsive: true});
  }

  // Two chosen parameters against each other, each completed trial a dot coloured by its
  // objective (pruned trials as grey crosses): where the good region lies.
  function drawPair(data) {
    const px = document.getElementById("pair-x").value;
    const py = document.getElementById("pair-y").value;
    const axis = (p, values) => {
      const numeric = values.every((v) => typeof v === "number");
      const log = numeric && values.every((v) => v > 0) && Math.max(...values) / Math.min(...values) > 100;
      return {title: {text: p}, type: log ? "log" : (numeric ? "linear" : "category")};
    };
    const done = data.trials.filter((t) => t.state === "complete" && t.value !== null);
    const pruned = data.trials.filter((t) => t.state === "pruned");
    const all = done.concat(pruned);
    if (empty("chart-pair", all.length ? null
      : `${waiting(data)}Completed and pruned trials appear here as points over ${px} × ${py}.`)) return;
    Plotly.react("chart-pair", [
      {x: done.map((t) => t.params[px]), y: done.map((t) => t.params[py]), mode: "markers",
       marker: {size: 11, color: done.map((t) => t.value), colorscale: "Viridis", showscale: true},
       text: done.map((t) => `trial ${t.index}: ${fmt(t.value)}`), hoverinfo: "text"},
      {x: pruned.map((t) => t.params[px]), y: pruned.map((t) => t.params[py]), mode: "markers",
       marker: {symbol: "x", size: 9, color: "#9ca3af"},
       text: pruned.map((t) => `trial ${t.index}: pruned`), hoverinfo: "text"},
    ], layout(`${data.objective} over ${px} × ${py}`, {
      xaxis: axis(px, all.map((t) => t.params[px])), yaxis: axis(py, all.map((t) => t.params[py])),
    }), {responsive: true});
  }

  function drawHead(data) {
    live.setBadge(document.getElementById("status-badge"), data.status);
    const p = data.progress || {};
    const budget = p.budget ? `${p.finished || 0}/${p.budget}` : `${p.finished || 0}`;
    document.getElementById("progress-text").textContent =
      `${budget} trials finished, ${p.in_flight || 0} running or queued`;
    if (p.budget) document.getElementById("progress-bar").style.width =
      `${Math.min(100, 100 * (p.finished || 0) / p.budget)}%`;
    const err = document.getElementById("error-text");
    err.textContent = data.error; err.hidden = !data.error;
    const cancel = document.getElementById("cancel-form");  // absent: not this user's to cancel
    if (cancel) cancel.hidden = TERMINAL.includes(data.status);
    const remove = document.getElementById("delete-form");  // absent with the cancel form
    if (remove) remove.hidden = !TERMINAL.includes(data.status);
    const done = data.trials.filter((t) => t.state === "complete" && t.value !== null);
    const pick = data.direction === "maximize" ? Math.max : Math.min;
    const best = done.length ? done.find((t) => t.value === pick(...done.map((d) => d.value))) : null;
    const promote = document.getElementById("promote-button");
    promote.disabled = !best;
    promote.title = best ? `Train trial ${best.index}'s parameters as a run of its own`
      : "Promote waits for the first completed trial";
    document.getElementById("best-text").textContent = best ?
      `Best: trial ${best.index}, ${data.objective} ${fmt(best.value)} with ` +
      data.params.map((k) => `${k} = ${fmt(best.params[k])}`).join(", ")
      : "No trial has completed yet: Promote waits for the first.";
  }

  function draw(data) {
    drawHead(data); drawTable(data); drawCurves(data); drawBest(data);
    drawParallel(data); drawImportance(data); drawPair(data);
    state.data = data;
  }
  const state = {data: null};
  for (const id of ["pair-x", "pair-y"]) {
    document.getElementById(id).addEventListener("change", () => state.data && drawPair(state.data));
  }

  // Messages only say what changed; the data is read once for however many arrive while a
  // read is under way (a study of many trials sends many).
  let reading = false, again = false;
  async function refresh() {
    if (reading) { again = true; return; }
    reading = true;
    try {
      const response = await fetch(cfg.data, {headers: {Accept: "application/json"}});
      if (response.ok) { draw(await response.json()); state.reads = (state.reads || 0) + 1; }
    } catch (e) { /* the next message, or reconnection, reads again */ }
    reading = false;
    if (again) { again = false; refresh(); }
    else if (TERMINAL.includes(state.data.status) && socket) { socket.close(); state.closed = true; }
  }

  const initial = JSON.parse(document.getElementById("study-initial").textContent);
  draw(initial);
  // Reading on every (re)connection catches up with whatever changed while it was down.
  const socket = TERMINAL.includes(initial.status) ? null : live.socket(cfg.socket, {
    onMessage: refresh, onOpen: refresh,
    reconnect: () => !TERMINAL.includes(state.data.status),
  });
  window.fitboardStudy = state;
})();
