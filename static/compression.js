// Trade-off charts of a run and its compressed versions: accuracy against size and latency.
(function () {
  const points = JSON.parse(document.getElementById("trade-off").textContent);
  const trace = (x, title) => ({
    x: points.map((p) => p[x]),
    y: points.map((p) => p.acc),
    text: points.map((p) => `${p.name} (${p.method})`),
    mode: "markers+text",
    textposition: "top center",
    marker: {size: 10, color: points.map((p) => (p.method === "source" ? "#636efa" : "#ef553b"))},
    hovertemplate: `%{text}<br>${title}: %{x}<br>val accuracy: %{y:.4f}<extra></extra>`,
    type: "scatter",
  });
  const layout = (title, axis) => ({
    title: {text: title},
    xaxis: {title: {text: axis}, type: "log"},
    yaxis: {title: {text: "validation accuracy"}},
    margin: {t: 40, r: 10, b: 50, l: 60},
    showlegend: false,
  });
  const config = {displaylogo: false, responsive: true};
  Plotly.newPlot("chart-tradeoff-size", [trace("bytes", "bytes")],
                 layout("Accuracy vs size", "weights on disk (bytes, log)"), config);
  Plotly.newPlot("chart-tradeoff-latency", [trace("latency_ms", "ms")],
                 layout("Accuracy vs CPU latency", "ms per batch (log)"), config);
})();
