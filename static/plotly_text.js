// Plotly draws names, titles, hover text, annotations and tick labels as a subset of HTML:
// a run named <a href="…">…</a> became a working link in the legend, and a
// <span style="font-size:90px"> covered the chart. Every string a user chose goes through
// plotlyText before Plotly sees it; Plotly turns the entities back into the characters.
window.plotlyText = function (value) {
  "use strict";
  return String(value).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
};
