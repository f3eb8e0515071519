"""A sweep's output directory: the sweep bound to its corpus, and what its directory holds.

Layout of a sweep's directory (written by ``run``, :mod:`reproduce.runner`)::

    sweep.json                 base settings (a rerun with other base settings is refused)
    trials/<id>/               one trial (see charlm.train): trial.json, weights, log.jsonl
    failed.json                the trials that failed in the last run, with their messages
    results.json  report.*     written once every trial to run has finished
                               (:mod:`reproduce.finish`)
    SHA256SUMS                 over every file present

Every command that reads or writes such a directory (run, merge, publish, verify, bench)
names its files through this module, which knows nothing of training or rendering.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from charlm.data import Corpus, resolve_data_path
from charlm.io import atomic_write_json, dumps_json
from charlm.train import RECORD_FILE, STATE_FILE, WEIGHTS_FILE, is_finished
from reproduce import merged
from reproduce.config import SweepConfig, Trial, load_config
from reproduce.errors import UserError

__all__ = [
    "FAILED_FILE",
    "SWEEP_FILE",
    "TRIALS_DIR",
    "Sweep",
    "differences",
    "load_corpus",
]

SWEEP_FILE = "sweep.json"
TRIALS_DIR = "trials"
FAILED_FILE = "failed.json"


def load_corpus(config: SweepConfig, config_path: str | Path, data: str | None = None) -> Corpus:
    """The sweep's corpus: tiny Shakespeare (``data`` or ``$CHARLM_DATA`` or the cache, checked
    against its digest), or the config's ``[data] path``, relative to the config file, whose
    digest is recorded instead."""
    if config.data_path is None:
        return Corpus.load(resolve_data_path(data))
    return Corpus.load(Path(config_path).parent / config.data_path)


@dataclass
class Sweep:
    """A sweep bound to its corpus and output directory."""

    config: SweepConfig
    corpus: Corpus
    out: Path
    only: frozenset[str] | None = None  # restrict the sweep to these trial ids
    reference: str | None = None  # a published report's reference file, for the verdict

    @classmethod
    def open(
        cls,
        config_path: str | Path,
        out: str | Path,
        data: str | None = None,
        *,
        overrides: tuple[str, ...] = (),
        only: list[str] | None = None,
        reference: str | None = None,
    ) -> Sweep:
        """Load the config and the corpus, and check ``out`` can take this sweep.

        ``data`` locates tiny Shakespeare (like ``$CHARLM_DATA``); a config whose ``[data] path``
        names another corpus uses that file instead. ``overrides`` are ``section.key=value``
        changes to the config (:func:`reproduce.config.apply_overrides`); ``only`` restricts the
        trials to train to some of the sweep's ids (results.json covers every finished one).

        Raises:
            ConfigError, FileNotFoundError, ValueError: bad config or data, a config the
                corpus cannot serve (:meth:`SweepConfig.check_corpus`) or a bad ``reference``.
            UserError: ``out`` is a file, or holds trained trials of other base settings.
        """
        config = load_config(config_path, overrides)
        corpus = load_corpus(config, config_path, data)
        config.check_corpus(corpus.chars, len(corpus.train), len(corpus.val))
        if reference is not None:  # the report step would fail on it after all the training
            from reproduce.compare import load_reference

            load_reference(reference)
        if Path(out).exists() and not Path(out).is_dir():
            raise UserError(f"--out {out} is a file; name a directory (new, or a run's)")
        sweep = cls(config, corpus, Path(out), frozenset(only) if only else None, reference)
        if sweep.only:
            known = [t.id for t in config.trials(corpus.vocab_size)]
            unknown = sorted(sweep.only - set(known))
            if unknown:
                raise UserError(f"unknown trial id(s) {unknown}; this sweep has {known}")
        sweep.check_base()
        return sweep

    @property
    def trials(self) -> list[Trial]:
        """The sweep's trials (those named by ``only``, if set), sorted by id."""
        trials = self.config.trials(self.corpus.vocab_size)
        return [t for t in trials if self.only is None or t.id in self.only]

    def base_settings(self) -> dict:
        return {**self.config.base_settings(), "data_sha256": self.corpus.sha256}

    def trial_dir(self, trial: Trial) -> Path:
        return self.out / TRIALS_DIR / trial.id

    def check_base(self) -> None:
        """Refuse an output directory that holds trained trials of other base settings.

        A directory whose sweep.json names other settings but that holds no trained or
        partly trained trial (every trial failed at once, say) is taken over.
        """
        path = self.out / SWEEP_FILE
        if not path.is_file():
            return
        kept = (STATE_FILE, WEIGHTS_FILE, RECORD_FILE)
        if not any(p.name in kept for p in (self.out / TRIALS_DIR).glob("*/*")):
            return
        recorded = json.loads(path.read_text(encoding="utf-8"))["base_settings"]
        mine = json.loads(dumps_json(self.base_settings()))
        if recorded != mine:
            diffs = differences(recorded, mine)
            shown = diffs[:MAX_DIFFERENCES_SHOWN]
            if len(diffs) > len(shown):
                shown.append(f"and {len(diffs) - len(shown)} more")
            raise UserError(
                f"{self.out} holds a sweep with other base settings ({'; '.join(shown)}); "
                "choose another --out directory or restore the original config"
            )

    def write_sweep_file(self) -> None:
        atomic_write_json(
            self.out / SWEEP_FILE,
            {
                "base_settings": self.base_settings(),
                "config": self.config.to_dict(),
            },
        )

    def status(self, trial: Trial) -> str:
        """``done`` (its weights match its record's digest, or ``merge`` brought its record
        without them: :func:`reproduce.merged.records_only`), ``resume`` (a saved state
        exists) or ``new``."""
        directory = self.trial_dir(trial)
        if is_finished(directory) or merged.records_only(self.out, trial.id):
            return "done"
        return "resume" if (directory / STATE_FILE).is_file() else "new"


MAX_DIFFERENCES_SHOWN = 12  # settings a refusal names before "and N more"


def differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """``"key: old recorded, new now"`` for each key whose values differ, nested dicts key by
    key (``train.lr: ...``), in key order: the base settings a directory refuses."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} recorded, {b!r} now")
    return out
