"""``python -m reproduce compare OURS REFERENCE``: the replication verdict, at the sweep's scale.

A sweep is judged against the claims the report makes at the sweep's own scale
(:func:`scale_of`): a sweep at the report's full scale (6 x 384, 5,000 iterations) against its
full-scale claims; a sweep at its partial scale (2 x 256, 500 iterations: "3x shallower", "1.5x
narrower" than the full model, "10x" fewer iterations) against its partial-scale claims; claims
that compare the two scales cannot be decided until both scales have been run. A sweep at neither
scale (smoke, cpu) is at no scale of the report: it gets the full-scale claims' verdicts marked
indicative only, and says so. For each claim the verdict is **supports**, **contradicts** or
**cannot decide**, with the numbers behind it and the rule used (:mod:`reproduce.verdicts`).
The comparison is like for like only for a sweep at one of the report's scales that followed the
study's own procedure (the study protocol, :mod:`charlm.study`); a sweep under nanoGPT's recipe
(the nanogpt protocol, and any record without a protocol, written before protocols existed) is
judged at its scale all the same, and its scale note says which procedure it followed and that
its verdicts are not like for like (:func:`procedure`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import textwrap
from pathlib import Path

from reproduce import audit, claims, results, stats
from reproduce import verdicts as rules
from reproduce.errors import UserError
from reproduce.verdicts import CONTRADICTS, SUPPORTS, UNDECIDED

__all__ = [
    "SUPPORTS",
    "CONTRADICTS",
    "UNDECIDED",
    "load_reference",
    "procedure",
    "replication",
    "scale_of",
    "register",
]

FULL, PARTIAL = claims.FULL, claims.PARTIAL


def scale_definitions(reference: dict) -> dict[str, dict]:
    """The report's two scales as sweep settings, from the reference file alone.

    Full: its configuration. Partial: the full model divided by the report's depth and width
    ratios (claims ``depth-ratio``, ``width-ratio``), its partial iteration count, and the full
    scale's context, dropout, batch size and learning rate (the report states no others).
    Heads are not compared: the report does not give the partial scale's.
    """
    cfg, printed = reference["config"], claims.by_id(reference)
    model, training = cfg["model"], cfg["training"]
    shared = {
        "block_size": model["block_size"],
        "dropout": model["dropout"],
        "batch_size": training["batch_size"],
        "lr": training["learning_rate"],
    }
    full = {
        **shared,
        "n_layer": model["n_layer"],
        "n_embd": model["n_embd"],
        "n_head": model["n_head"],
        "max_iters": training["max_iters"],
    }
    partial = {
        **shared,
        "n_layer": model["n_layer"] / printed["depth-ratio"]["claimed"],
        "n_embd": model["n_embd"] / printed["width-ratio"]["claimed"],
        "max_iters": cfg["partial_scale"]["max_iters"],
    }
    return {FULL: full, PARTIAL: partial}


def scale_of(config: dict, reference: dict) -> str | None:
    """``"full"``, ``"partial"`` or None: which of the report's scales a sweep config is at."""
    settings = {**config.get("model", {}), **config.get("train", {})}
    for name, wanted in scale_definitions(reference).items():
        if all(settings.get(k) == v for k, v in wanted.items()):
            return name
    return None


def replication(ours: dict, reference: dict) -> dict:
    """The replication verdict of our results.json against a reference file's claims.

    Returns:
        ``{"reference", "ours", "scale": {"name", "procedure", "like_for_like", "note"},
        "rules": {id: text},
        "claims": [{"id", "claim", "claimed", "verdict", "detail", "rules"}], "raw": the
        reference's ``raw_data`` section (verdicts of the study's raw data) or None}``; only our
        grid cell "all" (or the first cell) is compared. At the full scale, and at neither scale,
        only the report's own activations are compared, as the report compared them; at the
        partial scale every activation of the sweep.

    Raises:
        UserError: our sweep has none of the activations to compare.
    """
    printed = claims.by_id(reference)
    scale = scale_of(ours["config"], reference)
    cells = ours["statistics"]["cells"]
    cell_key = "all" if "all" in cells else sorted(cells)[0]
    trials = [t for t in ours["trials"] if stats.cell_key(t["grid"]) == cell_key]
    if scale != PARTIAL:
        names = set(reference["config"]["training"]["activations"])
        trials = [t for t in trials if t["activation"] in names]
    if not trials:
        raise UserError("our sweep has none of the activations the report compared")
    groups = sorted({t["group"] for t in trials})
    pd = {g: ours["prediction_difference"][g] for g in groups if g in ours["prediction_difference"]}
    rows = claims.Rows(printed)
    if scale == PARTIAL:
        claims.partial_rows(rows, trials, pd, groups, reference)
    else:
        claims.full_rows(rows, trials, pd, groups)
    if scale is not None:
        claims.cross_scale_rows(rows, scale)
    n_params = sorted({t["n_params"] for t in ours["trials"]})
    model = ours["config"]["model"]
    used = sorted({r for row in rows for r in row["rules"]}, key=list(rules.RULES).index)
    return {
        "reference": {
            "title": reference["source"].get("title"),
            "sha256": reference["source"].get("sha256"),
            "scale": _scale_text(reference["config"]),
        },
        "ours": {
            "name": ours["config"]["name"],
            "cell": cell_key,
            "activations": sorted({t["activation"] for t in trials}),
            "n_params": n_params,
            "platform": claims.platform(trials),
            "scale": f"{model.get('n_layer')} layers x {model.get('n_embd')}, "
            f"{ours['config']['train'].get('max_iters')} iterations, "
            f"{', '.join(f'{n:,}' for n in n_params)} parameters",
        },
        "scale": {
            "name": scale,
            "procedure": procedure(trials),
            "like_for_like": scale is not None and procedure(trials) == "study",
            "note": _scale_note(scale, reference, claims.platform(trials), procedure(trials)),
        },
        "rules": {r: rules.RULES[r] for r in used},
        "claims": rows,
        # what the study's raw data decides, where the reference file carries it
        # (reproduce.rawdata: ``python -m reproduce reference import``); None otherwise
        "raw": reference.get("raw_data"),
    }


def procedure(trials: list[dict]) -> str:
    """The procedure the trials followed: ``study`` or ``nanogpt`` (a record without a protocol
    predates the study protocol and followed nanoGPT's recipe), both joined by " and " when
    they differ."""
    return " and ".join(sorted({t.get("protocol", "nanogpt") for t in trials}))


def _scale_note(scale: str | None, reference: dict, platform: str, followed: str) -> str:
    gpu = reference["config"]["hardware"]["gpu"]
    platform_text = (
        f"Seeds and settings are the report's; the platform is not (ours: {platform}; the "
        f"report's: {gpu}), so bit-level agreement is not expected, only agreement within seed "
        "noise."
    )
    if scale is not None and followed != "study":
        other = PARTIAL if scale == FULL else FULL
        return (
            f"Not like for like: this sweep is at the report's {scale} scale but followed "
            f"nanoGPT's recipe (protocol {followed}: AdamW with beta2 0.99 and weight decay 0.1 "
            "on matrices only, warm-up and cosine decay, gradient clipping, nanoGPT's "
            "initialisation and dropout sites, evaluation on fixed text), not the study's own "
            "procedure (protocol study), and its relative PD is Shamir et al.'s on identical "
            "inputs, not the study's formula on separate windows. The verdicts below apply the "
            f"report's {scale}-scale claims to a sweep of another procedure: they say what holds "
            "at this scale under nanoGPT's recipe, not whether the study's numbers are right. "
            f"Claims comparing the scales also need a {other}-scale sweep. Seeds and stated "
            f"settings are the report's; the platform is not (ours: {platform}; the report's: "
            f"{gpu})."
        )
    if scale is None:
        return (
            "No claim of the report is at this sweep's scale: the report's scales are its full "
            "model and its partial one. The verdicts below apply the full-scale claims to this "
            "sweep and are indicative only: they say what holds at this scale, not whether the "
            "report's numbers are right."
        )
    other = PARTIAL if scale == FULL else FULL
    return (
        f"Like for like: this sweep followed the study's own procedure (protocol study) at the "
        f"report's {scale} scale and is judged against the report's {scale}-scale claims; "
        f"claims comparing the scales also need a {other}-scale sweep. "
        + platform_text
        + " Its relative PD below is the package's, on identical inputs; the study's own PD "
        "(its formula, two models on separate random windows) is in results.json beside it, "
        "and the verdicts like for like (with the study's raw data: render --study) judge the "
        "PD claims by both."
    )


def _scale_text(cfg: dict) -> str:
    """The reference file's scale: layers, width, iterations, parameters."""
    model, training = cfg["model"], cfg["training"]
    return (
        f"{model['n_layer']} layers x {model['n_embd']}, {training['max_iters']} "
        f"iterations, {model['n_params']:,} parameters"
    )


def format_verdict(verdict: dict, width: int | None = None) -> str:
    """The verdict as printed by the command, wrapped to ``width`` columns (default: the
    terminal's width on a terminal, else 80)."""
    if width is None:
        width = shutil.get_terminal_size((80, 24)).columns if sys.stdout.isatty() else 80
    width = max(width, 40)

    def wrap(text: str, indent: str = "") -> list[str]:
        return textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=indent) or [""]

    lines = wrap(
        f"replication of {verdict['reference']['title']} ({verdict['reference']['scale']}) by "
        f"our sweep {verdict['ours']['name']!r} ({verdict['ours']['scale']})"
    )
    lines += ["", *wrap(verdict["scale"]["note"]), ""]
    for row in verdict["claims"]:
        lines += wrap(f"{row['verdict']}: {row['claim']} (printed: {row['claimed']})")
        lines += wrap(row["detail"], "    ")
    lines += ["", "rules:"]
    for rule_id, text in verdict["rules"].items():
        lines += wrap(f"{rule_id}: {text}", "  ")
    return "\n".join(lines)


def load_reference(path: str | Path) -> dict:
    """Read and validate a reference file (``reference.schema.json``).

    Raises:
        FileNotFoundError: no such file. UserError: unreadable or not JSON. ValueError: not
            valid against the schema.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"reference file {path} not found")
    try:
        reference = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read reference {path}: {exc}") from None
    audit.validate_reference(reference, str(path))
    return reference


def _command(args: argparse.Namespace) -> int:
    ours = results.load_results(args.ours)
    print(format_verdict(replication(ours, load_reference(args.reference))))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``compare`` command."""
    p = subparsers.add_parser(
        "compare",
        help="replication verdict of a run against a report",
        description="Judge a run against the published report's claims at the run's own "
        "scale (full, partial, or neither: then indicative only), with the numbers and the "
        "rule behind each verdict.",
    )
    p.add_argument("ours", help="our run or published directory (with results.json)")
    p.add_argument(
        "reference", help="reference file, e.g. artifacts/reference/charlm-full-20251208.json"
    )
    p.set_defaults(func=_command)
