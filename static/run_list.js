// Run list: live status, progress and best metric for every visible run.
(function () {
  "use strict";
  let retry = 500;
  function update(msg) {
    const row = document.querySelector(`#run-table tr[data-id="${msg.id}"]`);
    if (!row) { if (msg.status === "queued") location.reload(); return; }
    if (msg.status) {
      const badge = row.querySelector('[data-field="status"]');
      badge.textContent = msg.status;
      badge.className = "badge " + msg.status;
    }
    const verdict = msg.verdict || (msg.progress && msg.progress.verdict);
    if (verdict) {
      const cell = row.querySelector('[data-field="verdict"]');
      let badge = cell.querySelector("a");
      if (!badge) { badge = document.createElement("a"); badge.href = `/experiments/${msg.id}/diagnostics/`; cell.appendChild(badge); }
      badge.textContent = verdict.kind;
      badge.className = "verdict " + verdict.kind;
      badge.title = verdict.headline;
    }
    const p = msg.progress;
    if (p && p.epochs) row.querySelector('[data-field="progress"]').textContent = `epoch ${p.epoch}/${p.epochs}`;
    if (msg.best_metric_value !== undefined && msg.best_metric_value !== null) {
      row.querySelector('[data-field="best"]').textContent = `${msg.best_metric_name} ${msg.best_metric_value.toFixed(4)}`;
    }
  }
  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws/runs/`);
    socket.onmessage = (event) => update(JSON.parse(event.data));
    socket.onopen = () => { retry = 500; };
    socket.onclose = () => setTimeout(connect, retry = Math.min(retry * 2, 10000));
  }
  connect();

  // Compare: enabled while 2 to N runs are ticked.
  const form = document.getElementById("compare-form");
  const button = document.getElementById("compare-button");
  if (form && button) {
    const max = Number(form.dataset.max);
    document.getElementById("run-table").addEventListener("change", () => {
      const ticked = document.querySelectorAll('input[name="ids"]:checked').length;
      button.disabled = ticked < 2 || ticked > max;
      button.textContent = ticked ? `Compare ${ticked}` : "Compare";
    });
  }
})();
