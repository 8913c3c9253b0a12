// Plotly draws names, titles, hover text, annotations and tick labels as a subset of HTML:
// a run named <a href="…">…</a> became a working link in the legend, and a
// <span style="font-size:90px"> covered the chart. Every string a user chose goes through
// plotlyText before Plotly sees it; Plotly turns the entities back into the characters.
window.plotlyText = function (value) {
  "use strict";
  return String(value).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
};

// A chart's title, left-aligned under the mode bar: centred at the top, a long title ran under
// the mode bar's icons, which a phone shows all the time, and was cut off at both ends.
window.plotlyTitle = function (text) {
  "use strict";
  return {text, font: {size: 14}, x: 0, xref: "paper", xanchor: "left",
          y: 1, yref: "container", yanchor: "top", pad: {t: 34}};
};
window.PLOTLY_TITLE_TOP = 64;  // px of top margin that plotlyTitle's title fits in
