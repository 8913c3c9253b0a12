// "Try it" on a finished run's page: posts the form (an image or a text) and lists the most
// probable classes with their probabilities. No inline script: the page's CSP forbids it.
(function () {
  "use strict";
  const form = document.getElementById("try-form");
  if (!form) return;
  const results = document.getElementById("try-results");
  const problem = document.getElementById("try-error");
  const button = form.querySelector("button[type=submit]");

  function row(label, probability) {
    const item = document.createElement("li");
    const name = document.createElement("span");
    name.className = "try-label";
    name.textContent = label;
    const bar = document.createElement("progress");
    bar.max = 1;
    bar.value = probability;
    const percent = document.createElement("span");
    percent.className = "try-probability";
    percent.textContent = (100 * probability).toFixed(1) + "%";
    item.append(name, bar, percent);
    return item;
  }

  function show(data) {
    if (data.value !== undefined) {
      const item = document.createElement("li");
      item.textContent = "Predicted value: " + data.value.toPrecision(6);
      results.append(item);
      return;
    }
    for (const p of data.predictions) results.append(row(p.label, p.probability));
  }

  // Drawing a digit: light strokes on black, like the digits and MNIST images.
  const canvas = document.getElementById("try-canvas");
  let drawn = false;
  if (canvas) {
    const pen = canvas.getContext("2d");
    const clear = () => {
      pen.fillStyle = "#000";
      pen.fillRect(0, 0, canvas.width, canvas.height);
      drawn = false;
    };
    clear();
    pen.strokeStyle = "#fff";
    pen.lineWidth = canvas.width / 10;
    pen.lineCap = pen.lineJoin = "round";
    const at = (event) => {
      const box = canvas.getBoundingClientRect();
      return [(event.clientX - box.left) * canvas.width / box.width,
              (event.clientY - box.top) * canvas.height / box.height];
    };
    let down = false;
    canvas.addEventListener("pointerdown", (event) => {
      down = true;
      canvas.setPointerCapture(event.pointerId);
      pen.beginPath();
      pen.moveTo(...at(event));
    });
    canvas.addEventListener("pointermove", (event) => {
      if (!down) return;
      pen.lineTo(...at(event));
      pen.stroke();
      drawn = true;
    });
    canvas.addEventListener("pointerup", () => { down = false; });
    document.getElementById("try-clear").addEventListener("click", clear);
  }

  async function body() {
    const data = new FormData(form);
    const file = data.get("image");
    if (canvas && drawn && !(file && file.size)) {
      const blob = await new Promise((done) => canvas.toBlob(done, "image/png"));
      data.set("image", blob, "drawing.png");
    }
    return data;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem.hidden = true;
    results.replaceChildren();
    button.disabled = true;
    try {
      const reply = await fetch(form.action, {
        method: "POST", body: await body(), credentials: "same-origin",
        headers: {"Accept": "application/json"},
      });
      const data = await reply.json().catch(() => ({error: "the server answered " + reply.status}));
      if (!reply.ok) throw new Error(data.error || "the server answered " + reply.status);
      show(data);
    } catch (error) {
      problem.textContent = error.message;
      problem.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
})();
