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

Unknown keys, values of the wrong type and bad values raise :class:`ConfigError` naming the
file and the key; values that could only fail at the end of a run (the report's sampling
options, seeds beyond what a torch generator takes, a sample prompt or context length the corpus
cannot serve) are refused too, so a sweep never trains for hours and then fails in its report.
"""

from __future__ import annotations

import argparse
import difflib
import itertools
import json
import math
import tomllib
import types
import typing
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
    "SEED_MAX",
    "SweepConfig",
    "Trial",
    "format_value",
    "group_id",
    "apply_overrides",
    "add_override_option",
    "load_config",
    "trial_id",
]

MODEL_KEYS = tuple(f.name for f in fields(ModelConfig) if f.name not in ("activation",))
TRAIN_KEYS = tuple(f.name for f in fields(TrainConfig))
MODEL_TYPES = {k: v for k, v in typing.get_type_hints(ModelConfig).items() if k in MODEL_KEYS}
TRAIN_TYPES = typing.get_type_hints(TrainConfig)
TOP_KEYS = ("name", "description", "data", "model", "train", "sweep", "report")
# torch.Generator.manual_seed takes seeds in [0, 2**64): a larger one fails (OverflowError)
SEED_MAX = 2**64 - 1


class ConfigError(ValueError):
    """A sweep config that cannot be used; the message names the file and the key."""


def _toml_text(value: Any) -> str:
    """``value`` as TOML writes it (``5``, ``"5"``, ``true``, ``[1, 2]``), for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def _type_matches(value: Any, annotation: Any) -> bool:
    """Whether a TOML value fits a dataclass field's annotation (``int``, ``float | None``,
    ``tuple[str, ...]``, ...). Booleans are not numbers; integers are numbers (``lr = 1``)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_matches(value, a) for a in typing.get_args(annotation))
    if origin is tuple:
        inner = typing.get_args(annotation)[0]
        return isinstance(value, list | tuple) and all(_type_matches(v, inner) for v in value)
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    return True  # a type this table does not know: the dataclass checks it


def _type_name(annotation: Any) -> str:
    """What a field's annotation asks for, in words (``an integer``, ``a list of strings``)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in typing.get_args(annotation) if a is not type(None)]
        return " or ".join(names)
    if origin is tuple:
        inner = _type_name(typing.get_args(annotation)[0])
        return "a list of " + inner.split(" ", 1)[1] + "s"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        annotation, str(annotation)
    )


def _check_types(table: dict, types_: dict[str, Any], where: str) -> str | None:
    """The first value of ``table`` whose type does not fit ``types_`` (key -> annotation),
    as an error message, or None."""
    for key, value in table.items():
        if key in types_ and not _type_matches(value, types_[key]):
            return f"[{where}] {key} = {_toml_text(value)} must be {_type_name(types_[key])}"
    return None


def _seed_problem(value: Any) -> str | None:
    """Why ``value`` cannot seed a torch generator, or None when it can."""
    if isinstance(value, bool) or not isinstance(value, int):
        return "must be an integer"
    if not 0 <= value <= SEED_MAX:
        return f"must be between 0 and {SEED_MAX} (2**64 - 1, what a torch generator takes)"
    return None


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
        problem = _seed_problem(self.sample_seed)
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
        for key in ("name", "description"):
            if key in raw and not isinstance(raw[key], str):
                raise fail(f"{key} = {_toml_text(raw[key])} must be a string")
        path = data.get("path")
        if path is not None and not (isinstance(path, str) and path):
            raise fail(f"[data] path = {_toml_text(path)} must be a file name (a string)")
        for table, types_, where in (
            (model, MODEL_TYPES, "model"),
            (train, TRAIN_TYPES, "train"),
            (report_raw, REPORT_TYPES, "report"),
        ):
            problem = _check_types(table, types_, where)
            if problem:
                raise fail(problem)

        activations = sweep.get("activations")
        if (
            not isinstance(activations, list)
            or not activations
            or not all(isinstance(a, str) for a in activations)
        ):
            raise fail(
                f"[sweep] activations = {_toml_text(activations)} must be a non-empty list of "
                "names (strings)"
            )
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
        for what, values in (("seeds", seeds), ("data_seeds", data_seeds or [])):
            for value in values:
                problem = _seed_problem(value)
                if problem:
                    raise fail(f"[sweep] {what}: {_toml_text(value)} {problem}")
        for what, values in (("activations", activations), ("seeds", seeds)):
            if len(set(values)) != len(values):
                raise fail(f"[sweep] {what} has duplicates: {list(values)}")
        grid: dict[str, tuple[Any, ...]] = {}
        for key, values in grid_raw.items():
            if not isinstance(values, list) or not values:
                raise fail(f"[sweep.grid] {key} must be a non-empty list of values")
            if key in model or key in train:
                raise fail(f"{key} is both a fixed setting and a [sweep.grid] axis; keep one")
            expected = {**MODEL_TYPES, **TRAIN_TYPES}[key]
            wrong = [v for v in values if not _type_matches(v, expected)]
            if wrong:
                raise fail(
                    f"[sweep.grid] {key} = {_toml_text(values)}: {_toml_text(wrong[0])} must be "
                    f"{_type_name(expected)}"
                )
            grid[key] = tuple(values)
        try:
            report = ReportOptions(**report_raw)
        except (TypeError, ValueError) as exc:
            raise fail(str(exc) if isinstance(exc, ValueError) else f"[report] {exc}") from None
        config = cls(
            source=source,
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
                f"{self.source}: [report] sample_prompt = {_toml_text(self.report.sample_prompt)}"
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


def add_override_option(parser: argparse.ArgumentParser, example: str) -> None:
    """Give a command line the repeatable ``--set SECTION.KEY=VALUE`` option, read by
    :func:`apply_overrides` from ``args.overrides``; ``example`` is shown in its help."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help=f"change one config value (TOML syntax), e.g. --set {example}; repeatable",
    )


SHIPPED_CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _nearest_config(path: Path) -> str:
    """ "did you mean configs/X.toml?" for the shipped config whose name is nearest to
    ``path``'s (difflib's ratio), else the list of shipped configs."""
    shipped = sorted(p.name for p in SHIPPED_CONFIGS.glob("*.toml"))
    if not shipped:
        return "no shipped configs found"
    name = path.name if path.suffix == ".toml" else path.name + ".toml"
    close = difflib.get_close_matches(name, shipped, n=1, cutoff=0.6)
    if close:
        return f"did you mean configs/{close[0]}?"
    return "the shipped configs are configs/" + ", configs/".join(shipped)


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> SweepConfig:
    """Read and validate a sweep config file, with optional ``section.key=value`` overrides
    (:func:`apply_overrides`).

    Raises:
        FileNotFoundError: no such file.
        ConfigError: invalid TOML, an unknown key or a bad value (named in the message).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config {path} not found; {_nearest_config(path)}")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from None
    source = f"{path} with --set {', '.join(overrides)}" if overrides else str(path)
    return SweepConfig.from_dict(apply_overrides(raw, list(overrides), str(path)), source)
