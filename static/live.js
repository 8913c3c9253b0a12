// Shared by the live pages (run, run list, study): their URLs, read from the page's
// "live-config" json_script block so no script holds a URL pattern; a WebSocket that reconnects
// with exponential back-off; and the status badge.
(function () {
  "use strict";
  const TERMINAL = ["succeeded", "failed", "cancelled"];
  // Closed by the server as logged out (4401) or no longer a member (4403): trying again would
  // only be refused, so the page stays as it is until reloaded.
  const REVOKED = [4401, 4403];
  // Closed as one socket too many for this user (FITBOARD_MAX_SOCKETS_PER_USER): tried again at
  // the slowest pace, so the page goes live once another tab closes.
  const TOO_MANY = 4429;
  const FIRST_RETRY_MS = 500, MAX_RETRY_MS = 10000;

  function config() {
    return JSON.parse(document.getElementById("live-config").textContent);
  }

  // A page URL from a template whose id is written "{id}".
  function urlFor(template, id) {
    return template.replace("{id}", encodeURIComponent(id));
  }

  // Statuses are a fixed set of words; anything else is kept out of the class attribute.
  function setBadge(badge, status, label) {
    badge.textContent = label === undefined ? status : label;
    badge.className = "badge " + String(status).replace(/[^a-z_]/g, "");
  }

  // Opens ``path`` on this site and keeps it open: each message goes to ``onMessage`` (parsed),
  // ``onOpen`` runs on every (re)connection, ``reconnect()`` (default: always) says whether a
  // closed socket is worth opening again. Returns {close()} to stop for good.
  function socket(path, {onMessage, onOpen, reconnect}) {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    let retry = FIRST_RETRY_MS, stopped = false, current = null;
    function connect() {
      current = new WebSocket(`${scheme}://${location.host}${path}`);
      current.onopen = () => { retry = FIRST_RETRY_MS; if (onOpen) onOpen(); };
      current.onmessage = (event) => onMessage(JSON.parse(event.data));
      current.onclose = (event) => {
        if (stopped || REVOKED.includes(event.code) || (reconnect && !reconnect())) return;
        retry = event.code === TOO_MANY ? MAX_RETRY_MS : Math.min(retry * 2, MAX_RETRY_MS);
        setTimeout(connect, retry);
      };
    }
    connect();
    return {close() { stopped = true; current.close(); }};
  }

  window.FitboardLive = {TERMINAL, config, urlFor, setBadge, socket};
})();
