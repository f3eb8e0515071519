"""What verify recomputes from results.json and the weights: the statistics, the prediction
differences and the rendered report (byte for byte).

A report is re-rendered only from inputs inside the directory: a render option (``reference``,
``compare``) that leads outside it fails, since a publication ships what its report was
rendered with (``publish`` copies them in).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from charlm.data import Corpus
from reproduce import analysis, protocols, report, results
from reproduce.errors import UserError
from reproduce.verification.integrity import weights_path
from reproduce.verification.paths import UnsafePath
from reproduce.verification.rows import FAIL, NOT_DISTRIBUTED, PASS, PLATFORM_DIFFERS, Row, close

__all__ = [
    "RELATIVE_TOLERANCE",
    "PD_RELATIVE_TOLERANCE",
    "check_analysis",
    "check_report",
    "render_option_problem",
]

RELATIVE_TOLERANCE = 1e-9  # stored vs recomputed statistics
PD_RELATIVE_TOLERANCE = 1e-6  # recomputed PD may differ in the last bits across thread counts
EMBEDDED_PNG = re.compile(rb"data:image/png;base64,[A-Za-z0-9+/=]+")


def check_analysis(
    directory: Path, data: dict, corpus: Corpus | None, intact: set[str]
) -> list[Row]:
    """Statistics, prediction differences (when every trial's weights are ``intact``: shipped
    and matching their digest; needs ``corpus``) and the rendered report (:func:`check_report`)."""
    rows = []
    diffs = close(data["statistics"], results.statistics(data["trials"]), RELATIVE_TOLERANCE)
    rows.append(
        _compared(
            "statistics",
            diffs,
            f"recomputed from {len(data['trials'])} trial records, equal to "
            f"{RELATIVE_TOLERANCE:g} relative",
        )
    )
    groups: dict[str, dict[int, Path]] = {}
    for trial in data["trials"]:
        groups.setdefault(trial["group"], {})[trial["seed"]] = weights_path(directory, trial)
    if not all(t["id"] in intact for t in data["trials"]):
        detail = "needs every trial's weights, shipped and intact"
        rows.append(Row("prediction difference", "results.json", NOT_DISTRIBUTED, detail))
    else:
        torch.set_num_threads(data["render"]["threads"])
        batch_size = data["config"]["report"]["pd_batch_size"]
        recomputed = analysis.prediction_differences(groups, corpus, batch_size)
        diffs = close(data["prediction_difference"], recomputed, PD_RELATIVE_TOLERANCE)
        rows.append(
            _compared(
                "prediction difference",
                diffs,
                f"recomputed from the weights, equal to {PD_RELATIVE_TOLERANCE:g}",
            )
        )
        if "prediction_difference_study" in data:
            rows.append(_check_study_pd(directory, data, corpus))
    rows += check_report(directory, data)
    return rows


def _check_study_pd(directory: Path, data: dict, corpus: Corpus) -> Row:
    """The study's own PD recomputed from the weights and the replayed streams."""
    groups = protocols.seed_ordered_groups(
        [
            (t["group"], t["seed"], protocols.spec_from_record(t), weights_path(directory, t))
            for t in data["trials"]
        ],
        data["config"]["sweep"]["seeds"],
    )
    recomputed = protocols.study_prediction_differences(groups, corpus)
    diffs = close(data["prediction_difference_study"], recomputed, PD_RELATIVE_TOLERANCE)
    return _compared(
        "prediction difference (study's)",
        diffs,
        f"the study's PD recomputed from the weights, equal to {PD_RELATIVE_TOLERANCE:g}",
    )


def _compared(check: str, diffs: list[str], equal: str) -> Row:
    """The row for results.json's ``check`` recomputed: FAIL naming the first three
    differences, or pass saying ``equal``."""
    if diffs:
        return Row(check, "results.json", FAIL, "; ".join(diffs[:3]))
    return Row(check, "results.json", PASS, equal)


def render_option_problem(directory: Path, data: dict) -> str | None:
    """Why the recorded render options (``reference``, ``compare``, ``study``) cannot be
    followed inside ``directory``, or None."""
    for key in ("reference", "compare", "study"):
        value = data["render"]["options"].get(key)
        if value is None:
            continue
        try:
            report.option_paths(directory, key, value)
        except UnsafePath as exc:
            return (
                f"{exc}: verify reads only inside the directory; a publication ships its "
                f"{key} file (republish with `publish`)"
            )
    return None


def check_report(directory: Path, data: dict) -> list[Row]:
    """Re-render the report from results.json and compare every shipped report file.

    The text files (report.md, audit.md) must match byte for byte on any platform. Figure bytes
    depend on the rendering stack (:data:`reproduce.results.RENDERING_KEYS`): where it differs
    from the recorded one, PNGs that differ are "platform differs" and report.html must match
    with its embedded images set aside. A report whose inputs (a reference or compared run
    named in the render options) are missing or outside the directory cannot be checked,
    which fails.
    """
    problem = render_option_problem(directory, data)
    if problem:
        return [Row("report", "re-render", FAIL, f"cannot re-render: {problem}")]
    recorded, here = data["render"]["stack"], results.rendering_stack()
    differs = [
        f"{k} {recorded.get(k)} recorded, {here.get(k)} here"
        for k in results.RENDERING_KEYS
        if recorded.get(k) != here.get(k)
    ]
    try:
        rendered = report.render_directory(
            directory, write=False, log=lambda _: None, contained=True
        )
    except FileNotFoundError as exc:
        detail = f"cannot re-render: {exc} (a publication ships it; restore it or republish)"
        return [Row("report", "re-render", FAIL, detail)]
    except (ValueError, UserError) as exc:  # UserError: shipped study files unreadable
        return [Row("report", "re-render", FAIL, f"cannot re-render: {exc}")]
    rows = []
    for name, payload in sorted(rendered.items()):
        path = directory / name
        if not path.is_file():
            continue  # not shipped
        shipped = path.read_bytes()
        verdict, detail = PASS, "re-rendered byte for byte"
        if shipped != payload:
            verdict, detail = FAIL, "differs from a re-render of results.json"
        if differs and name.endswith(".png") and verdict == FAIL:
            verdict, detail = PLATFORM_DIFFERS, "; ".join(differs)
        elif differs and name.endswith(".html") and verdict == FAIL:
            text_same = EMBEDDED_PNG.sub(b"", shipped) == EMBEDDED_PNG.sub(b"", payload)
            if text_same:
                verdict = PLATFORM_DIFFERS
                detail = "text re-rendered byte for byte; embedded figures: " + "; ".join(differs)
        elif differs and verdict == FAIL:
            detail += f" (rendering stack: {'; '.join(differs)})"
        rows.append(Row("report", name, verdict, detail))
    return rows
