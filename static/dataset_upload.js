// The upload page: a form refused for another field (its task, its label column) comes back
// with the file still chosen. A browser empties a file input whenever a page loads, so the
// corrected submit was refused again for want of a file. The form is sent with fetch instead:
// an accepted upload goes on to the data set's page; a refused one has its fields and errors
// replaced around the file input the user filled, unless the file itself was refused.
(function () {
  "use strict";
  const form = document.getElementById("dataset-form");
  if (!form || !window.fetch || !window.FormData || !window.DOMParser) return;
  let sending = false;
  form.addEventListener("submit", async (event) => {
    if (event.defaultPrevented) return;
    event.preventDefault();
    if (sending) return;
    sending = true;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const response = await fetch(form.action || window.location.href, {
        method: "POST", body: new FormData(form), credentials: "same-origin"});
      if (response.redirected) {
        window.location.assign(response.url);
        return;
      }
      const fresh = response.ok && new DOMParser()
        .parseFromString(await response.text(), "text/html").getElementById("dataset-form");
      if (!fresh) {  // not the form again (a 403 or a 500): the ordinary submit shows it
        form.submit();
        return;
      }
      const chosen = form.querySelector("input[type=file]");
      form.replaceChildren(...fresh.childNodes);
      const empty = form.querySelector("input[type=file]");
      if (chosen && chosen.files.length && empty
          && !form.querySelector('[data-field-error="file"]')) {
        empty.replaceWith(chosen);
      }
      form.dispatchEvent(new Event("change"));  // spec_form.js: show the kind's fields only
      const summary = document.getElementById("error-summary");
      if (summary) {
        summary.scrollIntoView({block: "start"});
        summary.focus();
      }
    } catch (error) {
      form.submit();
    } finally {
      sending = false;
      const again = form.querySelector("button[type=submit]");
      if (again) again.disabled = false;
    }
  });
})();
