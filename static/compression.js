// Trade-off charts of a run and its compressed versions: accuracy against size and latency.
(function () {
  "use strict";
  const points = JSON.parse(document.getElementById("trade-off").textContent);
  // validation accuracy, or a regression's RMSE (lower is better)
  const metric = points.length ? points[0].metric : "validation accuracy";
  const title = (text) => text.charAt(0).toUpperCase() + text.slice(1);
  const palette = ["#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692", "#b6e880"];
  // One trace per model, so that the legend names them (labels on the points get clipped).
  const traces = (x, unit) => points.map((p, i) => ({
    x: [p[x]], y: [p.acc], name: plotlyText(`${p.name} (${p.method})`), type: "scatter", mode: "markers",
    marker: {size: 11, symbol: p.method === "source" ? "star" : "circle",
             color: p.method === "source" ? "#636efa" : palette[(i - 1) % palette.length]},
    hovertemplate: `%{x} ${unit}<br>${metric} %{y:.4f}<extra>${plotlyText(p.name)}</extra>`,
  }));
  const layout = (title, axis) => ({
    title: {text: title},
    xaxis: {title: {text: axis}, type: "log"},
    yaxis: {title: {text: metric}},
    margin: {t: 40, r: 10, b: 50, l: 60},
    legend: {orientation: "h", y: -0.3},
  });
  const config = {displaylogo: false, responsive: true};
  Plotly.newPlot("chart-tradeoff-size", traces("bytes", "bytes"),
                 layout(`${title(metric)} vs size`, "weights on disk (bytes, log)"), config);
  Plotly.newPlot("chart-tradeoff-latency", traces("latency_ms", "ms"),
                 layout(`${title(metric)} vs CPU latency`, "ms per batch (log)"), config);
})();
