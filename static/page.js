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
  // The links mlflow's client prints ("View run at: <uri>/#/experiments/3/runs/17", MLflow's
  // own UI routes, after the fragment the browser keeps to itself) land on that run's page, or
  // on the list of that experiment's (project's) runs.
  const mlflowRoute = window.location.pathname === "/" &&
    /^#\/experiments\/(\d+)(?:\/runs\/(\d+))?\/?$/.exec(window.location.hash);
  if (mlflowRoute) {
    window.location.replace(mlflowRoute[2] ? `/experiments/${mlflowRoute[2]}/` : `/?project=${mlflowRoute[1]}`);
  }
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
