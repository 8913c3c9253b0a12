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

// An axis of whole numbers (epochs, trials): a tick on each while each has room for its label,
// else Plotly's own spacing, whole (2, 5, 10 …) once the numbers outnumber its ticks. Left to
// itself, Plotly ticked a study's 3 epochs at 1, 1.5, 2, 2.5, 3.
window.WHOLE_TICK_PX = 24;  // room one tick label needs, in CSS pixels
window.wholeNumberAxis = function (axis, largest, el) {
  "use strict";
  return Object.assign({}, axis, largest * window.WHOLE_TICK_PX > el.clientWidth ? {} : {dtick: 1});
};
