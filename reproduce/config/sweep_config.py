"""A validated sweep: :class:`SweepConfig` (base settings, activations, seeds, grid, report
options) and the trials it defines (:class:`Trial`, named by :func:`trial_id`)."""

from __future__ import annotations

import itertools
import math
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from charlm.activations import canonical_name
from charlm.model import ModelConfig
from charlm.sample import DEFAULT_TEMPERATURE, DEFAULT_TOKENS
from charlm.train import TrainConfig, TrialSpec
from reproduce.config.values import (
    ConfigError,
    check_types,
    format_value,
    seed_problem,
    toml_text,
    type_matches,
    type_name,
)

__all__ = [
    "MODEL_KEYS",
    "TRAIN_KEYS",
    "ReportOptions",
    "SweepConfig",
    "Trial",
    "group_id",
    "trial_id",
]

MODEL_KEYS = tuple(f.name for f in fields(ModelConfig) if f.name not in ("activation",))
TRAIN_KEYS = tuple(f.name for f in fields(TrainConfig))
MODEL_TYPES = {k: v for k, v in typing.get_type_hints(ModelConfig).items() if k in MODEL_KEYS}
TRAIN_TYPES = typing.get_type_hints(TrainConfig)
TOP_KEYS = ("name", "description", "data", "model", "train", "sweep", "report")


def _grid_parts(grid: dict[str, Any]) -> list[str]:
    return [f"{key}={format_value(grid[key])}" for key in sorted(grid)]


def trial_id(activation: str, seed: int, grid: dict[str, Any]) -> str:
    """``<activation>-s<seed>`` then ``-key=value`` for each grid axis in sorted key order,
    e.g. ``swish-s42`` or ``gelu-s43-lr=0.001``."""
    return "-".join([canonical_name(activation), f"s{seed}", *_grid_parts(grid)])


def group_id(activation: str, grid: dict[str, Any]) -> str:
    """The id of the trials that differ only in seed: ``gelu`` or ``gelu-lr=0.001``."""
    return "-".join([canonical_name(activation), *_grid_parts(grid)])


@dataclass(frozen=True)
class ReportOptions:
    """Options for the generated samples and the report (recorded in results.json).

    Attributes:
        sample_prompt: text each activation's sample continues.
        sample_tokens: characters generated per sample.
        sample_temperature: softmax temperature of sampling.
        sample_top_k: keep only the k most likely characters (None: all).
        sample_seed: seed of the sampling generator.
        pd_batch_size: windows per forward pass when computing prediction differences.
    """

    sample_prompt: str = "ROMEO:"
    sample_tokens: int = DEFAULT_TOKENS
    sample_temperature: float = DEFAULT_TEMPERATURE
    sample_top_k: int | None = None
    sample_seed: int = 0
    pd_batch_size: int = 64

    def __post_init__(self) -> None:
        """Raises ValueError (``report.<key> ...``) for a value the end of a run would fail on:
        an empty prompt, negative ``sample_tokens``, a temperature that is not a positive
        number, ``sample_top_k`` below 1, a seed a torch generator does not take, or
        ``pd_batch_size`` below 1. Types are checked by :meth:`SweepConfig.from_dict`."""
        if not self.sample_prompt:
            raise ValueError("report.sample_prompt must contain at least one character")
        if self.sample_tokens < 0:
            raise ValueError(f"report.sample_tokens must be 0 or more, got {self.sample_tokens}")
        if not (math.isfinite(self.sample_temperature) and self.sample_temperature > 0):
            raise ValueError(
                "report.sample_temperature must be a positive number, "
                f"got {self.sample_temperature!r}"
            )
        if self.sample_top_k is not None and self.sample_top_k < 1:
            raise ValueError(f"report.sample_top_k must be at least 1, got {self.sample_top_k}")
        problem = seed_problem(self.sample_seed)
        if problem:
            raise ValueError(f"report.sample_seed {problem}, got {self.sample_seed!r}")
        if self.pd_batch_size < 1:
            raise ValueError(f"report.pd_batch_size must be at least 1, got {self.pd_batch_size}")


REPORT_TYPES = typing.get_type_hints(ReportOptions)


@dataclass(frozen=True)
class Trial:
    """One trial of a sweep: its id, its axes' values and the charlm spec to train."""

    id: str
    activation: str
    seed: int
    grid: dict[str, Any]
    spec: TrialSpec

    @property
    def group(self) -> str:
        """Trials that differ only in seed share a group: the id without its seed part."""
        return group_id(self.activation, self.grid)


Fail = typing.Callable[[str], ConfigError]


def _check_keys(table: Any, allowed: tuple[str, ...], where: str, fail: Fail) -> dict:
    if not isinstance(table, dict):
        raise fail(f"[{where}] must be a table")
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise fail(f"unknown key(s) {unknown} in [{where}]; valid are {sorted(allowed)}")
    return table


def _tables(raw: dict[str, Any], fail: Fail) -> dict[str, dict]:
    """The config's tables by name (``data``, ``model``, ``train``, ``sweep``, ``sweep.grid``,
    ``report``; ``model`` and ``train`` copied), each with known keys only and values of its
    setting's type; ``name``, ``description`` and ``[data] path`` checked too."""
    _check_keys(raw, TOP_KEYS, "top level", fail)
    tables = {
        "data": _check_keys(raw.get("data", {}), ("path",), "data", fail),
        "model": dict(_check_keys(raw.get("model", {}), MODEL_KEYS, "model", fail)),
        "train": dict(_check_keys(raw.get("train", {}), TRAIN_KEYS, "train", fail)),
        "sweep": _check_keys(
            raw.get("sweep", {}), ("activations", "seeds", "data_seeds", "grid"), "sweep", fail
        ),
    }
    tables["sweep.grid"] = _check_keys(
        tables["sweep"].get("grid", {}), MODEL_KEYS + TRAIN_KEYS, "sweep.grid", fail
    )
    tables["report"] = _check_keys(
        raw.get("report", {}), tuple(f.name for f in fields(ReportOptions)), "report", fail
    )
    for key in ("name", "description"):
        if key in raw and not isinstance(raw[key], str):
            raise fail(f"{key} = {toml_text(raw[key])} must be a string")
    path = tables["data"].get("path")
    if path is not None and not (isinstance(path, str) and path):
        raise fail(f"[data] path = {toml_text(path)} must be a file name (a string)")
    for where, types_ in (("model", MODEL_TYPES), ("train", TRAIN_TYPES), ("report", REPORT_TYPES)):
        problem = check_types(tables[where], types_, where)
        if problem:
            raise fail(problem)
    return tables


def _activations(sweep: dict, fail: Fail) -> tuple[str, ...]:
    """``[sweep] activations``: a non-empty list of known names, canonical."""
    activations = sweep.get("activations")
    if (
        not isinstance(activations, list)
        or not activations
        or not all(isinstance(a, str) for a in activations)
    ):
        raise fail(
            f"[sweep] activations = {toml_text(activations)} must be a non-empty list of "
            "names (strings)"
        )
    try:
        return tuple(canonical_name(a) for a in activations)
    except ValueError as exc:
        raise fail(f"[sweep] activations: {exc}") from None


def _seeds(sweep: dict, fail: Fail) -> tuple[list[int], list[int] | None]:
    """``[sweep] seeds`` and ``data_seeds`` (one per seed, optional), each a seed a torch
    generator takes."""
    seeds = sweep.get("seeds")
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
    ):
        raise fail("[sweep] seeds must be a non-empty list of non-negative integers")
    data_seeds = sweep.get("data_seeds")
    if data_seeds is not None and (
        not isinstance(data_seeds, list) or len(data_seeds) != len(seeds)
    ):
        raise fail("[sweep] data_seeds must be a list with one entry per seed")
    for what, values in (("seeds", seeds), ("data_seeds", data_seeds or [])):
        for value in values:
            problem = seed_problem(value)
            if problem:
                raise fail(f"[sweep] {what}: {toml_text(value)} {problem}")
    return seeds, data_seeds


def _grid(grid_raw: dict, model: dict, train: dict, fail: Fail) -> dict[str, tuple[Any, ...]]:
    """``[sweep.grid]``: setting -> its values (a non-empty list of the setting's type), for
    settings the base does not fix."""
    grid: dict[str, tuple[Any, ...]] = {}
    for key, values in grid_raw.items():
        if not isinstance(values, list) or not values:
            raise fail(f"[sweep.grid] {key} must be a non-empty list of values")
        if key in model or key in train:
            raise fail(f"{key} is both a fixed setting and a [sweep.grid] axis; keep one")
        expected = {**MODEL_TYPES, **TRAIN_TYPES}[key]
        wrong = [v for v in values if not type_matches(v, expected)]
        if wrong:
            raise fail(
                f"[sweep.grid] {key} = {toml_text(values)}: {toml_text(wrong[0])} must be "
                f"{type_name(expected)}"
            )
        grid[key] = tuple(values)
    return grid


@dataclass(frozen=True)
class SweepConfig:
    """A validated sweep. Build it with :func:`load_config` or :meth:`from_dict`."""

    name: str
    description: str
    data_path: str | None
    model: dict[str, Any]
    train: dict[str, Any]
    activations: tuple[str, ...]
    seeds: tuple[int, ...]
    data_seeds: tuple[int, ...] | None
    grid: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    report: ReportOptions = field(default_factory=ReportOptions)
    source: str = field(default="config", compare=False)  # the file, named in errors

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> SweepConfig:
        """Validate a parsed TOML document. Raises ConfigError naming ``source`` and the key."""

        def fail(message: str) -> ConfigError:
            return ConfigError(f"{source}: {message}")

        tables = _tables(raw, fail)
        model, train, sweep = tables["model"], tables["train"], tables["sweep"]
        activations = _activations(sweep, fail)
        seeds, data_seeds = _seeds(sweep, fail)
        for what, values in (("activations", activations), ("seeds", seeds)):
            if len(set(values)) != len(values):
                raise fail(f"[sweep] {what} has duplicates: {list(values)}")
        grid = _grid(tables["sweep.grid"], model, train, fail)
        try:
            report = ReportOptions(**tables["report"])
        except (TypeError, ValueError) as exc:
            raise fail(str(exc) if isinstance(exc, ValueError) else f"[report] {exc}") from None
        config = cls(
            source=source,
            name=str(raw.get("name", Path(source).stem)),
            description=str(raw.get("description", "")),
            data_path=tables["data"].get("path"),
            model=model,
            train=train,
            activations=activations,
            seeds=tuple(seeds),
            data_seeds=tuple(data_seeds) if data_seeds is not None else None,
            grid=grid,
            report=report,
        )
        try:  # build every trial once so a bad value fails now, naming the setting
            config.trials(vocab_size=65)
        except (TypeError, ValueError) as exc:
            raise fail(str(exc)) from None
        return config

    def check_corpus(self, chars: str, n_train: int, n_val: int) -> None:
        """Refuse settings this corpus cannot serve, before anything is trained: a
        ``[report] sample_prompt`` with characters outside its vocabulary (sampling at the
        end of the run would fail) and a ``block_size`` that does not fit its shorter split
        (every trial would fail).

        Args:
            chars: the corpus's vocabulary (:attr:`charlm.data.Corpus.chars`).
            n_train, n_val: the lengths of its train and val splits, in characters.

        Raises:
            ConfigError: naming the file, the key and the offending characters or size.
        """
        unknown = sorted(set(self.report.sample_prompt) - set(chars))
        if unknown:
            raise ConfigError(
                f"{self.source}: [report] sample_prompt = {toml_text(self.report.sample_prompt)}"
                f" has characters that are not in the corpus: {''.join(unknown)!r} (its "
                f"vocabulary is {len(chars)} characters); sampling at the end of the run would "
                "fail"
            )
        shortest = min(n_train, n_val)
        sizes = {t.spec.model.block_size for t in self.trials(len(chars))}
        if max(sizes) >= shortest:
            raise ConfigError(
                f"{self.source}: model.block_size {max(sizes)} does not fit the data (the "
                f"shorter split has {shortest} characters); use a smaller block_size"
            )

    def grid_cells(self) -> list[dict[str, Any]]:
        """Every combination of grid values (``[{}]`` without a grid), keys sorted."""
        keys = sorted(self.grid)
        return [
            dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*(self.grid[k] for k in keys))
        ]

    def trials(self, vocab_size: int) -> list[Trial]:
        """All trials, sorted by id.

        Args:
            vocab_size: the corpus's vocabulary size (65 for tiny Shakespeare).

        Raises:
            ValueError: a setting out of range (from ModelConfig / TrainConfig).
        """
        out = []
        data_seeds = self.data_seeds or (None,) * len(self.seeds)
        for activation, (seed, data_seed), cell in itertools.product(
            self.activations, zip(self.seeds, data_seeds, strict=True), self.grid_cells()
        ):
            model = {**self.model, "vocab_size": vocab_size, "activation": activation}
            train = dict(self.train)
            for key, value in cell.items():
                (model if key in MODEL_KEYS else train)[key] = value
            if "dropout_sites" in model:
                model["dropout_sites"] = tuple(model["dropout_sites"])
            spec = TrialSpec(ModelConfig(**model), TrainConfig(**train), seed, data_seed)
            out.append(Trial(trial_id(activation, seed, cell), activation, seed, cell, spec))
        return sorted(out, key=lambda t: t.id)

    def base_settings(self) -> dict[str, Any]:
        """What every trial shares: the settings that make results of two runs comparable.

        Activations, seeds and grid values are the sweep's axes, so a run directory can be
        extended along them; everything else must match for a rerun into the same directory.
        """
        return {
            "model": {k: v for k, v in sorted(self.model.items())},
            "train": {k: v for k, v in sorted(self.train.items())},
            "grid_keys": sorted(self.grid),
            "data_seeds_set": self.data_seeds is not None,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form, as recorded in results.json."""
        return {
            "name": self.name,
            "description": self.description,
            "data": {"path": self.data_path},
            "model": self.model,
            "train": self.train,
            "sweep": {
                "activations": list(self.activations),
                "seeds": list(self.seeds),
                "data_seeds": list(self.data_seeds) if self.data_seeds else None,
                "grid": {k: list(v) for k, v in self.grid.items()},
            },
            "report": {f.name: getattr(self.report, f.name) for f in fields(ReportOptions)},
        }
