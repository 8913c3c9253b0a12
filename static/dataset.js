// Class balance of an uploaded dataset: one bar per class.
(function () {
  const source = document.getElementById("class-counts");
  if (!source || !window.Plotly) return;
  const chart = JSON.parse(source.textContent);
  Plotly.newPlot("class-balance", [{type: "bar", x: chart.labels.map(plotlyText), y: chart.counts,
                                     marker: {color: "#4f46e5"}}], {
    margin: {t: 10, r: 10, b: 60, l: 50},
    xaxis: {title: {text: "class"}, type: "category"},
    yaxis: {title: {text: "rows"}},
  }, {displayModeBar: false, responsive: true});
})();
