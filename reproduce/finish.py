"""What ``run`` (and ``merge``) do once the trials to run are trained: the prediction
differences and samples, results.json, the report and SHA256SUMS of the sweep's directory
(:mod:`reproduce.sweep`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from charlm.data import TINY_SHAKESPEARE_SHA256
from charlm.train import RECORD_FILE, WEIGHTS_FILE, is_finished
from reproduce import merged, report, results
from reproduce.errors import UserError
from reproduce.manifest import write_manifest
from reproduce.sweep import FAILED_FILE, TRIALS_DIR, Sweep
from reproduce.verification.paths import UnsafePath

__all__ = ["NO_RENDER_OPTIONS", "finalize", "kept_render_options"]

NO_RENDER_OPTIONS = {"compare": None, "reference": None}  # a fresh run's results.json


def kept_render_options(out: Path) -> dict:
    """The render options (``compare``, ``reference``, ``study``) of the results.json already
    in ``out`` that a plain ``render OUT`` would follow: inside ``out``, through no link, every
    file they imply there (:func:`reproduce.report.option_paths`). Finishing more trials, or a
    resumed run, keeps the sections an earlier ``render`` added (a publication's copies, say);
    options leading elsewhere are dropped, as before, and named again with ``render``. {}
    without a readable results.json."""
    try:
        options = results.load_results(out)["render"]["options"]
    except (OSError, ValueError):
        return {}
    kept = {}
    for key, value in options.items():
        if value is None:
            continue
        try:
            paths = report.option_paths(out, key, value)
        except UnsafePath:
            continue
        if all(p.exists() for p in paths):
            kept[key] = value
    return kept


def finalize(
    sweep: Sweep, log: Callable[[str], None] = print, device: str | torch.device | None = None
) -> dict:
    """Once the trials to run are finished: prediction differences, samples, results.json, the
    report and SHA256SUMS. Returns the results.

    ``device`` is where the prediction differences and samples run (default the CPU): the
    training device, so that they take seconds on a GPU instead of minutes on its host's CPU.

    results.json covers every finished trial of the sweep in the directory, not only those of
    ``--trials``, so running a few trials never drops earlier results from it; unfinished
    trials and directories of other sweeps are named in the log (``verify`` fails on them).
    The render options of an earlier results.json there are kept (:func:`kept_render_options`);
    a ``reference`` given to this run replaces its own.
    Trials that ``merge`` brought without weights count as finished; their groups' prediction
    differences and samples come from merged.json (:func:`reproduce.merged.group_values`).
    """
    every = sweep.config.trials(sweep.corpus.vocab_size)
    on_file = merged.read(sweep.out)
    weighted = {t.id: is_finished(sweep.trial_dir(t)) for t in every}  # digests each file once
    done = {t.id: weighted[t.id] or merged.records_only(sweep.out, t.id, on_file) for t in every}
    trials = [t for t in every if done[t.id]]
    missing = [t.id for t in every if not done[t.id]]
    if missing:
        log(f"results.json covers {len(trials)} finished trial(s); not yet trained: {missing}")
    trials_dir = sweep.out / TRIALS_DIR
    known = {t.id for t in every}
    strays = sorted(p.name for p in trials_dir.iterdir() if p.is_dir() and p.name not in known)
    if strays:
        log(f"warning: {trials_dir} also holds {strays}, trials of another config, left out")
    entries, finished = [], []
    for trial in trials:
        record = json.loads((sweep.trial_dir(trial) / RECORD_FILE).read_text(encoding="utf-8"))
        entries.append(results.trial_entry(trial.id, trial.group, trial.grid, record))
        weights = sweep.trial_dir(trial) / WEIGHTS_FILE if weighted[trial.id] else None
        finished.append((trial, record, weights))
    threads = trials[0].spec.train.threads
    torch.set_num_threads(threads)
    values = merged.group_values(
        sweep.out, finished, sweep.corpus, sweep.config.report, sweep.config.seeds, device, log
    )
    kept = kept_render_options(sweep.out)
    data = {
        "schema_version": results.SCHEMA_VERSION,
        "config": sweep.config.to_dict(),
        "base_settings": sweep.base_settings(),
        "data": {
            "sha256": sweep.corpus.sha256,
            "is_tiny_shakespeare": sweep.corpus.sha256 == TINY_SHAKESPEARE_SHA256,
            "n_chars": len(sweep.corpus.text),
            "n_train": len(sweep.corpus.train),
            "n_val": len(sweep.corpus.val),
            "vocab_size": sweep.corpus.vocab_size,
        },
        "trials": entries,
        "statistics": results.statistics(entries),
        "prediction_difference": values.pd,
        **({"prediction_difference_study": values.study_pd} if values.study_pd is not None else {}),
        "samples": values.samples,
        "render": {
            "stack": results.rendering_stack(),
            "threads": threads,
            "options": {**NO_RENDER_OPTIONS, **kept},
        },
    }
    results.write_results(sweep.out, data)
    values.progress.step("the report, its figures and audit.md")
    try:
        report.render_directory(sweep.out, reference=sweep.reference, log=log)
    except (UserError, ValueError, OSError) as exc:
        if not kept:
            raise
        # an earlier render's option no longer fits: the training is done, so say so and
        # render without it rather than fail here
        log(f"warning: the earlier render options could not be followed ({exc}); rendered")
        log("  without them: render again with --compare, --reference or --study")
        data["render"]["options"] = dict(NO_RENDER_OPTIONS)
        results.write_results(sweep.out, data)
        report.render_directory(sweep.out, reference=sweep.reference, log=log)
    values.progress.close()
    (sweep.out / FAILED_FILE).unlink(missing_ok=True)
    write_manifest(sweep.out)
    return data
