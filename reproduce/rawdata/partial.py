"""The report's partial-scale table rebuilt from the study's result files.

Rule (the study's process_results.py, create_summary_table): each activation's row is the mean,
over every result file of that activation, of the file's stored averages (val loss, val
accuracy, relative PD, training time), and its trial count the sum of the files' trials. The
rebuilt row must equal summary.txt's printed row at its decimals (4, 2, 6, 1). Each pooled file
carries its provenance (:mod:`reproduce.rawdata.provenance`); the ranking is then redone within
the one configuration the partial scale names (``Config``, config.py), n = 3 trials each, with
:func:`reproduce.stats.compare_groups` and judged by :mod:`reproduce.verdicts`' rules.
"""

from __future__ import annotations

import statistics
from typing import Any

from reproduce import stats, verdicts

__all__ = ["PARTIAL_CONFIG", "rebuild", "within_config"]

PARTIAL_CONFIG = "Config"  # the study's config.py: the partial scale
_COLUMNS = (
    ("val_loss", "avg_val_loss", 4),
    ("val_accuracy", "avg_val_accuracy", 2),
    ("relative_pd", "avg_relative_pd", 6),
    ("training_time_s", "avg_training_time", 1),
)


def _status(prov: dict) -> dict[str, dict]:
    return {r["run"]: r for f in prov["files"] for r in f["runs"]}


def _configuration(entry: dict) -> str:
    if entry["status"] == "identified":
        return entry["config"]["name"]
    return f"{entry['status']}: {' or '.join(entry['candidates']) or 'none'}"


def rebuild(raw: dict, prov: dict) -> list[dict]:
    """Per activation of summary.txt's CharLM rows: the files pooled (run id, trials, status
    and configuration), the rebuilt figures, the printed ones, and whether they agree."""
    table = next(t for t in raw["summary_tables"] if t["file"].startswith("results-Dec7-3hrs/"))
    status = _status(prov)
    out = []
    for row in table["rows"]:
        act = row["activation"]
        runs = [r for r in raw["runs"] if r["id"].startswith("partial/") and r["activation"] == act]
        rebuilt: dict[str, Any] = {}
        agree = True
        for name, key, decimals in _COLUMNS:
            value = statistics.fmean(r["stored"][key] for r in runs)
            rebuilt[name] = value
            agree &= round(value, decimals) == row[name]
        trials = sum(len(r["trials"]) for r in runs)
        agree &= trials == row["trials"]
        configs = sorted({_configuration(status[r["id"]]) for r in runs})
        out.append(
            {
                "activation": act,
                "files": [
                    {
                        "run": r["id"],
                        "trials": len(r["trials"]),
                        "status": status[r["id"]]["status"],
                        "config": (status[r["id"]]["config"] or {}).get("name"),
                        "candidates": status[r["id"]]["candidates"],
                        "avg_val_loss": r["stored"]["avg_val_loss"],
                    }
                    for r in runs
                ],
                "trials": trials,
                "rebuilt": rebuilt,
                "printed": {k: row[k] for k in (*(c[0] for c in _COLUMNS), "trials")},
                "agrees": agree,
                "configurations": configs,
                "one_configuration": len(configs) == 1,
            }
        )
    return out


def within_config(raw: dict, prov: dict, config: str = PARTIAL_CONFIG) -> dict:
    """The partial scale's activations within the one configuration ``config``: per activation
    the trials' final val losses (n = 3), the comparison (ANOVA, Tukey HSD; lower is better),
    the ranking, and the verdicts on the report's partial-scale claims (SmeLU-1.0 best, Swish
    worst, best val loss 2.1564, best val accuracy 28.19% for ReLU)."""
    status = _status(prov)
    chosen = [
        r
        for r in raw["runs"]
        if r["id"].startswith("partial/")
        and status[r["id"]]["status"] == "identified"
        and status[r["id"]]["config"]["name"] == config
    ]
    loss = {r["activation"]: [t["val_loss"] for t in r["trials"]] for r in chosen}
    acc = {r["activation"]: [t["val_accuracy"] for t in r["trials"]] for r in chosen}
    by_loss = stats.compare_groups(loss, lower_is_better=True)
    by_acc = stats.compare_groups(acc, lower_is_better=False)
    claims = [
        (
            "partial-best-activation",
            "SmeLU-1.0 has the lowest val loss",
            verdicts.extreme(by_loss, "smelu_1", True, "lowest mean val loss"),
        ),
        (
            "partial-worst-activation",
            "Swish has the highest val loss",
            verdicts.extreme(by_loss, "swish", False, "highest mean val loss"),
        ),
        (
            "partial-best-val-acc",
            "ReLU has the highest val accuracy (28.19%)",
            verdicts.extreme(by_acc, "relu", False, "highest mean val accuracy"),
        ),
    ]
    return {
        "config": config,
        "runs": [r["id"] for r in chosen],
        "val_loss": loss,
        "means": {a: by_loss["groups"][a]["mean"] for a in by_loss["ranking"]},
        "ranking": by_loss["ranking"],
        "anova_p": by_loss["anova"]["p"] if by_loss["anova"] else None,
        "anova_f": by_loss["anova"]["F"] if by_loss["anova"] else None,
        "accuracy_ranking": by_acc["ranking"],
        "accuracy_means": {a: by_acc["groups"][a]["mean"] for a in by_acc["ranking"]},
        "verdicts": [
            {"claim": cid, "text": text, "verdict": v, "detail": d} for cid, text, (v, d) in claims
        ],
    }
