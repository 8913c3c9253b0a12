// On every page: forms that ask before they submit (data-confirm holds the question), and a
// form's error summary, focused after a refused submit so it is read first. A file of its own:
// the Content-Security-Policy allows no inline handler such as onsubmit="return confirm()".
(function () {
  "use strict";
  document.addEventListener("submit", (event) => {
    const form = event.target;
    const question = form.dataset ? form.dataset.confirm : undefined;
    if (question && !window.confirm(question)) event.preventDefault();
  });
  const summary = document.getElementById("error-summary");
  if (summary) summary.focus();
  // A summary link focuses its field (the field may sit in a fieldset the page scrolled past).
  document.addEventListener("click", (event) => {
    const link = event.target.closest && event.target.closest("a[data-summary-field]");
    if (!link) return;
    const field = document.querySelector(link.getAttribute("href"));
    if (field) { event.preventDefault(); field.focus(); field.scrollIntoView({block: "center"}); }
  });
})();
