"""The example plugin through the real stack: its model and data set chosen in the New
experiment form with their generated fields, trained by a Celery worker with live curves,
judged, tuned over a plugin option by a 2-trial study, channel-pruned and distilled, and its
downloaded checkpoint loaded in a fresh process."""

from __future__ import annotations

import asyncio
import re

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.test_live_run import Watcher, submit
from tests.e2e.test_tuning_study import submit_study, wait_for, wait_until_ended
from tests.plugin_env import fresh_python
from training.checkpoints import load
from training.compression.spec import CompressionSpec
from webapp.experiments import spec_forms
from webapp.experiments.compression_forms import SPEC_FIELDS

pytestmark = pytest.mark.e2e
# 240 generated 12×12 shapes (192 training rows): a MobileNet epoch takes well under a second.
PLUGIN_FIELDS = {"dataset": "shapes", "shapes_rows": 240, "shapes_size": 12,
                 "arch": "mobilenet", "mobilenet_width": 8, "mobilenet_blocks": 2,
                 "lr": 0.01, "batch_size": 32, "epochs": 2}


def compress(stack: Stack, session, source: int, **fields) -> int:
    """Fill the Compress form of run ``source``; returns the job's id once it has ended."""
    data = {"name": f"{fields['method']} job",
            **spec_forms.initial_values(SPEC_FIELDS, CompressionSpec()), **fields}
    data = {k: ("on" if v else "") if isinstance(v, bool) else v for k, v in data.items()}
    response = stack.post_form(session, f"/experiments/{source}/compress/", data)
    match = re.search(r"/experiments/(\d+)/$", response.url)
    assert match is not None, response.text[:3000]
    job = int(match.group(1))
    page = wait_until_ended(session, f"{stack.url}/experiments/{job}/", timeout=120)
    assert 'id="status-badge">succeeded<' in page, stack.log.read_text()[-3000:]
    return job


def test_a_plugin_model_trains_live_is_judged_tuned_compressed_and_loads_elsewhere(
        stack: Stack, tmp_path) -> None:
    # given the New experiment form, which offers the plugins and their fields
    session = stack.login()
    form = session.get(f"{stack.url}/experiments/new/", timeout=10).text
    assert '<option value="mobilenet">' in form and 'name="mobilenet_width"' in form

    # when a MobileNet on shapes is submitted and its page's WebSocket watched to the end
    run_id = submit(stack, session, "plugin run", **PLUGIN_FIELDS)
    watcher = Watcher(stack, session, run_id)
    asyncio.run(watcher.watch(timeout=180))

    # then its curve grew live, every step once, and it got a verdict
    final = watcher.messages[-1][1]
    assert final["status"] == "succeeded", stack.log.read_text()[-3000:]
    live = watcher.live_points("loss")
    assert live and live[0][0] < watcher.status_time("succeeded")
    assert watcher.drawn_steps("loss") == list(range(1, 2 * 6 + 1))  # 192 rows, batches of 32
    assert final["verdict"]["kind"]

    # when a study of 2 trials searches the plugin's width
    study_id = submit_study(stack, session, run_id, **{
        "name": "width study", "algorithm": "random", "objective": "val_acc", "n_trials": 2,
        "timeout": 0, "parallelism": 1, "pruner": "none", "seed": 0, "epochs": 1,
        "plugin_model_width_on": "on", "plugin_model_width_low": 4,
        "plugin_model_width_high": 16})
    study = wait_for(session, f"{stack.url}/studies/{study_id}/data/", timeout=120)

    # then both trials trained a MobileNet of the width drawn
    assert study["status"] == "succeeded", (study, stack.log.read_text()[-3000:])
    assert [t["state"] for t in study["trials"]] == ["complete", "complete"]
    assert all(4 <= t["params"]["model.plugin_config.width"] <= 16 for t in study["trials"])

    # when it is channel-pruned, and distilled into a small CNN
    pruned = compress(stack, session, run_id, method="prune_channels", sparsity=0.5, steps=1,
                      scope="layer", finetune_epochs=1, lr=0)
    distilled = compress(stack, session, run_id, method="distill", student_arch="cnn",
                         student_width=4, student_blocks=1, epochs=1)

    # then the pruned MobileNet has fewer weights than its source, and the student is a CNN
    models = {}
    for name, job in (("source", run_id), ("pruned", pruned), ("student", distilled)):
        archive = session.get(f"{stack.url}/experiments/{job}/checkpoint/best/", timeout=30)
        (tmp_path / f"{name}.zip").write_bytes(archive.content)
        models[name] = load(tmp_path / f"{name}.zip").model
    sizes = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
    assert type(models["pruned"]).__name__ == "MobileNet" and sizes["pruned"] < sizes["source"]
    assert type(models["student"]).__name__ == "CNN"

    # when its downloaded best checkpoint is loaded in a fresh Python process
    loaded = fresh_python(
        "import fitboard_model, torch\n"
        "c = fitboard_model.load('source.zip')\n"
        "print(type(c.model).__name__, c.meta['plugins'][0]['distribution'], "
        "len(c.predict(torch.rand(4, 1, 12, 12)).labels))\n",
        tmp_path, without_example=False)

    # then the plugin's model predicts there
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split() == ["MobileNet", "fitboard-example-plugin", "4"]
