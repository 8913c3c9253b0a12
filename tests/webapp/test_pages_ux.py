"""What the pages say: the run list's rows, the status a run page redraws from, the favicon,
compression tables' numbers, and how many workers ``manage.py up`` starts."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.core.management.base import CommandError
from django.urls import reverse

from tests.stack import free_port
from training.spec import ExperimentSpec
from webapp import hardware
from webapp.datasets.models import Dataset
from webapp.experiments import events
from webapp.experiments.launch import wait_for_url, workers_line
from webapp.experiments.models import Experiment
from webapp.experiments.templatetags.fitboard import count

GIB = 1024**3


def test_up_starts_as_many_workers_as_cores_and_memory_hold():
    assert hardware.default_workers(cores=2, memory=8 * GIB) == 1
    assert hardware.default_workers(cores=16, memory=128 * GIB) == 8
    assert hardware.default_workers(cores=16, memory=6 * GIB) == 3  # memory-bound
    assert hardware.default_workers(cores=1, memory=1 * GIB) == 1  # always one


def test_the_banner_says_how_many_workers_and_why():
    line = workers_line(3, "2")
    assert line.startswith("3 workers (")
    assert "2 torch threads each" in line and "3 jobs run at once" in line


def test_the_favicon_is_served_without_a_login(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert b"".join(response.streaming_content)[:4] == b"\x00\x00\x01\x00"  # an ICO header


def test_compression_tables_print_counts_with_separators():
    assert count(4506112) == "4,506,112"
    assert count(0.5) == 0.5


def test_a_succeeded_run_tells_its_page_to_offer_compress(make_experiment):
    running = make_experiment(status=Experiment.Status.RUNNING)
    done = make_experiment(status=Experiment.Status.SUCCEEDED,
                           summary={"test_metrics": {"test_acc": 0.95}})

    assert events.status_payload(running)["can_compress"] is False
    payload = events.status_payload(done)
    assert payload["can_compress"] is True
    assert payload["summary"]["test_metrics"] == {"test_acc": 0.95}


def row(page: str, pk: int) -> str:
    start = page.index(f'<tr data-id="{pk}">')
    return page[start:page.index("</tr>", start)]


def test_the_list_says_pruned_studies_uploads_and_int8_truthfully(
        owner_client, make_experiment, project, owner):
    # given a study on digits, its pruned trial, a run on an upload and an int8 job
    base = ExperimentSpec().patched({"model": {"arch": "mlp"}}).to_dict()
    study = make_experiment(kind=Experiment.Kind.TUNE, spec={"base": base, "space": {}})
    trial = make_experiment(kind=Experiment.Kind.TRIAL, parent=study,
                            status=Experiment.Status.CANCELLED,
                            summary={"trial": {"state": "pruned", "pruned_at": 2}})
    upload = Dataset.objects.create(project=project, name="my flowers", created_by=owner,
                                    kind=Dataset.Kind.CSV, folder="f1")
    on_upload = make_experiment(spec={**ExperimentSpec().to_dict(),
                                      "data": {"dataset": f"upload:{upload.pk}"}})
    int8 = make_experiment(kind=Experiment.Kind.COMPRESS, status=Experiment.Status.SUCCEEDED,
                           spec={**ExperimentSpec().to_dict(),
                                 "compression": {"method": "quantize_dynamic"}},
                           progress={"epoch": 0, "epochs": 1})

    page = owner_client.get(reverse("experiment-list")).content.decode()

    assert "digits / mlp" in row(page, study.pk)
    assert 'data-field="status">pruned<' in row(page, trial.pk)
    assert "my flowers / cnn" in row(page, on_upload.pk)
    assert "epoch 0/1" not in row(page, int8.pk) and "data-no-epochs" in row(page, int8.pk)



def test_up_waits_for_the_url_to_answer_before_its_banner(tmp_path):
    # given a web server child that answers HTTP only after a second on its port
    port = free_port()
    script = ("import http.server, time; time.sleep(1); "
              f"http.server.HTTPServer(('127.0.0.1', {port}), "
              "http.server.SimpleHTTPRequestHandler).serve_forever()")
    server = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path)
    try:
        # then the wait returns once it answers (a 404 is an answer)
        wait_for_url(f"http://127.0.0.1:{port}/accounts/login/", 30, server)
    finally:
        server.terminate()
        server.wait()
    # and a child that exits is named instead of waited for
    dead = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    dead.wait()
    with pytest.raises(CommandError, match="exited with code 3"):
        wait_for_url(f"http://127.0.0.1:{free_port()}/", 30, dead)


def test_cancel_asks_first_through_the_pages_script(owner_client, make_experiment):
    # the question rides on the form; static/page.js asks it (the CSP forbids inline handlers)
    running = make_experiment(status=Experiment.Status.RUNNING)

    page = owner_client.get(reverse("experiment-detail", args=[running.pk])).content.decode()

    assert 'id="cancel-form" data-confirm="Cancel this run?' in page
    assert "/static/page.js" in page


def test_a_missing_page_says_so_in_the_sites_frame_with_a_way_back(owner_client,
                                                                    make_experiment):
    # given a run the user may see, and addresses that lead nowhere: a group comparison with
    # no groups named, and a run that does not exist
    run = make_experiment()

    for path in (reverse("group-compare"), reverse("experiment-detail", args=[run.pk + 1000])):
        # when they are opened
        response = owner_client.get(path)

        # then the 404 is the site's page, with its menu, the address and a way back, not
        # the server's bare "Not Found" (which also ignored a phone's width)
        page = response.content.decode()
        assert response.status_code == 404
        assert 'id="not-found"' in page and 'name="viewport"' in page
        assert f"<code>{path}</code>" in page
        assert f'href="{reverse("experiment-list")}"' in page and "Log out" in page


def test_compare_with_one_run_says_how_to_pick_runs_as_an_error(owner_client, make_experiment):
    # given one run, the only one ticked
    run = make_experiment()

    # when Compare is opened with it alone
    response = owner_client.get(f"{reverse('compare')}?ids={run.pk}", follow=True)

    # then the list says what is wrong and what to do, styled as an error
    page = response.content.decode()
    assert response.redirect_chain[-1][0] == reverse("experiment-list")
    assert ('<p class="flash error">Select between 2 and 20 runs to compare (1 selected): '
            "tick them in the list below, then press Compare.</p>") in page
