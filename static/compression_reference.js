// A compression job's page: the source's (teacher's) validation accuracy as a dashed reference
// line on the live accuracy chart that run.js draws.
(function () {
  "use strict";
  const ref = JSON.parse(document.getElementById("compression-reference").textContent);
  window.addEventListener("load", function () {
    const chart = document.getElementById("chart-metric");
    if (!chart || !chart.layout) return;
    Plotly.relayout(chart, {
      shapes: [{type: "line", xref: "paper", x0: 0, x1: 1, y0: ref.value, y1: ref.value,
                line: {color: "#7f7f7f", width: 1.5, dash: "dash"}}],
      annotations: [{xref: "paper", x: 1, xanchor: "right", y: ref.value, yanchor: "bottom",
                     text: plotlyText(`${ref.label} ${ref.value.toFixed(4)}`), showarrow: false,
                     font: {color: "#7f7f7f"}}],
    });
  });
})();
