"""The report's per-trial numbers against the study's raw data, and the report's claims
recomputed from the raw trials instead of the report's own appendix.

Rule for a printed row: it *matches* a raw trial (same activation) when every printed field
equals the raw value rounded to the printed decimals (|raw - printed| <= half a unit in the
last printed decimal); rows are checked against the full run's result files (floats) and its
log (figures as printed) separately.
"""

from __future__ import annotations

from typing import Any

from reproduce import audit

__all__ = [
    "FIELDS",
    "claims_against_raw",
    "full_run_trials",
    "pd_sources",
    "printed_curves",
    "printed_rows",
]

# printed field -> (file key, log key in "final" or the trial)
FIELDS = {
    "train_loss": ("train_loss", "train_loss"),
    "val_loss": ("val_loss", "val_loss"),
    "train_accuracy": ("train_accuracy", "train_accuracy"),
    "val_accuracy": ("val_accuracy", "val_accuracy"),
    "wall_time_s": ("training_time_s", "training_time_s"),
}
FULL_FILES = "full/charlm-"


def _decimals(value: float) -> int:
    text = repr(float(value))
    return len(text.split(".")[1]) if "." in text and "e" not in text else 0


def _agrees(raw: float, printed: float) -> bool:
    return abs(raw - printed) <= 0.5 * 10.0 ** (-_decimals(printed)) + 1e-9


def full_run_trials(raw: dict) -> dict[str, list[dict]]:
    """The full run's trials per activation, from its per-activation result files, each with
    its seed and the log's printed figures beside the file's floats:
    ``{activation: [{"seed", "file": {field: value}, "log": {field: value}, "run"}]}``."""
    log_runs = {r["activation"]: r for r in raw["log"]["runs"]}
    out: dict[str, list[dict]] = {}
    for run in raw["runs"]:
        if not run["id"].startswith(FULL_FILES):
            continue
        log_trials = {t["seed"]: t for t in log_runs[run["activation"]]["trials"]}
        rows = []
        for trial in run["trials"]:
            logged = log_trials[trial["seed"]]
            rows.append(
                {
                    "seed": trial["seed"],
                    "run": run["id"],
                    "file": {f: trial[k] for f, (k, _) in FIELDS.items()},
                    "log": {
                        f: (logged if k == "training_time_s" else logged["final"])[k]
                        for f, (_, k) in FIELDS.items()
                    },
                }
            )
        out[run["activation"]] = rows
    return out


def _printed(trial: dict) -> dict[str, float]:
    final = trial["final"]
    out = {f: final[f] for f in ("train_loss", "val_loss", "train_accuracy", "val_accuracy")}
    out["wall_time_s"] = trial["wall_time_s"]
    return out


def printed_rows(reference: dict, raw: dict) -> list[dict]:
    """Each appendix row of the report (its trials, whose ``report_rows`` also give their
    place in "Detailed Results") with the raw trials it matches in the files and in the log,
    or, matching none, the nearest raw trial and each field's difference."""
    trials = full_run_trials(raw)
    out = []
    for trial in reference["trials"]:
        printed = _printed(trial)
        candidates = trials.get(trial["activation"], [])
        in_files = [
            c["seed"]
            for c in candidates
            if all(_agrees(c["file"][f], v) for f, v in printed.items())
        ]
        in_log = [
            c["seed"]
            for c in candidates
            if all(_agrees(c["log"][f], v) for f, v in printed.items())
        ]
        row: dict[str, Any] = {
            "activation": trial["activation"],
            "appendix_trial": trial["report_rows"]["appendix_trial"],
            "detailed_results_trial": trial["report_rows"]["detailed_results_trial"],
            "printed": printed,
            "matches_file_seeds": in_files,
            "matches_log_seeds": in_log,
        }
        if not in_files and not in_log and candidates:
            nearest = min(
                candidates,
                key=lambda c: sum(
                    abs(c["file"][f] - v) / max(abs(v), 1e-9) for f, v in printed.items()
                ),
            )
            row["nearest_seed"] = nearest["seed"]
            row["differences"] = {
                f: round(v - nearest["file"][f], 6)
                for f, v in printed.items()
                if not _agrees(nearest["file"][f], v)
            }
        out.append(row)
    return out


def printed_curves(reference: dict, raw: dict) -> list[dict]:
    """The loss curves the report prints ("Training Dynamics": which trial and which loss it
    does not say) against the log: per activation, each printed point with the (seed, loss)
    pairs of the log's evaluation at that step (train or val; step 5000 is the evaluation
    after training) that equal it at the printed decimals, and the seeds whose train loss
    matches every point."""
    log_runs = {r["activation"]: r for r in raw["log"]["runs"]}
    out = []
    for act, points in reference.get("printed_curves", {}).items():
        trials = log_runs[act]["trials"]
        rows = []
        for point in points:
            matches = []
            for trial in trials:
                if point["step"] == reference["config"]["training"]["max_iters"]:
                    values = trial["final"]
                else:
                    values = next(
                        (e for e in trial["evaluations"] if e["step"] == point["step"]), {}
                    )
                for loss in ("train_loss", "val_loss"):
                    if loss in values and _agrees(values[loss], point["loss"]):
                        matches.append({"seed": trial["seed"], "loss": loss})
            rows.append({"step": point["step"], "printed": point["loss"], "matches": matches})
        whole = [
            t["seed"]
            for t in trials
            if all({"seed": t["seed"], "loss": "train_loss"} in r["matches"] for r in rows)
        ]
        out.append({"activation": act, "points": rows, "one_trial_train_loss": whole})
    return out


def pd_sources(raw: dict) -> list[dict]:
    """Per activation of the full run: the relative PD of each seed pair and their mean in the
    log and in the per-activation result file, and whether the two agree (6 decimals, the
    log's)."""
    files = {r["activation"]: r for r in raw["runs"] if r["id"].startswith(FULL_FILES)}
    out = []
    for run in raw["log"]["runs"]:
        act = run["activation"]
        logged = [p["relative_pd"] for p in run["pd_pairs"]]
        stored = [p["relative_pd"] for p in files[act]["pd_pairs"]]
        out.append(
            {
                "activation": act,
                "log_pairs": logged,
                "file_pairs": [round(v, 6) for v in stored],
                "log_mean": run["summary"]["avg_relative_pd"],
                "file_mean": round(files[act]["stored"]["avg_relative_pd"], 6),
                "agree": all(_agrees(s, g) for s, g in zip(stored, logged, strict=True)),
                "file": files[act]["file"],
            }
        )
    return out


def _raw_reference(reference: dict, raw: dict) -> dict:
    """The reference document with its trials replaced by the full run's raw trials (files)."""
    steps = reference["config"]["training"]["max_iters"]
    trials = []
    for act, rows in sorted(full_run_trials(raw).items()):
        for row in rows:
            final = {
                f: row["file"][f]
                for f in ("train_loss", "val_loss", "train_accuracy", "val_accuracy")
            }
            trials.append(
                {
                    "id": f"{act}-s{row['seed']}",
                    "group": act,
                    "activation": act,
                    "seed": row["seed"],
                    "grid": {},
                    "final": {"step": steps, **final},
                    "wall_time_s": row["file"]["wall_time_s"],
                }
            )
    return {**reference, "trials": trials}


def claims_against_raw(reference: dict, raw: dict) -> dict:
    """Every claim of the report audited twice (:mod:`reproduce.audit`): against the
    report's own appendix trials and against the raw trials of the result files. Returns the
    verdict counts of both and each claim whose verdict differs."""
    own = {r["id"]: r for r in audit.audit_document(reference)}
    doc = _raw_reference(reference, raw)
    audit.validate_reference(doc, "the report's claims on the raw trials")
    on_raw = {r["id"]: r for r in audit.audit_document(doc)}

    def counts(rows: dict[str, dict]) -> dict[str, int]:
        out: dict[str, int] = {}
        for row in rows.values():
            out[row["verdict"]] = out.get(row["verdict"], 0) + 1
        return out

    changed = [
        {
            "id": cid,
            "claimed": own[cid]["claimed"],
            "on_report": own[cid]["verdict"],
            "on_raw": on_raw[cid]["verdict"],
            "recomputed_on_raw": on_raw[cid]["recomputed_text"],
        }
        for cid in own
        if own[cid]["verdict"] != on_raw[cid]["verdict"]
    ]
    return {"on_report": counts(own), "on_raw": counts(on_raw), "changed": changed, "rows": on_raw}
