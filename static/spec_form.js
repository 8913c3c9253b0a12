// Spec forms (new experiment, compression, the upload page's kinds): show only the fields that apply to the current
// choices. The server's map (from the spec's field metadata) says, per field, which values of
// which other fields it applies to; all must hold. A fieldset left with no visible field hides
// too. Hidden fields are still submitted: the spec keeps their values, a bad one its default.
(function () {
  "use strict";
  const source = document.getElementById("field-applies");
  const form = document.querySelector("form.spec-form");
  if (!source || !form) return;
  const applies = JSON.parse(source.textContent);
  const valueOf = (name) => {
    const input = form.querySelector(`[name="${name}"]`);
    return input ? input.value : null;
  };

  function update() {
    for (const [name, conditions] of Object.entries(applies)) {
      const input = form.querySelector(`[name="${name}"]`);
      const field = input && input.closest(".field");
      if (!field) continue;
      const shown = Object.entries(conditions).every(
        ([control, values]) => valueOf(control) === null || values.includes(valueOf(control)));
      // A field with an error stays visible, so the message is never hidden.
      field.hidden = !shown && !field.classList.contains("has-error");
    }
    for (const fieldset of form.querySelectorAll("fieldset")) {
      fieldset.hidden = !fieldset.querySelector(".field:not([hidden])");
    }
  }
  form.addEventListener("change", update);
  update();
})();
