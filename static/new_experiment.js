// The New experiment form: choosing a data set keeps the model and loss fitting it, as "Train
// on it" chooses them (a CNN for images, an LSTM for text, an MLP for a table; MSE for a
// regression, cross-entropy for classes), where a choice of Wine left the default CNN to be
// refused at submit. A model the user chose is kept while it can read the data; a run name
// the user has not typed follows the choice: "wine-mlp", not "digits-cnn"; a batch follows a
// set too small for it.
(function () {
  "use strict";
  const source = document.getElementById("dataset-fits");
  const form = document.querySelector("form.spec-form");
  if (!source || !form) return;
  const fits = JSON.parse(source.textContent);
  const field = (name) => form.querySelector(`[name="${name}"]`);
  const dataset = field("dataset"), arch = field("arch"), loss = field("loss"),
    name = field("name");
  if (!dataset || !arch || !loss || !name) return;
  const FAMILY = fits.families;  // the server's forms.FAMILY, as "Train on it" picks
  const REGRESSION_LOSSES = ["mse", "mae", "huber"];
  const suggested = () => {
    const set = fits.datasets[dataset.value];
    return set ? `${set.name}-${arch.value}` : null;
  };
  let named = suggested();  // the name the page last suggested
  let following = name.value === named;  // the user has not typed a name of their own
  const start = fits.datasets[dataset.value];
  // the page's own model (the default CNN on digits), not one the user picked
  let archChosen = !start || arch.value !== FAMILY[start.modality];
  let choosing = false;
  // The values a data set proposes beyond model and loss (a table's epochs and weight decay,
  // for its size): a field follows the choice while it holds what was last proposed (or the
  // starting set's proposal), and keeps a value the user typed or a cloned run brought.
  let offered = start ? {...start.proposed} : {};

  function choose(select, value) {
    if (select.value === value || !select.querySelector(`option[value="${value}"]`)) return;
    select.value = value;
    choosing = true;
    try {
      select.dispatchEvent(new Event("change", {bubbles: true}));  // shows the model's fields
    } finally {
      choosing = false;
    }
  }

  function fit() {
    const set = fits.datasets[dataset.value];
    if (!set) return;
    const reads = fits.archs[arch.value] || [];
    if (FAMILY[set.modality] && (!archChosen || !reads.includes(set.modality))) {
      choose(arch, FAMILY[set.modality]);
    }
    if (set.task === "regression" && !REGRESSION_LOSSES.includes(loss.value)) choose(loss, "mse");
    if (set.task === "classification" && loss.value !== "cross_entropy") {
      choose(loss, "cross_entropy");
    }
    propose(set.proposed || {});
  }

  function propose(values) {
    const defaults = fits.defaults || {};
    for (const key of new Set([...Object.keys(offered), ...Object.keys(values)])) {
      if (key === "arch" || key === "loss") continue;  // chosen above, by their own rules
      const input = field(key);
      if (!input) continue;
      const before = key in offered ? offered[key] : defaults[key];
      const next = key in values ? values[key] : defaults[key];
      if (next !== undefined && Number(input.value) === Number(before)) input.value = next;
    }
    offered = {...values};
  }

  // A batch larger than the chosen set's training split is refused at submit (a 6-row
  // upload trains on 4): the batch is lowered to the split, and given back its value when a
  // set it fits is chosen next, unless the user has typed another since.
  const batch = field("batch_size");
  let lowered = null;  // {from, to}: the batch the page lowered, and what it had been
  function fitBatch() {
    const set = fits.datasets[dataset.value];
    if (!batch || !set || !set.train_rows) return;
    if (lowered && batch.value === String(lowered.to)) batch.value = lowered.from;
    lowered = null;
    if (Number(batch.value) > set.train_rows && set.train_rows >= 2) {
      lowered = {from: batch.value, to: set.train_rows};
      batch.value = String(set.train_rows);
    }
  }

  function rename() {
    named = suggested();
    if (following && named) name.value = named;
  }

  name.addEventListener("input", () => { following = name.value === named; });
  dataset.addEventListener("change", () => { fit(); fitBatch(); rename(); });
  arch.addEventListener("change", () => {
    if (!choosing) archChosen = true;
    rename();
  });
})();
