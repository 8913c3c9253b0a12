// Run list: live status, progress and best metric for every visible run.
(function () {
  "use strict";
  const live = window.FitboardLive;
  const cfg = live.config();
  function update(msg) {
    const row = document.querySelector(`#run-table tr[data-id="${msg.id}"]`);
    if (!row) { if (msg.status === "queued") location.reload(); return; }
    if (msg.status) {
      // A pruned tuning trial ends "cancelled"; its summary says it was the pruner.
      const pruned = msg.summary && msg.summary.trial && msg.summary.trial.state === "pruned";
      live.setBadge(row.querySelector('[data-field="status"]'), pruned ? "pruned" : msg.status);
    }
    const verdict = msg.verdict || (msg.progress && msg.progress.verdict);
    if (verdict) {
      const cell = row.querySelector('[data-field="verdict"]');
      let badge = cell.querySelector("a");
      if (!badge) { badge = document.createElement("a"); badge.href = live.urlFor(cfg.diagnostics, msg.id); cell.appendChild(badge); }
      badge.textContent = verdict.kind;
      badge.className = "verdict " + verdict.kind;
      badge.title = verdict.headline;
    }
    const p = msg.progress;
    const progress = row.querySelector('[data-field="progress"]');
    // data-no-epochs: a job that does not train in epochs (dynamic quantization).
    if (p && p.epochs && !progress.hasAttribute("data-no-epochs")) progress.textContent = `epoch ${p.epoch}/${p.epochs}`;
    // data-steps: a script's run, which counts steps, not epochs.
    else if (p && p.step && progress.hasAttribute("data-steps")) progress.textContent = `step ${p.step}`;
    if (msg.best_metric_value !== undefined && msg.best_metric_value !== null) {
      row.querySelector('[data-field="best"]').textContent = `${msg.best_metric_name} ${msg.best_metric_value.toFixed(4)}`;
    }
  }
  live.socket(cfg.socket, {onMessage: update});

  // Compare: enabled while 2 to N runs are ticked; until then the hint beside it says why not.
  const form = document.getElementById("compare-form");
  const button = document.getElementById("compare-button");
  const hint = document.getElementById("compare-hint");
  if (form && button) {
    const max = Number(form.dataset.max);
    document.getElementById("run-table").addEventListener("change", () => {
      const ticked = document.querySelectorAll('input[name="ids"]:checked').length;
      button.disabled = ticked < 2 || ticked > max;
      button.textContent = ticked ? `Compare ${ticked}` : "Compare";
      hint.textContent = ticked === 1 ? "Tick one more run to compare"
        : ticked > max ? `At most ${max} runs: untick ${ticked - max}`
        : `Tick 2 to ${max} runs to compare them`;
      hint.hidden = !button.disabled;
    });
  }
})();
