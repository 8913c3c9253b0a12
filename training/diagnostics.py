"""Diagnose a run from its per-epoch metric history: a verdict, its evidence and remedies.

``diagnose(history, task, spec)`` is a pure function of the numbers the loop logs each epoch
(``train_loss``, ``val_loss`` and, for classification, ``train_acc`` and ``val_acc``). It says
whether the run is diverging, overfitting, underfitting, learning too slowly or healthy, how
sure it is, the evidence a person can check on the curves, and remedies expressed as patches
for ``ExperimentSpec.patched()``. It works on a live run (``final=False``, more conservative)
and on a finished one.

Every comparison is robust to noisy curves: levels are medians of the last epochs, trends are
least-squares slopes over a window, and changes are measured against the noise of the curve and
against the task's baseline loss (what predicting the majority class, or the mean, would score),
never one epoch against the next. Each threshold below says why it has its value.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from training.data.catalog import DatasetInfo, dataset_info
from training.fieldmeta import field_meta
from training.reference import Reference
from training.spec import ExperimentSpec, SpecError, model_plugin

# --- how much history a verdict needs ------------------------------------------------------
# Three epochs are the fewest that show a trend rather than one step between two noisy points.
MIN_EPOCHS = 3
# "Now" is the median of the last three epochs, so a single noisy epoch cannot flip a verdict.
RECENT_EPOCHS = 3
# Trends are slopes fitted over the last third of the run (at least three epochs), compared with
# the third before it: long enough to average out noise, short enough to describe the end of
# the run rather than its start.
WINDOW_FRACTION = 1 / 3

# --- diverging -----------------------------------------------------------------------------
# An untrained network scores about the chance loss (ln N for cross-entropy, 1 for standardised
# MSE); an epoch averaging three times that means the weights blew up, not a slow start.
EXPLODE_FACTOR = 3.0
# A training loss that climbs back by a quarter of the chance loss, sustained over the last
# epochs, undoes real progress: noise in an epoch's mean training loss is far smaller.
REBOUND_FRACTION = 0.25
# A loss that swings rather than climbs: it at least doubles from one epoch to the next, by a
# quarter of the chance loss or more (REBOUND_FRACTION), OSCILLATION_COUNT times or more within
# the last OSCILLATION_EPOCHS epochs (or the last third, when longer). That is a learning rate
# too high for the loss's valleys (SGD at 4 on iris: validation 0.08 -> 1.26, training 0.11 ->
# 0.59): no healthy, overfitting, underfitting or slow curve of the stored corpora (tiny
# validation sets, warm restarts, cyclic schedules among them) has even one such jump there.
OSCILLATION_FACTOR = 2.0
OSCILLATION_COUNT = 2
OSCILLATION_EPOCHS = 6

# --- overfitting ---------------------------------------------------------------------------
# Epochs since validation reached its plateau (within noise of its best) before calling
# overfitting ("several epochs"); a live run waits longer, since one more good epoch would
# retract the verdict.
OVERFIT_MIN_EPOCHS = 3
OVERFIT_MIN_EPOCHS_LIVE = 5
# Validation loss 10% above its best is a real rise for a loss that is already small ...
VAL_RISE = 0.10
# ... but not when the loss is next to zero: it must also rise by 1% of the baseline loss.
VAL_RISE_FLOOR = 0.01
# Every rise and gap growth must also exceed three standard deviations of the validation noise
# (estimated from the curve itself), so noisy validation sets do not fake a trend.
NOISE_SIGMAS = 3.0
# A gap between validation and training loss that grew by a tenth of the baseline loss since
# validation stalled: the training set is being fitted at the expense of the validation set.
GAP_GROWTH = 0.10
# A gap is "large" when validation loss is at least five times the training loss (the model is
# far surer of examples it has seen) and the gap is at least 5% of the baseline loss (so two
# near-zero losses are not a large gap).
GAP_RATIO = 5.0
GAP_FLOOR = 0.05
# Every sign needs the training loss to have kept falling, by 10% since validation stalled:
# a validation loss that drifts up while nothing is being learned is noise, not overfitting.
TRAIN_STILL_FALLING = 0.10
# ... unless the validation loss climbed this many times its threshold (30% over its best at
# the least, and nine deviations of its noise) while the training loss held: a classifier
# growing confident on the validation examples it gets wrong, its training loss at its floor.
STEEP_VAL_RISE = 3.0
# Validation accuracy five points below its best, as a median of the last epochs.
ACC_DROP = 0.05

# --- underfitting --------------------------------------------------------------------------
# Training loss that has not come down to this fraction of the baseline loss: a classifier
# still at half the majority-class loss gets most examples only partly right. Regression asks
# for less (R² of 0.25 on the training split): noisy tabular targets often cap R² near 0.5.
UNDERFIT_LEARNED = {"classification": 0.5, "regression": 0.25}
# When nothing says what a constant prediction scores (a script's run that names neither its
# classes nor its units, and whose first logged loss is not an untrained network's: one logged
# after an epoch or a few hundred steps, or a pretrained network's), a loss can only be measured
# against the start its first epoch means tell (task_from_curves), which may still be below
# chance: a run is poor only when it has not gone down, shedding less than this share of that
# start. A run that learned before it first logged sheds far more than this over its next epochs.
STUCK_LEARNED = 0.1
# ... and a classifier's loss may fall without its learning anything: from a start that was
# worse than uniform (a bad initialisation's confident mistakes) to the uniform prediction, a
# linear model on concentric circles fell from 0.82 to ln 2, a tenth of that start. Such a run
# is poor whatever its loss did when its accuracy, the better of training and validation, has
# not risen by ACC_ROSE since the first evaluation and is no better than a coin's (COIN): no
# classifier of two or more balanced classes that learned anything stays there. Above a coin a
# flat accuracy may be one learned in the first epoch (digits at 96% from epoch 1, a CNN's 91%).
ACC_ROSE = 0.05
COIN = 0.5
# A live run may sit on a plateau for its first epochs before it starts learning.
UNDERFIT_MIN_EPOCHS_LIVE = 5
# With a reference as with none, a run whose better loss has shed less than STUCK_LEARNED of
# the constant prediction's has learned nothing: poor, even where the reference does no better
# (labels the features do not predict, a wrong label column), which the headline then says.
# With a reference model (training.reference: a linear model fitted on the same split), poor
# means short of what the data allows. The run's score is the better of its training and
# validation score (dropout and augmentation hold the training score down while the model is
# fine), the reference's is its validation score (what a linear model reaches on rows it did not
# fit). Accuracy: the run falls short of the reference by this share of the room between the
# majority class and the reference — a network that cannot match a linear model has too little
# capacity or too much regularisation ...
UNDERFIT_SHORT_ACC = 0.1
# ... and by at least this much accuracy, so that a point or two of noise on a data set where
# the reference is close to the majority class is not a verdict.
UNDERFIT_SHORT_ACC_FLOOR = 0.03
# Losses (regression, or classification without accuracies): the run's loss is still above the
# reference's by this share of the room between the constant prediction and the reference.
UNDERFIT_SHORT_LOSS = 0.35

# --- learning too slowly -------------------------------------------------------------------
# Still falling: at the last epochs' pace, training as long again would lower the training loss
# by 3% of the baseline loss (a run with a tiny learning rate barely moves, yet steadily; less
# than that is a loss stuck where it is) ...
SLOW_GAIN = 0.03
# ... and the pace is at least half that of the window before it, which was falling too, i.e.
# no plateau is forming (a decay that is levelling off halves its slope within a third of the
# run when its time constant is under half the run) ...
SLOW_SHAPE = 0.5
# ... and the fall is real: the slope is at least twice its standard error given the curve's
# noise, so a noisy plateau does not pass for a descent.
SLOPE_SIGMAS = 2.0
# ... and, once finished, the last epochs' pace is at least half the run's average pace (what it
# shed since epoch 3 over the epochs run since): a descent in a straight line scores 1, a curve that
# fell fast and is flattening into a plateau far less, however long its tail still slopes.
SLOW_STEADY = 0.5
STEADY_FROM = 2  # the average pace is counted from this epoch (0-based) on
# ... and validation follows: its loss falls at least at this share of the training loss's pace
# (within its noise), so that more epochs would improve what matters, not only the gap.
SLOW_FOLLOW = 0.25
# With a reference model, a run is slow only while it is still short of what the data allows by
# at least half the underfitting threshold: one that already matches the reference and is still
# improving a little is healthy.
SLOW_SHORT = 0.5

# --- remedies ------------------------------------------------------------------------------
DROPOUT_STEP = 0.2  # added to the current dropout ...
DROPOUT_MIN = 0.3  # ... to reach at least this ...
DROPOUT_MAX = 0.5  # ... and at most this: beyond it, dropout itself makes the model underfit
WEIGHT_DECAY_START = 1e-4  # L2 from zero: a common default that rarely hurts
WEIGHT_DECAY_MAX = 1e-2  # ×10 per remedy up to here; stronger L2 shrinks weights to nothing
EARLY_STOPPING_PATIENCE = 3  # epochs without improvement, matching OVERFIT_MIN_EPOCHS
MIN_WIDTH = 8  # a smaller model keeps at least this many units or channels per layer
MAX_MLP_WIDTH = 4096  # a larger model doubles widths up to here, then adds a layer
MAX_CNN_WIDTH = 1024  # the spec's own limit on CNN width
MAX_MLP_LAYERS = 16  # the spec's limit on hidden layers
MAX_CNN_BLOCKS = 6  # the spec's limit on CNN blocks
MAX_TEXT_WIDTH = 4096  # the spec's limit on RNN hidden size and Transformer width
MAX_TEXT_LAYERS = 24  # the spec's limit on RNN / Transformer layers
LR_UP = 3.0  # a higher learning rate: ×3, about half a decade per remedy ...
# ... but a decade when the loss barely moved in the whole run (shed under SLOW_GAIN of the
# baseline): while steps are that small, progress grows about in proportion to the step, and
# ×3 of nothing is still nothing (Adam at 1e-6 moved 0.3% of the baseline in 15 epochs).
LR_UP_STUCK = 10.0
LR_MAX = 1.0  # no remedy proposes a learning rate above this
LR_DOWN = 10.0  # a diverging run needs a decade less, not a nudge
GRAD_CLIP = 1.0  # global norm; gradients of healthy small models rarely exceed it
# A linear warmup over the first tenth of the run's steps (BERT's recipe warmed up over 10%),
# or twice the current warmup: long enough for Adam's statistics and batch norm to settle
# before the full learning rate applies, short enough to leave most of the run at full rate.
WARMUP_SHARE = 0.1
MAX_EPOCHS = 10000  # the spec's limit on epochs

KINDS = ("diverging", "overfitting", "underfitting", "slow", "healthy", "undetermined")


@dataclass(frozen=True)
class TaskInfo:
    """What a loss value means for this task: its kind, classes and majority-class share."""

    kind: str  # "classification" or "regression"
    num_classes: int | None = None  # classification only
    # Share of the most frequent class in the training split; None means balanced classes.
    majority_fraction: float | None = None
    # The loss as the spec sets it up ("" = cross-entropy or MSE, the task's usual one): it
    # decides what a constant prediction scores, and what a perfect one does.
    loss: str = ""
    label_smoothing: float = 0.0  # cross-entropy: a perfect prediction still scores above 0
    class_weights: str = "none"  # "balanced" weighs every class alike: as if balanced
    huber_delta: float = 1.0  # Huber: where the loss turns linear, in standard deviations
    # Regression: the constant prediction's loss in the run's own units, by which the standard
    # normal target's is multiplied: 1 for targets standardised as the engine does; a run
    # logged from elsewhere may use any units (see task_from_curves).
    loss_scale: float = 1.0
    # False: what a constant prediction scores is not known (a classification without its
    # number of classes, a regression in unknown units); ``loss_scale`` is then the start the
    # run's first epoch means tell, a scale for noise and pace but no chance level, and the
    # rules that compare a loss with a constant prediction's ask only that it went down
    # (STUCK_LEARNED).
    baseline_known: bool = True
    # Without a chance level, the first loss logged (NaN: none); a blow-up is measured from it.
    first_logged: float = math.nan

    def __post_init__(self) -> None:
        if self.kind not in ("classification", "regression"):
            raise ValueError(f"unknown task kind {self.kind!r}")
        if self.kind == "classification" and self.baseline_known and (
                self.num_classes or 0) < 2:
            raise ValueError("a classification task needs at least two classes")

    @property
    def majority(self) -> float:
        """Share of the most frequent class (1/N when unknown); 0 for regression."""
        if self.kind == "regression" or self.num_classes is None:
            return 0.0
        if self.class_weights == "balanced":
            return 1.0 / self.num_classes
        return self.majority_fraction or 1.0 / self.num_classes

    @property
    def baseline_loss(self) -> float:
        """Training loss of the best constant prediction: the mean for standardised regression
        targets (MSE 1; for MAE and Huber their value on a standard normal target), the class
        frequencies for cross-entropy (their entropy, after label smoothing). Only the
        majority share is known, so the other classes are taken as equally frequent: exact for
        two classes and for balanced sets, slightly high otherwise."""
        if self.kind == "regression" or self.num_classes is None:
            return _regression_baseline(self.loss, self.huber_delta) * self.loss_scale
        k, eps = self.num_classes, self.label_smoothing
        p = (1.0 - eps) * self.majority + eps / k
        return _entropy(p, (1.0 - p) / (k - 1), k - 1)

    @property
    def floor_loss(self) -> float:
        """The lowest loss a model can reach: 0, except cross-entropy against smoothed labels,
        whose targets keep some probability on every class (their entropy)."""
        if self.kind == "regression" or self.num_classes is None or not self.label_smoothing:
            return 0.0
        k, eps = self.num_classes, self.label_smoothing
        return _entropy(1.0 - eps + eps / k, eps / k, k - 1)

    def learned(self, loss: float) -> float:
        """The share of the constant prediction's loss that ``loss`` has shed, measured from
        the lowest reachable loss (above zero with label smoothing): 0 at the baseline, 1 at
        the floor."""
        return (self.baseline_loss - loss) / (self.baseline_loss - self.floor_loss)

    @property
    def learned_needed(self) -> float:
        """The share of the baseline a run must shed not to be poor without a reference:
        UNDERFIT_LEARNED of a constant prediction's loss, or, when that is unknown,
        STUCK_LEARNED of the run's first logged loss."""
        return UNDERFIT_LEARNED[self.kind] if self.baseline_known else STUCK_LEARNED

    def not_poor(self) -> float:
        """The loss below which the underfitting rule no longer calls a run poor without a
        reference: ``learned_needed`` of the way from the baseline to the floor."""
        share = self.learned_needed
        return self.baseline_loss - share * (self.baseline_loss - self.floor_loss)

    def for_spec(self, spec: ExperimentSpec) -> TaskInfo:
        """This task measured with the spec's loss, label smoothing and class weights."""
        o = spec.optim
        return dataclasses.replace(self, loss=o.loss, label_smoothing=o.label_smoothing,
                                   class_weights=o.class_weights, huber_delta=o.huber_delta)

    @property
    def chance_loss(self) -> float:
        """Loss of an untrained network, about uniform predictions (ln N) or the mean (1)."""
        if self.kind == "regression" or self.num_classes is None:
            return self.baseline_loss
        return max(math.log(self.num_classes), self.baseline_loss)

    @property
    def blow_up_from(self) -> float:
        """What a blow-up is measured from: chance, or without it the first loss logged. The
        start the first epochs tell may lie above a spike's stretch means when the points are
        means of several epochs; the first loss logged is one the run surely reached."""
        if self.baseline_known or not math.isfinite(self.first_logged):
            return self.chance_loss
        return self.first_logged


def _entropy(p: float, others: float, rest: int) -> float:
    """Entropy of a distribution with one class at ``p`` and ``rest`` classes at ``others``."""
    return -p * math.log(p) - (rest * others * math.log(others) if others > 0 else 0.0)


def _regression_baseline(loss: str, delta: float) -> float:
    """The loss of predicting 0 (the mean and median) for a standard normal target: MSE 1,
    MAE √(2/π), Huber Φ(δ) − ½ + δφ(δ) − δ²(1 − Φ(δ)). Targets are standardised by the
    training split; normality is the assumption that gives MAE and Huber a number."""
    if loss == "mae":
        return math.sqrt(2 / math.pi)
    if loss == "huber":
        cdf = 0.5 * (1 + math.erf(delta / math.sqrt(2)))
        pdf = math.exp(-delta * delta / 2) / math.sqrt(2 * math.pi)
        return cdf - 0.5 + delta * pdf - delta * delta * (1 - cdf)
    return 1.0


def task_info(dataset_name: str | DatasetInfo, class_counts: Sequence[int] | None = None
              ) -> TaskInfo:
    """The TaskInfo of a catalog dataset. The catalog does not hold class frequencies, so pass
    the training split's ``class_counts`` when they are at hand; otherwise classes count as
    balanced."""
    info = dataset_name if isinstance(dataset_name, DatasetInfo) else dataset_info(dataset_name)
    if info.task == "regression":
        return TaskInfo("regression")
    majority = max(class_counts) / sum(class_counts) if class_counts else None
    return TaskInfo("classification", info.num_classes, majority)


# A run logged from elsewhere may say neither how many classes it has nor in which units its
# regression target is. Its losses are then measured against its own start when that start is an
# untrained network's (a first batch's loss, before any step): it scores about what a constant
# prediction does (ln N for N balanced classes, the target's mean square for MSE). A first loss
# above ln 1000 is taken for a blow-up rather than for more classes than ImageNet's. A first
# loss logged later (an epoch's mean, a pretrained network's) is no chance level: read as one,
# it made a 10-class run a 2-class one, and an honest loss "underfitting". Taken as the scale
# itself, it measured a run that learned much in its first epoch by too small a one, and a
# validation loss one example's confidence above its best read as overfitting.
MAX_GUESSED_CLASSES = 1000


def task_from_curves(history: Mapping[str, Sequence[float]], kind: str,
                     num_classes: int | None = None, start: float = math.nan) -> TaskInfo:
    """The task of a run known only from its curves: ``num_classes`` when told; else, when
    ``start`` (the loss of the untrained network, the first batch's before any step) is
    known, the count whose uniform prediction scores it, or for regression that loss as the
    constant prediction's (``loss_scale``). Without either, the chance level is unknown
    (``baseline_known=False``): the start its first epoch means tell (``_scale_before``) is
    only its scale. Validation is
    left out: a network that memorises scores worse than a constant prediction there from its
    first evaluation on."""
    train = [float(v) for v in history.get("train_loss", ())]
    if kind == "classification" and num_classes is not None:
        return TaskInfo("classification", num_classes)
    if math.isfinite(start):
        if kind == "regression":
            return TaskInfo("regression", loss_scale=start if start > 0 else 1.0)
        guessed = round(math.exp(min(max(start, 0.0), math.log(MAX_GUESSED_CLASSES))))
        return TaskInfo("classification", max(2, guessed))
    first = next((v for v in train if math.isfinite(v) and v > 0), math.nan)
    if kind == "classification":
        # No untrained classifier scores above ln MAX_GUESSED_CLASSES: a first mean above it
        # (Adam at 0.5 averaged 102 over its first epoch) is already the blow-up, and measured
        # from itself it hid one (the next epochs' 11 and 6.5 read as a fall, then "healthy").
        first = min(first, math.log(MAX_GUESSED_CLASSES))
    return TaskInfo(kind, loss_scale=_scale_before(train, kind), baseline_known=False,
                    first_logged=first)


def _scale_before(train: Sequence[float], kind: str) -> float:
    """The loss the run started from, as its first epoch means tell it: each is about the
    loss half-way through its epoch, so the start lies half an epoch before the first, at the
    pace (a ratio) the loss fell from the first mean to the second. A first epoch that fell
    more than twice as fast as the next may be a blow-up settling rather than learning, so its
    pace counts at most twice the next one's. It is an estimate, never below the first mean: a
    run that did not fall (pretrained, stuck, blowing up) keeps it. A classification's is capped
    at ln MAX_GUESSED_CLASSES, the most an untrained network scores, even when the first mean
    is above it (a blow-up in the first epoch)."""
    means = [v for v in train if math.isfinite(v) and v > 0][:3]
    if not means:
        return 1.0
    first = start = means[0]
    if len(means) == 3:
        half_epoch = min(math.sqrt(first / means[1]), means[1] / means[2])
        start = first * max(half_epoch, 1.0)
    if kind == "classification":
        return min(start, math.log(MAX_GUESSED_CLASSES))
    return start


@dataclass(frozen=True)
class Evidence:
    """One measured fact behind a verdict. Non-finite numbers are kept as text ("nan", "inf")
    so that every verdict is valid JSON."""

    label: str
    value: float | int | str
    detail: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.value, float) and not math.isfinite(self.value):
            object.__setattr__(self, "value", str(self.value))


@dataclass(frozen=True)
class Remedy:
    """A change to try, as a patch for ``ExperimentSpec.patched()``. ``advice_only`` remedies
    (checking the labels) change nothing in the spec, and their patch is empty."""

    key: str  # stable id, e.g. "dropout"
    title: str  # what to do, e.g. "Add dropout 0.3"
    why: str  # one sentence on why it helps
    patch: dict[str, dict[str, Any]]
    advice_only: bool = False

    def __post_init__(self) -> None:
        # The patch's numbers as its title says them: 1e-5 × 3 is 3.0000000000000004e-05 in
        # floating point, and 0.1 + 0.2 dropout 0.30000000000000004, which the remedy's page
        # and the new run's spec would show.
        object.__setattr__(self, "patch", _tidy(self.patch))


def remedy_measure(kind: str) -> str:
    """What a remedy of a run judged ``kind`` is measured by: the final train/validation gap
    ("gap") for overfitting, whose remedies shrink it; the validation loss ("val_loss") for a
    slow, underfitting or diverging run, whose remedies are to learn more (a higher learning
    rate widens the gap as it should). Lower is better either way."""
    return "gap" if kind == "overfitting" else "val_loss"


def _tidy(value: Any) -> Any:
    """``value`` with every float rounded to the 6 significant digits ``{:g}`` shows."""
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:g}")
    if isinstance(value, dict):
        return {key: _tidy(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_tidy(item) for item in value)
    return value


@dataclass(frozen=True)
class Verdict:
    """What a run's curves say. ``confidence`` is in [0, 1] (0 for "undetermined");
    ``thresholds`` are the values the deciding rule compared against; ``remedies`` are ordered
    from the most to the least likely to help."""

    kind: str  # one of KINDS
    confidence: float
    headline: str
    evidence: list[Evidence] = field(default_factory=list)
    onset_epoch: int | None = None
    thresholds: dict[str, float] = field(default_factory=dict)
    remedies: list[Remedy] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (``json.dumps(..., allow_nan=False)`` accepts it)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        """The verdict ``to_dict()`` stored."""
        return cls(
            kind=data["kind"],
            confidence=float(data["confidence"]),
            headline=data["headline"],
            evidence=[Evidence(**item) for item in data["evidence"]],
            onset_epoch=data["onset_epoch"],
            thresholds={name: float(value) for name, value in data["thresholds"].items()},
            remedies=[Remedy(**item) for item in data["remedies"]],
        )


def diagnose(history: Mapping[str, Sequence[float]], task: TaskInfo,
             spec: ExperimentSpec | None = None, *, final: bool = False,
             reference: Reference | None = None) -> Verdict:
    """The verdict on a run from its per-epoch history (one value per epoch, epoch 1 first).

    ``history`` holds ``train_loss`` and ``val_loss`` (plus ``train_acc`` and ``val_acc`` for
    classification, used as evidence and for falling validation accuracy); a history without
    ``val_loss`` is judged on its training loss alone (diverging, underfitting, slow or
    healthy; overfitting is not judged, and the verdict says so), and optionally
    ``loss``, the per-step training loss, which reveals a blow-up before its epoch ends. A run
    that stopped on a non-finite loss should end ``loss`` (or ``train_loss``) with that value:
    the loop logs only finite points. A ``val_loss`` that is NaN at an epoch (not validated,
    or an evaluation that failed) or shorter than ``train_loss`` (validated every k epochs)
    is read at the epochs that have one (see ``_Curves``); a NaN there beside a finite
    training loss is no divergence, and the verdict says which epochs it left out. Rules are
    tried in order: diverging, too early to tell (fewer than MIN_EPOCHS epochs), overfitting,
    underfitting, learning too slowly (only when ``final``: a live run that is still learning
    is healthy), and healthy otherwise.

    Remedies are patches of ``spec``; without a spec there is nothing to patch and the list is
    empty (the headline and evidence still say what is wrong). With a spec, a live verdict also
    judges whether the loss is still falling against the planned number of epochs.
    """
    curves = _Curves.of(history)
    if spec is not None:
        task = task.for_spec(spec)
    context = _Context(curves, task, spec, final, reference)
    verdict = _verdict(context)
    if not curves.validated:  # say what could not be judged, whatever was
        verdict.evidence.append(Evidence("overfitting", "not judged", NOT_VALIDATED))
    if curves.skipped and curves.nonfinite_epoch is None:
        return _unvalidated_epochs(verdict, curves.skipped)
    return verdict


def _unvalidated_epochs(verdict: Verdict, skipped: Sequence[int]) -> Verdict:
    """The verdict, saying which epochs had no finite validation loss beside a finite
    training loss (judged without them): a validation problem or a skipped evaluation, for
    the person to look at, not a divergence."""
    shown = ", ".join(map(str, skipped[:3])) + (f" ({len(skipped)} in all)"
                                                  if len(skipped) > 3 else "")
    epochs = f"epoch{'s' if len(skipped) > 1 else ''} {shown}"
    verdict.evidence.append(Evidence(
        "validation loss not finite", len(skipped),
        f"{epochs}, while the training loss was finite: an evaluation that failed (an fp16 "
        "overflow, an empty validation set) or was skipped, not a divergence; judged on the "
        "epochs with a validation loss"))
    return dataclasses.replace(verdict, headline=(
        f"{verdict.headline} (no finite validation loss at {epochs}, the training loss "
        "finite: check the validation; judged without them)"))


# Said of every verdict on a history without a validation loss.
NOT_VALIDATED = ("overfitting cannot be judged without a validation metric (log val_loss "
                 "or eval_loss)")


def _verdict(context: _Context) -> Verdict:
    """The first rule that holds, in the order ``diagnose`` documents."""
    curves = context.curves
    diverging = _diverging(context)
    if diverging.holds:
        return diverging.verdict(_remedies(diverging, context))
    if curves.epochs < MIN_EPOCHS:
        epochs = f"{curves.epochs} epoch{'' if curves.epochs == 1 else 's'}"
        # A run that ended this short (a compression job's two fine-tuning epochs) has no
        # "so far": it is too short to judge, for good.
        headline = (f"Too short to tell: the run had {epochs}, a verdict needs {MIN_EPOCHS}"
                    if context.final else
                    f"Too early to tell: {epochs} so far, a verdict needs {MIN_EPOCHS}")
        return Verdict("undetermined", 0.0, headline,
                       thresholds={"min_epochs": float(MIN_EPOCHS)})
    findings = [_overfitting(context), _underfitting(context), _slow(context)]
    for finding in findings:
        if finding.holds:
            # Underfitting's remedies (more capacity, less regularisation) are the opposite of
            # what a validation loss rising while the training loss falls asks for.
            early = _early_overfit(context) if finding.kind == "underfitting" else None
            return early or finding.verdict(_remedies(finding, context))
    return _stuck_early(context) or _healthy(
        context, max(f.margin for f in [diverging, *findings]))


def _early_overfit(context: _Context) -> Verdict | None:
    """An early sign of overfitting, too early for the overfitting rule (fewer epochs past
    validation's best than it needs): since its best, the validation loss's last epoch rose
    past the rule's threshold while the training loss fell by TRAIN_STILL_FALLING. None
    otherwise. Three epochs of a validation loss climbing beside a falling training loss read
    as "underfitting", whose remedies are the opposite of what they show."""
    if not context.curves.validated:
        return None
    o, val, train = _overfit(context), context.curves.val, context.curves.train
    needed = OVERFIT_MIN_EPOCHS if context.final else OVERFIT_MIN_EPOCHS_LIVE
    # Raw epochs: in a run this short a best averaged with its neighbours is half the rise,
    # and a second difference of three points, taken for noise, is the curve's bend.
    last, low = val[-1], min(val[:-1])
    then = train[val.index(low)]
    if o.since >= needed or last - low < o.rise or then - train[-1] < (
            TRAIN_STILL_FALLING * then):
        return None
    headline = (f"Too early to tell, an early sign of overfitting: validation loss rose from "
                f"{low:.3g} (epoch {context.curves.number(val.index(low))}) to {last:.3g} "
                f"(epoch {context.curves.number(len(val) - 1)}) while training loss fell "
                f"{_change(train[-1], then)}; overfitting is "
                f"called {needed} epochs past validation's best, {o.since} so far")
    return Verdict("undetermined", 0.0, headline, _overfit_evidence(o),
                   context.curves.number(val.index(low)), {
                       "min_epochs_since_onset": float(needed),
                                 "val_rise": VAL_RISE, "noise_sigmas": NOISE_SIGMAS,
                                 "train_still_falling": TRAIN_STILL_FALLING})


def _stuck_early(context: _Context) -> Verdict | None:
    """A live run too young for the underfitting rule (UNDERFIT_MIN_EPOCHS_LIVE) whose better
    loss has shed less than STUCK_LEARNED of the baseline and is not falling: it may sit at
    chance for its first epochs and then learn, or never; either way it is not yet healthy
    (it read "healthy" with confidence 0.8). None otherwise."""
    curves = context.curves
    if context.final or curves.epochs >= UNDERFIT_MIN_EPOCHS_LIVE:
        return None
    poor, _, evidence, thresholds = _short_of_baseline(context, STUCK_LEARNED)
    if poor < 1.0 or _pace(context, context.horizon).falling:
        return None
    level = ("the chance level" if context.task.baseline_known
             else "where it was first logged")
    headline = (f"Too early to tell: after {curves.epochs} epochs the loss is still at "
                f"{level} ({context.task.baseline_loss:.3g}; now {curves.best_loss_now():.3g}"
                f"); a run may sit there for its first epochs, and is underfitting if it still "
                f"does at epoch {UNDERFIT_MIN_EPOCHS_LIVE}")
    return Verdict("undetermined", 0.0, headline, evidence,
                   thresholds={**thresholds, "min_epochs": float(UNDERFIT_MIN_EPOCHS_LIVE)})


# --- measuring the curves ------------------------------------------------------------------


@dataclass(frozen=True)
class _Curves:
    """The history's series at the epochs that have a validation loss (its evaluations), cut
    before the first non-finite training loss, plus where that appeared (an epoch number; one
    past the last epoch for a per-step loss). A validation loss that is NaN or infinite beside
    a finite training loss is a problem of the evaluation (an fp16 overflow, an empty
    validation set) or a skipped one, not a divergence: that epoch is left out of the
    evaluations, and ``skipped`` names it. The training loss of an evaluation is the mean of
    the epochs since the one before, as an evaluation's is wherever a run validates every k
    epochs."""

    train: list[float]
    val: list[float]
    train_acc: list[float]
    val_acc: list[float]
    steps: list[float]
    nonfinite_epoch: int | None
    # False: the history has no validation loss at all (a script that logs only its training
    # loss); the rules judge the training loss alone, and overfitting is not judged.
    validated: bool = True
    numbers: tuple[int, ...] = ()  # the epoch of each evaluation (1-based)
    skipped: tuple[int, ...] = ()  # epochs whose validation loss was not finite

    @classmethod
    def of(cls, history: Mapping[str, Sequence[float]]) -> _Curves:
        series = {key: [float(v) for v in history.get(key, ())]
                  for key in ("train_loss", "val_loss", "train_acc", "val_acc", "loss")}
        # An infinite accuracy is no share of anything: unknown, as a missing one (NaN). Kept,
        # an epoch of inf beside one of -inf made every mean of the curve raise.
        for key in ("train_acc", "val_acc"):
            series[key] = [v if math.isfinite(v) else math.nan for v in series[key]]
        train, val, steps = series["train_loss"], series["val_loss"], series["loss"]
        bad = [i for i, v in enumerate(train) if not math.isfinite(v)]
        nonfinite = bad[0] + 1 if bad else None
        if nonfinite is None and not all(math.isfinite(v) for v in steps):
            nonfinite = len(train) + 1
        cut = min(len(train), nonfinite - 1) if nonfinite else len(train)
        at = _validated_epochs(len(val), cut)
        kept = [(epoch, i) for i, epoch in enumerate(at) if math.isfinite(val[i])]
        skipped = tuple(epoch + 1 for i, epoch in enumerate(at) if not math.isfinite(val[i]))
        if not kept:  # no validation loss, or none finite: the training loss alone
            return cls(train[:cut], [], series["train_acc"][:cut], [], steps, nonfinite,
                       "train_loss" not in history, tuple(range(1, cut + 1)), skipped)
        ends = [epoch for epoch, _ in kept]
        spans = list(zip([0, *(end + 1 for end in ends[:-1])], ends, strict=True))
        val_acc = series["val_acc"]
        val_acc = ([val_acc[i] for _, i in kept] if len(val_acc) == len(val) else
                   [val_acc[e] for e in ends] if len(val_acc) >= cut else [])
        return cls(_means(train, spans), [val[i] for _, i in kept],
                   _means(series["train_acc"], spans) if len(series["train_acc"]) >= cut
                   else [], val_acc, steps, nonfinite, True,
                   tuple(end + 1 for end in ends), skipped)

    def number(self, index: int) -> int:
        """The epoch (1-based) of the evaluation at ``index`` (0-based); past the last one,
        the epochs after it."""
        if index < len(self.numbers):
            return self.numbers[index]
        return (self.numbers[-1] if self.numbers else 0) + index - len(self.numbers) + 1

    def best_loss_now(self) -> float:
        """The better of the training and validation losses now (median of the last epochs);
        the training loss alone without validation."""
        now = _recent(self.train)
        return min(now, _recent(self.val)) if self.validated else now

    @property
    def epochs(self) -> int:
        return len(self.train)


def _validated_epochs(logged: int, epochs: int) -> list[int]:
    """The epoch (0-based) of each of ``logged`` validation losses in a run of ``epochs``:
    one an epoch, from the first, when there are as many (or more, a live epoch's training
    loss still to come); fewer are taken as one every k epochs, ending at epoch k·logged (k
    the whole share of epochs per validation loss): a run that validates every k epochs, or
    every epoch with the last one's validation still to come (k = 1)."""
    if logged >= epochs or not logged:
        return list(range(min(logged, epochs)))
    every = epochs // logged
    return [(i + 1) * every - 1 for i in range(logged)]


def _means(values: Sequence[float], spans: Sequence[tuple[int, int]]) -> list[float]:
    """The mean of ``values`` over each span of epochs (first and last included)."""
    return [statistics.fmean(values[a:b + 1]) for a, b in spans]


@dataclass(frozen=True)
class _Context:
    curves: _Curves
    task: TaskInfo
    spec: ExperimentSpec | None
    final: bool
    reference: Reference | None = None

    @property
    def window(self) -> int:
        """Epochs in the trend window at the end of the run."""
        return max(MIN_EPOCHS, round(self.curves.epochs * WINDOW_FRACTION))

    @property
    def horizon(self) -> int:
        """The run's length for judging a pace: the epochs run, or the planned ones while live
        (a slow start is not a plateau when most of the run is still ahead)."""
        planned = self.spec.run.epochs if self.spec is not None and not self.final else 0
        return max(self.curves.epochs, planned)


def _recent(values: Sequence[float]) -> float:
    """The current level of a curve: the median of its last epochs."""
    return statistics.median(values[-RECENT_EPOCHS:])


@dataclass(frozen=True)
class _Trend:
    slope: float  # least-squares change per epoch
    error: float  # its standard error, given the curve's noise (inf: too few points)


def _trend(values: Sequence[float], noise: float) -> _Trend:
    """The slope of a window of epochs. Its standard error is that of a least-squares slope
    over k evenly spaced points with independent noise of deviation ``noise``."""
    k = len(values)
    if k < 2:
        return _Trend(0.0, math.inf)
    slope = statistics.linear_regression(range(k), values).slope
    return _Trend(slope, noise / math.sqrt(k * (k * k - 1) / 12))


def _smooth(values: Sequence[float]) -> list[float]:
    """Each epoch averaged with its neighbours, so one lucky epoch does not set a best."""
    return [statistics.fmean(values[max(0, i - 1):i + 2]) for i in range(len(values))]


def _noise(values: Sequence[float]) -> float:
    """Standard deviation of a curve's epoch-to-epoch noise, from the median absolute second
    difference: trends and a single bend barely move it. (For white noise of deviation s a
    second difference has deviation s·√6, and its median absolute value is 0.6745 of that.)"""
    if len(values) < 3:
        return 0.0
    second = [abs(a - 2 * b + c) for a, b, c in zip(values, values[1:], values[2:], strict=False)]
    return statistics.median(second) / (0.6745 * math.sqrt(6))


def _ratio(value: float, threshold: float) -> float:
    """How far ``value`` reaches towards ``threshold`` (≥ 1: reached); 0 when not positive."""
    if value <= 0:
        return 0.0
    return math.inf if threshold <= 0 else value / threshold


def _change(now: float, then: float) -> str:
    """A relative change for a headline, "18%"; one that rounds to 100% (or beyond, or from
    zero) is told as its two values, "from 0.21 to 0.001", which says more."""
    if then > 0 and round(abs(now / then - 1.0), 2) < 1.0:
        return f"{abs(now / then - 1.0):.0%}"
    return f"from {then:.3g} to {now:.3g}"


@dataclass(frozen=True)
class _Pace:
    """How the training loss is falling over the last window of epochs."""

    gain: float  # loss a run as long again would shed at this pace, over the baseline loss
    significance: float  # the fall over its standard error (inf: a curve without noise)
    shape: float  # this pace over the window before's (inf: nothing to compare)
    levelling_off: bool  # the pace dropped below SLOW_SHAPE of the one before, beyond noise
    # This pace over the run's average one (inf while live: a run still starting is not judged)
    steady: float = math.inf

    @property
    def margin(self) -> float:
        """The weakest condition over its threshold: still falling steadily at 1 or more."""
        return min(self.unsteady_margin, self.steady / SLOW_STEADY)

    @property
    def unsteady_margin(self) -> float:
        """The conditions but steadiness: still falling, beyond noise, with no plateau
        forming from one window to the next."""
        shape = self.shape / SLOW_SHAPE if self.levelling_off else math.inf
        return min(self.gain / SLOW_GAIN, self.significance / SLOPE_SIGMAS, shape)

    @property
    def still_falling(self) -> bool:
        return self.margin >= 1.0

    @property
    def falling(self) -> bool:
        """Still shedding at least SLOW_GAIN, beyond noise, however the pace compares with the
        window before."""
        return min(self.gain / SLOW_GAIN, self.significance / SLOPE_SIGMAS,
                   self.steady / SLOW_STEADY) >= 1.0


def _pace(context: _Context, horizon: int) -> _Pace:
    train, k = context.curves.train, context.window
    noise = _noise(train)
    last = _trend(train[-k:], noise)
    before = _trend(train[-2 * k:-k] if len(train) >= 2 * k else train[:-k], noise)
    gain = -last.slope * horizon / context.task.baseline_loss
    if math.isinf(before.error):  # too short a run to have a window before
        shape, levelling_off = math.inf, False
    elif before.slope >= 0:  # a flat or rising stretch before: a blip, not a steady descent
        shape, levelling_off = 0.0, True
    else:
        shape = last.slope / before.slope
        slowed = last.slope - before.slope
        levelling_off = shape < SLOW_SHAPE and slowed >= SLOPE_SIGMAS * math.hypot(
            last.error, before.error)
    steady = math.inf
    if context.final:
        # From the third epoch: the first epochs' mean training loss still holds the untrained
        # network's first steps, a quick drop that says nothing about the pace since.
        start = min(STEADY_FROM, len(train) - RECENT_EPOCHS)
        shed = train[start] - _recent(train)
        steady = -last.slope * (len(train) - 1 - start) / shed if shed > 0 else 0.0
    # The fall is real when it exceeds the curve's noise and the window's own scatter about its
    # line: spikes (a learning rate too high for the loss's valleys) are few enough that the
    # median second difference passes them over, and a slope fitted through them is theirs.
    error = max(last.error, _scatter_error(train[-k:]))
    return _Pace(gain, _ratio(-last.slope, error), shape, levelling_off, steady)


def _scatter_error(values: Sequence[float]) -> float:
    """The standard error of a least-squares slope from the points' scatter about their
    line (0 with fewer than three points: nothing to measure it by)."""
    k = len(values)
    if k < 3:
        return 0.0
    fit = statistics.linear_regression(range(k), values)
    residuals = sum((v - fit.intercept - fit.slope * i) ** 2 for i, v in enumerate(values))
    return math.sqrt(residuals / (k - 2) / (k * (k * k - 1) / 12))


# --- the rules -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Finding:
    """One rule's measurement: ``margin`` is the measurement over its threshold (the rule holds
    at 1 or more), so it also says how close a healthy run came to each verdict."""

    kind: str
    margin: float
    headline: str
    evidence: list[Evidence]
    thresholds: dict[str, float]
    onset_epoch: int | None = None
    confidence: float | None = None  # None: from the margin

    @property
    def holds(self) -> bool:
        return self.margin >= 1.0

    def verdict(self, remedies: list[Remedy]) -> Verdict:
        confidence = _confidence(self.margin) if self.confidence is None else self.confidence
        return Verdict(self.kind, confidence, self.headline, self.evidence, self.onset_epoch,
                       self.thresholds, remedies)


def _confidence(margin: float) -> float:
    """0.5 at the threshold, rising towards 1 as the measurement passes it (0.75 at twice the
    threshold), capped at 0.99: only a non-finite loss makes a verdict certain."""
    return round(min(0.99, 0.5 + 0.5 * (1.0 - 1.0 / margin)), 3)


def _diverging(context: _Context) -> _Finding:
    """A non-finite loss, else the stronger of an explosion and a sustained climb back."""
    curves = context.curves
    if curves.nonfinite_epoch is not None:
        epoch = curves.nonfinite_epoch
        headline = f"Diverging: the loss became NaN or infinite in epoch {epoch}"
        evidence = [Evidence("first non-finite epoch", epoch,
                             "the loss overflowed; the run cannot go on from there")]
        # A blow-up that showed in finite epochs first began there, not where it overflowed:
        # SGD at 5 on wine averaged 3.8e4 in epoch 1 and reached NaN in epoch 6.
        explosion = _explosion(context)
        if not explosion.holds or explosion.onset_epoch is None:
            return _Finding("diverging", math.inf, headline, evidence, {}, epoch,
                            confidence=1.0)
        onset, chance = explosion.onset_epoch, context.task.blow_up_from
        # (An onset past the epochs is the last steps' median, the peak itself.)
        then = (curves.train[curves.numbers.index(onset)] if onset in curves.numbers
                else explosion.margin * EXPLODE_FACTOR * chance)
        headline = (f"Diverging since epoch {onset}: the training loss was {then:.3g} there, "
                    f"{then / chance:.3g}× {_blow_up_level(context.task)} "
                    f"({chance:.3g}), and the loss became NaN or infinite in epoch {epoch}")
        return _Finding("diverging", math.inf, headline, evidence + explosion.evidence,
                        explosion.thresholds, onset, confidence=1.0)
    return max(_explosion(context), _rebound(context), _oscillation(context),
               key=lambda finding: finding.margin)


def _explosion(context: _Context) -> _Finding:
    """An epoch's training loss (or, mid-epoch, the last steps' median) far above chance."""
    curves, chance = context.curves, context.task.blow_up_from
    peak = max(curves.train, default=0.0)
    peak_epoch = curves.number(curves.train.index(peak)) if curves.train else 1
    # The steps before a non-finite one: where the loss overflowed, the epochs tell the rest.
    steps = [v for v in curves.steps if math.isfinite(v)]
    if steps and _recent(steps) > peak:
        peak, peak_epoch = _recent(steps), curves.number(curves.epochs)
    # It began with the first epoch past the threshold, which may come before the peak.
    onset = next((curves.number(i) for i, v in enumerate(curves.train)
                  if v >= EXPLODE_FACTOR * chance),
                 peak_epoch)
    headline = (f"Diverging: the training loss reached {peak:.3g} in epoch {peak_epoch}, "
                f"{peak / chance:.1f}× {_blow_up_level(context.task)} ({chance:.3g})")
    evidence = [Evidence("peak training loss", peak, f"epoch {peak_epoch}"),
                _chance_evidence(context.task)]
    return _Finding("diverging", _ratio(peak, EXPLODE_FACTOR * chance), headline, evidence,
                    {"explode_factor": EXPLODE_FACTOR}, onset)


def _rebound(context: _Context) -> _Finding:
    """The training loss climbed back well above its lowest point, for the last epochs."""
    curves, chance = context.curves, context.task.blow_up_from
    thresholds = {"rebound_fraction": REBOUND_FRACTION}
    if curves.epochs <= RECENT_EPOCHS:
        return _Finding("diverging", 0.0, "", [], thresholds)
    # The low as every best is taken: each epoch averaged with its neighbours, so that one
    # lucky epoch of a noisy loss does not set it (an MSE near 1e-4 under Adam, wandering by a
    # fifth of it, climbed back from its single lowest epoch and read "diverging" for a while).
    earlier = _smooth(curves.train[:-RECENT_EPOCHS])
    low, now = min(earlier), _recent(curves.train)
    low_epoch = curves.number(earlier.index(low))
    headline = (f"Diverging: the training loss climbed back from {low:.3g} (epoch {low_epoch}) "
                f"to {now:.3g}")
    evidence = [Evidence("lowest training loss", low, f"epoch {low_epoch}"),
                Evidence("training loss now", now, _when(curves)),
                _chance_evidence(context.task)]
    return _Finding("diverging", _ratio(now - low, REBOUND_FRACTION * chance), headline,
                    evidence, thresholds, curves.number(earlier.index(low) + 1))


def _jumps(values: Sequence[float], since: int, least: float) -> list[int]:
    """The epochs (0-based) from ``since`` on where the loss at least doubled from the epoch
    before (OSCILLATION_FACTOR), by ``least`` or more."""
    return [i for i in range(max(1, since), len(values))
            if values[i] >= OSCILLATION_FACTOR * values[i - 1]
            and values[i] - values[i - 1] >= least]


def _oscillation(context: _Context) -> _Finding:
    """The training or validation loss swung up, far beyond any healthy noise, again and again
    in the last epochs (see OSCILLATION_FACTOR)."""
    curves, chance = context.curves, context.task.blow_up_from
    since = curves.epochs - max(context.window, OSCILLATION_EPOCHS)
    least = REBOUND_FRACTION * chance
    swings = {name: _jumps(values, since, least) for name, values in
              (("training", curves.train), ("validation", curves.val if curves.validated
                                             else []))}
    name = max(swings, key=lambda key: len(swings[key]))
    jumps, values = swings[name], curves.train if name == "training" else curves.val
    thresholds = {"oscillation_factor": OSCILLATION_FACTOR, "oscillation_count":
                  float(OSCILLATION_COUNT), "rebound_fraction": REBOUND_FRACTION}
    if not jumps:
        return _Finding("diverging", 0.0, "", [], thresholds)
    biggest = max(jumps, key=lambda i: values[i] - values[i - 1])
    epochs = curves.number(curves.epochs - 1) - curves.number(max(since, 0)) + 1
    headline = (f"Diverging: unstable, the {name} loss at least doubled from one epoch to "
                f"the next {len(jumps)} times in the last {epochs} epochs "
                f"({values[biggest - 1]:.3g} to {values[biggest]:.3g} in epoch "
                f"{curves.number(biggest)}): the learning rate is likely too high")
    evidence = [Evidence(f"{name} loss jumps", len(jumps),
                         f"at least {OSCILLATION_FACTOR:g}× the epoch before, by "
                         f"{least:.3g} or more (a quarter of the chance loss)"),
                Evidence("largest jump", values[biggest] - values[biggest - 1],
                         f"epoch {curves.number(biggest)}"),
                _chance_evidence(context.task)]
    return _Finding("diverging", len(jumps) / OSCILLATION_COUNT, headline, evidence,
                    thresholds, curves.number(jumps[0]))


def _blow_up_level(task: TaskInfo) -> str:
    """What a blow-up is measured from, in words (see TaskInfo.blow_up_from)."""
    if task.baseline_known or not math.isfinite(task.first_logged):
        return "the chance level"
    if task.kind == "classification" and task.first_logged >= math.log(MAX_GUESSED_CLASSES):
        return f"what an untrained classifier of up to {MAX_GUESSED_CLASSES:,} classes scores"
    return "the first training loss logged"


def _chance_evidence(task: TaskInfo) -> Evidence:
    """What an untrained network scores, or, unknown, the scale the run is measured by."""
    if task.baseline_known:
        return Evidence("chance loss", task.chance_loss, "what an untrained network scores")
    return Evidence(_blow_up_level(task), task.blow_up_from,
                    "the chance level is unknown: tag fitboard.num_classes to give it")


@dataclass(frozen=True)
class _Overfit:
    """The signs of overfitting, measured from the start of the validation plateau."""

    onset: int  # 0-based first epoch of the plateau
    since: int  # epochs after it
    best: float  # best validation loss (smoothed)
    val_then: float
    val_now: float
    train_then: float
    train_now: float
    train_fell: float  # share of the training loss shed since the onset
    noise: float  # of the validation loss
    acc_best: float | None  # best validation accuracy (smoothed), for classification
    acc_now: float | None
    signs: dict[str, float]  # each sign's measurement over its threshold
    memorised: float  # validation never beat a constant prediction (over its threshold)
    baseline: float  # what a constant prediction scores
    rise: float  # how far over its best the validation loss must be to have risen
    epoch: int = 0  # the onset's epoch (1-based), as the history numbers it
    when: str = ""  # which epochs "now" is the median of
    epochs_since: int = 0  # epochs after the onset's (more than ``since`` where some were
    # not validated)

    @property
    def fell(self) -> str:
        return _change(self.train_now, self.train_then)

    @property
    def ratio(self) -> float:
        return self.val_now / self.train_now if self.train_now > 0 else math.inf


def _overfit(context: _Context) -> _Overfit:
    curves, baseline = context.curves, context.task.baseline_loss
    train, val, noise = curves.train, _smooth(curves.val), _noise(curves.val)
    best = min(val)
    # The plateau starts at the first epoch within one noise deviation of the best: on a noisy
    # plateau which epoch is lowest is luck, and a lucky late epoch would hide a long stall.
    # Raw epochs are compared with the smoothed best: smoothing a V moves its bottom towards
    # the flatter side, and the onset is the epoch whose weights were best, not its neighbour.
    # A mean's rounding can leave the smoothed best a hair below every raw epoch (a flat 0.7
    # smooths to 0.6999999999999998): the lowest raw epoch is then the onset.
    onset = next((i for i, v in enumerate(curves.val) if v <= best + noise),
                 curves.val.index(min(curves.val)))
    val_now, train_now = _recent(curves.val), _recent(train)
    # A validation loss below the training loss at the onset is the epoch's running average of
    # the training loss lagging behind its weights, not a negative gap: growth counts from 0.
    gap_then, gap_now = max(curves.val[onset] - train[onset], 0.0), val_now - train_now
    # The fall is measured like every change: from the onset averaged with its neighbours (one
    # high epoch there is not a fall), and it must exceed the training curve's own noise there,
    # from the onset on: a loss's noise scales with its level, and the early epochs of one that
    # fell a hundredfold (a one-cycle's high-rate phase at 0.3, wandering by 0.15) made a fall
    # from 0.01 to 1e-4 after the onset read as noise.
    train_then = _smooth(train)[onset]
    shed = train_then - train_now
    clear = shed >= NOISE_SIGMAS * _noise(train[max(0, onset - 1):])
    train_fell = shed / train_then if train_then > 0 and clear else 0.0
    rise = max(VAL_RISE * best, VAL_RISE_FLOOR * baseline, NOISE_SIGMAS * noise)
    signs = {
        "validation loss rose": _ratio(val_now - best, rise),
        "gap grew": _ratio(gap_now - gap_then,
                           max(GAP_GROWTH * baseline, NOISE_SIGMAS * noise)),
        # Growing too: every sign also needs the training loss to have kept falling.
        "gap is large and growing": min(_ratio(gap_now, GAP_FLOOR * baseline),
                                        _ratio(val_now, GAP_RATIO * train_now)),
    }
    # Memorised from the start: the training loss learned what the underfitting rule asks for,
    # yet validation never beat a constant prediction (random labels, or grokking before it
    # generalises). There is no onset: validation never improved on knowing nothing.
    memorised = min(_ratio(best, baseline), _ratio(context.task.learned(train_now),
                                                    UNDERFIT_LEARNED[context.task.kind]))
    if not context.task.baseline_known:  # no constant prediction's score to compare with
        memorised = 0.0
    acc_best = acc_now = None
    if len(curves.val_acc) == len(curves.train_acc) == curves.epochs:
        acc_best, acc_now = max(_smooth(curves.val_acc)), _recent(curves.val_acc)
        # The training accuracy need not pass the validation one: noisy training labels,
        # dropout and augmentation hold it below while the model memorises. The training loss
        # falling since the onset (asked of every sign) says the model kept fitting its set.
        drop = max(ACC_DROP, NOISE_SIGMAS * _noise(curves.val_acc))
        signs["validation accuracy fell"] = _ratio(acc_best - acc_now, drop)
    return _Overfit(onset, curves.epochs - onset - 1, best, curves.val[onset], val_now,
                    train[onset], train_now, train_fell, noise, acc_best, acc_now, signs,
                    memorised, baseline, rise, curves.number(onset), _when(curves),
                    curves.number(curves.epochs - 1) - curves.number(onset))


def _overfitting(context: _Context) -> _Finding:
    """Validation stalled for several epochs while training kept improving, and since then the
    validation loss rose, the gap grew, the gap is large and still growing, or the validation
    accuracy fell."""
    if not context.curves.validated:
        return _Finding("overfitting", 0.0, "", [], {})
    o = _overfit(context)
    needed = OVERFIT_MIN_EPOCHS if context.final else OVERFIT_MIN_EPOCHS_LIVE
    # A validation loss whose lowest epoch is one of the last is still improving, however
    # little: the last weights are the best yet, and stopping at the onset would lose them.
    val = context.curves.val
    improving = val.index(min(val)) >= len(val) - RECENT_EPOCHS
    falling = o.train_fell >= TRAIN_STILL_FALLING
    rose = o.signs["validation loss rose"]
    stalled = o.since >= needed and not improving and (
        falling or (rose >= STEEP_VAL_RISE and _held_and_climbing(context, o)))
    # With the training loss at its floor, the rise alone is the sign: the gap grows with it.
    margin = (max(o.signs.values()) if falling else rose) if stalled else 0.0
    memorised = o.memorised if context.curves.epochs > needed else 0.0
    thresholds = {"min_epochs_since_onset": float(needed), "val_rise": VAL_RISE,
                  "val_rise_floor": VAL_RISE_FLOOR, "noise_sigmas": NOISE_SIGMAS,
                  "gap_growth": GAP_GROWTH, "gap_ratio": GAP_RATIO, "gap_floor": GAP_FLOOR,
                  "train_still_falling": TRAIN_STILL_FALLING,
                  "steep_val_rise": STEEP_VAL_RISE, "acc_drop": ACC_DROP,
                  "learned": UNDERFIT_LEARNED[context.task.kind]}
    if memorised > margin:
        headline = (f"Overfitting from the start: validation loss never went below what a "
                    f"constant prediction scores ({o.baseline:.3g}; its best was {o.best:.3g}) "
                    f"while training loss fell to {o.train_now:.3g}")
        # Its onset is epoch 1, as the page's line says: the row of the epoch validation
        # stopped improving (here the last) read as a second, contradicting onset.
        evidence = [Evidence("onset epoch", 1, "validation never beat a constant prediction")
                    if e.label == "onset epoch" else e for e in _overfit_evidence(o)]
        return _Finding("overfitting", memorised, headline, evidence, thresholds, 1)
    return _Finding("overfitting", margin, _overfit_headline(o, falling), _overfit_evidence(o),
                    thresholds, o.epoch)


def _held_and_climbing(context: _Context, o: _Overfit) -> bool:
    """With the training loss at its floor: it never climbed since the onset (one that did,
    at a warm restart, a spike or a bad step, knocked the model off its minimum, and the
    validation loss follows it), and every one of the last epochs' validation losses is past
    the rise's threshold (one or two high epochs of a noisy set are not a climb)."""
    train, val = context.curves.train, context.curves.val
    floor = train[o.onset] + max(VAL_RISE * train[o.onset], NOISE_SIGMAS * _noise(train))
    return (max(_smooth(train)[o.onset:]) <= floor
            and all(v >= o.best + o.rise for v in val[-RECENT_EPOCHS:]))


def _overfit_headline(o: _Overfit, falling: bool = True) -> str:
    """The headline tells the strongest sign (the rise, where training stopped falling)."""
    if not falling:
        return (f"Overfitting since epoch {o.epoch}: validation loss rose "
                f"{_change(o.val_now, o.val_then)} while training loss stayed near "
                f"{o.train_now:.3g}")
    strongest = max(o.signs, key=lambda sign: o.signs[sign])
    return f"Overfitting since epoch {o.epoch}: " + {
        "validation loss rose": f"validation loss rose {_change(o.val_now, o.val_then)} while "
                                f"training loss fell {o.fell}",
        "gap grew": f"validation loss has not improved for {o.epochs_since} epochs while "
                    f"training loss fell {o.fell}; the gap grew from "
                    f"{o.val_then - o.train_then:.3g} to {o.val_now - o.train_now:.3g}",
        "gap is large and growing": f"validation loss ({o.val_now:.3g}) has not improved for "
                                    f"{o.epochs_since} epochs and is {o.ratio:.0f}× the "
                                    f"training loss, which fell {o.fell} since",
        "validation accuracy fell": f"validation accuracy fell to {o.acc_now or 0:.1%} from "
                                    f"{o.acc_best or 0:.1%} while training loss fell {o.fell}",
    }[strongest]


def _overfit_evidence(o: _Overfit) -> list[Evidence]:
    epoch = o.epoch
    evidence = [
        Evidence("onset epoch", epoch, "validation stopped improving here"),
        Evidence("best validation loss", o.best, "averaged with neighbouring epochs"),
        Evidence("validation loss now", o.val_now, o.when),
        Evidence("training loss at onset", o.train_then, f"epoch {epoch}"),
        Evidence("training loss now", o.train_now, o.when),
        Evidence("gap at onset", o.val_then - o.train_then, "validation minus training loss"),
        Evidence("gap now", o.val_now - o.train_now, "validation minus training loss"),
        Evidence("validation noise", o.noise, "typical epoch-to-epoch deviation"),
        *(_sign(sign, value, "measurement over its threshold")
          for sign, value in o.signs.items()),
        _sign("validation never beat a constant prediction", o.memorised,
              f"best validation loss over a constant prediction's ({o.baseline:.3g}), with "
              "the training loss learned"),
    ]
    if o.acc_now is not None:
        evidence.append(Evidence("validation accuracy now", o.acc_now, f"best {o.acc_best:.3g}"))
    return evidence


def _sign(sign: str, score: float, measured: str) -> Evidence:
    """A sign's row: its score (1 at its threshold) and whether it counts, so that a sign
    that was looked for and not seen does not read as a finding."""
    seen = "seen" if score >= 1 else "not seen"
    return Evidence(sign, score, f"{measured}: {seen} (a sign counts from 1)")


def _underfitting(context: _Context) -> _Finding:
    """The run is poor and its training loss no longer falling steadily. Poor is measured
    against the data set's reference model when there is one (see UNDERFIT_SHORT_ACC), else
    against the constant prediction's loss (see UNDERFIT_LEARNED), on the better of the
    training and validation scores: validation is close to training when a model cannot fit,
    and better than training when dropout or noisy training labels hold the training score
    down while the model is fine."""
    curves = context.curves
    pace = _pace(context, context.horizon)
    enough = context.final or curves.epochs >= UNDERFIT_MIN_EPOCHS_LIVE
    if context.reference is not None:
        poor, headline, evidence, thresholds = _short_of_reference(context, context.reference)
        if context.task.baseline_known:
            stuck = _short_of_baseline(context, STUCK_LEARNED)
            if stuck[0] > max(poor, 1.0):
                poor, headline, evidence, thresholds = _nothing_learned(
                    stuck, context.reference, context.task)
    else:
        poor, headline, evidence, thresholds = _short_of_baseline(context)
    # Live, a curve that slows down is not yet stuck: every decay halves its pace from one
    # window to the next early on. It is stuck when its fall is noise, or when at its pace the
    # planned run (a run as long again, without a plan) would not bring it down to the level
    # that is no longer poor.
    to_go = _to_go(context)
    falling = (pace.still_falling and not _validation_behind(context) if context.final
               else pace.falling and pace.gain * context.task.baseline_loss >= to_go
               and _validation_falls(context, to_go))
    margin = poor if enough and not falling else 0.0
    evidence.append(Evidence("pace", _finite(pace.gain),
                             "share of the baseline loss a run as long again would still "
                             f"shed, at the pace of the last {context.window} epochs"))
    thresholds.update({"slow_gain": SLOW_GAIN, "slow_shape": SLOW_SHAPE,
                       "slope_sigmas": SLOPE_SIGMAS, "min_epochs": float(
                           MIN_EPOCHS if context.final else UNDERFIT_MIN_EPOCHS_LIVE)})
    return _Finding("underfitting", margin, headline, evidence, thresholds)


_Measure = tuple[float, str, list[Evidence], dict[str, float]]


def _to_go(context: _Context) -> float:
    """How far the better of the two losses is above the level that is no longer poor: the
    reference's validation loss, or the share of the baseline the underfitting rule asks to
    shed."""
    ours = context.curves.best_loss_now()
    if context.reference is not None:
        return ours - context.reference.val_loss
    return ours - context.task.not_poor()


def _nothing_learned(stuck: _Measure, reference: Reference, task: TaskInfo) -> _Measure:
    """A run that learned nothing, beside a reference: the baseline measure, its headline
    saying whether the reference did better (the run falls short) or not (the data may)."""
    poor, headline, evidence, thresholds = stuck
    theirs = (f"{reference.val_acc:.2f} accuracy" if reference.val_acc is not None
              else f"{reference.val_loss:.3g} loss")
    headline += f"; {reference.model} reaches {theirs} on this data (validation)"
    if _reference_poor(reference, task):
        headline += ", no better: the features may not predict the labels (check the label column)"
    evidence.append(Evidence("reference validation loss", reference.val_loss,
                             f"{reference.model} fitted on the same training split"))
    return poor, headline, evidence, thresholds


def _reference_poor(reference: Reference, task: TaskInfo) -> bool:
    """Whether the reference itself learned too little not to be poor: nothing in the data
    that a linear model finds either."""
    return task.learned(reference.val_loss) < task.learned_needed


def _no_signal(context: _Context) -> bool:
    """A run that learned nothing beside a reference that did no better: the labels or the
    features are the first suspects, before the model."""
    reference, task = context.reference, context.task
    return (reference is not None and task.baseline_known and _reference_poor(reference, task)
            and task.learned(context.curves.best_loss_now()) < STUCK_LEARNED)


def _short_of_baseline(context: _Context, needed: float | None = None) -> _Measure:
    """Without a reference: the share of the constant prediction's loss the run has shed (of
    the start its first epochs tell, when a constant prediction's is unknown); poor below
    ``needed`` of it (the task's ``learned_needed`` when not given)."""
    curves, task = context.curves, context.task
    baseline = task.baseline_loss
    train_now = _recent(curves.train)
    # The better of the two losses, as against a reference: dropout, augmentation and noisy
    # training labels hold the training loss up while the model does well on validation.
    learned = task.learned(curves.best_loss_now())
    unmoved = None if task.baseline_known else _unmoved_accuracy(curves)
    if unmoved is not None:
        learned = 0.0
    needed_learned = task.learned_needed if needed is None else needed
    poor = needed_learned / max(learned, 1e-6)  # no learning at all: far past the threshold
    when = _when(curves)
    validation = f", and validation loss is {_recent(curves.val):.3g}" if curves.validated else ""
    if unmoved is not None:
        headline = (f"Underfitting: accuracy has not risen: {unmoved[1]:.1%} ({when}) against "
                    f"{unmoved[0]:.1%} at the first evaluation, no better than a coin toss, "
                    f"though the training loss went from {baseline:.3g} to {train_now:.3g}")
        base = Evidence("accuracy at the first evaluation", unmoved[0],
                        "the better of training and validation; the chance level is unknown")
    elif task.baseline_known:
        constant = "majority-class" if task.kind == "classification" else "mean-predictor"
        headline = (f"Underfitting: training loss {train_now:.3g} ({when}) is "
                    f"{train_now / baseline:.0%} of the {constant} baseline ({baseline:.3g})"
                    f"{validation}")
        base = Evidence(f"{constant} loss", baseline, "what a constant prediction scores")
    else:
        headline = (f"Underfitting: the training loss has not gone down: {train_now:.3g} "
                    f"({when}) against {baseline:.3g} when first logged{validation}")
        base = _chance_evidence(task)
    evidence = [Evidence("training loss", train_now, when)]
    if curves.validated:
        evidence.append(Evidence("validation loss", _recent(curves.val), when))
    evidence += [base, Evidence("share of the baseline learned", learned,
                                f"needs {needed_learned:.0%}")]
    if len(curves.train_acc) == curves.epochs and task.num_classes is not None:
        evidence.append(Evidence("training accuracy", _recent(curves.train_acc),
                                 f"{when}; majority class {task.majority:.3g}"))
    return poor, headline, evidence, {"learned": needed_learned}


def _unmoved_accuracy(curves: _Curves) -> tuple[float, float] | None:
    """The better of the training and validation accuracy at the first evaluation and now,
    when it has not risen by ACC_ROSE and is no better than COIN (see ACC_ROSE); None
    otherwise, or without an accuracy at every epoch."""
    logged = [acc for acc in (curves.train_acc, curves.val_acc)
              if acc and len(acc) == curves.epochs and all(math.isfinite(a) for a in acc)]
    if not logged:
        return None
    first, now = max(acc[0] for acc in logged), max(_recent(acc) for acc in logged)
    return (first, now) if now - first < ACC_ROSE and now <= COIN else None


def _short_of_reference(context: _Context, reference: Reference) -> _Measure:
    """With a reference: how far the better of the run's training and validation scores is
    from the reference's validation score (accuracy when both have one, else the loss)."""
    curves, task = context.curves, context.task
    when = _when(curves)
    accuracies = (len(curves.train_acc) == len(curves.val_acc) == curves.epochs
                  and reference.val_acc is not None and task.kind == "classification")
    if accuracies and reference.val_acc is not None:
        train_now, val_now = _recent(curves.train_acc), _recent(curves.val_acc)
        ours, theirs, floor = max(train_now, val_now), reference.val_acc, task.majority
        short = theirs - ours
        needed = max(UNDERFIT_SHORT_ACC * (theirs - floor), UNDERFIT_SHORT_ACC_FLOOR)
        what, thresholds = "accuracy", {"short_acc": UNDERFIT_SHORT_ACC,
                                        "short_acc_floor": UNDERFIT_SHORT_ACC_FLOOR}
        fmt = ".2f"
    else:
        train_now, val_now = _recent(curves.train), _recent(curves.val)
        ours, theirs, floor = min(train_now, val_now), reference.val_loss, task.baseline_loss
        short = ours - theirs
        needed = UNDERFIT_SHORT_LOSS * max(floor - theirs, 0.0)
        what, thresholds = "loss", {"short_loss": UNDERFIT_SHORT_LOSS}
        fmt = ".3g"
    poor = _ratio(short, needed) if needed > 0 else 0.0
    headline = (f"Underfitting: training {what} {train_now:{fmt}} and validation {what} "
                f"{val_now:{fmt}} ({when}); {reference.model} reaches {theirs:{fmt}} on this "
                f"data (validation)")
    constant = "majority class" if what == "accuracy" else "constant prediction"
    evidence = [
        Evidence(f"training {what}", train_now, when),
        Evidence(f"validation {what}", val_now, when),
        Evidence(f"reference validation {what}", theirs,
                 f"{reference.model} fitted on the same training split"),
        Evidence(f"{constant} {what}", floor, "what a constant prediction scores"),
        Evidence("short of the reference by", short,
                 f"{what}; underfitting from {needed:{fmt}}"),
    ]
    return poor, headline, evidence, thresholds


def _when(curves: _Curves) -> str:
    """Which epochs a "now" level is the median of, in words."""
    numbers = [curves.number(i) for i in range(max(0, curves.epochs - RECENT_EPOCHS),
                                                curves.epochs)] or [curves.number(0)]
    if len(numbers) == 1:
        return f"epoch {numbers[0]}"
    if numbers[-1] - numbers[0] == len(numbers) - 1:
        return f"median of epochs {numbers[0]}–{numbers[-1]}"
    return f"median of epochs {', '.join(map(str, numbers[:-1]))} and {numbers[-1]}"


def _finite(value: float) -> float | str:
    """A number for the evidence table; an unbounded one in words rather than "inf"."""
    return value if math.isfinite(value) else "unbounded"


def _validation_behind(context: _Context) -> bool:
    """Whether validation has stopped following the training loss down. More epochs help
    only while it follows: over the last two windows (one is too short to tell a flat
    validation loss from a falling one), its slope must not be above SLOW_FOLLOW of the
    training loss's beyond its noise. A validation loss that stays flat while the training
    loss falls gains nothing from more epochs."""
    curves = context.curves
    if not curves.validated:
        return False
    k = 2 * context.window
    val = _trend(curves.val[-k:], _noise(curves.val))
    train_slope = _trend(curves.train[-k:], _noise(curves.train)).slope
    return val.slope - SLOW_FOLLOW * min(train_slope, 0.0) > SLOPE_SIGMAS * val.error


def _validation_falls(context: _Context, to_go: float) -> bool:
    """Whether the validation loss, too, falls beyond its noise over the last two windows, at
    a pace that would bring it down by ``to_go`` in the planned run (True without one). Live,
    a poor run's training loss brings it out of "poor" only while validation falls with it:
    heavy weight decay held validation at MSE 0.9, creeping down by 0.001 an epoch, while a
    noisy training loss sloped down now and then, and the live verdict flipped to "healthy"
    and back four times."""
    curves = context.curves
    if not curves.validated:
        return True
    val = _trend(curves.val[-2 * context.window:], _noise(curves.val))
    return -val.slope > SLOPE_SIGMAS * val.error and -val.slope * context.horizon >= to_go


def _slow_pace(context: _Context, pace: _Pace) -> float:
    """The pace's margin for "slow". Steadiness stands for "far from done" when nothing says
    how far the run is from done; with a reference, a pace that would cover what is left to
    it (``_to_go``) in a run as long again says it too, however the pace has slowed: SGD at
    1e-4 on diabetes, an MSE of 0.61 falling 0.004 an epoch against the ridge's 0.49, at
    0.4 of its average pace (an exponential's tail), read as "healthy"."""
    to_go = _to_go(context) if context.reference is not None else 0.0
    if to_go <= 0:
        return pace.margin
    covers = pace.gain * context.task.baseline_loss / to_go
    return min(pace.unsteady_margin, max(pace.steady / SLOW_STEADY, covers))


def _slow(context: _Context) -> _Finding:
    """At the end of the run the training loss was still falling steadily (see _Pace), and
    validation was following it down. Only for finished runs."""
    curves = context.curves
    pace = _pace(context, curves.epochs)
    val_behind = _validation_behind(context)
    # Far from done: short of the reference (without one, the pace alone decides).
    short = (_short_of_reference(context, context.reference)[0] / SLOW_SHORT
             if context.reference is not None else math.inf)
    margin = min(_slow_pace(context, pace), short) if context.final and not val_behind else 0.0
    first, now = curves.train[0], _recent(curves.train)
    how = ("steadily" if pace.steady >= SLOW_STEADY or context.reference is None
           else f"at a pace that would cover the {_to_go(context):.3g} left to "
                f"{context.reference.model}'s in a run as long again")
    headline = (f"Learning slowly: training loss fell from {first:.3g} to {now:.3g} and was "
                f"still falling {how} at the end; more epochs or a higher learning rate "
                f"would help")
    evidence = [
        Evidence("training loss at epoch 1", first, ""),
        Evidence("training loss now", now, _when(curves)),
        Evidence("pace", _finite(pace.gain), "share of the baseline loss a run as long again "
                 f"would still shed, at the pace of the last {context.window} epochs"),
        Evidence("pace against the window before", _finite(pace.shape), "below 1: slowing down"),
        Evidence("pace against the run's average", _finite(pace.steady),
                 f"since epoch {STEADY_FROM + 1}; 1: a straight line"),
        Evidence("significance of the fall", _finite(pace.significance),
                 "slope over its standard error"),
    ]
    thresholds = {"slow_gain": SLOW_GAIN, "slow_shape": SLOW_SHAPE, "slope_sigmas": SLOPE_SIGMAS,
                  "slow_steady": SLOW_STEADY, "slow_short": SLOW_SHORT,
                  "slow_follow": SLOW_FOLLOW}
    return _Finding("slow", margin, headline, evidence, thresholds)


def _healthy(context: _Context, near_miss: float) -> Verdict:
    """No rule holds; the closer the nearest one came, the lower the confidence."""
    curves = context.curves
    confidence = round(0.5 + 0.45 * (1.0 - min(1.0, max(0.0, near_miss))), 3)
    if not curves.validated:
        now = _recent(curves.train)
        headline = (f"Healthy as far as the training loss tells: it fell from "
                    f"{curves.train[0]:.3g} to {now:.3g}; {NOT_VALIDATED}")
        return Verdict("healthy", confidence, headline, [
            Evidence("training loss at epoch 1", curves.train[0], ""),
            Evidence("training loss now", now, _when(curves)),
            Evidence("closest rule", near_miss, "measurement over its threshold; 1 would trigger"),
        ])
    train_now, val_now = _recent(curves.train), _recent(curves.val)
    smooth = _smooth(curves.val)
    best = curves.number(smooth.index(min(smooth)))
    # Said as it happened: a validation loss that ends no lower than it began (within the
    # noise the rules allow) held level, it did not fall.
    train_fell, val_fell = train_now < curves.train[0], val_now < curves.val[0]
    moved = ("training and validation loss fell together" if train_fell and val_fell
             else "training loss fell and validation loss held level" if train_fell
             else "training and validation loss held level")
    # "Around": the epoch of the smoothed curve's low, which can sit one from the raw best
    # that picks the run's best checkpoint ("best val_loss (epoch 11)" on the run page).
    headline = (f"Healthy: {moved} (training {train_now:.3g}, validation {val_now:.3g}; "
                f"validation loss lowest around epoch {best})")
    evidence = [
        Evidence("training loss now", train_now, _when(curves)),
        Evidence("validation loss now", val_now, _when(curves)),
        Evidence("validation loss lowest around epoch", best,
                 "each epoch averaged with its neighbours"),
        Evidence("closest rule", near_miss, "measurement over its threshold; 1 would trigger"),
    ]
    return Verdict("healthy", confidence, headline, evidence)


# --- remedies ------------------------------------------------------------------------------


def _remedies(finding: _Finding, context: _Context) -> list[Remedy]:
    """The remedies for a verdict, most likely to help first, without any that would leave
    the spec unchanged (or repeat an earlier one)."""
    spec = context.spec
    if spec is None:
        return []
    if finding.kind == "overfitting":
        candidates = _overfitting_remedies(spec, finding.onset_epoch or context.curves.epochs)
    elif finding.kind == "underfitting":
        # A loss that barely moved from its start points at the step size first.
        moved = context.curves.train[0] - _recent(context.curves.train)
        candidates = _underfitting_remedies(
            spec, moved < SLOW_GAIN * context.task.baseline_loss, context.curves.epochs)
        if _no_signal(context):  # checking the labels first, then the model
            candidates.sort(key=lambda remedy: remedy.key != "check_labels")
    elif finding.kind == "diverging":
        candidates = [_lower_lr(spec), *_warmup(spec), _clip_gradients(spec)]
    else:
        candidates = [_more_epochs(spec), _higher_lr(spec)]
    kept: list[Remedy] = []
    seen: list[ExperimentSpec] = [spec]
    for remedy in candidates:
        if remedy.advice_only:
            kept.append(remedy)
            continue
        try:
            remedy, patched = _fresh_if_unloadable(spec, remedy)
        except SpecError:
            # A larger model past the memory budget, say: a remedy nobody could run is none.
            continue
        if patched not in seen:
            seen.append(patched)
            kept.append(remedy)
    return kept


def _fresh_if_unloadable(spec: ExperimentSpec,
                         remedy: Remedy) -> tuple[Remedy, ExperimentSpec]:
    """The remedy and the spec it makes. A warm-started run's remedy that reshapes its network
    so that none of its layers fits any more (a CNN's width halved) starts from fresh weights:
    with the run's ``init_from`` kept, Apply remedy was refused ("none of its layers fits this
    model"). Its layers were loaded from the source, so a network that cannot load this run's
    cannot load that one."""
    patched = spec.patched(remedy.patch)
    if not spec.model.init_from or "model" not in remedy.patch:
        return remedy, patched
    from training.warmstart import compatibility_problem

    info = spec.data.info()
    if compatibility_problem(spec, info, patched, info) is None:
        return remedy, patched
    model = {**remedy.patch["model"], "init_from": 0, "freeze_epochs": 0}
    fresh = dataclasses.replace(
        remedy, title=f"{remedy.title}, from fresh weights", patch={**remedy.patch,
                                                                     "model": model},
        why=f"{remedy.why} None of run #{spec.model.init_from}'s layers fits it, so it starts "
            "from fresh weights.")
    return fresh, spec.patched(fresh.patch)


def _overfitting_remedies(spec: ExperimentSpec, onset: int) -> list[Remedy]:
    # Data augmentation comes first here once DataSpec has it. Regularisers can raise the best
    # validation score; early stopping keeps it (best.zip already holds that model) and saves
    # the wasted epochs; a smaller model helps too but may cost accuracy.
    current = _dropout(spec)
    dropout = max(current, min(max(current + DROPOUT_STEP, DROPOUT_MIN), DROPOUT_MAX))
    decay = spec.optim.weight_decay
    decay = max(decay, min(decay * 10, WEIGHT_DECAY_MAX)) if decay > 0 else WEIGHT_DECAY_START
    patience = spec.run.early_stopping_patience or EARLY_STOPPING_PATIENCE
    epochs = min(spec.run.epochs, onset + patience)
    return [
        Remedy("dropout", f"Add dropout {dropout:g}",
               "Dropout silences random units while training, so the network cannot memorise "
               "individual examples.", _dropout_patch(spec, dropout)),
        Remedy("weight_decay", f"Use weight decay {decay:g}",
               "Weight decay (L2) pulls the weights towards zero, favouring simpler functions "
               "that generalise better.", {"optim": {"weight_decay": decay}}),
        Remedy("early_stopping", f"Stop early: patience {patience}, at most {epochs} epochs",
               f"After epoch {onset} training only fitted the training set better; stopping "
               "there keeps the best validation score and saves the remaining epochs.",
               {"run": {"early_stopping_patience": patience, "epochs": epochs}}),
        _resize_model(spec, smaller=True),
    ]


def _dropout(spec: ExperimentSpec) -> float:
    """The model's dropout: a plugin's ``dropout`` option where it has one (else 0)."""
    if spec.model.is_plugin:
        return float(spec.model.plugin_config.get("dropout", 0.0))
    return spec.model.dropout


def _dropout_patch(spec: ExperimentSpec, dropout: float) -> dict[str, dict[str, Any]]:
    """The patch setting the model's dropout; a plugin without a ``dropout`` option gets none
    (its remedy then changes nothing, and the remedy list drops it)."""
    if not spec.model.is_plugin:
        return {"model": {"dropout": dropout}}
    config = dict(spec.model.plugin_config)
    if "dropout" not in config:
        return {}
    return {"model": {"plugin_config": {**config, "dropout": dropout}}}


def _underfitting_remedies(spec: ExperimentSpec, unmoved: bool, epochs: int = 0
                           ) -> list[Remedy]:
    less: dict[str, dict[str, Any]] = {}
    if _dropout(spec) > 0:
        less.update(_dropout_patch(spec, 0.0))
    if spec.optim.weight_decay > 0:
        less["optim"] = {"weight_decay": 0.0}
    if spec.regularization.l1 > 0:
        less["regularization"] = {"l1": 0.0}
    # Named as present; with none there is nothing to remove and the remedy is dropped.
    names = [name for name, section in (("dropout", "model"), ("weight decay", "optim"),
                                        ("the L1 penalty", "regularization"))
             if section in less] or ["regularization"]
    listed = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
    unregularize = Remedy(
        "less_regularization", f"Remove {listed}",
        "Regularisation holds back a model that does not even fit the training set.", less)
    check_labels = Remedy(
        "check_labels", "Check the labels",
        "A loss stuck near the baseline can also mean the labels do not match the inputs "
        "(shuffled, misaligned or mostly noise); look at a few examples.", {}, advice_only=True)
    larger = _resize_model(spec, smaller=False)
    over = f" in {epochs} epochs" if epochs else ""
    higher_lr = (_higher_lr(spec, LR_UP_STUCK, f"The loss barely moved{over}: its steps are "
                            "so small that three times their size would barely move it "
                            "either; ten times can.") if unmoved else _higher_lr(spec))
    # Regularisation, when there is any, is the likeliest brake; then the step size when the
    # loss barely moved, else the model's size.
    middle = [higher_lr, larger] if unmoved else [larger, higher_lr]
    return [unregularize, *middle, _more_epochs(spec), check_labels]


def _resize_model(spec: ExperimentSpec, smaller: bool) -> Remedy:
    """Halve (``smaller``) or double the widths; a larger model whose widths are at their limit
    gets another layer or block instead."""
    model = spec.model
    if model.is_plugin:
        return _resize_plugin_model(spec, smaller)
    if model.arch in ("lstm", "gru", "transformer", "pretrained"):
        return _resize_text_model(spec, smaller)
    if model.arch == "mlp":
        sizes = [max(MIN_WIDTH, s // 2) if smaller else min(MAX_MLP_WIDTH, s * 2)
                 for s in model.hidden_sizes]
        if not smaller and sizes == list(model.hidden_sizes) and len(sizes) < MAX_MLP_LAYERS:
            sizes.append(sizes[-1])
        change: dict[str, Any] = {"hidden_sizes": sizes}
        shape = ", ".join(map(str, sizes))
    else:
        width = max(MIN_WIDTH, model.width // 2) if smaller else min(MAX_CNN_WIDTH, model.width * 2)
        change = {"width": width}
        if not smaller and width == model.width and model.blocks < MAX_CNN_BLOCKS:
            change = {"blocks": model.blocks + 1}
        shape = ", ".join(f"{name} {value}" for name, value in change.items())
    return _resize_remedy(smaller, shape, change)


def _resize_plugin_model(spec: ExperimentSpec, smaller: bool) -> Remedy:
    """A plugin model's size is the option its class names as ``size_option`` (an int), halved
    or doubled within its declared range; without one, the advice alone."""
    model_class = model_plugin(spec.model.arch)
    option = str(getattr(model_class, "size_option", ""))
    config = dict(spec.model.plugin_config)
    fields = {f.name: f for f in dataclasses.fields(model_class.Config)}
    if isinstance(config.get(option), int) and option in fields:
        m = field_meta(fields[option])
        low = int(m.min) if m and m.min is not None else 1
        high = int(m.max) if m and m.max is not None else config[option] * 2
        new = max(low, config[option] // 2) if smaller else min(high, config[option] * 2)
        if new != config[option]:
            return _resize_remedy(smaller, f"{option} {new}",
                                  {"plugin_config": {**config, option: new}})
    remedy = _resize_remedy(smaller, f"the {spec.model.arch} plugin's options", {})
    return dataclasses.replace(remedy, patch={}, advice_only=True)


def _resize_remedy(smaller: bool, shape: str, change: dict[str, Any]) -> Remedy:
    """The smaller- or larger-model remedy that applies ``change`` to the model section."""
    if smaller:
        return Remedy("smaller_model", f"Use a smaller model ({shape})",
                      "A model with fewer parameters has less room to memorise the training "
                      "set.", {"model": change})
    return Remedy("larger_model", f"Use a larger model ({shape})",
                  "A bigger network can represent more complex functions; one too small for "
                  "the data plateaus at a high loss.", {"model": change})


def _resize_text_model(spec: ExperimentSpec, smaller: bool) -> Remedy:
    """Text models: halve or double the recurrent hidden size or the Transformer width (keeping
    it divisible by the heads); a pretrained model cannot change size, so freezing its encoder
    is the smaller model and full fine-tuning the larger."""
    model = spec.model
    change: dict[str, Any]
    if model.arch == "pretrained":
        change = {"freeze_encoder": smaller}
        what = "train only the classifier head" if smaller else "fine-tune every layer"
        if smaller:
            return Remedy("smaller_model", f"Freeze the encoder ({what})",
                          "Training only the new head leaves the pretrained encoder as it is, "
                          "with far fewer weights free to memorise the training set.",
                          {"model": change})
        return Remedy("larger_model", f"Fine-tune the whole model ({what})",
                      "A frozen encoder limits the model to features learned for other tasks; "
                      "fine-tuning adapts them to this one.", {"model": change})
    field = "hidden_size" if model.arch in ("lstm", "gru") else "embed_dim"
    size = getattr(model, field)
    new = max(MIN_WIDTH, size // 2) if smaller else min(MAX_TEXT_WIDTH, size * 2)
    if field == "embed_dim" and new % model.heads:
        new = size
    change = {field: new}
    if not smaller and new == size and model.layers < MAX_TEXT_LAYERS:
        change = {"layers": model.layers + 1}
    shape = ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in change.items())
    return _resize_remedy(smaller, shape, change)


def _higher_lr(spec: ExperimentSpec, factor: float = LR_UP,
               why: str = "With a small learning rate each step barely moves the weights, so "
                          "the loss falls slowly.") -> Remedy:
    lr = max(spec.optim.lr, min(spec.optim.lr * factor, LR_MAX))
    return Remedy("higher_lr", f"Raise the learning rate to {lr:g}", why, {"optim": {"lr": lr}})


def _lower_lr(spec: ExperimentSpec) -> Remedy:
    lr = spec.optim.lr / LR_DOWN
    return Remedy("lower_lr", f"Lower the learning rate to {lr:g}",
                  "Too large a learning rate overshoots the minimum, so steps make the loss "
                  "larger instead of smaller.", {"optim": {"lr": lr}})


def _warmup(spec: ExperimentSpec) -> list[Remedy]:
    """A linear warmup in front of the schedule, or a longer one; none when the run is too
    short to hold a longer warmup."""
    total = spec.total_steps()
    per_epoch = total // spec.run.epochs
    current = spec.schedule.warmup_steps(per_epoch)
    steps = min(max(math.ceil(WARMUP_SHARE * total), 2 * current), total - 1)
    if steps <= current:
        return []
    return [Remedy("warmup", f"Warm up the learning rate over the first {steps} steps",
                   "Starting at a fraction of the learning rate and raising it linearly lets "
                   "the first, largest gradients and the optimizer's statistics settle before "
                   "full-size steps.", {"schedule": {"warmup": steps, "warmup_unit": "steps"}})]


def _clip_gradients(spec: ExperimentSpec) -> Remedy:
    clip = spec.run.grad_clip or GRAD_CLIP
    return Remedy("grad_clip", f"Clip gradients to norm {clip:g}",
                  "Clipping caps the size of each update, so one bad batch cannot throw the "
                  "weights far away.", {"run": {"grad_clip": clip}})


def _more_epochs(spec: ExperimentSpec) -> Remedy:
    epochs = min(spec.run.epochs * 2, MAX_EPOCHS)
    return Remedy("more_epochs", f"Train for {epochs} epochs",
                  "The training loss was still falling when the run ended; more epochs continue "
                  "the descent.", {"run": {"epochs": epochs}})
