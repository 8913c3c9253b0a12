// New-experiment form: show only the model fields that apply to the chosen architecture
// (the server's ARCH_FIELDS map), and hide a fieldset left with no visible field. Hidden fields
// are still submitted, so the spec keeps their values.
(function () {
  "use strict";
  const map = JSON.parse(document.getElementById("arch-fields").textContent);
  const arch = document.querySelector("select[name=arch]");
  if (!arch) return;

  function update() {
    for (const [name, archs] of Object.entries(map)) {
      const input = document.querySelector(`[name="${name}"]`);
      const field = input && input.closest(".field");
      // A field with an error stays visible, so the message is never hidden.
      if (field) field.hidden = !archs.includes(arch.value) && !field.classList.contains("has-error");
    }
    for (const fieldset of document.querySelectorAll(".spec-form fieldset")) {
      fieldset.hidden = !fieldset.querySelector(".field:not([hidden])");
    }
  }
  arch.addEventListener("change", update);
  update();
})();
