"""The audit of the report against the study's raw data: findings with their numbers and
rules, and a verdict on every claim the raw data decides (``artifacts/reference/audit.md``,
``python -m reproduce audit artifacts/reference/study-raw.json``).

Findings (each module's docstring gives its rule): the partial table rebuilt from its files
(:mod:`.partial`); every per-trial number the report prints against the log and the result
files, and every claim recomputed from the raw trials (:mod:`.trials`); the stopping point and
the sampling error of accuracy and loss (:mod:`.curves`). Verdicts use
:mod:`reproduce.verdicts`' words: supports, contradicts, cannot decide (with what would decide).
"""

from __future__ import annotations

from typing import Any

from reproduce import terminal
from reproduce.rawdata import curves, partial, trials
from reproduce.verdicts import CONTRADICTS, SUPPORTS, UNDECIDED

__all__ = ["UNDONE", "collect", "markdown"]

UNDONE = [
    "The study's PD measured against itself (two copies of one trained model, each on its own "
    "random windows, as the study measured seed pairs): needs the study's PD procedure (issue "
    "20).",
    "Step-0 losses recomputed under the study protocol for each result file (provenance.json's "
    "step0_recomputed): needs the study protocol (issue 20).",
]


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


def collect(raw: dict, prov: dict, reference: dict) -> dict:
    """Every finding's numbers and the verdicts, as plain data (floats unrounded)."""
    rebuilt = partial.rebuild(raw, prov)
    within = partial.within_config(raw, prov)
    rows = trials.printed_rows(reference, raw)
    pds = trials.pd_sources(raw)
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
        "claims_on_raw": {k: v for k, v in reaudit.items() if k != "rows"},
        "stopping_point": stop,
        "loss_error": loss,
        "trajectories": shapes,
        "accuracy_error": acc,
    }
    found["verdicts"] = _verdicts(found, raw, reference, reaudit["rows"])
    return found


def _verdicts(f: dict, raw: dict, reference: dict, on_raw: dict) -> list[dict]:
    out = []
    # partial scale
    table = {r["activation"]: r for r in f["partial_table"]}
    lowest = min(table.values(), key=lambda r: r["printed"]["val_loss"])
    out.append(
        _verdict(
            "partial-best-val-loss",
            "Best Val Loss 2.1564 (SmeLU-1.0)",
            CONTRADICTS,
            f"the table it comes from (summary.txt) has {lowest['activation']} lowest at "
            f"{lowest['printed']['val_loss']:.4f}; 2.1564 is smelu_1's row, the highest within "
            f"config.py's runs",
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
    # per-trial rows and PD
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
    out += _curve_verdicts(f)
    return out


def _curve_verdicts(f: dict) -> list[dict]:
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
    out.append(
        _verdict(
            "relu-highest-sd-val-acc",
            "Highest variance in validation accuracy (σ=1.09%)",
            UNDECIDED,
            f"one trial's accuracy has a sampling SE of {one:.2f} points: the trial SDs "
            "(0.54-1.09) are no larger than that",
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


# ---------------------------------------------------------------------------------------------
# text


def _para(text: str, width: int) -> list[str]:
    return [*terminal.wrap(text, width), ""]


def _item(text: str, width: int) -> list[str]:
    return terminal.wrap(text, width, indent="  ", first="- ")


def markdown(found: dict, prov: dict, width: int = 80) -> str:
    """audit.md of the raw data: the findings with numbers and rules, then the verdicts."""
    out: list[str] = ["# Audit of the report against the study's raw data", ""]
    out += _para(
        "Recomputed from artifacts/reference/study-raw.json (the study's result files, summary "
        "tables and run log, repository github.com/pankajtakawale/llm-reproducibility-"
        "activations at commit 1551da0) and provenance.json by `python -m reproduce audit "
        "artifacts/reference/study-raw.json`. Written by `python -m reproduce reference "
        "import`.",
        width,
    )
    out += _partial_section(found, prov, width)
    out += _rows_section(found, width)
    out += _curves_section(found, width)
    out += ["## Verdicts", ""]
    for v in found["verdicts"]:
        out += _item(
            f"**{v['verdict']}** {v['claim']} ({v['printed']}): {v['evidence']}. Rule: "
            f"{v['rule']}.",
            width,
        )
    out += ["", "## Not done", ""]
    for text in UNDONE:
        out += _item(text, width)
    return "\n".join(out).rstrip("\n") + "\n"


def _partial_section(found: dict, prov: dict, width: int) -> list[str]:
    out = ["## The partial-scale table rebuilt from its files", ""]
    out += _para(
        "Rule: each row of results-Dec7-3hrs/summary.txt is the mean of the stored averages of "
        "every result file of that activation (process_results.py); each file's configuration "
        "is provenance.json's.",
        width,
    )
    summary = prov["summary"]
    out += _para(
        f"Provenance of the {summary['runs']} runs of the result files: "
        f"{summary['identified']} identified, {summary['ambiguous']} ambiguous, "
        f"{summary['unidentified']} unidentified; step-0 losses recomputed: "
        f"{summary['step0_recomputed']}.",
        width,
    )
    out.append("```text")
    out.append("activation  trials  val loss  printed  agrees  configurations")
    for r in found["partial_table"]:
        out.append(
            f"{r['activation']:<10}  {r['trials']:>6}  {r['rebuilt']['val_loss']:8.4f}  "
            f"{r['printed']['val_loss']:7.4f}  {'yes' if r['agrees'] else 'NO':<6}  "
            f"{len(r['configurations'])}"
        )
    out.append("")
    for r in found["partial_table"]:
        for file in r["files"]:
            config = (
                file["config"] or f"{file['status']} ({' or '.join(file['candidates']) or '-'})"
            )
            out.append(
                f"{file['run'].removeprefix('partial/'):<32} {file['avg_val_loss']:.4f}  {config}"
            )
    out.append("```")
    out.append("")
    w = found["partial_within_config"]
    ranking = ", ".join(f"{a} {w['means'][a]:.4f}" for a in w["ranking"])
    out += _para(
        f"Within config.py's runs alone (n = 3 each): {ranking}; ANOVA F = {w['anova_f']:.1f}, "
        f"p = {w['anova_p']:.2g}. By val accuracy: "
        + ", ".join(f"{a} {w['accuracy_means'][a]:.2f}" for a in w["accuracy_ranking"])
        + ".",
        width,
    )
    return out


def _rows_section(found: dict, width: int) -> list[str]:
    out = ["## The report's per-trial numbers against the log and the result files", ""]
    out += _para(
        "Rule: a printed row matches a raw trial when every field equals the raw value at the "
        "printed decimals; the log (as printed) and the result files (floats) are checked "
        "separately.",
        width,
    )
    out.append("```text")
    out.append("row                 file seeds  log seeds  detailed-results trial")
    for r in found["printed_rows"]:
        files, logs = (
            ",".join(map(str, r[k])) or "none" for k in ("matches_file_seeds", "matches_log_seeds")
        )
        label = f"{r['activation']} appendix {r['appendix_trial']}"
        out.append(f"{label:<18}  {files:>10}  {logs:>9}  {r['detailed_results_trial']}")
    out.append("```")
    out.append("")
    c = found["claims_on_raw"]
    fmt = lambda d: ", ".join(f"{n} {k}" for k, n in sorted(d.items()))  # noqa: E731
    out += _para(
        f"The report's {sum(c['on_report'].values())} claims recomputed from the raw trials "
        f"instead of its appendix: {fmt(c['on_raw'])} (on the appendix: {fmt(c['on_report'])}). "
        "Changed: "
        + "; ".join(
            f"{x['id']} {x['on_report']} -> {x['on_raw']} ({x['recomputed_on_raw']})"
            for x in c["changed"]
        )
        + ".",
        width,
    )
    for pd in found["pd_sources"]:
        if not pd["agree"]:
            out += _para(
                f"PD of {pd['activation']}: log pairs "
                f"{', '.join(f'{x:.6f}' for x in pd['log_pairs'])} (mean {pd['log_mean']:.6f}); "
                f"{pd['file']} pairs {', '.join(f'{x:.6f}' for x in pd['file_pairs'])} (mean "
                f"{pd['file_mean']:.6f}).",
                width,
            )
    return out


def _curves_section(found: dict, width: int) -> list[str]:
    out = ["## The stopping point", ""]
    out += _para(
        "Rule: a trial's best val loss is the lowest point of its in-loop history (every 500 "
        "steps and step 4999, result files); final is the evaluation after training. Rankings: "
        "one-way ANOVA and Tukey HSD on three seeds (reproduce.stats).",
        width,
    )
    stop = found["stopping_point"]
    out.append("```text")
    out.append("trial        best val loss  at step  final val loss")
    for t in stop["trials"]:
        name = f"{t['activation']}-s{t['seed']}"
        out.append(
            f"{name:<12} {t['best_val_loss']:13.4f}  {t['best_step']:>7}  "
            f"{t['final_val_loss']:14.4f}"
        )
    out.append("```")
    out.append("")
    for name, label in (("by_best", "best"), ("by_final", "final")):
        s = stop[name]
        out += _para(
            f"By {label} val loss: "
            + ", ".join(f"{a} {s['means'][a]:.4f}" for a in s["ranking"])
            + f"; ANOVA F = {s['anova_f']:.2f}, p = {s['anova_p']:.3f}; Tukey p "
            + ", ".join(f"{k} {v:.3f}" for k, v in s["tukey_p"].items())
            + ".",
            width,
        )
    loss, acc = found["loss_error"], found["accuracy_error"]
    out += ["## Sampling error", ""]
    out += _para(
        f"Loss (200 batches per evaluation): the nine trials evaluated twice one step apart "
        f"differ by {', '.join(f'{d:+.4f}' for d in loss['pairs'])}; one evaluation's SD "
        f"sigma = sqrt(mean(d^2)/2) = {loss['sigma']:.4f} nats (an upper bound), a 3-trial "
        f"mean's {loss['mean_of_3_se']:.4f}, 95% bound on a difference of two such means "
        f"{loss['diff_of_means_95']:.4f}.",
        width,
    )
    out += _para(
        f"Accuracy (1,000 windows): binomial SE of one trial "
        f"{acc['single_trial_se']['relu']:.2f} points, of a 3-trial mean "
        f"{acc['mean_se']['relu']:.2f}. "
        + "; ".join(
            f"{d['difference']} {d['value']:.2f} ({'inside' if d['inside'] else 'outside'} "
            f"±{d['bound_95']:.2f})"
            for d in acc["differences"]
        )
        + ".",
        width,
    )
    return out


def summary_line(found: dict) -> dict[str, Any]:
    """Counts of verdicts by kind."""
    counts: dict[str, int] = {}
    for v in found["verdicts"]:
        counts[v["verdict"]] = counts.get(v["verdict"], 0) + 1
    return counts
