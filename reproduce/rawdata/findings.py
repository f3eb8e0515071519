"""The audit of the report against the study's raw data: findings with their numbers and
rules, and a verdict on every claim the raw data decides (written out by
:mod:`reproduce.rawdata.markdown` as ``artifacts/reference/audit.md``; ``python -m reproduce
audit artifacts/reference/study-raw.json`` prints it).

Findings (each module's docstring gives its rule): the partial table rebuilt from its files
(:mod:`.partial`); every per-trial number the report prints against the log and the result
files, and every claim recomputed from the raw trials (:mod:`.trials`); the stopping point and
the sampling error of accuracy and loss (:mod:`.curves`). Verdicts use
:mod:`reproduce.verdicts`' words: supports, contradicts, cannot decide (with what would decide).
"""

from __future__ import annotations

import statistics
from typing import Any

from reproduce.rawdata import curves, partial, trials
from reproduce.verdicts import CONTRADICTS, SUPPORTS, UNDECIDED

__all__ = ["UNDONE", "collect", "summary_line"]

UNDONE: list[str] = []  # findings issue 21 asked for that are not made yet


def _verdict(claim: str, printed: str, verdict: str, evidence: str, rule: str) -> dict:
    return {
        "claim": claim,
        "printed": printed,
        "verdict": verdict,
        "evidence": evidence,
        "rule": rule,
    }


def _study(detail: str) -> str:
    return detail.replace("our ", "the study's ", 1)


def collect(raw: dict, prov: dict, reference: dict, self_pd: dict | None = None) -> dict:
    """Every finding's numbers and the verdicts, as plain data (floats unrounded);
    ``self_pd`` is self-pd.json (:mod:`reproduce.rawdata.selfpd`), when measured."""
    rebuilt = partial.rebuild(raw, prov)
    within = partial.within_config(raw, prov)
    rows = trials.printed_rows(reference, raw)
    pds = trials.pd_sources(raw)
    printed_curves = trials.printed_curves(reference, raw)
    reaudit = trials.claims_against_raw(reference, raw)
    stop = curves.stopping_point(raw)
    loss = curves.loss_error(raw)
    shapes = curves.trajectories(raw, loss["sigma"])
    acc = curves.accuracy_error(raw)
    found = {
        "partial_table": rebuilt,
        "partial_within_config": within,
        "printed_rows": rows,
        "pd_sources": pds,
        "printed_curves": printed_curves,
        "claims_on_raw": {k: v for k, v in reaudit.items() if k != "rows"},
        "stopping_point": stop,
        "loss_error": loss,
        "trajectories": shapes,
        "accuracy_error": acc,
    }
    found["pd_against_itself"] = _pd_against_itself(self_pd, raw) if self_pd else None
    found["verdicts"] = _verdicts(found, raw, reference, reaudit["rows"])
    return found


def _verdicts(f: dict, raw: dict, reference: dict, on_raw: dict) -> list[dict]:
    """Every verdict; a claim the report's reference file holds is shown as it printed it."""
    out = [
        *_partial_verdicts(f, reference),
        *_source_verdicts(f, raw, reference, on_raw),
        *_stopping_verdicts(f),
        *_noise_verdicts(f),
        *_self_pd_verdicts(f),
    ]
    printed = {c["id"]: c["printed"] for c in reference["claims"]}
    for v in out:
        v["printed"] = printed.get(v["claim"], v["printed"])
    return out


def _partial_verdicts(f: dict, reference: dict) -> list[dict]:
    """The partial scale: its table's best figure, its ranking within one configuration, and
    whether its rows pool configurations."""
    out = []
    claimed = next(c for c in reference["claims"] if c["id"] == "partial-best-val-loss")["claimed"]
    rows = f["partial_table"]
    lowest = min(rows, key=lambda r: r["printed"]["val_loss"])
    same = [r["activation"] for r in rows if r["printed"]["val_loss"] == claimed]
    ranking = f["partial_within_config"]["ranking"]
    where = ", ".join(
        f"{a}'s row, {ranking.index(a) + 1} of {len(ranking)} within config.py's runs"
        for a in same
        if a in ranking
    )
    out.append(
        _verdict(
            "partial-best-val-loss",
            f"Best Val Loss {claimed}",
            SUPPORTS if lowest["printed"]["val_loss"] == claimed else CONTRADICTS,
            f"the table it comes from (summary.txt) has {lowest['activation']} lowest at "
            f"{lowest['printed']['val_loss']:.4f}; {claimed} is {where or 'no row of it'}",
            "the printed figure against its source table's minimum",
        )
    )
    for v in f["partial_within_config"]["verdicts"]:
        more = "; more seeds per activation would decide" if v["verdict"] == UNDECIDED else ""
        out.append(
            _verdict(
                v["claim"],
                v["text"],
                v["verdict"],
                _study(v["detail"]) + f" (config.py's runs only, n = 3){more}",
                "best (reproduce/verdicts.py)",
            )
        )
    pooled = [r["activation"] for r in f["partial_table"] if not r["one_configuration"]]
    out.append(
        _verdict(
            "partial-table",
            "partial scale: one table of 765K-parameter, 500-iteration trials",
            CONTRADICTS,
            f"rows {', '.join(pooled)} pool files of different configurations "
            "("
            + ", ".join(f"{r['activation']} {r['trials']} trials" for r in f["partial_table"])
            + ")",
            "provenance.json: a row is one configuration only if all its files are identified "
            "as the same one",
        )
    )
    return out


def _source_verdicts(f: dict, raw: dict, reference: dict, on_raw: dict) -> list[dict]:
    """Printed trial rows, PD and total time against the log and files, and every claim whose
    verdict changes when recomputed from the raw trials."""
    out = []
    for row in f["printed_rows"]:
        if row["matches_file_seeds"] or row["matches_log_seeds"]:
            continue
        diffs = ", ".join(f"{k} {v:+g}" for k, v in row["differences"].items())
        out.append(
            _verdict(
                f"{row['activation']}-appendix-trial-{row['appendix_trial']}",
                " ".join(f"{k}={v:g}" for k, v in row["printed"].items()),
                CONTRADICTS,
                f"matches no trial of the log or the result file; nearest seed "
                f"{row['nearest_seed']}, printed minus raw: {diffs}",
                "every printed field equal to the raw value at the printed decimals",
            )
        )
    for pd in f["pd_sources"]:
        if pd["agree"]:
            continue
        out.append(
            _verdict(
                f"{pd['activation']}-pd",
                f"Relative PD: {pd['log_mean']:.6f}",
                SUPPORTS,
                f"the log's pairs {', '.join(f'{x:.6f}' for x in pd['log_pairs'])} give it; the "
                f"result file {pd['file']} holds other pairs "
                f"({', '.join(f'{x:.6f}' for x in pd['file_pairs'])}, mean {pd['file_mean']:.6f})",
                "the printed mean against the log's and the file's seed pairs",
            )
        )
    for curve in f["printed_curves"]:
        seeds = curve["one_trial_train_loss"]
        points = "; ".join(
            f"step {p['step']} {p['printed']:g}: "
            + (", ".join(f"s{m['seed']} {m['loss'].split('_')[0]}" for m in p["matches"]) or "none")
            for p in curve["points"]
        )
        out.append(
            _verdict(
                f"{curve['activation']}-printed-curve",
                f"{curve['activation']} training curve (Training Dynamics)",
                SUPPORTS if seeds else CONTRADICTS,
                (
                    f"seed {seeds[0]}'s train loss at every point"
                    if seeds
                    else "no one trial's loss at every point: the curve mixes trials"
                )
                + f" ({points})",
                "a printed point (2 decimals) equals the log's train or val loss of a trial at "
                "that step (5000: after training)",
            )
        )
    total = raw["log"]["total_time_s"]
    trial_sum = sum(t["wall_time_s"] for t in reference["trials"])
    out.append(
        _verdict(
            "total-time-min",
            "Total Training Time: 231.1 minutes",
            SUPPORTS,
            f"the log's total wall time {total:.1f} s = {total / 60:.1f} min (the whole run: "
            f"training, evaluations, accuracy, PD); the trials' training times sum to "
            f"{trial_sum / 60:.1f} min",
            "the printed figure against the log",
        )
    )
    for cid in (c["id"] for c in f["claims_on_raw"]["changed"]):
        row = on_raw[cid]
        verdict = SUPPORTS if row["verdict"] == "consistent" else CONTRADICTS
        out.append(
            _verdict(
                cid,
                row["printed"],
                verdict,
                f"recomputed from the raw trials: {row['recomputed_text']} ({row['verdict']} at "
                "the printed rounding; on the report's appendix trials it was not)",
                "reproduce.audit's rules on the result files' trials",
            )
        )
    return out


def _stopping_verdicts(f: dict) -> list[dict]:
    """The best activation and the curves' shapes, from where each trial's val loss was
    lowest."""
    out = []
    stop = f["stopping_point"]
    best, final = stop["by_best"], stop["by_final"]
    out.append(
        _verdict(
            "swish-best-val-loss",
            "Swish 1st (best loss)",
            UNDECIDED,
            f"by final val loss {_study(final['swish_best']['detail'])} "
            f"({final['swish_best']['verdict']}); by each trial's lowest val loss "
            f"{_study(best['swish_best']['detail'])} ({best['swish_best']['verdict']}): the "
            "ranking depends on where training stops; "
            "a sweep with a stated stopping rule would decide",
            "best (reproduce/verdicts.py) on final and on best val loss",
        )
    )
    shape = {t["activation"]: t for t in f["trajectories"]}
    bound = shape["swish"]["bound"]

    def rises(act: str) -> str:
        return ", ".join(
            f"seed {t['seed']} lowest at {t['best_step']}, then +{t['rise']:.4f}"
            for t in shape[act]["trials"]
        )

    rule = f"a rise after the lowest point beyond {bound:.4f} nats (1.96 sqrt(2) sigma) is real"
    out.append(
        _verdict(
            "swish-val-trajectory",
            "Swish: Monotonic decrease",
            CONTRADICTS if shape["swish"]["rises_beyond_noise"] else SUPPORTS,
            rises("swish"),
            rule,
        )
    )
    out.append(
        _verdict(
            "gelu-val-trajectory",
            "GELU: U-shape after 3000 steps",
            SUPPORTS if shape["gelu"]["rises_beyond_noise"] == 3 else UNDECIDED,
            rises("gelu"),
            rule,
        )
    )
    out.append(
        _verdict(
            "relu-val-trajectory",
            "ReLU: Plateau after 2500 steps",
            CONTRADICTS if shape["relu"]["rises_beyond_noise"] == 3 else UNDECIDED,
            rises("relu") + ": it rises like GELU's, it does not plateau",
            rule,
        )
    )
    return out


def _noise_verdicts(f: dict) -> list[dict]:
    """Differences and spreads the report ranks, against the sampling error of loss and
    accuracy."""
    out = []
    stop = f["stopping_point"]
    loss = f["loss_error"]
    sigma = loss["sigma"]
    means = stop["by_final"]["means"]
    gap = means["relu"] - means["gelu"]
    out.append(
        _verdict(
            "gelu-rank-val-loss",
            "GELU 3rd, ReLU 4th (ReLU worst)",
            UNDECIDED,
            f"ReLU - GELU = {gap:.4f} nats, inside the sampling error of a difference of two "
            f"3-trial means ({loss['diff_of_means_95']:.4f})",
            "loss sampling error (reproduce/rawdata/curves.py)",
        )
    )
    out.append(
        _verdict(
            "relu-sd-val-loss",
            "ReLU σ_loss = 0.0033 (Surprisingly stable)",
            UNDECIDED,
            f"one evaluation's own sampling SD is {sigma:.4f} nats: the trials' spread is no "
            "larger than the measurement's; more evaluation batches would decide",
            "loss sampling error",
        )
    )
    acc = {d["difference"]: d for d in f["accuracy_error"]["differences"]}

    def inside(key: str) -> str:
        d = acc[key]
        word = "inside" if d["inside"] else "outside"
        return f"{key}: {d['value']:.2f} points, {word} ±{d['bound_95']:.2f}"

    best_worst = acc["val accuracy GELU - ReLU"]
    out.append(
        _verdict(
            "val-acc-not-significant",
            "Difference: 1.3% (within noise, not significant)",
            SUPPORTS if best_worst["inside"] else CONTRADICTS,
            inside("val accuracy GELU - ReLU") + " (binomial, 1,000 windows)",
            "accuracy sampling error",
        )
    )
    out.append(
        _verdict(
            "gelu-best-val-acc",
            "Highest validation accuracy (59.87%)",
            UNDECIDED,
            inside("val accuracy GELU - Swish") + "; more windows would decide",
            "accuracy sampling error",
        )
    )
    one = f["accuracy_error"]["single_trial_se"]["relu"]
    sds = f["accuracy_error"]["trial_sd"]
    out.append(
        _verdict(
            "relu-highest-sd-val-acc",
            "Highest variance in validation accuracy (σ=1.09%)",
            UNDECIDED,
            f"one trial's accuracy has a sampling SE of {one:.2f} points: the trial SDs "
            f"({min(sds.values()):.2f}-{max(sds.values()):.2f}, population) are no larger "
            "than that",
            "accuracy sampling error",
        )
    )
    gap_gs = acc["train-val gap GELU - Swish"]
    out.append(
        _verdict(
            "swish-least-overfitting",
            "Swish: Gap = 8.9% (least overfitting)",
            SUPPORTS if not gap_gs["inside"] else UNDECIDED,
            inside("train-val gap GELU - Swish"),
            "accuracy sampling error",
        )
    )
    out.append(
        _verdict(
            "relu-most-overfitting",
            "ReLU: Gap = 14.1% (most overfitting)",
            UNDECIDED if acc["train-val gap ReLU - GELU"]["inside"] else SUPPORTS,
            inside("train-val gap ReLU - GELU"),
            "accuracy sampling error",
        )
    )
    return out


def _pd_against_itself(doc: dict, raw: dict) -> dict:
    """Self-PD (self-pd.json) beside the study's own seed-pair PDs, by scale of its runs."""
    study = {"full": [], "partial": []}
    for run in raw["runs"]:
        if run["pd_pairs"] and not run["id"].startswith("full/all_experiments_summary"):
            scale = "full" if run["id"].startswith("full/") else "partial"
            study[scale] += [p["relative_pd"] for p in run["pd_pairs"]]
    by_activation = {}
    for act in dict.fromkeys(t["activation"] for t in doc["trials"]):
        pairs = [p for p in doc["pairs"] if p["activation"] == act]
        by_activation[act] = {
            "self_pd": statistics.fmean(
                t["mean_self_pd"] for t in doc["trials"] if t["activation"] == act
            ),
            "own_windows": statistics.fmean(p["own_windows"] for p in pairs) if pairs else None,
            "same_windows": statistics.fmean(p["same_windows"] for p in pairs) if pairs else None,
        }
    ranked = sorted(by_activation, key=lambda a: -by_activation[a]["self_pd"])
    with_pairs = [a for a in ranked if by_activation[a]["own_windows"] is not None]
    return {
        **doc["summary"],
        "by_activation": by_activation,
        "ranking_by_self_pd": ranked,
        "ranking_by_pair_pd": sorted(with_pairs, key=lambda a: -by_activation[a]["own_windows"]),
        "run": doc["run"]["directory"],
        "model": doc["model"],
        "windows": doc["windows"],
        "models": len(doc["trials"]),
        "pairs": len(doc["pairs"]),
        "val_loss_range": [
            min(t["val_loss"] for t in doc["trials"]),
            max(t["val_loss"] for t in doc["trials"]),
        ],
        "study_pairs": {k: [min(v), max(v)] for k, v in study.items() if v},
        "platform": doc["platform"],
    }


def _self_pd_verdicts(f: dict) -> list[dict]:
    """The report's PD ranking read as reproducibility, against the PD of a model with itself."""
    s = f["pd_against_itself"]
    if s is None:
        return []
    full = s["study_pairs"].get("full", [0, 0])
    return [
        _verdict(
            "swish-best-pd",
            "Best reproducibility (lowest PD)",
            UNDECIDED,
            f"the study's PD procedure gives one trained model against its own copy "
            f"{s['self_pd_min']:.3f}-{s['self_pd_max']:.3f} (mean {s['self_pd_mean']:.3f}; "
            f"{s['models']} models of {s['run']}), as much as two seeds of one activation "
            f"({s['pair_own_windows_mean']:.3f}); the same seed pairs on identical windows "
            f"give {s['pair_same_windows_mean']:.3f}. The study's PD ({full[0]:.3f}-"
            f"{full[1]:.3f} at full scale) so measures how predictions differ between random "
            f"windows, not between models. With no second model it ranks the activations as "
            f"their seed pairs do ({' > '.join(s['ranking_by_self_pd'])} by self-PD; "
            f"{' > '.join(s['ranking_by_pair_pd'])} by pair PD), ordering how sharp the "
            f"models' predictions are: it cannot rank reproducibility; PD on identical "
            f"windows would decide",
            "the study's PD of two copies of one model (reproduce/rawdata/selfpd.py)",
        )
    ]


def summary_line(found: dict) -> dict[str, Any]:
    """Counts of verdicts by kind."""
    counts: dict[str, int] = {}
    for v in found["verdicts"]:
        counts[v["verdict"]] = counts.get(v["verdict"], 0) + 1
    return counts
