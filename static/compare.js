// Compare page: one metric of every run overlaid, smoothed (EMA, as TensorBoard does) and
// refined on zoom; runs still training keep extending over their own WebSocket.
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("compare-config").textContent);
  const TERMINAL = ["succeeded", "failed", "cancelled"];
  const COLORS = ["#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692",
    "#b6e880", "#ff97ff", "#fecb52", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#222a2a"];
  const chart = "compare-chart";
  const LEGEND_CHARS = 60;  // a run's name in the legend, at most (a long one ran off the chart)
  const controls = {
    metric: document.getElementById("metric"),
    axis: document.getElementById("x-axis"),
    smoothing: document.getElementById("smoothing"),
    logY: document.getElementById("log-y"),
  };
  // Per run: the overview (whole range, bucketed) and what is drawn (overview + zoomed detail).
  const runs = config.runs.map((r, i) => ({...r, color: COLORS[i % COLORS.length],
    overview: empty(), shown: empty(), lastStep: -Infinity, progress: null}));
  const state = {traces: 0, points: 0, refines: 0, zoom: null, smoothing: 0, loaded: false,
    messages: 0};
  window.fitboardCompare = state;
  let generation = 0; // answers to an older request (metric or axis since changed) are dropped
  let relayoutBound = false;

  document.querySelectorAll("[data-swatch]").forEach((el) => {
    el.style.background = COLORS[Number(el.dataset.swatch) % COLORS.length];
  });
  document.getElementById("only-diff").addEventListener("change", (e) => {
    document.getElementById("diff-table").classList.toggle("only-diff", e.target.checked);
  });

  function empty() { return {steps: [], x: [], y: []}; }

  function query(extra) {
    const params = new URLSearchParams({ids: config.ids.join(","), key: controls.metric.value,
      x: controls.axis.value, ...extra});
    return fetch(`/compare/data/?${params}`, {credentials: "same-origin"}).then((r) => r.json());
  }

  // Own copies of the columns: live points are pushed into the overview and the drawn data.
  function columns(trace) {
    return {steps: [...trace.steps], x: [...(trace.x || trace.steps)], y: [...trace.values]};
  }

  function copy(s) { return {steps: [...s.steps], x: [...s.x], y: [...s.y]}; }

  // TensorBoard's smoothing: an exponential moving average, debiased so the first points are
  // not pulled towards zero. Gaps (null) are carried over, not averaged.
  function smooth(values, weight) {
    if (!weight) return values;
    let last = 0, count = 0;
    return values.map((v) => {
      if (v === null || !isFinite(v)) return v;
      last = last * weight + (1 - weight) * v;
      count += 1;
      return last / (1 - Math.pow(weight, count));
    });
  }

  // The overview outside [x0, x1] and the detail inside it, in x order.
  function merge(overview, detail, x0, x1) {
    const out = empty();
    const push = (s, i) => { out.steps.push(s.steps[i]); out.x.push(s.x[i]); out.y.push(s.y[i]); };
    for (let i = 0; i < overview.x.length && overview.x[i] < x0; i++) push(overview, i);
    for (let i = 0; i < detail.x.length; i++) push(detail, i);
    for (let i = 0; i < overview.x.length; i++) if (overview.x[i] > x1) push(overview, i);
    return out;
  }

  // The legend sits in the bottom margin, under the x-axis title, which that margin grows to
  // hold: placed at a share of the plot's height below it, 14 runs' legend on a phone (the
  // plot then short) ran over the title. Past half the chart it scrolls, as Plotly's does.
  const AXIS_ROOM = 52;  // px under the plot: tick labels and the x-axis title
  function legendBox(entries) {
    const box = document.getElementById(chart);
    let rows = 1, used = 0;
    for (const t of entries) {  // a line sample and the name, about 7 px a character
      const entry = 50 + 7 * Array.from(t.name).length;
      if (used && used + entry > box.clientWidth - 20) { rows += 1; used = 0; }
      used += entry;
    }
    const height = Math.min(22 * rows + 8, Math.max(60, box.clientHeight / 2 - AXIS_ROOM));
    return {height, margin: AXIS_ROOM + height};
  }

  function draw() {
    const weight = Number(controls.smoothing.value);
    const traces = [];
    for (const run of runs) {
      // Plotly's legend neither wraps nor clips: a long name is cut (the tables show it whole).
      const chars = Array.from(run.name);
      const short = chars.length > LEGEND_CHARS ? `${chars.slice(0, LEGEND_CHARS - 1).join("")}…` : run.name;
      const name = plotlyText(`${short} #${run.id}`);
      if (weight) {
        traces.push({x: run.shown.x, y: run.shown.y, mode: "lines", line: {color: run.color, width: 1},
          opacity: 0.25, hoverinfo: "skip", showlegend: false, legendgroup: name});
      }
      // A run of one point (an epoch's validation) is a line of no length: a marker shows it.
      traces.push({x: run.shown.x, y: smooth(run.shown.y, weight), name,
        mode: run.shown.x.length === 1 ? "lines+markers" : "lines",
        line: {color: run.color, width: 2}, legendgroup: name});
    }
    const legend = legendBox(traces.filter((t) => t.showlegend !== false));
    const layout = {
      margin: {t: 20, r: 10, b: legend.margin, l: 60}, hovermode: "x unified",
      xaxis: {title: {text: {step: "step", epoch: "epoch", time: "seconds since start"}[controls.axis.value]}},
      yaxis: {title: {text: plotlyText(controls.metric.value)}, type: controls.logY.checked ? "log" : "linear"},
      legend: {orientation: "h", x: 0, xanchor: "left", yref: "container", y: 0, yanchor: "bottom",
        maxheight: legend.height}, uirevision: `${controls.metric.value}/${controls.axis.value}`,
    };
    if (state.zoom) { layout.xaxis.range = state.zoom; layout.xaxis.autorange = false; }
    Plotly.react(chart, traces, layout, {responsive: true, displaylogo: false});
    if (!relayoutBound) {  // the div has Plotly's .on() only once something was drawn
      document.getElementById(chart).on("plotly_relayout", onRelayout);
      relayoutBound = true;
    }
    state.traces = runs.length;
    state.points = runs.reduce((n, r) => n + r.shown.x.length, 0);
    state.smoothing = weight;
  }

  // Live points that arrive while a load is in flight are kept and applied again on top of its
  // answer, so a point logged after the server read the history is not lost.
  function load() {
    const mine = ++generation;
    state.zoom = null;
    state.loaded = false;
    runs.forEach((run) => { run.pending = []; });
    return query({}).then((data) => {
      if (mine !== generation) return;
      data.runs.forEach((trace, i) => {
        const run = runs[i];
        run.overview = columns(trace);
        run.shown = copy(run.overview);
        run.lastStep = trace.steps.length ? trace.steps[trace.steps.length - 1] : -Infinity;
        for (const points of run.pending) extend(run, points[controls.metric.value]);
        run.pending = null;
      });
      note(data.runs);
      draw();
      state.loaded = true;
    });
  }

  function refine(x0, x1) {
    const mine = ++generation;
    return query({x0, x1}).then((data) => {
      if (mine !== generation) return;
      data.runs.forEach((trace, i) => {
        runs[i].shown = merge(runs[i].overview, columns(trace), x0, x1);
      });
      state.zoom = [x0, x1];
      state.refines += 1;
      note(data.runs);
      draw();
    });
  }

  function note(traces) {
    const total = traces.reduce((n, t) => n + t.total, 0);
    const shown = traces.reduce((n, t) => n + t.steps.length, 0);
    document.getElementById("chart-note").textContent = shown < total
      ? `${shown.toLocaleString()} of ${total.toLocaleString()} points shown (minimum and maximum of each bucket); zoom in for full resolution.`
      : `${total.toLocaleString()} points, full resolution.`;
  }

  // A drag sends "xaxis.range[0]" and "[1]"; Plotly.relayout calls may send "xaxis.range".
  function xRange(event) {
    if (event["xaxis.range"]) return event["xaxis.range"];
    if (event["xaxis.range[0]"] !== undefined) return [event["xaxis.range[0]"], event["xaxis.range[1]"]];
    return null;
  }

  function onRelayout(event) {
    if (event["xaxis.autorange"]) {
      state.zoom = null;
      runs.forEach((run) => { run.shown = copy(run.overview); });
      draw();
    } else {
      const range = xRange(event);
      if (range) refine(range[0], range[1]);
    }
  }

  // Live: x of a point that arrives over the WebSocket (which sends steps and values only).
  function liveX(run, step) {
    const axis = controls.axis.value;
    const p = run.progress;
    if (axis === "epoch") return p && p.total_steps ? step * p.epochs / p.total_steps : 0;
    if (axis === "time") return run.started ? Date.now() / 1000 - run.started : 0;
    return step;
  }

  function receive(run, pointsByKey) {
    if (run.pending) run.pending.push(pointsByKey);
    extend(run, pointsByKey[controls.metric.value]);
  }

  function extend(run, points) {
    if (!points || !points.length) return;
    let added = 0;
    for (const [step, value] of points) {
      if (step <= run.lastStep) continue;
      const x = liveX(run, step);
      for (const s of [run.overview, run.shown]) { s.steps.push(step); s.x.push(x); s.y.push(value); }
      run.lastStep = step;
      added += 1;
    }
    if (added && state.loaded) draw();
  }

  function setStatus(run, msg) {
    if (msg.status) {
      run.status = msg.status;
      const badge = document.querySelector(`[data-status="${run.id}"]`);
      badge.textContent = msg.status;
      badge.className = "badge " + msg.status;
    }
    const verdict = msg.verdict || (msg.progress && msg.progress.verdict);
    if (verdict) {
      const cell = document.querySelector(`[data-verdict="${run.id}"]`);
      cell.innerHTML = "";
      const badge = document.createElement("a");
      badge.href = `/experiments/${run.id}/diagnostics/`;
      badge.className = "verdict " + verdict.kind;
      badge.textContent = verdict.kind;
      badge.title = verdict.headline || "";
      cell.appendChild(badge);
    }
  }

  function watch(run, retry) {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws/runs/${run.id}/`);
    socket.onmessage = (event) => {
      const msg = JSON.parse(event.data);
      state.messages += 1;
      if (msg.progress) run.progress = msg.progress;
      if (msg.kind === "snapshot") {
        // Fills whatever was logged between the page's fetch and this connection.
        const points = {};
        for (const [k, s] of Object.entries(msg.points)) points[k] = s.steps.map((step, i) => [step, s.values[i]]);
        receive(run, points);
        setStatus(run, msg);
        retry = 500;
      } else if (msg.kind === "points") {
        receive(run, msg.points);
        if (msg.progress) setStatus(run, {progress: msg.progress});
      } else if (msg.kind === "status") setStatus(run, msg);
    };
    socket.onclose = () => {
      if (!TERMINAL.includes(run.status)) setTimeout(() => watch(run, Math.min(retry * 2, 10000)), retry);
    };
  }

  controls.metric.addEventListener("change", () => load());
  controls.axis.addEventListener("change", () => load());
  controls.logY.addEventListener("change", draw);
  controls.smoothing.addEventListener("input", () => {
    document.getElementById("smoothing-value").textContent = controls.smoothing.value;
    draw();
  });
  load();
  runs.filter((run) => !TERMINAL.includes(run.status)).forEach((run) => watch(run, 500));
})();
