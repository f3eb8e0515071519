"""The tolerance of a retrain on another platform, derived from a measured cross-platform
spread, and the report's rankings that such a retrain cannot confirm.

A trial trained again on another CPU (or at another precision, thread count, library version)
cannot give the recorded weights bit for bit: its final metrics differ from the record by the
platform's rounding, amplified over training. :data:`SPREAD` is the one such difference
measured so far; :data:`TOLERANCES` follow from it by :data:`RULE`:

    tolerance = MULTIPLE x the largest |retrained - recorded| measured in that unit (losses
    together, in nats; accuracies together, in percentage points), rounded up to 0.001 nats
    or 0.01 points.

Losses are pooled (val and train loss are one quantity on two texts; one of them happening to
land close must not make its tolerance tighter than the other's), and so are accuracies.
``MULTIPLE`` = 3 leaves room for other trials, activations and CPU pairs to spread wider than
the one measured, while keeping the loss tolerance (0.007 nats) under the smallest difference
in mean val loss that ``artifacts/cpu`` and ``artifacts/partial-cpu`` rank (0.0079 nats).

Only fp32 on CPUs was measured. A trial at another precision (bf16) or on a GPU is judged with
the same tolerance, and :func:`unmeasured` names what was not measured, so that the output says
so; no spread is assumed for them.

A ranking of two activations compares means over seeds. When every trial's final metrics are
confirmed only to within ``t``, each mean is confirmed to within ``t`` and their difference to
within ``2 t`` (an accuracy gap, train minus val accuracy, to within ``4 t``): a cross-platform
retrain cannot confirm an ordering whose difference is not larger than that
(:func:`unconfirmed_rankings`). Nor does a retrain recompute prediction differences, so the
PD ranking is never confirmed by one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "MULTIPLE",
    "RULE",
    "SPREAD",
    "TOLERANCES",
    "Spread",
    "tolerance_line",
    "tolerances_from",
    "unconfirmed_rankings",
    "unmeasured",
]

LOSSES = ("val_loss", "train_loss")  # nats
ACCURACIES = ("val_accuracy", "train_accuracy")  # percentage points


@dataclass(frozen=True)
class Spread:
    """One measured cross-platform difference: a published trial trained again elsewhere.

    Attributes:
        trial: the trial and the publication it belongs to.
        recorded_on: the CPU that trained the published trial.
        retrained_on: the CPU that trained it again.
        precision: the precision of both trainings.
        device_type: the device of both (``cpu``).
        torch: the torch version of both.
        date: when the retrain was run.
        differences: retrained minus recorded final metric (losses in nats, accuracies in
            percentage points), as verify's ``retrain`` row printed them.
    """

    trial: str
    recorded_on: str
    retrained_on: str
    precision: str
    device_type: str
    torch: str
    date: str
    differences: dict[str, float]

    def describe(self) -> str:
        """One phrase naming the measurement, for verify's output."""
        d = self.differences
        return (
            f"{self.trial} trained on {self.recorded_on}, retrained on {self.retrained_on}, "
            f"{self.precision}, torch {self.torch}, {self.date}: "
            + ", ".join(f"{k} {d[k]:+g}" for k in LOSSES)
            + " nats, "
            + ", ".join(f"{k} {d[k]:+g}" for k in ACCURACIES)
            + " points"
        )


SPREAD = Spread(
    trial="relu-s42 of artifacts/cpu",
    recorded_on="AMD Zen 4 (AVX512-BF16)",
    retrained_on="AMD Zen 3 (AVX2)",
    precision="fp32",
    device_type="cpu",
    torch="2.13",
    date="2026-12-07",
    differences={
        "val_loss": -0.002245,
        "train_loss": -0.000371,
        "val_accuracy": -0.019,
        "train_accuracy": +0.041,
    },
)

MULTIPLE = 3
STEPS = {"nats": 0.001, "points": 0.01}  # the tolerance is rounded up to a multiple of these
RULE = (
    f"{MULTIPLE} x the largest difference measured in each unit, rounded up to "
    f"{STEPS['nats']:g} nats or {STEPS['points']:g} points"
)


def _round_up(value: float, step: float) -> float:
    # the 1e-9 keeps an exact multiple (0.12 / 0.01 = 12.000000000000002) where it is
    return round(math.ceil(value / step - 1e-9) * step, 10)


def tolerances_from(spread: Spread, multiple: float = MULTIPLE) -> dict[str, float]:
    """The tolerance of each final metric by :data:`RULE`: ``multiple`` times the largest
    measured absolute difference among the metrics of its unit, rounded up."""
    d = spread.differences
    loss = _round_up(multiple * max(abs(d[k]) for k in LOSSES), STEPS["nats"])
    accuracy = _round_up(multiple * max(abs(d[k]) for k in ACCURACIES), STEPS["points"])
    return {**dict.fromkeys(LOSSES, loss), **dict.fromkeys(ACCURACIES, accuracy)}


# A retrained trial on another platform must land this close to the recorded final metrics.
TOLERANCES = tolerances_from(SPREAD)


def unmeasured(*environments: dict) -> list[str]:
    """What of these platforms (trial ``environment`` records) the measured spread does not
    cover: ``"bf16"`` (another precision than :data:`SPREAD`'s), ``"cuda"`` (not a CPU)."""
    found = []
    for env in environments:
        for value, measured in (
            (env.get("precision"), SPREAD.precision),
            (env.get("device_type"), SPREAD.device_type),
        ):
            if value and value != measured and value not in found:
                found.append(value)
    return found


def _means(cell: dict, key: str) -> list[tuple[float, str]]:
    """(mean of ``key``, activation) for each activation of a statistics cell that has one."""
    out = []
    for name, stats in cell["activations"].items():
        mean = (stats.get(key) or {}).get("mean")
        if isinstance(mean, (int, float)) and math.isfinite(mean):
            out.append((mean, name))
    return out


def unconfirmed_rankings(data: dict, tolerances: dict[str, float] | None = None) -> list[str]:
    """The orderings the report states that a retrain on another platform cannot confirm:
    each adjacent pair of its rank column (mean val loss) closer than twice the loss
    tolerance, the best val accuracy closer to the next than twice the accuracy tolerance,
    and the smallest or largest accuracy gap closer to the next than four times it, e.g.
    ``val loss relu < gelu (0.0082 nats)``; a grid cell is named after the metric."""
    t = TOLERANCES if tolerances is None else tolerances
    found = []
    for key, cell in sorted(data["statistics"]["cells"].items()):
        where = "" if key == "all" else f" ({key})"
        ranking = cell.get("val_loss_comparison", {}).get("ranking", [])
        means = {name: mean for mean, name in _means(cell, "val_loss")}
        ranked = [name for name in ranking if name in means]
        for a, b in zip(ranked, ranked[1:], strict=False):
            if means[b] - means[a] <= 2 * t["val_loss"]:
                found.append(f"val loss{where} {a} < {b} ({means[b] - means[a]:.4f} nats)")
        accuracy = sorted(_means(cell, "val_accuracy"), key=lambda m: (-m[0], m[1]))
        if len(accuracy) > 1 and accuracy[0][0] - accuracy[1][0] <= 2 * t["val_accuracy"]:
            (high, a), (low, b) = accuracy[:2]
            found.append(f"best val accuracy{where} {a} > {b} ({high - low:.2f} points)")
        gaps = sorted(_means(cell, "train_val_accuracy_gap"))
        limit = 2 * (t["val_accuracy"] + t["train_accuracy"])
        if len(gaps) > 1 and gaps[1][0] - gaps[0][0] <= limit:
            found.append(
                f"smallest accuracy gap{where} {gaps[0][1]} < {gaps[1][1]} "
                f"({gaps[1][0] - gaps[0][0]:.2f} points)"
            )
        if len(gaps) > 2 and gaps[-1][0] - gaps[-2][0] <= limit:
            found.append(
                f"largest accuracy gap{where} {gaps[-1][1]} > {gaps[-2][1]} "
                f"({gaps[-1][0] - gaps[-2][0]:.2f} points)"
            )
    return found


def tolerance_line(data: dict, environments: list[dict]) -> str:
    """What verify says after retrains judged on another platform: the tolerance, where it
    comes from, what the measurement does not cover among ``environments`` (the recorded and
    retrained platforms), and the rankings of ``data`` it cannot confirm."""
    t = TOLERANCES
    line = (
        f"tolerance on another platform: losses {t['val_loss']:g} nats, accuracies "
        f"{t['val_accuracy']:g} points ({RULE}; measured once: {SPREAD.describe()})"
    )
    missing = unmeasured(*environments)
    if missing:
        line += (
            f"; the spread of {' and '.join(missing)} is not measured: such trials are judged "
            f"with this {SPREAD.precision} {SPREAD.device_type.upper()} tolerance"
        )
    rankings = unconfirmed_rankings(data, t)
    if data.get("prediction_difference"):
        rankings.append("the PD ranking (a retrain does not recompute PD)")
    return (
        line + "; the report's rankings it cannot confirm (means within twice the tolerance, "
        "four times for a gap): " + ("; ".join(rankings) if rankings else "none")
    )
