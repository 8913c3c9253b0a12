// The group page's chart: every seed's curve faint behind, the mean over the seeds bold, and
// a band around it (± 1 std over the seeds, or the 95% t interval of the mean), for the
// metric and band chosen above it. The data is the page's json_script block.
(function () {
  "use strict";
  const charts = JSON.parse(document.getElementById("group-charts").textContent);
  const metricSelect = document.getElementById("group-metric");
  const bandSelect = document.getElementById("group-band");
  const BAND_NAMES = {std: "± 1 std", ci95: "95% interval of the mean"};

  // Said in the chart's place until a seed has an epoch to draw (the page is not live: the
  // seeds' own pages are), instead of bare axes.
  const WAITING = "No seed has finished an epoch yet: reload this page once one has " +
    "(each seed's own page draws it live).";

  function draw() {
    const data = (charts[metricSelect.value] || {})[bandSelect.value];
    const chart = document.getElementById("group-chart");
    if (!data || !data.mean.some((v) => v !== null)) {
      Plotly.purge(chart);
      const note = document.createElement("p");
      note.className = "chart-empty";
      note.id = "group-chart-empty";
      note.textContent = WAITING;
      chart.replaceChildren(note);
      return;
    }
    chart.replaceChildren();
    const seeds = data.seeds.map((s) => ({
      x: s.values.map((_, i) => i + 1), y: s.values, mode: "lines", name: `seed ${s.seed}`,
      line: {width: 1.5, color: "rgba(70, 80, 95, 0.55)"},
      hovertemplate: `seed ${s.seed}<br>epoch %{x}: %{y:.4f}<extra></extra>`,
    }));
    const band = [
      {x: data.epochs, y: data.high, mode: "lines", line: {width: 0}, hoverinfo: "skip",
       showlegend: false, name: "band high"},
      {x: data.epochs, y: data.low, mode: "lines", line: {width: 0}, fill: "tonexty",
       fillcolor: "rgba(31, 119, 180, 0.25)", hoverinfo: "skip",
       name: BAND_NAMES[data.band]},
      {x: data.epochs, y: data.mean, mode: "lines+markers", name: "mean",
       line: {width: 3, color: "rgb(31, 119, 180)"},
       hovertemplate: "mean<br>epoch %{x}: %{y:.4f}<extra></extra>"},
    ];
    Plotly.react("group-chart", seeds.concat(band), {
      title: window.plotlyTitle(
        `${data.metric}: mean over ${data.seeds.length} seeds, ${BAND_NAMES[data.band]}`),
      xaxis: window.wholeNumberAxis({title: {text: "epoch"}}, data.epochs.length,
        document.getElementById("group-chart")),
      margin: {l: 50, r: 20, t: window.PLOTLY_TITLE_TOP, b: 40},
    }, {responsive: true});
    document.getElementById("group-chart").dataset.traces = String(seeds.length + band.length);
  }

  metricSelect.addEventListener("change", draw);
  bandSelect.addEventListener("change", draw);
  draw();
})();
