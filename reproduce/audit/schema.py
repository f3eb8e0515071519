"""Reading and validating what ``audit`` is given: a reference file (schema
``reference.schema.json``, which $refs ``trial.schema.json``) or a results.json's trials.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from reproduce.results import schema_registry

TRIAL_SCHEMA_ID = "https://charlm-repro.example/schemas/trial.schema.json"
REFERENCE_SCHEMA_ID = "https://charlm-repro.example/schemas/reference.schema.json"


def _validator(schema_id: str) -> Draft202012Validator:
    registry = schema_registry()
    schema = registry.contents(schema_id)
    return Draft202012Validator(
        schema, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def _one_line(error: Any, what: str) -> str:
    where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
    message = " ".join(str(error.message).split())
    if len(message) > 200:
        message = message[:197] + "..."
    return f"{what} is invalid at {where}: {message}"


def validate_reference(doc: Any, what: str = "reference file") -> None:
    """Validate ``doc`` against ``reference.schema.json`` (which $refs ``trial.schema.json``).

    Also checks what a schema cannot: unique trial and claim ids, claim references and groups
    that exist, and no cycles between claims.

    Raises:
        ValueError: one line naming the first problem and where it is.
    """
    error = best_match(_validator(REFERENCE_SCHEMA_ID).iter_errors(doc))
    if error is not None:
        raise ValueError(_one_line(error, what))
    _check_ids(doc["trials"], "trial", what)
    _check_ids(doc["claims"], "claim", what)
    claims = {c["id"]: c for c in doc["claims"]}
    groups = {t["group"] for t in doc["trials"]}
    for claim in doc["claims"]:
        for ref in _claim_refs(claim["check"]):
            if ref not in claims:
                raise ValueError(f"{what}: claim {claim['id']} refers to unknown claim {ref!r}")
        for group in _group_names(claim["check"]):
            if group not in groups:
                raise ValueError(
                    f"{what}: claim {claim['id']} refers to group {group!r}, which has no "
                    f"trials (groups: {', '.join(sorted(groups))})"
                )
    _check_cycles(claims, what)


def validate_trials(doc: Any, what: str = "results file") -> None:
    """Validate a results-like document: an object with a non-empty ``trials`` list whose
    entries match ``trial.schema.json#/$defs/trial``; trial ids must be unique.

    Raises:
        ValueError: one line naming the first problem and where it is.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("trials"), list) or not doc["trials"]:
        raise ValueError(
            f"{what} has no 'trials' list (expected a results.json or a reference file)"
        )
    validator = _validator(TRIAL_SCHEMA_ID)
    for i, trial in enumerate(doc["trials"]):
        error = best_match(validator.iter_errors(trial))
        if error is not None:
            error.path.extendleft(["trials", i][::-1])
            raise ValueError(_one_line(error, what))
    _check_ids(doc["trials"], "trial", what)


def _check_ids(items: list[dict], kind: str, what: str) -> None:
    seen: set[str] = set()
    for item in items:
        if item["id"] in seen:
            raise ValueError(f"{what}: duplicate {kind} id {item['id']!r}")
        seen.add(item["id"])


def _walk_checks(node: Any) -> Iterable[dict]:
    """Every check/operand object inside ``node`` (depth first)."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk_checks(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk_checks(value)


def _claim_refs(check: dict) -> list[str]:
    return [n["claim"] for n in _walk_checks(check) if set(n) == {"claim"}]


def _group_names(check: dict) -> list[str]:
    names: list[str] = []
    for node in _walk_checks(check):
        if "kind" not in node:
            continue
        for key in ("group", "groups"):
            value = node.get(key)
            if isinstance(value, str):
                names.append(value)
            elif isinstance(value, list):
                names.extend(value)
        if node["kind"] == "tukey":
            names.extend(node["pair"])
        if node["kind"] == "rank" and "position_of" in node and "values" not in node:
            names.append(node["position_of"])
    return names


def _check_cycles(claims: dict[str, dict], what: str) -> None:
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(cid: str, path: list[str]) -> None:
        if state.get(cid) == 2:
            return
        if state.get(cid) == 1:
            raise ValueError(f"{what}: claims refer to each other in a cycle: {' -> '.join(path)}")
        state[cid] = 1
        for ref in _claim_refs(claims[cid]["check"]):
            visit(ref, [*path, ref])
        state[cid] = 2

    for cid in claims:
        visit(cid, [cid])


def load_document(path: str | Path) -> dict:
    """Read and validate FILE: a reference file (has ``claims``) against
    ``reference.schema.json``, otherwise a results.json's trials against ``trial.schema.json``.

    Raises:
        FileNotFoundError: FILE does not exist.
        ValueError: FILE is unreadable, not JSON, or invalid (one line saying where).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file (give a results.json or a reference file)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    if isinstance(doc, dict) and "claims" in doc:
        validate_reference(doc, str(path))
    else:
        validate_trials(doc, str(path))
    return doc
