"""Names made from a run's name (its seeds, tuning study, compression, remedy) fit the 200
characters a name holds, keeping the suffix that tells them apart: a run named at the limit
made a repeat whose seed runs PostgreSQL refused (a 500) and a Tune form that refused its own
default name."""

from __future__ import annotations

from django.urls import reverse

from training.spec import ExperimentSpec
from webapp.experiments import groups
from webapp.experiments.models import NAME_LENGTH, Experiment, RunGroup, derived_name

SMALL = ExperimentSpec().patched({
    "data": {"dataset": "iris"}, "model": {"arch": "mlp", "hidden_sizes": [8]},
    "run": {"epochs": 3, "batch_size": 16, "device": "cpu", "seed": 7},
})
LONGEST = "Ünïcødé 🚀 " + "x" * (NAME_LENGTH - 10)  # a name at the limit, one long word


def test_a_derived_name_keeps_its_suffix_and_fits():
    assert derived_name("iris mlp", " · seed 3") == "iris mlp · seed 3"
    name = derived_name(LONGEST, " · seed 3")
    assert len(name) == NAME_LENGTH and name.endswith("x · seed 3")
    assert name.startswith("Ünïcødé 🚀 ")


def test_repeating_a_run_named_at_the_limit_names_each_seed_within_it(owner_client,
                                                                      make_experiment):
    # given a finished run whose name is as long as a name may be
    assert len(LONGEST) == NAME_LENGTH
    source = make_experiment(status=Experiment.Status.SUCCEEDED, spec=SMALL.to_dict(),
                             name=LONGEST)

    # when it is repeated over 3 seeds from its page
    response = owner_client.post(reverse("run-repeat", args=[source.pk]), {"count": 3})

    # then the group and each new seed run fit the name column and say which they are
    group = RunGroup.objects.get()
    assert response.status_code == 302
    assert len(group.name) <= NAME_LENGTH and group.name.endswith(" ×3")
    seeds = groups.ordered_runs(group)[1:]
    assert [len(run.name) <= NAME_LENGTH for run in seeds] == [True, True]
    assert [run.name[-9:] for run in seeds] == [" · seed 8", " · seed 9"]


def test_the_forms_of_a_run_named_at_the_limit_offer_names_that_fit(owner_client,
                                                                    make_experiment):
    # given a finished run whose name is as long as a name may be
    source = make_experiment(status=Experiment.Status.SUCCEEDED, spec=SMALL.to_dict(),
                             name=LONGEST)

    # when its Tune and Compress forms are opened
    tune = owner_client.get(reverse("study-new", args=[source.pk]))
    compress = owner_client.get(reverse("compress-new", args=[source.pk]))

    # then the names they offer are valid as they stand
    assert tune.context["form"].initial["name"] == derived_name(LONGEST, " · tuning")
    assert len(tune.context["form"].initial["name"]) == NAME_LENGTH
    compress_name = compress.context["form"].initial["name"]
    assert len(compress_name) == NAME_LENGTH and compress_name.endswith(" · compressed")
