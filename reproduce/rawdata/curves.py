"""What the full run's loss curves and evaluation sizes say about its conclusions: where each
trial's val loss was lowest (the stopping point), and how large the sampling error of its
accuracy and loss estimates is next to the differences the report ranks.

Stopping point: a trial's best val loss is the lowest point of its in-loop val-loss history
(every 500 steps and at step 4999; the result files' floats); its final val loss is the separate
evaluation after training (train.py). Each ranking is :func:`reproduce.stats.compare_groups` on
the three seeds per activation (one-way ANOVA, Tukey HSD), judged by :mod:`reproduce.verdicts`.

Sampling error:

- accuracy: the study counts hits among 1,000 random windows (train.py, calculate_accuracy),
  so a trial's accuracy p (a fraction) has binomial standard error sqrt(p (1 - p) / 1000); a mean
  of n trials sqrt(sum p_i (1 - p_i) / 1000) / n, a difference of two independent means the
  root sum of squares. A difference is *inside* the sampling error when it is smaller than 1.96
  of its standard errors (a two-sided 95% normal interval).
- loss: each evaluation averages 200 random batches (eval_iters), whose spread the files do not
  keep. The study evaluated every trial twice one training step apart (at step 4999 inside the
  loop and after training), so half the mean squared difference of those pairs estimates the
  variance of one evaluation, an upper bound since one AdamW step also changes the model:
  sigma = sqrt(mean(d^2) / 2) over the nine trials. Differences of means and SDs are then
  judged against it as for accuracy.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from reproduce import stats, verdicts

__all__ = ["Z95", "accuracy_error", "loss_error", "stopping_point", "trajectories"]

Z95 = 1.959963984540054  # scipy.stats.norm.ppf(0.975)
WINDOWS = 1000  # train.py, calculate_accuracy(num_samples=1000)
EVAL_BATCHES = 200  # config_full_gpu.py, eval_iters


def _full_runs(raw: dict) -> dict[str, dict]:
    return {r["activation"]: r for r in raw["runs"] if r["id"].startswith("full/charlm-")}


def _steps(raw: dict, activation: str) -> list[int]:
    log = next(r for r in raw["log"]["runs"] if r["activation"] == activation)
    return [e["step"] for e in log["trials"][0]["evaluations"]]


def stopping_point(raw: dict) -> dict:
    """Each trial's best val loss and its step, its final val loss, and the rankings of the
    activations by mean best and by mean final val loss with their statistics and the verdict
    on "Swish has the lowest val loss" under each."""
    trials, best, final = [], {}, {}
    for act, run in sorted(_full_runs(raw).items()):
        steps = _steps(raw, act)
        for t in run["trials"]:
            history = t["val_loss_history"]
            i = int(np.argmin(history))
            trials.append(
                {
                    "activation": act,
                    "seed": t["seed"],
                    "best_val_loss": history[i],
                    "best_step": steps[i],
                    "final_val_loss": t["val_loss"],
                    "rise_after_best": t["val_loss"] - history[i],
                }
            )
            best.setdefault(act, []).append(history[i])
            final.setdefault(act, []).append(t["val_loss"])
    out: dict[str, Any] = {"trials": trials}
    for name, values in (("by_best", best), ("by_final", final)):
        comparison = stats.compare_groups(values, lower_is_better=True)
        verdict, detail = verdicts.extreme(
            comparison, "swish", True, f"lowest mean {name[3:]} val loss"
        )
        out[name] = {
            "means": {a: comparison["groups"][a]["mean"] for a in comparison["ranking"]},
            "ranking": comparison["ranking"],
            "anova_f": comparison["anova"]["F"],
            "anova_p": comparison["anova"]["p"],
            "tukey_p": {f"{p['a']}-{p['b']}": p["tukey_p"] for p in comparison["pairs"]},
            "swish_best": {"verdict": verdict, "detail": detail},
        }
    return out


def trajectories(raw: dict, sigma: float) -> list[dict]:
    """Per activation: each trial's step of lowest val loss and the rise from it to the last
    in-loop evaluation, against 1.96 sqrt(2) sigma (the 95% bound on a difference of two
    evaluations): a rise beyond it is real, not sampling error."""
    bound = Z95 * math.sqrt(2) * sigma
    out = []
    for act, run in sorted(_full_runs(raw).items()):
        steps = _steps(raw, act)
        rows = []
        for t in run["trials"]:
            h = t["val_loss_history"]
            i = int(np.argmin(h))
            rows.append({"seed": t["seed"], "best_step": steps[i], "rise": h[-1] - h[i]})
        out.append(
            {
                "activation": act,
                "trials": rows,
                "bound": bound,
                "rises_beyond_noise": sum(r["rise"] > bound for r in rows),
            }
        )
    return out


def loss_error(raw: dict) -> dict:
    """The standard deviation of one val-loss evaluation from the nine trials' double
    evaluations (see the module docstring), and the errors of the means, SDs and differences
    the report prints."""
    diffs = []
    for _act, run in sorted(_full_runs(raw).items()):
        for t in run["trials"]:
            diffs.append(t["val_loss"] - t["val_loss_history"][-1])
    d = np.asarray(diffs)
    sigma = float(math.sqrt(np.mean(d**2) / 2))
    n = 3
    diff_of_means = Z95 * sigma * math.sqrt(2 / n)
    return {
        "pairs": [round(x, 6) for x in diffs],
        "sigma": sigma,
        "mean_of_3_se": sigma / math.sqrt(n),
        "diff_of_means_95": diff_of_means,
    }


def _binomial_se(percents: list[float]) -> float:
    p = np.asarray(percents) / 100.0
    return float(100.0 * math.sqrt(np.sum(p * (1 - p)) / WINDOWS) / len(p))


def accuracy_error(raw: dict) -> dict:
    """Binomial sampling error of each activation's mean val and train accuracy (percentage
    points), and whether the report's accuracy differences lie inside 1.96 standard errors."""
    runs = _full_runs(raw)
    val = {a: [t["val_accuracy"] for t in r["trials"]] for a, r in runs.items()}
    train = {a: [t["train_accuracy"] for t in r["trials"]] for a, r in runs.items()}
    single = {a: _binomial_se(v[:1]) for a, v in val.items()}
    se_val = {a: _binomial_se(v) for a, v in val.items()}
    se_gap = {a: math.hypot(_binomial_se(train[a]), se_val[a]) for a in val}
    mean = {a: float(np.mean(v)) for a, v in val.items()}
    gap = {a: float(np.mean(train[a]) - np.mean(val[a])) for a in val}
    sd = {a: float(np.std(v)) for a, v in val.items()}

    def judged(what: str, diff: float, se: float) -> dict:
        return {
            "difference": what,
            "value": diff,
            "bound_95": Z95 * se,
            "inside": abs(diff) < Z95 * se,
        }

    names = {"gelu": "GELU", "relu": "ReLU", "swish": "Swish"}
    measures = {"val accuracy": (mean, se_val), "train-val gap": (gap, se_gap)}
    compared = [
        ("val accuracy", "gelu", "relu"),  # the report's best and worst
        ("val accuracy", "gelu", "swish"),
        ("train-val gap", "relu", "gelu"),
        ("train-val gap", "gelu", "swish"),
        ("train-val gap", "relu", "swish"),
    ]
    rows = []
    for what, a, b in compared:
        value, se = measures[what]
        label = f"{what} {names[a]} - {names[b]}"
        rows.append(judged(label, value[a] - value[b], math.hypot(se[a], se[b])))
    return {
        "windows": WINDOWS,
        "single_trial_se": single,
        "mean_se": se_val,
        "gap_se": se_gap,
        "trial_sd": sd,
        "differences": rows,
    }
