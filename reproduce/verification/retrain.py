"""Retraining a published trial: what it can show here, and the verdict on its weights and
final metrics.

Before training, :func:`retrain_outlook` compares the platform the retrain will run on (this
CPU or GPU, the trial's precision as resolved here, its thread count) with the recorded one
(:func:`charlm.platforms.compare`), and :func:`outlook_line` says what the outcome can be.
After training, :func:`judge_retrain` gives the ``retrain`` row: bit-identical weights and
final metrics pass on any platform; the same platform with other bits fails; another platform,
or one the record cannot show to be the same (a record older than the keys that decide
bit-identity), is "platform differs" within :data:`TOLERANCES`, derived from a measured
cross-platform spread (:mod:`reproduce.verification.tolerance`, which also says what that
measurement does not cover and which rankings it cannot confirm). Every verdict names the
metric differences. :mod:`reproduce.verification.retrained` then compares the retrained curve,
best and sample, given this verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from charlm import determinism, platforms
from charlm.data import Corpus
from charlm.model import ModelConfig
from charlm.train import TrainConfig, TrialSpec, resolve_precision, train_trial
from reproduce.verification.rows import FAIL, PASS, PLATFORM_DIFFERS, Row
from reproduce.verification.tolerance import SPREAD, TOLERANCES, unmeasured

__all__ = ["METRICS", "TOLERANCES", "judge_retrain", "outlook_line", "retrain", "retrain_outlook"]

METRICS = ("val_loss", "train_loss", "val_accuracy", "train_accuracy")


def _metric_deltas(recorded: dict, here: dict) -> str:
    """The retrained final metrics minus the recorded ones, e.g. ``val_loss +0.0012 nats,
    ..., val_accuracy -0.05 points``; "equal" when all four are exactly equal."""
    deltas = {k: here[k] - recorded[k] for k in METRICS}
    if not any(deltas.values()):
        return "final metrics equal"
    unit = {"val_loss": "nats", "train_loss": "nats"}
    return "retrained - recorded: " + ", ".join(
        f"{k} {v:+.4g} {unit.get(k, 'points')}" for k, v in deltas.items()
    )


def retrain_outlook(trial: dict, device: str | None = None) -> platforms.Match:
    """How this machine's platform compares with the one that trained ``trial``, decided
    before training: the device, precision and thread count the retrain will use, and this
    CPU or GPU (:func:`charlm.platforms.compare`).

    Raises:
        ValueError: the trial's device is not available here.
    """
    train = trial["train"]
    where = determinism.resolve_device(device or train.get("device", "auto"))
    precision = resolve_precision(train.get("precision", "fp32"), where)
    here = platforms.record(where, precision, threads=train["threads"])
    return platforms.compare(trial["environment"], here)


def outlook_line(trial: dict, match: platforms.Match) -> str:
    """What the retrain of ``trial`` can show here, said before training."""
    recorded = platforms.describe(trial["environment"])
    if match.same:
        return (
            f"{trial['id']}: same platform as recorded ({recorded}): the weights must be "
            "bit-identical"
        )
    if match.differs:
        return (
            f"{trial['id']}: the outcome can only be 'platform differs' ({match.describe()}): "
            "the weights cannot be bit-identical here, and the final metrics are compared "
            f"within tolerances ({_tolerances()})"
        )
    return (
        f"{trial['id']}: its record lacks {', '.join(match.unknown)}, so this platform "
        f"cannot be called the same as the recording one ({recorded}): bit-identical weights "
        f"pass, others are judged within tolerances ({_tolerances()}) as 'platform differs "
        "or unknown'"
    )


def _tolerances() -> str:
    t = TOLERANCES
    return f"losses {t['val_loss']:g} nats, accuracies {t['val_accuracy']:g} points"


def judge_retrain(trial: dict, record: dict) -> Row:
    """The verdict on one retrained trial (``record``) against its published record.

    - bit-identical weights and equal final metrics: pass, whatever the platforms;
    - the same platform (:func:`charlm.platforms.compare`) but other weights or metrics: FAIL;
    - another platform, or one the record cannot show to be the same: "platform differs",
      with the final metrics within :data:`TOLERANCES`, else FAIL; a precision or device the
      measured spread does not cover (bf16, a GPU) is named as not measured.

    Every detail names the metric differences (retrained minus recorded).
    """
    match = platforms.compare(trial["environment"], record["environment"])
    same_bits = record["weights_sha256"] == trial["weights_sha256"]
    deltas = _metric_deltas(trial["final"], record["final"])
    if same_bits and record["final"] == trial["final"]:
        detail = "bit-identical weights and final metrics"
        if not match.same:
            detail += f" (platform record: {match.describe()})"
        return Row("retrain", trial["id"], PASS, detail)
    if match.same:
        what = (
            f"same platform but weights sha256 {record['weights_sha256'][:16]}... != "
            f"recorded {trial['weights_sha256'][:16]}..."
            if not same_bits
            else "bit-identical weights on the same platform, but final metrics differ"
        )
        return Row("retrain", trial["id"], FAIL, f"{what}; {deltas}")
    beyond = [
        f"{k} off by {abs(record['final'][k] - trial['final'][k]):.4g} (tolerance {t})"
        for k, t in TOLERANCES.items()
        if abs(record["final"][k] - trial["final"][k]) > t
    ]
    which = "platform differs" if match.differs else "platform unknown"
    missing = unmeasured(trial["environment"], record["environment"])
    note = (
        f"; tolerance from an {SPREAD.precision} {SPREAD.device_type.upper()} measurement, the "
        f"spread of {' and '.join(missing)} not measured"
        if missing
        else ""
    )
    if beyond:
        detail = f"{which} ({match.describe()}); {'; '.join(beyond)}; {deltas}{note}"
        return Row("retrain", trial["id"], FAIL, detail)
    return Row(
        "retrain",
        trial["id"],
        PLATFORM_DIFFERS,
        f"{which} ({match.describe()}); metrics within tolerance; {deltas}{note}",
    )


def retrain(
    data: dict,
    ids: list[str],
    corpus: Corpus,
    work: Path,
    log: Callable[[str], None] | None = None,
) -> list[Row]:
    """Train the named trials again from their records and compare with what was recorded
    (:func:`judge_retrain`).

    Args:
        log: where to say, before each trial, what its retrain can show here
            (:func:`outlook_line`) and then its training progress (steps, losses, time left);
            None: silent.
    """
    by_id = {t["id"]: t for t in data["trials"]}
    rows = []
    for trial_id in ids:
        trial = by_id[trial_id]
        train = {k: v for k, v in trial["train"].items() if not k.endswith("_used")}
        spec = TrialSpec(
            ModelConfig.from_dict(trial["model"]),
            TrainConfig.from_dict(train),
            trial["seed"],
            trial["data_seed"],
        )
        if log is not None:
            try:
                log(outlook_line(trial, retrain_outlook(trial)))
            except ValueError:  # its device is not here: train_trial says so
                pass
        record = train_trial(
            spec,
            corpus,
            work / trial_id,
            progress=None if log is not None else False,
            log=log or (lambda _: None),
        )
        rows.append(judge_retrain(trial, record))
    return rows
