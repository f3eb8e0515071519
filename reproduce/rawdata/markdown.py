"""audit.md of the study's raw data: the findings of :mod:`reproduce.rawdata.findings` with
their numbers and rules, then the verdicts, wrapped to a width (80 columns in the file)."""

from __future__ import annotations

from reproduce import terminal
from reproduce.rawdata.findings import UNDONE

__all__ = ["markdown"]


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
    out += _self_pd_section(found, width)
    out += ["## Verdicts", ""]
    for v in found["verdicts"]:
        out += _item(
            f"**{v['verdict']}** {v['claim']} ({v['printed']}): {v['evidence']}. Rule: "
            f"{v['rule']}.",
            width,
        )
    if UNDONE:
        out += ["", "## Not done", ""]
        for text in UNDONE:
            out += _item(text, width)
    return "\n".join(out).rstrip("\n") + "\n"


def _self_pd_section(found: dict, width: int) -> list[str]:
    s = found.get("pd_against_itself")
    if s is None:
        return []
    m = s["model"]
    study = "; ".join(f"{k} {v[0]:.3f}-{v[1]:.3f}" for k, v in s["study_pairs"].items())
    out = ["## The study's PD against itself", ""]
    out += _para(
        "Rule: the study's relative PD (mean |p1 - p2| / (mean p1 + mean p2) over the softmax "
        f"at the last position of {s['windows']:,} single validation windows per model, each "
        "model on windows of its own drawn one by one; its train.py) applied to two copies of "
        "one trained model. Beside it, seed pairs of one activation on their own windows (as "
        "the study measured them) and on identical windows. Measured with python -m reproduce "
        "reference self-pd (self-pd.json).",
        width,
    )
    out += _para(
        f"Models: the {s['models']} trials of {s['run']} (nanoGPT recipe; {m['n_layer']} x "
        f"{m['n_embd']}, context {m['block_size']}; final val loss "
        f"{s['val_loss_range'][0]:.3f}-{s['val_loss_range'][1]:.3f}), on {s['platform']}. "
        f"One model against itself: {s['self_pd_mean']:.3f} (three window draws each, "
        f"{s['self_pd_min']:.3f}-{s['self_pd_max']:.3f}). Two seeds, own windows: "
        f"{s['pair_own_windows_mean']:.3f}; the same {s['pairs']} pairs on identical windows: "
        f"{s['pair_same_windows_mean']:.3f}. The study's own seed pairs: {study}.",
        width,
    )
    out.append("```text")
    out.append("activation  self-PD  pairs, own windows  pairs, same windows")
    for act in s["ranking_by_self_pd"]:
        a = s["by_activation"][act]
        own = "" if a["own_windows"] is None else f"{a['own_windows']:18.3f}"
        same = "" if a["same_windows"] is None else f"{a['same_windows']:20.3f}"
        out.append(f"{act:<10}  {a['self_pd']:7.3f}  {own}  {same}".rstrip())
    out += ["```", ""]
    out += _para(
        "What this shows: with each model on its own windows, the measure is dominated by "
        "how the next-character distributions of different contexts differ, which a model "
        "shares with its own copy; it does not see whether two models agree. It grows as "
        "predictions sharpen (nearly uniform predictions give almost 0), so the study's 0.9 "
        "at full scale against 0.7 at partial scale can come from sharper models alone.",
        width,
    )
    return out


def _recomputed_lines(prov: dict, width: int) -> list[str]:
    """Each run whose candidates' step-0 losses were recomputed: per candidate, agrees or
    not, with the largest difference from the file's losses over its trials."""
    out = []
    for file in prov["files"]:
        for run in file["runs"]:
            got = run["evidence"]["step0_recomputed"]
            if not got:
                continue
            published = {t["seed"]: t for t in run["evidence"]["step0"]["trials"]}
            parts = []
            for name, rows in sorted(got.items()):
                diff = max(
                    abs(r[k] - published[r["seed"]][k])
                    for r in rows
                    for k in ("train_loss", "val_loss")
                )
                verdict = "agrees" if all(r["agrees"] for r in rows) else "differs"
                parts.append(f"{name} {verdict} (largest |difference| {diff:.1e})")
            out += _para(f"{run['run']}: recomputed step-0 losses: {'; '.join(parts)}.", width)
    if out:
        out = (
            _para(
                "Rule: a candidate's step-0 train and val losses, recomputed under the study "
                "protocol for each of the run's seeds (step0-recomputed.json), agree with the "
                "file's within 1e-4 nats, or the candidate did not produce the file.",
                width,
            )
            + out
        )
    return out


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
    out += _recomputed_lines(prov, width)
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
