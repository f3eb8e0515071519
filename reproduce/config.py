"""Sweep definitions: TOML files (``configs/*.toml``) read into validated dataclasses.

A sweep is a base configuration (data, model, training) and its axes: activations, seeds and an
optional grid over any other model or training setting. Every combination is one trial, named by
:func:`trial_id`. Layout of a config file::

    name = "smoke"                  # optional; defaults to the file's stem
    description = "..."
    [data]    path = "..."          # optional; default: tiny Shakespeare (checked by digest)
    [model]   n_layer = 6 ...       # charlm.model.ModelConfig fields except activation
    [train]   max_iters = 5000 ...  # charlm.train.TrainConfig fields
    [sweep]   activations = [...]  seeds = [...]  data_seeds = [...] (optional, one per seed)
    [sweep.grid]  lr = [3e-4, 1e-3] # optional: setting name -> list of values
    [report]  sample_prompt = ...   # render and sampling options (not part of the base)

Unknown keys and bad values raise :class:`ConfigError` naming them.
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from charlm.activations import canonical_name
from charlm.model import ModelConfig
from charlm.sample import DEFAULT_TEMPERATURE, DEFAULT_TOKENS
from charlm.train import TrainConfig, TrialSpec

__all__ = [
    "ConfigError",
    "ReportOptions",
    "SweepConfig",
    "Trial",
    "format_value",
    "group_id",
    "apply_overrides",
    "load_config",
    "trial_id",
]

MODEL_KEYS = tuple(f.name for f in fields(ModelConfig) if f.name not in ("activation",))
TRAIN_KEYS = tuple(f.name for f in fields(TrainConfig))
TOP_KEYS = ("name", "description", "data", "model", "train", "sweep", "report")


class ConfigError(ValueError):
    """A sweep config that cannot be used; the message names the file and the key."""


def format_value(value: Any) -> str:
    """How a grid value is written in trial ids and cell names: shortest round-trip ``repr`` for
    numbers (``3e-4`` -> ``0.0003``), ``true``/``false`` for booleans, strings as they are."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return value
    raise ConfigError(f"grid value {value!r} must be a number, string or boolean")


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

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> SweepConfig:
        """Validate a parsed TOML document. Raises ConfigError naming ``source`` and the key."""

        def fail(message: str) -> ConfigError:
            return ConfigError(f"{source}: {message}")

        def check_keys(table: Any, allowed: tuple[str, ...], where: str) -> dict:
            if not isinstance(table, dict):
                raise fail(f"[{where}] must be a table")
            unknown = sorted(set(table) - set(allowed))
            if unknown:
                raise fail(f"unknown key(s) {unknown} in [{where}]; valid are {sorted(allowed)}")
            return table

        check_keys(raw, TOP_KEYS, "top level")
        data = check_keys(raw.get("data", {}), ("path",), "data")
        model = dict(check_keys(raw.get("model", {}), MODEL_KEYS, "model"))
        train = dict(check_keys(raw.get("train", {}), TRAIN_KEYS, "train"))
        sweep = check_keys(
            raw.get("sweep", {}), ("activations", "seeds", "data_seeds", "grid"), "sweep"
        )
        grid_raw = check_keys(sweep.get("grid", {}), MODEL_KEYS + TRAIN_KEYS, "sweep.grid")
        report_raw = check_keys(
            raw.get("report", {}), tuple(f.name for f in fields(ReportOptions)), "report"
        )

        activations = sweep.get("activations")
        if not isinstance(activations, list) or not activations:
            raise fail("[sweep] activations must be a non-empty list of names")
        try:
            activations = tuple(canonical_name(a) for a in activations)
        except ValueError as exc:
            raise fail(f"[sweep] activations: {exc}") from None
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
        for what, values in (("activations", activations), ("seeds", seeds)):
            if len(set(values)) != len(values):
                raise fail(f"[sweep] {what} has duplicates: {list(values)}")
        grid: dict[str, tuple[Any, ...]] = {}
        for key, values in grid_raw.items():
            if not isinstance(values, list) or not values:
                raise fail(f"[sweep.grid] {key} must be a non-empty list of values")
            if key in model or key in train:
                raise fail(f"{key} is both a fixed setting and a [sweep.grid] axis; keep one")
            grid[key] = tuple(values)
        try:
            report = ReportOptions(**report_raw)
        except TypeError as exc:
            raise fail(f"[report] {exc}") from None
        config = cls(
            name=str(raw.get("name", Path(source).stem)),
            description=str(raw.get("description", "")),
            data_path=data.get("path"),
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
        except ValueError as exc:
            raise fail(str(exc)) from None
        return config

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


def apply_overrides(raw: dict[str, Any], overrides: list[str], source: str) -> dict[str, Any]:
    """``raw`` with each ``section.key=value`` override applied (value in TOML syntax, e.g.
    ``train.max_iters=30``, ``sweep.activations=["gelu"]``); the result is validated as usual.

    Raises:
        ConfigError: an override that is not ``section.key=value`` or whose value is not TOML.
    """
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for override in overrides:
        name, sep, value = override.partition("=")
        section, dot, key = name.strip().partition(".")
        if not sep or not dot or not key:
            raise ConfigError(f"{source}: override {override!r} must look like section.key=value")
        try:
            parsed = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            raise ConfigError(
                f"{source}: override {override!r}: {value!r} is not a TOML value "
                '(strings need quotes: sweep.activations=["gelu"])'
            ) from None
        raw.setdefault(section, {})[key] = parsed
    return raw


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> SweepConfig:
    """Read and validate a sweep config file, with optional ``section.key=value`` overrides
    (:func:`apply_overrides`).

    Raises:
        FileNotFoundError: no such file.
        ConfigError: invalid TOML, an unknown key or a bad value (named in the message).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config {path} not found; the shipped configs are in configs/")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from None
    source = f"{path} with --set {', '.join(overrides)}" if overrides else str(path)
    return SweepConfig.from_dict(apply_overrides(raw, list(overrides), str(path)), source)
