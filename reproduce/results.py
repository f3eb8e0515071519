"""results.json: what a sweep produced, in one schema-versioned file.

It holds the resolved config, every trial record (see :func:`trial_entry`), the statistics
recomputable from those records (:func:`statistics`), the prediction differences and samples that
needed the weights, and the rendering stack. Its JSON Schema is
``reproduce/schemas/results.schema.json`` (trial fields shared with the published report's
reference data through ``trial.schema.json``).
"""

from __future__ import annotations

import json
import os
import platform
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import jsonschema
import referencing

from charlm.io import atomic_write_json
from reproduce import stats
from reproduce.verification.paths import read_bounded

__all__ = [
    "SCHEMA_VERSION",
    "RESULTS_FILE",
    "trial_entry",
    "statistics",
    "rendering_stack",
    "schema_registry",
    "validate",
    "load_results",
    "write_results",
]

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
MAX_RESULTS_BYTES = 256 << 20  # a 15-trial results.json is ~0.2 MB


def trial_entry(trial_id: str, group: str, grid: dict, record: dict) -> dict:
    """A results.json trial: the sweep's identity fields on top of the trainer's record
    (``trial.json``, see :func:`charlm.train.train_trial`)."""
    return {"id": trial_id, "group": group, "grid": grid, **record}


def statistics(trials: list[dict]) -> dict:
    """The sweep-level statistics, computed from the trial records alone
    (:func:`reproduce.stats.analyze_sweep`)."""
    return stats.analyze_sweep(trials)


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


# What a rendered file's bytes depend on; verify re-renders only where all of these match.
RENDERING_KEYS = ("python", "jinja2", "matplotlib", "pillow", "freetype")


def rendering_stack() -> dict[str, str | None]:
    """Versions whose change may change the rendered report's bytes: the template engine, and
    matplotlib with what it draws and writes PNGs with (FreeType, Pillow)."""
    from matplotlib import ft2font

    return {
        "python": platform.python_version(),
        "jinja2": _version("jinja2"),
        "matplotlib": _version("matplotlib"),
        "pillow": _version("pillow"),
        "freetype": ft2font.__freetype_version__,
    }


@cache
def schema_registry() -> referencing.Registry:
    """Every ``reproduce/schemas/*.schema.json`` under its ``$id``, so schemas can $ref each
    other (results and reference data share ``trial.schema.json``)."""
    resources = []
    for path in sorted(SCHEMA_DIR.glob("*.schema.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        resources.append((schema["$id"], referencing.Resource.from_contents(schema)))
    return referencing.Registry().with_resources(resources)


def validate(data: dict, schema_name: str = "results.schema.json") -> None:
    """Validate ``data`` against one of the package's schemas.

    Raises:
        ValueError: the first violation, with its JSON path.
    """
    schema = json.loads((SCHEMA_DIR / schema_name).read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema, registry=schema_registry())
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ValueError(f"{schema_name}: {where}: {error.message}")


def load_results(directory: str | os.PathLike) -> dict:
    """Read and validate ``directory/results.json``.

    Raises:
        FileNotFoundError: no results.json.
        ValueError: not a regular file of at most :data:`MAX_RESULTS_BYTES`, not UTF-8 JSON
            (NaN and infinities are not JSON), or not valid against the schema; the file is
            named.
    """
    path = Path(directory) / RESULTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `python -m reproduce run` first")
    raw = read_bounded(path, MAX_RESULTS_BYTES, "results file")
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_not_json)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ValueError(f"{path} is not valid JSON ({exc})") from None
    try:
        validate(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return data


def _not_json(name: str):
    raise ValueError(f"{name} is not a JSON number")


def write_results(directory: str | os.PathLike, data: dict[str, Any]) -> Path:
    """Validate ``data`` and write it as ``directory/results.json`` (canonical JSON, atomic)."""
    validate(data)
    return atomic_write_json(Path(directory) / RESULTS_FILE, data)
