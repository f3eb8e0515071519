"""Reading a sweep config file: ``--set SECTION.KEY=VALUE`` overrides and :func:`load_config`,
which names the nearest shipped config when a file is missing."""

from __future__ import annotations

import argparse
import difflib
import tomllib
from pathlib import Path
from typing import Any

from reproduce.config.sweep_config import SweepConfig
from reproduce.config.values import ConfigError

__all__ = ["SHIPPED_CONFIGS", "add_override_option", "apply_overrides", "load_config"]


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


SHIPPED_CONFIGS = Path(__file__).resolve().parents[2] / "configs"


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
