"""``merged.json``: what a run directory assembled by ``merge`` holds without weights, and the
per-group values (prediction differences, the study's PD, samples) that need weights.

A sweep trained on several machines is assembled by ``python -m reproduce merge``
(:mod:`reproduce.merge`) from each machine's finished trials: their records (``trial.json``,
``log.jsonl``) always, their weights only where they came along. ``merged.json`` lists every
trial merged, where it came from, the SHA-256 of its record and whether its weights came too,
so that ``run`` counts a trial merged without weights as finished (:func:`records_only`) instead
of training it again. It also carries, per group (activation and grid cell), the values that
only weights give, as computed where the weights were (an input's results.json or merged.json),
each with the weights digests of the seeds it was computed from: :func:`group_values` takes them
for a group only when its trials' digests here are exactly those.

This module sits below :mod:`reproduce.runner` (which calls :func:`records_only` and
:func:`group_values`) and above :mod:`reproduce.analysis` and :mod:`reproduce.protocols`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch

from charlm.data import Corpus
from charlm.io import atomic_write_json
from reproduce import analysis, protocols, terminal
from reproduce.config import ReportOptions

__all__ = [
    "MERGED_FILE",
    "FORMAT",
    "GroupValues",
    "carried_from_results",
    "group_values",
    "read",
    "records_only",
    "write",
]

MERGED_FILE = "merged.json"
FORMAT = "charlm-repro merged sweep"
RECORD_FILE = "trial.json"  # charlm.train.RECORD_FILE, named here to keep imports light


def read(out: str | Path) -> dict | None:
    """``out/merged.json`` parsed, or None when ``out`` was not assembled by ``merge`` (or the
    file is unreadable: then nothing in ``out`` counts as merged, and ``run`` trains what lacks
    weights)."""
    path = Path(out) / MERGED_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def write(out: str | Path, trials: dict[str, dict], groups: dict[str, list[dict]]) -> Path:
    """Write ``out/merged.json`` atomically.

    Args:
        trials: trial id -> ``{"source": input directory as given, "record_sha256": SHA-256 of
            its trial.json bytes, "weights": whether its weights were merged, "platform":
            :func:`charlm.platforms.describe` of its record}``.
        groups: group id -> carried candidates (:func:`carried_from_results`'s entries).
    """
    return atomic_write_json(
        Path(out) / MERGED_FILE,
        {"format": FORMAT, "format_version": 1, "trials": trials, "groups": groups},
    )


def records_only(out: str | Path, trial_id: str, merged: dict | None = None) -> bool:
    """Whether ``out/trials/<trial_id>`` is a finished trial merged without its weights: listed
    in merged.json without weights, its trial.json the very bytes merged (SHA-256). ``merged``
    is :func:`read`'s result when the caller has it."""
    merged = read(out) if merged is None else merged
    entry = (merged or {}).get("trials", {}).get(trial_id)
    if not entry or entry.get("weights"):
        return False
    path = Path(out) / "trials" / trial_id / RECORD_FILE
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return False
    return digest == entry.get("record_sha256")


def carried_from_results(data: dict, source: str) -> dict[str, dict]:
    """Group id -> the values a results.json ``data`` computed from its weights: ``{"source",
    "weights_sha256": {seed (str): digest}, "report": the report options its samples were drawn
    with, "prediction_difference", "prediction_difference_study", "sample"}`` (None where it has
    none), for each group with a sample."""
    out = {}
    study = data.get("prediction_difference_study") or {}
    for group in sorted({t["group"] for t in data["trials"]}):
        if group not in data["samples"]:
            continue
        out[group] = {
            "source": source,
            "weights_sha256": {
                str(t["seed"]): t["weights_sha256"] for t in data["trials"] if t["group"] == group
            },
            "report": data["config"]["report"],
            "prediction_difference": data["prediction_difference"].get(group),
            "prediction_difference_study": study.get(group),
            "sample": data["samples"][group],
        }
    return out


@dataclass
class GroupValues:
    """What :func:`group_values` found: results.json's ``prediction_difference``,
    ``prediction_difference_study`` (None unless a study-protocol sweep) and ``samples``, and
    the groups left out of them (``missing``: group -> the trials whose weights are not here),
    and the finishing ``progress``, whose last piece (the report) the caller announces."""

    pd: dict = field(default_factory=dict)
    study_pd: dict | None = None
    samples: dict = field(default_factory=dict)
    missing: dict[str, list[str]] = field(default_factory=dict)
    progress: terminal.Progress | None = None


def _usable(candidate: dict, digests: dict[str, str], study: bool, options: dict) -> bool:
    """Whether a carried candidate holds what this group needs: computed from weights of
    exactly ``digests``, with these report ``options``, the PDs a group of several seeds has."""
    same = candidate.get("weights_sha256") == digests and candidate.get("report") == options
    if not same or candidate.get("sample") is None:
        return False
    if len(digests) < 2:
        return True
    return candidate.get("prediction_difference") is not None and (
        not study or candidate.get("prediction_difference_study") is not None
    )


def group_values(
    out: Path,
    trials: list[tuple],
    corpus: Corpus,
    options: ReportOptions,
    seeds: list[int],
    device: str | torch.device | None,
    log: Callable[[str], None],
) -> GroupValues:
    """Per group: the prediction differences, the study's PD (study protocol) and the sample,
    computed from the weights where every trial of the group has them here, else carried from
    ``out/merged.json`` where a candidate was computed from weights of exactly these digests;
    otherwise left out (named in ``missing`` and in a warning through ``log``).

    Args:
        trials: the finished trials as (:class:`reproduce.config.Trial`, record, weights file
            or None when only the record is here), in any order.
        seeds: the config's seeds, in the order the study trained them (its PD's order).
        device: where the models run (default the CPU).

    Returns:
        the :class:`GroupValues`; computed values equal ``run``'s for the same weights.
    """
    study = bool(trials) and trials[0][0].spec.train.protocol == "study"
    members: dict[str, list[tuple]] = {}
    for entry in trials:
        members.setdefault(entry[0].group, []).append(entry)
    carried = (read(out) or {}).get("groups", {})
    wanted = json.loads(json.dumps({f.name: getattr(options, f.name) for f in fields(options)}))
    found = GroupValues(study_pd={} if study else None)
    computed = {}
    for group, entries in sorted(members.items()):
        if all(weights is not None for _, _, weights in entries):
            computed[group] = entries
            continue
        digests = {str(t.seed): record["weights_sha256"] for t, record, _ in entries}
        use = next((c for c in carried.get(group, []) if _usable(c, digests, study, wanted)), None)
        if use is None:
            found.missing[group] = sorted(t.id for t, _, weights in entries if weights is None)
            continue
        if use["prediction_difference"] is not None:
            found.pd[group] = use["prediction_difference"]
        if study and use["prediction_difference_study"] is not None:
            found.study_pd[group] = use["prediction_difference_study"]
        found.samples[group] = use["sample"]
    paths = {g: {t.seed: w for t, _, w in entries} for g, entries in computed.items()}
    compared = [g for g in sorted(paths) if len(paths[g]) > 1]
    pieces = len(compared) + len(paths) + 1
    progress = terminal.Progress(pieces, "finishing", log)
    steps = f"{pieces} step" + ("s" if pieces != 1 else "")
    log(f"finishing: prediction differences, samples and the report ({steps})")
    for group in compared:  # one at a time (the same results as all at once), with progress
        progress.step(f"prediction differences of {group} ({len(paths[group])} seeds)")
        found.pd.update(
            analysis.prediction_differences(
                {group: paths[group]}, corpus, options.pd_batch_size, device
            )
        )
    for group in sorted(paths):
        progress.step(f"sample of {group}")
        found.samples.update(analysis.samples({group: paths[group]}, options, device))
    if study and computed:
        log("the study's own PD: each model on its own windows, after each group's last trial")
        ordered = protocols.seed_ordered_groups(
            [(t.group, t.seed, t.spec, w) for es in computed.values() for t, _, w in es], seeds
        )
        found.study_pd.update(protocols.study_prediction_differences(ordered, corpus))
    for group, ids in sorted(found.missing.items()):
        text = (
            f"warning: {group}'s prediction differences and sample are left out of "
            f"results.json: the weights of {', '.join(ids)} are not here (merged without "
            "them) and no input computed them from these trials' weights"
        )
        for line in terminal.wrap(text, terminal.width(), indent="  ", first=""):
            log(line)
    found.progress = progress
    return found
