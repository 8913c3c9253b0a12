"""Whether two sets of seeds really differ: Welch's t interval on the difference of means.

Why Welch's t and not a bootstrap: a repeat has few seeds (3 to 10). A bootstrap interval of
the difference resamples those few values and comes out too narrow (with 5 seeds a percentile
bootstrap covers the true difference well under 95% of the time), while Student's t widens
the interval for the small counts, and Welch's version does not assume the two specs vary
alike across seeds (a lower learning rate often varies less). This module imports neither
torch nor Django.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from scipy import stats

CONFIDENCE = 0.95
# Metrics shown in points (hundredths): a difference of accuracies reads "1.2 points".
IN_POINTS = frozenset({"val_acc", "train_acc", "test_acc"})
# Metrics where higher is better; every other one (losses, errors, the gap) is better lower.
HIGHER_IS_BETTER = frozenset({"val_acc", "train_acc", "test_acc"})


@dataclass(frozen=True)
class Comparison:
    """B against A on one metric: the difference of the means (B − A) and its interval."""

    metric: str
    a: tuple[float, ...]  # A's per-seed values
    b: tuple[float, ...]
    mean_a: float
    mean_b: float
    difference: float  # mean_b - mean_a
    low: float  # the interval of the difference at ``confidence``
    high: float
    confidence: float
    df: float  # Welch–Satterthwaite degrees of freedom
    p_value: float
    method: str
    verdict: str  # "different" or "no difference"
    sentence: str

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "a": list(self.a), "b": list(self.b)}


def welch_interval(a: Sequence[float], b: Sequence[float],
                   confidence: float = CONFIDENCE) -> tuple[float, float, float, float, float]:
    """``(difference, low, high, df, p)``: mean(b) − mean(a), its Welch t interval, the
    Welch–Satterthwaite degrees of freedom and the two-sided p-value. Needs 2 values each."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError("a comparison needs at least 2 seeds on each side")
    na, nb = len(a), len(b)
    mean_a, mean_b = sum(a) / na, sum(b) / nb
    var_a = sum((x - mean_a) ** 2 for x in a) / (na - 1)
    var_b = sum((x - mean_b) ** 2 for x in b) / (nb - 1)
    difference = mean_b - mean_a
    se2 = var_a / na + var_b / nb
    if se2 == 0.0:
        # Every seed alike on both sides: the difference is exact.
        return difference, difference, difference, float(na + nb - 2), \
            (1.0 if difference == 0 else 0.0)
    se = math.sqrt(se2)
    df = se2**2 / ((var_a / na) ** 2 / (na - 1) + (var_b / nb) ** 2 / (nb - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    p_value = 2 * float(stats.t.sf(abs(difference) / se, df))
    return difference, difference - half, difference + half, df, p_value


def compare(a: Sequence[float], b: Sequence[float], metric: str, *, names: tuple[str, str] =
            ("A", "B"), confidence: float = CONFIDENCE) -> Comparison:
    """B against A on ``metric``'s per-seed values: "different" when the interval of the
    difference of means leaves out 0, else "no difference", with a plain sentence."""
    difference, low, high, df, p_value = welch_interval(a, b, confidence)
    different = low > 0 or high < 0
    verdict = "different" if different else "no difference"
    return Comparison(metric, tuple(a), tuple(b), sum(a) / len(a), sum(b) / len(b), difference,
                      low, high, confidence, df, p_value, "Welch's t", verdict,
                      sentence(metric, difference, low, high, different, names, confidence,
                               (len(a), len(b))))


def sentence(metric: str, difference: float, low: float, high: float, different: bool,
             names: tuple[str, str], confidence: float, counts: tuple[int, int]) -> str:
    """"B is better by 1.2 ± 0.4 points" or "no difference beyond seed noise", with the
    interval and what it came from."""
    scale, unit = (100.0, " points") if metric in IN_POINTS else (1.0, "")
    half = (high - low) / 2 * scale
    interval = (f"{confidence:.0%} interval {low * scale:+.3g} to {high * scale:+.3g}{unit}, "
                f"Welch's t over {counts[0]} + {counts[1]} seeds")
    if not different:
        return f"No difference in {metric} beyond seed noise ({interval})."
    b_better = (difference > 0) == (metric in HIGHER_IS_BETTER)
    better, worse = (names[1], names[0]) if b_better else names
    return (f"{better} is better than {worse} on {metric} by {abs(difference) * scale:.3g} "
            f"± {half:.2g}{unit} ({interval}).")
