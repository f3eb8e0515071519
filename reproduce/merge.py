"""``python -m reproduce merge DIR [DIR ...] --config C --out OUT``: one sweep from trials
trained in several run directories (on several machines).

Each input is a run directory of the same config (``run --config C --out DIR``, with or without
``--trials`` or a ``--set`` of the sweep's axes): its ``sweep.json`` must name the config's
base settings (the check ``run`` makes, :func:`reproduce.sweep.differences`), and each of its
finished trials (``trials/<id>/trial.json`` and ``log.jsonl``) is taken with its own record,
platform record included. Weights are not needed: a trial's weights come along only where they
are present (and match the digest its record keeps). A trial in two inputs must have the same
record and log in both. Unfinished trials are left out.

OUT (new, or an empty directory) is assembled beside itself and renamed into place, so it is
never seen half-written. It is a run directory: ``sweep.json``, the trials, ``merged.json``
(:mod:`reproduce.merged`: where each trial came from; the per-group values only weights give,
carried from the inputs' results.json) and ``SHA256SUMS``. When every trial of the config is
there, results.json, the report and SHA256SUMS are written as ``run`` writes them; otherwise
``run --config C --out OUT`` trains the missing trials and then writes them.

Those files equal an uninterrupted run's when the same records and weights (or values carried
from the same weights) are merged: the trial records are the trainers', byte for byte. What
legitimately differs from a run trained in one place is only what a rerun changes anyway
(each trial's times and throughput) and, for a trial trained elsewhere, its platform record.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from charlm import platforms
from charlm.io import sha256_file
from charlm.train import LOG_FILE, RECORD_FILE, WEIGHTS_FILE
from reproduce import merged, results, terminal
from reproduce.config import load_config
from reproduce.errors import UserError
from reproduce.finish import finalize
from reproduce.manifest import write_manifest
from reproduce.options import add_data_option
from reproduce.sweep import SWEEP_FILE, TRIALS_DIR, Sweep, differences, load_corpus

__all__ = ["Found", "collect", "merge", "register"]


@dataclass
class Found:
    """One finished trial of an input: its directory, the bytes of its record and log, the
    parsed record, and its weights file when present (its digest checked)."""

    source: Path
    record_bytes: bytes
    log_bytes: bytes
    record: dict
    weights: Path | None


def _first_difference(old: dict, new: dict) -> str:
    found = differences(old, new)
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return (found[0] if found else "no key differs") + more


def _check_base(directory: Path, sweep: Sweep, config_path: str) -> None:
    """Refuse an input that is not a run directory of ``sweep``'s base settings."""
    if not directory.is_dir():
        raise UserError(f"{directory} is not a directory; name run directories to merge")
    path = directory / SWEEP_FILE
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))["base_settings"]
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{directory} is not a run directory (no readable {SWEEP_FILE})") from None
    mine = json.loads(json.dumps(sweep.base_settings()))
    if recorded != mine:
        raise UserError(
            f"{directory} holds a sweep with other base settings than {config_path}: "
            f"{_first_difference(recorded, mine)}"
        )


def _record_mismatch(record: dict, trial, base: dict) -> str | None:
    """Why a record is not that of ``trial`` under ``base`` (the config's base settings), or
    None: its activation, seed, data, each configured model and training setting, grid
    values."""
    if record.get("activation") != trial.activation or record.get("seed") != trial.seed:
        return f"its record is of {record.get('activation')!r}, seed {record.get('seed')!r}"
    if record.get("data", {}).get("sha256") != base["data_sha256"]:
        return "its record names other data"
    wanted = {
        section: {**base[section], **{k: v for k, v in trial.grid.items() if k in record[section]}}
        for section in ("model", "train")
    }
    for section, values in wanted.items():
        for key, value in sorted(values.items()):
            if json.loads(json.dumps(record[section].get(key))) != json.loads(json.dumps(value)):
                return f"its record has {section}.{key} = {record[section].get(key)!r}"
    return None


def _read_trial(directory: Path, trial, base: dict) -> Found | None:
    """The finished trial ``trial`` of input ``directory``, or None if it has none there.

    Raises:
        UserError: a record that is not this trial's, or unreadable; no log; weights that do
            not match the record's digest.
    """
    where = directory / TRIALS_DIR / trial.id
    if not (where / RECORD_FILE).is_file():
        return None
    record_bytes = (where / RECORD_FILE).read_bytes()
    try:
        record = json.loads(record_bytes)
        why = _record_mismatch(record, trial, base)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"{where / RECORD_FILE} is not a trial record ({exc})") from None
    if why:
        raise UserError(f"{where} is not trial {trial.id} of this config: {why}")
    if not (where / LOG_FILE).is_file():
        raise UserError(f"{where} has a record but no {LOG_FILE}; its curve cannot be checked")
    weights = where / WEIGHTS_FILE
    if weights.is_file():
        if sha256_file(weights) != record.get("weights_sha256"):
            raise UserError(
                f"{weights} does not match the digest its record keeps; remove it to merge "
                "the record alone, or train the trial again there"
            )
    else:
        weights = None
    return Found(directory, record_bytes, (where / LOG_FILE).read_bytes(), record, weights)


def collect(
    sweep: Sweep, inputs: list[Path], config_path: str, log: Callable[[str], None] = print
) -> tuple[dict[str, Found], dict[str, list[dict]]]:
    """Every finished trial of ``inputs`` (each checked as the module says) and the values
    their results.json (or merged.json) computed from weights.

    Returns:
        (trial id -> the :class:`Found` kept, the first input's copy, its weights taken from
        another input when the first lacks them; group id -> carried candidates, see
        :func:`reproduce.merged.carried_from_results`, one per distinct set of digests).

    Raises:
        UserError: an input that is not a run directory of these base settings, a directory
            under its trials/ that is not a trial of the config, a record or log that differ
            between two inputs, or a bad trial (:func:`_read_trial`).
    """
    base = json.loads(json.dumps(sweep.base_settings()))
    trials = {t.id: t for t in sweep.trials}
    kept: dict[str, Found] = {}
    carried: dict[str, list[dict]] = {}
    for directory in inputs:
        _check_base(directory, sweep, config_path)
        present = sorted(p.name for p in (directory / TRIALS_DIR).glob("*") if p.is_dir())
        strays = [name for name in present if name not in trials]
        if strays:
            raise UserError(
                f"{directory / TRIALS_DIR} holds {strays[0]}, not a trial of {config_path}"
            )
        here, unfinished = [], []
        for name in present:
            found = _read_trial(directory, trials[name], base)
            if found is None:
                unfinished.append(name)
                continue
            here.append(name)
            _keep(kept, name, found)
        note = f"; unfinished, left out: {', '.join(unfinished)}" if unfinished else ""
        text = f"{directory}: {len(here)} finished trial(s){note}"
        for line in terminal.wrap(text, terminal.width(), indent="    ", first="  "):
            log(line)
        for group, candidate in _carried(directory, base).items():
            known = carried.setdefault(group, [])
            key = (candidate["weights_sha256"], candidate["report"])
            if all((c["weights_sha256"], c["report"]) != key for c in known):
                known.append(candidate)
    return kept, carried


def _keep(kept: dict[str, Found], name: str, found: Found) -> None:
    """Add ``found`` as trial ``name`` unless an identical copy is kept already."""
    if name not in kept:
        kept[name] = found
        return
    first = kept[name]
    if first.record != found.record or first.log_bytes != found.log_bytes:
        what = _first_difference(first.record, found.record) if first.record != found.record else ""
        raise UserError(
            f"trial {name} is in {first.source} and {found.source} with different "
            + (f"records ({what.replace(' now', ' in the second')})" if what else "logs")
            + "; keep one of them"
        )
    if first.weights is None and found.weights is not None:
        first.weights = found.weights


def _carried(directory: Path, base: dict) -> dict[str, dict]:
    """The values an input computed from its weights: its results.json's (when it loads, is
    valid and has these base settings), else its merged.json's."""
    out: dict[str, dict] = {}
    try:
        data = results.load_results(directory)
    except (FileNotFoundError, ValueError):
        data = None
    if data is not None and data["base_settings"] == base:
        out = merged.carried_from_results(data, str(directory))
    for group, candidates in ((merged.read(directory) or {}).get("groups") or {}).items():
        if group not in out and candidates:
            out[group] = candidates[0]
    return out


def merge(
    config_path: str,
    inputs: list[str],
    out: str,
    *,
    data: str | None = None,
    reference: str | None = None,
    log: Callable[[str], None] = print,
) -> int:
    """The ``merge`` command: assemble OUT from the finished trials of ``inputs``; returns 0.

    Writes results.json, the report and SHA256SUMS when OUT holds every trial of the config
    (:func:`reproduce.finish.finalize`), else only the trials, sweep.json, merged.json and
    SHA256SUMS and says which trials ``run`` still has to train.

    Raises:
        UserError: OUT exists and is not an empty directory, or is an input or inside one; an
            input refused by :func:`collect`; no finished trial anywhere.
        ConfigError, FileNotFoundError, ValueError: a bad config, data or ``reference`` (as
            :meth:`reproduce.sweep.Sweep.open`).
    """
    config = load_config(config_path)
    corpus = load_corpus(config, config_path, data)
    config.check_corpus(corpus.chars, len(corpus.train), len(corpus.val))
    if reference is not None:  # the report would fail on it after the merge
        from reproduce.compare import load_reference

        load_reference(reference)
    dest = Path(out)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UserError(f"--out {dest} exists and is not empty; name a new directory")
    paths = [Path(p) for p in inputs]
    for path in paths:
        if dest.resolve() == path.resolve() or dest.resolve().is_relative_to(path.resolve()):
            raise UserError(f"--out {dest} is inside the input {path}; name a new directory")
    sweep = Sweep(config, corpus, dest, reference=reference)
    log(f"merging into {dest} the trials of {config.name!r} ({len(sweep.trials)} in all)")
    kept, carried = collect(sweep, paths, config_path, log)
    if not kept:
        raise UserError("no finished trial in the inputs: nothing to merge")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        staged = Sweep(config, corpus, staging, reference=reference)
        staged.write_sweep_file()
        listed = {}
        for trial_id, found in sorted(kept.items()):
            where = staging / TRIALS_DIR / trial_id
            where.mkdir(parents=True)
            (where / RECORD_FILE).write_bytes(found.record_bytes)
            (where / LOG_FILE).write_bytes(found.log_bytes)
            if found.weights is not None:
                shutil.copyfile(found.weights, where / WEIGHTS_FILE)
            listed[trial_id] = {
                "source": str(found.source),
                "record_sha256": hashlib.sha256(found.record_bytes).hexdigest(),
                "weights": found.weights is not None,
                "platform": platforms.describe(found.record.get("environment", {})),
            }
        merged.write(staging, listed, carried)
        _log_platforms(listed, log)
        missing = [t.id for t in sweep.trials if t.id not in kept]
        if missing:
            write_manifest(staging)
        else:
            finalize(staged, log=lambda line: log(line.replace(str(staging), str(dest))))
        if dest.exists():
            dest.rmdir()  # empty: checked above
        staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    with_weights = sum(entry["weights"] for entry in listed.values())
    text = (
        f"merged {len(kept)} of {len(sweep.trials)} trial(s) into {dest} ({with_weights} "
        "with weights)"
    )
    if missing:
        text += (
            f"; not yet trained: {', '.join(missing)}. `python -m reproduce run --config "
            f"{config_path} --out {dest}` trains them and writes results.json"
        )
    else:
        text += f"; results in {dest / results.RESULTS_FILE}"
    for line in terminal.wrap(text, terminal.width(), indent="  ", first=""):
        log(line)
    return 0


def _log_platforms(listed: dict[str, dict], log: Callable[[str], None]) -> None:
    """One paragraph per platform and input: which trials were trained on it, from where."""
    by_origin: dict[tuple[str, str], list[str]] = {}
    for trial_id, entry in listed.items():
        by_origin.setdefault((entry["platform"], entry["source"]), []).append(trial_id)
    for (platform, source), ids in sorted(by_origin.items()):
        text = f"trained on {platform} ({source}): {', '.join(ids)}"
        for line in terminal.wrap(text, terminal.width(), indent="    ", first="  "):
            log(line)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``merge`` command."""
    p = subparsers.add_parser(
        "merge",
        help="one sweep from trials trained in several run directories",
        description="Merge the finished trials of run directories of one config (trained on "
        "several machines, say) into a new run directory: each trial's record and log, with "
        "its own platform record, and its weights where present. With every trial of the "
        "config, results.json and the report are written; otherwise `run --out OUT` trains "
        "the missing trials. Refused: inputs of other base settings, a trial whose record or "
        "log differ between inputs.",
    )
    p.add_argument("inputs", nargs="+", metavar="DIR", help="run directories to merge")
    p.add_argument("--config", required=True, help="the sweep's config, as given to run")
    p.add_argument("--out", required=True, help="the merged run directory (new or empty)")
    add_data_option(p)
    p.add_argument(
        "--reference",
        default=None,
        metavar="FILE",
        help="a published report's reference file: the report adds the replication verdict",
    )

    def run(a: argparse.Namespace) -> int:
        return merge(a.config, a.inputs, a.out, data=a.data, reference=a.reference)

    p.set_defaults(func=run)
