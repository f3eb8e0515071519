"""A study-protocol sweep beside the study's own trials of the same configuration: the report's
section "Beside the study's own trials".

Under the study protocol (:mod:`charlm.study`) each of our trials has one published counterpart
(:mod:`reproduce.studytrials`), so the section sets out, from the study's raw data
(``study-raw.json`` and ``provenance.json`` beside it, :mod:`reproduce.rawdata`):

- each trial beside the study's (:func:`reproduce.studytrials.blocks`);
- the three columns: the study's trials, ours under its procedure, ours under nanoGPT's recipe
  (:func:`reproduce.studytrials.three_columns_blocks`);
- the verdicts on the report's partial-scale claims that trained trials decide
  (:data:`reproduce.claims.PARTIAL_TRIAL_CLAIMS`), each by the same rule
  (:mod:`reproduce.verdicts`) on our trials and on the study's own, the PD claims with both PD
  measures: the study's (its ``calculate_prediction_difference``, two models on separate random
  windows; ours recomputed from our weights, results.json ``prediction_difference_study``;
  the study's from its result files' ``pd_pairs``) and on identical inputs (results.json
  ``prediction_difference``; the study computed none).

The study's PD pairs name its trials ``a`` and ``b`` (1-based); trial ``i`` ran seed
``42 + i - 1`` (train.py, ``seed_base + trial``), so pair (1, 2) is our ``s42-s43``.
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
from pathlib import Path

from reproduce import claims, compare, mdblocks, results, studytrials
from reproduce.errors import UserError
from reproduce.rawdata import importer, provenance

__all__ = [
    "IDENTICAL",
    "STUDY_MEASURE",
    "load_study",
    "our_study_pd",
    "section",
    "study_trials",
    "verdicts",
]

IDENTICAL = "identical inputs"  # results.json prediction_difference
STUDY_MEASURE = "the study's"  # its formula on separate windows


def load_study(path: str | Path) -> tuple[dict, dict]:
    """The study's raw data (``study-raw.json``, validated) and the ``provenance.json`` beside
    it, as ``python -m reproduce reference import`` writes them.

    Raises:
        UserError: either file is missing, unreadable or not of its format, or the provenance
            was written for other raw data (its ``raw_data.sha256`` is not the file's SHA-256).
    """
    path = Path(path)
    beside = path.with_name(provenance.FILE)
    fix = "write both with `python -m reproduce reference import`"
    try:
        raw = importer.load(path)
        prov = json.loads(beside.read_text(encoding="utf-8"))
        results.validate(prov, provenance.SCHEMA)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except (OSError, ValueError) as exc:
        raise UserError(
            f"the study's raw data {path} and {beside.name} beside it: {exc}; {fix}"
        ) from None
    if prov["raw_data"]["sha256"] != digest:
        raise UserError(
            f"{beside} was written for other raw data (SHA-256 "
            f"{prov['raw_data']['sha256'][:12]}..., {path.name} has {digest[:12]}...); {fix}"
        )
    return raw, prov


def our_study_pd(results: dict) -> dict:
    """Our results.json's ``prediction_difference_study`` (group -> ``{"mean_relative_pd",
    "pairs": {pair: {"relative_pd", ...}}}``) in the form the PD rules read (group ->
    ``{"mean": {"relative_pd"}, "pairs": {pair: {"relative_pd"}}}``); {} where none."""
    return {
        group: {
            "mean": {"relative_pd": entry["mean_relative_pd"]},
            "pairs": {k: {"relative_pd": p["relative_pd"]} for k, p in entry["pairs"].items()},
        }
        for group, entry in (results.get("prediction_difference_study") or {}).items()
    }


def study_trials(
    raw: dict, prov: dict, config_name: str, only: set[tuple[str, int]] | None = None
) -> tuple[list[dict], dict]:
    """The study's own trials of ``config_name`` and their PD (its measure), as the rules of
    :func:`reproduce.claims.partial_trial_claims` read them.

    Returns:
        ``(trials, pd)``: ``trials`` ``{"id", "activation" (ours, e.g. ``smelu-1.0``), "seed",
        "final": {"train_loss", "val_loss", "train_accuracy", "val_accuracy"}}`` each; ``pd``
        activation -> ``{"mean": {"relative_pd"}, "pairs": {"s42-s43": {"relative_pd"}}}`` from
        the result files' ``pd_pairs`` (the mean over pairs; the files' own
        ``avg_relative_pd`` is that mean). With ``only`` (our activation, seed pairs), just
        those trials and the PD pairs of two of them.

    Raises:
        ValueError: as :func:`reproduce.studytrials.published_runs`.
    """
    reverse = {v: k for k, v in studytrials.STUDY_NAMES.items()}
    trials, pd = [], {}
    for name, run in studytrials.published_runs(raw, prov, config_name).items():
        activation = reverse.get(name, name)
        kept = [t for t in run["trials"] if only is None or (activation, t["seed"]) in only]
        for t in kept:
            final = {k: t[k] for k in ("train_loss", "val_loss", "train_accuracy", "val_accuracy")}
            trials.append(
                {
                    "id": f"{activation}-s{t['seed']}",
                    "activation": activation,
                    "seed": t["seed"],
                    "final": final,
                }
            )
        first, seeds = studytrials.FIRST_SEED - 1, {t["seed"] for t in kept}
        pairs = {
            f"s{first + p['a']}-s{first + p['b']}": {"relative_pd": p["relative_pd"]}
            for p in run.get("pd_pairs", [])
            if {first + p["a"], first + p["b"]} <= seeds
        }
        if pairs:
            mean = statistics.fmean(p["relative_pd"] for p in pairs.values())
            pd[activation] = {"mean": {"relative_pd": mean}, "pairs": pairs}
    return trials, pd


def _as_study(detail: str) -> str:
    """A rule's detail about "our"/"ours" numbers, said of the study's trials."""
    return re.sub(r"\bours?\b", "the study's", detail)


def verdicts(ours: dict, reference: dict, raw: dict, prov: dict) -> list[dict]:
    """Each partial-scale claim that trained trials decide, judged by the same rule on our
    trials and on the study's own trials of our configuration; each PD claim once per PD
    measure.

    Returns:
        ``{"id", "claim", "claimed", "measure" (None, :data:`STUDY_MEASURE` or
        :data:`IDENTICAL`), "rules", "ours", "ours_detail", "study", "study_detail" (None where
        the study's trials have no such measure), "same" (the two verdicts equal; None
        without the study's)}`` per row, claims in :data:`reproduce.claims.PARTIAL_TRIAL_CLAIMS`
        order.

    Raises:
        ValueError: as :func:`reproduce.studytrials.study_config`.
    """
    config = studytrials.study_config(ours, prov)["name"]
    trials = ours["trials"]
    groups = sorted({t["group"] for t in trials})
    # the study's side holds only the (activation, seed) pairs ours has, so that "same" compares
    # verdicts on the same trials
    have = {(t["activation"], t["seed"]) for t in trials}
    theirs, their_pd = study_trials(raw, prov, config, only=have)
    their_groups = sorted({t["activation"] for t in theirs})
    mine = {  # the rows of non-PD claims are the same in both
        measure: claims.partial_trial_claims(trials, pd, groups, reference)
        for measure, pd in (
            (IDENTICAL, ours["prediction_difference"]),
            (STUDY_MEASURE, our_study_pd(ours)),
        )
    }
    study = claims.partial_trial_claims(theirs, their_pd, their_groups, reference)
    rows = []
    for i, claim_id in enumerate(claims.PARTIAL_TRIAL_CLAIMS):
        pd_claim = claim_id in claims.PD_CLAIMS
        for measure in (STUDY_MEASURE, IDENTICAL) if pd_claim else (None,):
            row = mine[measure or IDENTICAL][i]
            other = None if measure == IDENTICAL else study[i]
            rows.append(
                {
                    "id": claim_id,
                    "claim": row["claim"],
                    "claimed": row["claimed"],
                    "measure": measure,
                    "rules": row["rules"],
                    "ours": row["verdict"],
                    "ours_detail": row["detail"],
                    "study": None if other is None else other["verdict"],
                    "study_detail": None if other is None else _as_study(other["detail"]),
                    "same": None if other is None else other["verdict"] == row["verdict"],
                }
            )
    return rows


# a PD measure as the verdict table's column names it, and as a verdict's sentence does
_MEASURE_WORDS = {
    None: ("—", ""),
    STUDY_MEASURE: ("study's", ", the study's PD"),
    IDENTICAL: ("identical inputs", ", PD on identical inputs"),
}


def _verdict_blocks(rows: list[dict], config: dict) -> list[dict]:
    table = mdblocks.table(
        ["Claim of the report", "PD measure", "Ours", "Study's trials", "Same"],
        [False, False, False, False, False],
        [
            [
                r["claim"],
                _MEASURE_WORDS[r["measure"]][0],
                r["ours"],
                r["study"] or "— (not computed)",
                "—" if r["same"] is None else ("yes" if r["same"] else "no"),
            ]
            for r in rows
        ],
    )
    out = [
        mdblocks.para(
            "The report's partial-scale claims that trained trials decide, each judged by the "
            "same rule on our trials and on the study's own trials of "
            f"{config['file']} (`{config['name']}`), against the figure the report printed. "
            "PD claims twice: with the study's PD (its formula, two models on separate random "
            "windows; the study's trials' from its result files) and with PD on identical "
            "inputs (ours only: the study computed none)."
        ),
        table,
    ]
    for r in rows:
        measure = _MEASURE_WORDS[r["measure"]][1]
        text = f"{r['claim']}{measure} (printed: {r['claimed']}): {r['ours_detail']}"
        if r["study_detail"]:
            text += f"; {r['study_detail']}"
        out.append(mdblocks.para(text + "."))
    return out


def section(
    ours: dict,
    raw: dict,
    prov: dict,
    reference: dict | None = None,
    nanogpt: dict | None = None,
) -> dict:
    """The report's section on a study-protocol sweep beside the study's own trials.

    Args:
        ours: our results.json (study protocol, one of the study's configurations).
        raw, prov: :func:`load_study`.
        reference: the reference file (claims); None, or a sweep not at the report's partial
            scale, leaves out the verdicts (they are the partial scale's claims).
        nanogpt: a results.json of the same configuration under nanoGPT's recipe, the third
            column; None leaves that column empty.

    Returns:
        ``{"config": the study's configuration, "trials", "three_columns", "verdicts"
        (:mod:`reproduce.mdblocks` lists; ``verdicts`` empty without ``reference``), "rows"
        (:func:`verdicts`' rows or [])}``.

    Raises:
        UserError: ``ours`` or ``nanogpt`` cannot be set beside the study's trials (another
            protocol, or settings none of the study's configurations had).
    """
    try:
        comparison = studytrials.compare_trials(ours, raw, prov)
        config = comparison["config"]
        three = studytrials.three_columns(raw, prov, config["name"], ours, nanogpt)
        partial = reference is not None and compare.scale_of(ours["config"], reference) == "partial"
        rows = verdicts(ours, reference, raw, prov) if partial else []
    except ValueError as exc:
        raise UserError(f"cannot set this sweep beside the study's trials: {exc}") from None
    return {
        "config": config,
        "trials": studytrials.blocks(comparison),
        "three_columns": studytrials.three_columns_blocks(three, config),
        "verdicts": _verdict_blocks(rows, config) if rows else [],
        "rows": rows,
    }
