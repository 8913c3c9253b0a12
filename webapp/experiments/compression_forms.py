"""The Compress form: method and parameters, and a student built from the same model fields as
the experiment form. The spec does the validating; each error lands on its field."""

from __future__ import annotations

import dataclasses
from typing import Any

from django import forms

from training.compression.spec import FIELDSET_ORDER, WORD_MODELS, CompressionSpec
from training.spec import SpecError, model_plugin, model_plugins
from webapp.experiments import spec_forms
from webapp.experiments.compression import check_job
from webapp.experiments.models import Experiment, derived_name
from webapp.experiments.ownership import reference_problem

# Every field of the compression spec (the student's model fields as "student_<field>"), from
# its field metadata; the source is the page's run.
SPEC_FIELDS = spec_forms.spec_fields(CompressionSpec)
# A plugin student's options ("student_mobilenet_width"), shown while it is the student.
STUDENT_PLUGIN = "student.plugin_config"
SPEC_FIELDS += [
    dataclasses.replace(sf, applies={**sf.applies, "method": ("distill",)})
    for name in sorted(model_plugins())
    for sf in spec_forms.plugin_fields(model_plugin(name).Config, f"{STUDENT_PLUGIN}.", name,
                                       "student_arch", name_prefix="student_")]
# Form field → compression spec path, and back.
FIELD_PATHS_COMPRESS = {sf.name: sf.path for sf in SPEC_FIELDS}
PATH_FIELDS_COMPRESS = {path: name for name, path in FIELD_PATHS_COMPRESS.items()}
STUDENT_FIELDS = {sf.name: sf.path.removeprefix("student.") for sf in SPEC_FIELDS
                  if sf.path.startswith("student.")}
FIELDSETS = [(legend, ["name", *names] if legend == FIELDSET_ORDER[0] else names)
             for legend, names in spec_forms.fieldsets(SPEC_FIELDS, FIELDSET_ORDER)]
# Field → {controlling field: values}: pruning fields under a pruning method, the student's
# under distillation (and then under its architecture).
APPLIES = spec_forms.applies_map(SPEC_FIELDS)


def compression_initial(source: Experiment) -> dict[str, Any]:
    """Initial values: the spec's defaults, and the source's model fields for the student."""
    spec = CompressionSpec(source=source.pk, student=source.experiment_spec.model)
    initial: dict[str, Any] = {"name": derived_name(source.name, " · compressed"),
                               **spec_forms.initial_values(SPEC_FIELDS, spec)}
    # A student about ten times smaller than a default teacher to start from.
    initial["student_hidden_sizes"] = "32"
    initial["student_width"] = max(4, spec.student.width // 4)
    return initial


class CompressionForm(forms.Form):
    name = forms.CharField(max_length=200)

    def __init__(self, *args: Any, source: Experiment, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.source, self.user = source, user
        self.spec: CompressionSpec | None = None
        # Said before the submit: a regression's list offered distillation, refused on submit.
        method = self.fields["method"]
        unsuitable = [f"{label}: {problem}" for key, label in method.choices  # type: ignore[attr-defined]
                      if (problem := method_problem(source, key))]
        if unsuitable:
            method.help_text = "Not for this run: " + "; ".join(unsuitable)
        self._say_what_a_text_student_reads(source.experiment_spec.model)

    def _say_what_a_text_student_reads(self, teacher: Any) -> None:
        """A text student is built on its teacher's tokenizer: its own vocabulary fields are
        not read (the job records the teacher's), which the form says rather than take them."""
        if teacher.arch not in WORD_MODELS:
            return
        teachers = {"student_vocab_size": f"up to {teacher.vocab_size:,} words",
                    "student_min_freq": str(teacher.min_freq),
                    "student_max_length": f"{teacher.max_length} tokens; a Transformer "
                                          "student's positions may reach further"}
        for name, value in teachers.items():
            if name in self.fields:
                self.fields[name].help_text = (
                    f"A text student reads its teacher's vocabulary: the teacher's is used "
                    f"({value}).")

    def fieldsets(self) -> list[tuple[str, list[forms.BoundField]]]:
        return [(legend, [self[name] for name in names]) for legend, names in FIELDSETS]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        # The job goes to the teacher's project; the data it distils or fine-tunes on is the
        # teacher's, which must be of that project and visible to the user.
        problem = reference_problem(self.user, self.source.project,
                                    self.source.experiment_spec.data.dataset, self.source)
        if problem:
            self.add_error(None, problem)
        # Every problem in one answer: fields that did not convert are checked as defaults.
        fields = spec_forms.chosen_fields(SPEC_FIELDS, cleaned, (STUDENT_PLUGIN,))
        hidden = spec_forms.hidden_fields(fields, cleaned)
        failed_hidden = spec_forms.forget_hidden_errors(self.errors, hidden)
        data = {"source": self.source.pk, **spec_forms.defaults_for_failed(
            fields, spec_forms.spec_data(fields, cleaned), {*self.errors, *failed_hidden})}
        if options := data.get("student", {}).get("plugin_config"):  # empty: the default
            data["student"]["plugin_config"] = {k: v for k, v in options.items()
                                                if v is not None}
        spec, errors = spec_forms.shown_problems(CompressionSpec.from_dict, fields, data,
                                                 hidden)
        if spec is None:
            # Also say at once whether the method suits the source at all.
            method = CompressionSpec(source=self.source.pk, method=data["method"])
            errors.update({k: v for k, v in _job_problems(self.source, method).items()
                           if k in ("source", "method")})
        else:
            errors = _job_problems(self.source, spec)
            self.spec = spec
        for path, message in errors.items():
            name = PATH_FIELDS_COMPRESS.get(path)
            if name is None or name not in self.errors:
                self.add_error(name, message)
        if self.errors:
            self.spec = None
        return cleaned


CompressionForm.base_fields.update(spec_forms.form_fields(SPEC_FIELDS))
for _field in SPEC_FIELDS:
    if _field.path.startswith(STUDENT_PLUGIN):  # hidden unless its plugin is the student
        CompressionForm.base_fields[_field.name].required = False
# A plugin model may be the student too.
CompressionForm.base_fields["student_arch"].choices = [  # type: ignore[attr-defined]
    *CompressionForm.base_fields["student_arch"].choices,  # type: ignore[attr-defined]
    *((name, getattr(model_plugin(name), "title", name)) for name in sorted(model_plugins()))]


def method_problem(source: Experiment, method: str) -> str:
    """Why ``method`` cannot compress ``source``'s model ("" when it can, or when the source's
    data set is gone, which the submit says on its own field)."""
    try:
        problems = _job_problems(source, CompressionSpec(source=source.pk, method=method))
    except KeyError:
        return ""
    return problems.get("method", "")


def _job_problems(source: Experiment, spec: CompressionSpec) -> dict[str, str]:
    try:
        check_job(source, spec)
    except SpecError as exc:
        return exc.errors
    return {}
