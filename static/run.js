// Run page: draws a run's curves from the WebSocket snapshot, then extends them live.
(function () {
  "use strict";
  const live = window.FitboardLive;
  const run = live.config();
  const initial = JSON.parse(document.getElementById("run-initial").textContent);
  const TERMINAL = live.TERMINAL;
  const classification = run.task === "classification";
  const charts = {
    "chart-loss": {
      title: "Loss",
      traces: [
        // Pale beside the epoch means it smooths, but readable alone (a first epoch has only it).
        {key: "loss", name: "train (batch)", color: "rgba(99,110,250,0.6)", width: 1.2},
        {key: "train_loss", name: "train (epoch)", color: "#636efa", width: 2.5},
        {key: "val_loss", name: "validation", color: "#ef553b", width: 2.5},
      ],
    },
    "chart-metric": classification ? {
      title: "Accuracy",
      traces: [
        {key: "train_acc", name: "train", color: "#636efa", width: 2.5},
        {key: "val_acc", name: "validation", color: "#ef553b", width: 2.5},
      ],
    } : {
      title: "Validation error (target units)",
      traces: [
        {key: "val_rmse", name: "RMSE", color: "#ef553b", width: 2.5},
        {key: "val_mae", name: "MAE", color: "#00cc96", width: 2.5},
      ],
    },
    // Logged every step, so warmup and schedules show their shape as they happen.
    "chart-lr": {
      title: "Learning rate",
      traces: [{key: "lr", name: "learning rate", color: "#ab63fa", width: 2, mode: "lines"}],
      // From zero, so a constant rate reads as a flat line at its value, not at the middle of
      // an arbitrary ±1 range.
      yaxis: {rangemode: "tozero", exponentformat: "e"},
    },
    // The worker machine, sampled every few seconds while the job runs (x: seconds since it
    // started); GPU traces stay empty on a CPU worker.
    "chart-sys": {
      title: "System",
      xtitle: "seconds",
      traces: [
        {key: "sys/cpu_percent", name: "CPU %", color: "#636efa", width: 2, mode: "lines+markers"},
        {key: "sys/ram_percent", name: "RAM %", color: "#00cc96", width: 2, mode: "lines+markers"},
        {key: "sys/gpu_util_percent", name: "GPU util %", color: "#ef553b", width: 2, mode: "lines+markers"},
        {key: "sys/gpu_memory_percent", name: "GPU memory %", color: "#ffa15a", width: 2, mode: "lines+markers"},
      ],
      yaxis: {range: [0, 100]},
    },
  };
  // A run trained elsewhere may log metrics under names of its own: charts for them (place).
  const palette = ["#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3"];
  // MLflow's system metrics, sampled every 10 s and stepped by sample: its percentages replace
  // the System chart's (a worker's, which a script's run has none of), the rest get their own.
  const systemName = (key) => key.replace(/^system\//, "").replace(/_percentage$/, " %").replaceAll("_", " ");
  // A script's own metrics each on a chart of their own (their scales differ by orders of
  // magnitude: a gradient norm beside a FLOP count is a flat line), as many as EXTRA_CHARTS;
  // any more share one last chart.
  const EXTRA_CHARTS = 12;
  // Past MAX_LEGEND_ROWS rows a chart's legend scrolls; the chart grows by the rows it shows, so
  // the plot keeps its height (a script's 28 more metrics squeezed it to a strip 2 px high).
  const LEGEND_ROW = 22, MAX_LEGEND_ROWS = 6;
  // Names with a place: what the charts above draw (the server's external.DRAWN) and the
  // epoch counter, which none does.
  const placed = new Set(run.drawn);
  for (const chart of Object.values(charts)) chart.traces.forEach((t) => placed.add(t.key));
  const section = document.querySelector("section.charts");
  let ownCharts = 0;
  // Highest step drawn per metric: points at or below it are already on the chart.
  const lastStep = {};
  // ``drop``: a test hook, the number of coming points messages to ignore as if never sent.
  const state = {status: initial.status, points: 0, closed: false, seq: null, backfills: 0, drop: 0,
    loaded: false};
  window.fitboardRun = state;

  Object.keys(charts).forEach(plot);
  // A script's run: the names it logged before the page was drawn, then (``addPoints``) any it
  // logs later, each placed as it first arrives, so that a page opened when the run started
  // (the link the mlflow client prints) grows the charts the script's metrics need.
  if (run.external) [...run.system, ...run.system_other, ...run.extra].forEach(place);

  function place(key) {
    if (placed.has(key)) return;
    placed.add(key);
    if (key.startsWith("system/")) {
      const id = key.endsWith("_percentage") ? "chart-sys" : "chart-sys-other";
      if (id === "chart-sys" && charts[id].xtitle !== "sample") {
        // The worker's System chart gives way to the script's samples.
        charts[id] = {title: "System", xtitle: "sample", traces: [], yaxis: {range: [0, 100]}};
        plot(id);
      } else if (!charts[id]) {
        addCard(id, document.getElementById("chart-sys").closest(".card"));
        charts[id] = {title: "System, other units", xtitle: "sample", traces: []};
        plot(id);
      }
      addTrace(id, key, systemName(key));
    } else if (ownCharts < EXTRA_CHARTS) {
      const id = `chart-extra-${ownCharts++}`;
      addCard(id, document.getElementById("chart-extra")?.closest(".card"));
      charts[id] = {title: plotlyText(key), traces: []};
      plot(id);
      addTrace(id, key, key);
    } else {
      if (!charts["chart-extra"]) {
        addCard("chart-extra").id = "chart-extra-card";
        charts["chart-extra"] = {title: "More metrics", traces: []};
        plot("chart-extra");
      }
      addTrace("chart-extra", key, key);
    }
  }

  // A card for chart ``id``, after ``after`` (a card) or else last among the charts.
  function addCard(id, after) {
    const card = document.createElement("div");
    card.className = "card";
    const div = document.createElement("div");
    div.id = id;
    div.className = "chart";
    card.append(div);
    if (after) after.after(card); else section.append(card);
    return card;
  }

  // Lines and markers: a metric logged once is a point, which a line alone does not draw.
  function addTrace(id, key, name) {
    const chart = charts[id];
    const t = {key, name, color: palette[chart.traces.length % palette.length], width: 2,
               mode: "lines+markers"};
    chart.traces.push(t);
    Plotly.addTraces(id, traceData(t));
    fitLegend(id);
  }

  function traceData(t) {
    // A script names its own metrics: names are text, not markup.
    return {x: [], y: [], name: plotlyText(t.name), mode: modeFor(t, 0),
            line: {color: t.color, width: t.width}, marker: {size: 5}};
  }

  // A trace of lines alone (the per-step loss, the learning rate) drew nothing for its first
  // point, a line of no length: until a second point comes it has a marker too (as on the
  // compare page).
  function modeFor(t, count) {
    const mode = t.mode || (t.key === "loss" ? "lines" : "lines+markers");
    return mode === "lines" && count === 1 ? "lines+markers" : mode;
  }
  function fitModes(id) {
    const gd = document.getElementById(id);
    const modes = [], indices = [];
    charts[id].traces.forEach((t, i) => {
      const mode = modeFor(t, gd.data[i].x.length);
      if (gd.data[i].mode !== mode) { modes.push(mode); indices.push(i); }
    });
    if (indices.length) Plotly.restyle(id, {mode: modes}, indices);
  }

  // The legend sits between the title and the plot, so it never covers the x-axis title
  // (below the plot) nor, on a narrow screen, the mode bar (top right); the top margin grows
  // with its rows (a script's many metrics), which would otherwise climb over the title.
  function shownRows(id) {
    return Math.min(MAX_LEGEND_ROWS, legendRows(charts[id].traces, document.getElementById(id).clientWidth));
  }
  function topMargin(id) {
    return 50 + LEGEND_ROW * shownRows(id);
  }
  function fitLegend(id) {
    const gd = document.getElementById(id);
    gd.style.height = "";  // the stylesheet's height, for a chart of one legend row
    const extra = LEGEND_ROW * (shownRows(id) - 1);
    if (extra > 0 && gd.clientHeight) gd.style.height = `${gd.clientHeight + extra}px`;
    Plotly.relayout(id, {"margin.t": topMargin(id)});
    Plotly.Plots.resize(gd);
  }

  function plot(id) {
    const chart = charts[id];
    Plotly.newPlot(id, chart.traces.map(traceData), {
      title: {text: chart.title, x: 0.02, xanchor: "left", y: 0.97, yanchor: "top", yref: "container"},
      margin: {t: topMargin(id), r: 10, b: 44, l: 50},
      xaxis: {title: {text: chart.xtitle || "step"}},
      legend: {orientation: "h", x: 0, xanchor: "left", y: 1.02, yanchor: "bottom",
               maxheight: LEGEND_ROW * MAX_LEGEND_ROWS},
      hovermode: "x unified", ...(chart.yaxis ? {yaxis: chart.yaxis} : {}),
    }, {responsive: true, displaylogo: false});
    fitLegend(id);
    refineOnZoom(id);
  }

  // Rows of a horizontal legend: its entries (a line sample and the name, about 7 px a
  // character at Plotly's 12 px) laid out left to right over the chart's width.
  function legendRows(traces, width) {
    let rows = 1, used = 0;
    for (const t of traces) {
      const entry = 50 + 7 * t.name.length;
      if (used && used + entry > width - 20) { rows += 1; used = 0; }
      used += entry;
    }
    return rows;
  }

  // What an empty chart waits for, said in its middle instead of bare axes.
  const sysChart = (id) => id === "chart-sys";
  function emptyMessage(id, status) {
    // Until the socket's snapshot (or the metrics endpoint) has answered, nothing is known of
    // the points: a finished run said "No points were logged" over its curves while loading.
    if (!state.loaded) return "Loading the curves…";
    if (status === "queued") return "Waiting for a worker: the curves start with the run.";
    if (status === "running") {
      if (sysChart(id)) return "The first sample of the worker's CPU and memory comes within seconds.";
      return id === "chart-loss" || id === "chart-lr"
        ? "The first steps are being computed; points appear as they are sent."
        : "Drawn after the first epoch's validation.";
    }
    if (status === "failed") return "Nothing to draw: the run failed before it logged this.";
    if (status === "cancelled") return "Nothing to draw: the run was cancelled before it logged this.";
    return "No points were logged for this chart.";
  }
  // A script's ended run that logged no learning rate or system metrics has nothing to wait
  // for there: those two cards are left out rather than drawn empty.
  const optional = (id) => id === "chart-lr" || sysChart(id);
  function showEmpty() {
    for (const id of Object.keys(charts)) {
      const gd = document.getElementById(id);
      const empty = !gd.data.some((t) => t.x && t.x.length);
      const leftOut = empty && run.external && optional(id) && TERMINAL.includes(state.status);
      if (gd.parentElement.hidden !== leftOut) {
        gd.parentElement.hidden = leftOut;
        if (!leftOut) Plotly.Plots.resize(gd);
      }
      const text = empty ? emptyMessage(id, state.status) : null;
      if (gd.dataset.empty === (text || "")) continue;
      gd.dataset.empty = text || "";
      Plotly.relayout(id, {
        annotations: text ? [{text, xref: "paper", yref: "paper", x: 0.5, y: 0.5, showarrow: false,
          font: {size: 13, color: "#6b7280"}}] : [],
        "xaxis.visible": !empty, "yaxis.visible": !empty,
      });
    }
  }

  // Every point drawn at overview resolution (the server buckets long histories); a zoom
  // replaces the zoomed range with full-resolution points fetched for it.
  const overview = {};
  function addPoints(points) {
    if (run.external) Object.keys(points).forEach(place);
    for (const [id, chart] of Object.entries(charts)) {
      const xs = [], ys = [], indices = [];
      chart.traces.forEach((t, i) => {
        const incoming = points[t.key];
        if (!incoming) return;
        const x = [], y = [];
        for (const [step, value] of incoming) {
          if (step > (lastStep[t.key] ?? -Infinity)) { x.push(step); y.push(value); lastStep[t.key] = step; }
        }
        if (x.length) {
          const o = overview[t.key] || (overview[t.key] = {x: [], y: []});
          o.x.push(...x); o.y.push(...y);
          xs.push(x); ys.push(y); indices.push(i); state.points += x.length;
        }
      });
      if (indices.length) { Plotly.extendTraces(id, {x: xs, y: ys}, indices); fitModes(id); }
    }
    showEmpty();
  }

  function redraw(id, detail, x0, x1) {
    const chart = charts[id];
    const xs = [], ys = [];
    for (const t of chart.traces) {
      const o = overview[t.key] || {x: [], y: []};
      const d = detail ? detail[t.key] : null;
      if (!d) { xs.push([...o.x]); ys.push([...o.y]); continue; }
      const x = [], y = [];
      for (let i = 0; i < o.x.length && o.x[i] < x0; i++) { x.push(o.x[i]); y.push(o.y[i]); }
      x.push(...d.steps); y.push(...d.values);
      for (let i = 0; i < o.x.length; i++) if (o.x[i] > x1) { x.push(o.x[i]); y.push(o.y[i]); }
      xs.push(x); ys.push(y);
    }
    Plotly.restyle(id, {x: xs, y: ys}, chart.traces.map((_, i) => i));
    fitModes(id);
  }

  function refineOnZoom(id) {
    document.getElementById(id).on("plotly_relayout", (event) => {
      if (event["xaxis.autorange"]) { redraw(id, null); return; }
      // A drag sends "xaxis.range[0]" and "[1]"; Plotly.relayout calls may send "xaxis.range".
      const [x0, x1] = event["xaxis.range"] || [event["xaxis.range[0]"], event["xaxis.range[1]"]];
      if (x0 === undefined) return;
      // The chart's traces when zoomed: a script's run adds some as its names arrive.
      const keys = charts[id].traces.map((t) => t.key).join(",");
      const params = new URLSearchParams({keys, x0: Math.floor(x0), x1: Math.ceil(x1)});
      getMetrics(params).then((data) => {
        redraw(id, data.metrics, x0, x1);
        state.refines = (state.refines || 0) + 1;
        state.zoomPoints = Object.values(data.metrics).reduce((n, m) => n + m.steps.length, 0);
      });
    });
  }

  function getMetrics(params) {
    return fetch(`${run.metrics}?${params}`, {credentials: "same-origin"})
      .then((r) => { if (!r.ok) throw new Error(r.status); return r.json(); });
  }

  function fromColumns(series) {
    const out = {};
    for (const [key, s] of Object.entries(series)) out[key] = s.steps.map((step, i) => [step, s.values[i]]);
    return out;
  }

  function showPlacement(p) {
    if (!p.host) return;
    let where = ` on ${p.host}`;
    if (p.gpus && p.gpus.length) where += ` · GPU ${p.gpus.join(", ")}`;
    if (p.devices > 1) where += ` · ${p.devices} processes (DDP)`;
    document.getElementById("placement-where").textContent = where;
    document.getElementById("placement").hidden = false;
  }

  function showProgress(p) {
    if (!p) return;
    showPlacement(p);
    showVerdict(p.verdict);
    if (p.total_steps) {
      const training = !TERMINAL.includes(state.status);
      // Every live message carries the latest step: while it trains, the epoch shown is the
      // one the step is in (``p.epoch`` counts the epochs completed).
      const epoch = training && p.step ? Math.min(p.epochs, Math.ceil(p.step * p.epochs / p.total_steps)) : p.epoch;
      document.getElementById("progress-bar").style.width = (100 * p.step / p.total_steps).toFixed(1) + "%";
      document.getElementById("progress-text").textContent =
        `epoch ${epoch} / ${p.epochs} · step ${p.step} / ${p.total_steps}` + (p.device ? ` · ${p.device}` : "") +
        (training && p.eta_s != null && p.step < p.total_steps ? ` · about ${duration(p.eta_s)} left` : "") +
        // Set only when running out of memory halved the rows per forward pass.
        (p.micro_batch ? ` · ${p.micro_batch}-row passes after out of memory` : "");
    }
  }

  function duration(seconds) {
    const s = Math.max(1, Math.round(seconds));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  }

  function showVerdict(v) {
    if (!v) return;
    const badge = document.getElementById("verdict-badge");
    badge.textContent = v.kind;
    badge.className = "verdict " + v.kind;
    badge.title = v.headline;
    badge.hidden = false;
    document.getElementById("verdict-headline").textContent = v.headline;
    state.verdict = v.kind;
  }

  // The test split's card, filled when the run that evaluated it ends.
  function showTestMetrics(metrics) {
    const entries = Object.entries(metrics || {});
    document.getElementById("test-metrics").hidden = !entries.length;
    if (!entries.length) return;
    document.getElementById("test-metrics-list").replaceChildren(...entries.flatMap(([k, v]) => {
      const dt = document.createElement("dt"), dd = document.createElement("dd");
      dt.textContent = k;
      dd.dataset.metric = k;
      dd.textContent = typeof v === "number" ? v.toFixed(4) : String(v);
      return [dt, dd];
    }));
  }

  function fmt(v) {
    if (typeof v !== "number") return v;
    return Math.abs(v) >= 100 ? v.toLocaleString("en-US", {maximumFractionDigits: 1}) : v.toFixed(4);
  }

  function showStatus(s) {
    state.status = s.status;
    // A pruned tuning trial ends "cancelled"; its summary says it was the pruner.
    const pruned = s.summary && s.summary.trial && s.summary.trial.state === "pruned";
    live.setBadge(document.getElementById("status-badge"), pruned ? "pruned" : s.status);
    showProgress(s.progress);
    showVerdict(s.verdict);
    const err = document.getElementById("error-text");
    err.textContent = s.error || "";
    err.hidden = !s.error || s.status === "succeeded";
    const done = TERMINAL.includes(s.status);
    const cancel = document.getElementById("cancel-form");  // absent: not this user's to cancel
    if (cancel) cancel.hidden = done;
    const remove = document.getElementById("delete-form");  // absent: not this user's to delete
    if (remove) remove.hidden = !done;
    const compress = document.getElementById("compress-button");  // absent: nothing to compress
    if (compress) compress.hidden = !s.can_compress;
    showTestMetrics((s.summary || {}).test_metrics);
    showEmpty();
    const tags = s.checkpoints || [];
    // Absent on a run trained elsewhere: Fitboard holds no checkpoint of it.
    const best = document.getElementById("download-best"), last = document.getElementById("download-last");
    if (best) best.hidden = !(done && tags.includes("best"));
    if (last) last.hidden = !(done && tags.includes("last"));
    const fineTune = document.getElementById("fine-tune");  // absent: not a training run
    if (fineTune) fineTune.hidden = !(s.status === "succeeded" && tags.includes("best"));
    const summary = s.summary || {};
    const rows = [];
    if (s.best_metric_name) rows.push([`best ${s.best_metric_name}`, fmt(s.best_metric_value) + (summary.best_epoch ? ` (epoch ${summary.best_epoch})` : "")]);
    for (const [k, v] of Object.entries(summary.final_metrics || {})) rows.push([`final ${k}`, fmt(v)]);
    if (s.progress && s.progress.parameters) rows.push(["parameters", s.progress.parameters.toLocaleString()]);
    if (s.progress && s.progress.micro_batch) rows.push(["rows per pass (halved: out of memory)", s.progress.micro_batch]);
    // As text nodes: metric names and values are data, never markup.
    document.getElementById("summary").replaceChildren(...rows.flatMap(([k, v]) => {
      const dt = document.createElement("dt"), dd = document.createElement("dd");
      dt.textContent = k;
      dd.textContent = v;
      return [dt, dd];
    }));
  }

  // Live messages are numbered per run; ``state.seq`` is the newest one whose points are all
  // drawn. A number skipped (a message the server's channel layer dropped) is filled from the
  // database: the points from the lowest of the metrics' last steps on, then the messages held
  // meanwhile.
  let backfilling = false;
  const held = [];
  function onPoints(msg) {
    if (backfilling || (state.seq !== null && msg.seq > state.seq + 1)) {
      held.push(msg);
      if (!backfilling) backfill();
      return;
    }
    addPoints(msg.points);
    showProgress(msg.progress);
    if (state.seq === null || msg.seq > state.seq) state.seq = msg.seq;
  }

  function backfill() {
    backfilling = true;
    state.backfills += 1;
    const params = new URLSearchParams({live: 1});
    // From the lowest of the metrics' last steps: system metrics count seconds, not steps.
    const last = Object.values(lastStep);
    if (last.length) params.set("x0", Math.min(...last));
    getMetrics(params)
      .then((data) => {
        state.loaded = true;
        // A metric first seen now may have points before x0 in the missed messages: fetch
        // those metrics whole (lines are drawn in step order, so before the newer points).
        const fresh = Object.keys(data.metrics).filter((key) => !(key in lastStep));
        if (!params.has("x0") || !fresh.length) { addPoints(fromColumns(data.metrics)); return data; }
        const seen = Object.fromEntries(
          Object.entries(data.metrics).filter(([key]) => key in lastStep));
        addPoints(fromColumns(seen));
        const whole = new URLSearchParams({keys: fresh.join(",")});
        return getMetrics(whole).then((more) => {
          addPoints(fromColumns(more.metrics)); return data;
        });
      })
      .then((data) => {
        if (state.seq === null || data.seq > state.seq) state.seq = data.seq;
        // Never back from an end the status event announced to "running" read before it.
        if (!TERMINAL.includes(state.status)) showStatus(data.run);
        backfilling = false;
        held.splice(0).forEach(onPoints);
      })
      .catch(() => setTimeout(backfill, 1000));
  }

  function onMessage(msg) {
    heardAt = Date.now();
    if (msg.kind === "snapshot") {
      state.loaded = true;
      addPoints(fromColumns(msg.points)); showStatus(msg);
      if (state.seq === null || msg.seq > state.seq) state.seq = msg.seq;
    } else if (msg.kind === "points") {
      if (state.drop > 0) { state.drop -= 1; return; }
      onPoints(msg);
    } else if (msg.kind === "status") {
      showStatus(msg);
      // Its progress holds the number of the run's last points message: one never seen here
      // was dropped.
      const seq = msg.progress && msg.progress.seq;
      if (seq && state.seq !== null && seq > state.seq && !backfilling) backfill();
    }
  }
  function connect() {
    // Reconnect while the run is live; the snapshot fills whatever was missed.
    live.socket(run.socket, {onMessage, reconnect: () => {
      state.closed = TERMINAL.includes(state.status);
      return !state.closed;
    }});
  }
  // A live run that has gone quiet may have had its last message (its end) dropped: ask.
  let heardAt = Date.now();
  const QUIET_MS = 10000, LOAD_FALLBACK_MS = 5000;
  setInterval(() => {
    if (!TERMINAL.includes(state.status) && !backfilling && Date.now() - heardAt > QUIET_MS) {
      heardAt = Date.now();
      backfill();
    }
  }, QUIET_MS / 2);
  showStatus(initial);
  connect();
  // A socket that never answers (a proxy that drops WebSockets) still gets the curves drawn,
  // from the metrics endpoint, instead of "Loading" for good.
  setTimeout(() => { if (!state.loaded && !backfilling) backfill(); }, LOAD_FALLBACK_MS);
})();
