// A page's settings for its script, passed as {{ …|json_script }} elements rather than inline
// <script> code (the Content-Security-Policy runs scripts from files only).
(function () {
  "use strict";
  const globals = {"run-config": "FITBOARD_RUN", "study-config": "FITBOARD_STUDY"};
  for (const [id, name] of Object.entries(globals)) {
    const element = document.getElementById(id);
    if (element) window[name] = JSON.parse(element.textContent);
  }
})();
