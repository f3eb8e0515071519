"""The values of a sweep config: the error it raises, how a TOML value is named in a message,
whether it fits a setting's type, whether it can seed a torch generator, and how a grid value is
written in trial ids."""

from __future__ import annotations

import json
import types
import typing
from typing import Any

__all__ = [
    "SEED_MAX",
    "ConfigError",
    "check_types",
    "format_value",
    "seed_problem",
    "toml_text",
    "type_matches",
    "type_name",
]

# torch.Generator.manual_seed takes seeds in [0, 2**64): a larger one fails (OverflowError)
SEED_MAX = 2**64 - 1


class ConfigError(ValueError):
    """A sweep config that cannot be used; the message names the file and the key."""


def toml_text(value: Any) -> str:
    """``value`` as TOML writes it (``5``, ``"5"``, ``true``, ``[1, 2]``), for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def type_matches(value: Any, annotation: Any) -> bool:
    """Whether a TOML value fits a dataclass field's annotation (``int``, ``float | None``,
    ``tuple[str, ...]``, ...). Booleans are not numbers; integers are numbers (``lr = 1``)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(type_matches(value, a) for a in typing.get_args(annotation))
    if origin is tuple:
        inner = typing.get_args(annotation)[0]
        return isinstance(value, list | tuple) and all(type_matches(v, inner) for v in value)
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


def type_name(annotation: Any) -> str:
    """What a field's annotation asks for, in words (``an integer``, ``a list of strings``)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        names = [type_name(a) for a in typing.get_args(annotation) if a is not type(None)]
        return " or ".join(names)
    if origin is tuple:
        inner = type_name(typing.get_args(annotation)[0])
        return "a list of " + inner.split(" ", 1)[1] + "s"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        annotation, str(annotation)
    )


def check_types(table: dict, types_: dict[str, Any], where: str) -> str | None:
    """The first value of ``table`` whose type does not fit ``types_`` (key -> annotation),
    as an error message, or None."""
    for key, value in table.items():
        if key in types_ and not type_matches(value, types_[key]):
            return f"[{where}] {key} = {toml_text(value)} must be {type_name(types_[key])}"
    return None


def seed_problem(value: Any) -> str | None:
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
