// Diagnostics page: per-epoch train and validation curves, the gap between them shaded and the
// onset epoch (the best validation epoch) marked.
(function () {
  "use strict";
  const history = JSON.parse(document.getElementById("diag-history").textContent) || {};
  const verdict = JSON.parse(document.getElementById("diag-verdict").textContent) || {};
  const onset = verdict.onset_epoch;

  function plot(id, title, trainKey, valKey) {
    const el = document.getElementById(id);
    const train = history[trainKey], val = history[valKey];
    // A script's run may log either curve alone (validation accuracy without a training one
    // left the card blank): it is drawn alone, no gap.
    if (!el || !(train || val)) return;
    const epochs = (train || val).map((_, i) => i + 1);
    const data = [];
    if (train) {
      data.push({x: epochs, y: train, name: "train", mode: "lines+markers", line: {color: "#636efa", width: 2.5}});
    }
    if (val) {
      // fill: "tonexty" shades the area between this trace and the one before: the gap.
      data.push({x: epochs, y: val, name: "validation", mode: "lines+markers", fill: train ? "tonexty" : "none",
                 fillcolor: "rgba(239,85,59,0.15)", line: {color: "#ef553b", width: 2.5}});
    }
    const shapes = [], annotations = [];
    if (onset) {
      shapes.push({type: "line", x0: onset, x1: onset, yref: "paper", y0: 0, y1: 1,
                   line: {color: "#b91c1c", dash: "dash", width: 1.5}});
      annotations.push({x: onset, yref: "paper", y: 1, text: `onset: epoch ${onset}`, showarrow: false,
                        xanchor: "left", yanchor: "top", font: {color: "#b91c1c"}});  // under the legend
    }
    Plotly.newPlot(el, data, {
      title: window.plotlyTitle(title), margin: {t: window.PLOTLY_TITLE_TOP + 28, r: 10, b: 44, l: 50},
      shapes, annotations,
      // A tick per epoch while each has room for its number; on a phone 21 epochs' ticks
      // were turned on their side and ran together.
      xaxis: window.wholeNumberAxis({title: {text: "epoch"}}, epochs.length, el),
      // Above the plot: below it, the legend ran over the x-axis title.
      legend: {orientation: "h", x: 0, xanchor: "left", y: 1.02, yanchor: "bottom"},
      hovermode: "x unified",
    }, {responsive: true, displaylogo: false});
  }
  plot("diag-loss", "Loss (gap shaded)", "train_loss", "val_loss");
  plot("diag-acc", "Accuracy (gap shaded)", "train_acc", "val_acc");
})();
