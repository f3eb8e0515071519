"""``python -m reproduce verify DIR [--retrain all|ID,ID]``: check a result without trusting us.

One row per check, with a verdict:

- ``pass`` / ``FAIL``;
- ``not distributed``: weights that were not shipped (their digests stay in results.json);
  never a failure and never a pass;
- ``platform differs``: a bit-for-bit comparison that this machine cannot make (what differs is
  named); a retrained trial must then fall within :data:`TOLERANCES`.

Checks: integrity (every SHA256SUMS entry present and matching, no unlisted file, results.json
valid against its schema, every shipped weights file matching its recorded digest and loading
into the recorded architecture, no trial directory that results.json does not describe);
metrics (every shipped weights file evaluated again on the val split and the train sample,
equal to its trial's recorded final metrics within :data:`METRIC_TOLERANCES`); analysis (the
statistics recomputed from the trial records equal the stored ones to
:data:`RELATIVE_TOLERANCE`; the prediction differences recomputed when all weights are present;
the report re-rendered byte for byte when the rendering stack matches); retraining (named trials
trained again from their records: bit-identical weights and final metrics on the same platform,
metrics within :data:`TOLERANCES` on another). Exit status 1 if any check fails.
"""

from __future__ import annotations

import argparse
import math
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from charlm import determinism
from charlm.checkpoint import load_weights
from charlm.data import TINY_SHAKESPEARE_SHA256, Corpus, resolve_data_path
from charlm.io import sha256_file
from charlm.metrics import EvalSet, evaluate
from charlm.model import ModelConfig
from charlm.train import WEIGHTS_FILE, TrainConfig, TrialSpec, train_trial
from reproduce import analysis, protocols, report, results, terminal
from reproduce.errors import UserError
from reproduce.manifest import check_manifest
from reproduce.runner import TRIALS_DIR

__all__ = [
    "TOLERANCES",
    "METRIC_TOLERANCES",
    "RELATIVE_TOLERANCE",
    "Row",
    "format_row",
    "verify",
    "register",
]

RELATIVE_TOLERANCE = 1e-9  # stored vs recomputed statistics
PD_RELATIVE_TOLERANCE = 1e-6  # recomputed PD may differ in the last bits across thread counts
# A retrained trial on another platform must land this close to the recorded final metrics.
TOLERANCES = {
    "val_loss": 0.05,  # nats
    "train_loss": 0.05,  # nats
    "val_accuracy": 1.0,  # percentage points
    "train_accuracy": 1.0,  # percentage points
}
# Recorded final metrics vs the shipped weights evaluated here (CPU), by the precision the trial
# was evaluated in: fp32 differs only in summation order; bf16 autocast differs by kernel.
METRIC_TOLERANCES = {
    "fp32": {"loss": 1e-4, "accuracy": 0.01},  # nats, percentage points
    "bf16": {"loss": 0.01, "accuracy": 0.2},
}
PASS, FAIL, NOT_DISTRIBUTED, PLATFORM_DIFFERS = (
    "pass",
    "FAIL",
    "not distributed",
    "platform differs",
)
VERDICT_WIDTH = max(len(v) for v in (PASS, FAIL, NOT_DISTRIBUTED, PLATFORM_DIFFERS))


@dataclass(frozen=True)
class Row:
    """One check: what was checked, on what, the verdict, and why."""

    check: str
    subject: str
    verdict: str
    detail: str = ""


def _close(a, b, rel: float, path: str = "") -> list[str]:
    """Paths where two JSON-like values differ beyond ``rel`` (relative; absolute near 0)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path or '/'}: keys differ"]
        return [d for k in sorted(a) for d in _close(a[k], b[k], rel, f"{path}/{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: lengths differ"]
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in _close(x, y, rel, f"{path}/{i}")
        ]
    numeric = (int, float)
    if isinstance(a, numeric) and isinstance(b, numeric) and not isinstance(a, bool):
        ok = math.isclose(a, b, rel_tol=rel, abs_tol=rel)
        return [] if ok else [f"{path}: stored {a!r}, recomputed {b!r}"]
    return [] if a == b else [f"{path}: stored {a!r}, recomputed {b!r}"]


def check_integrity(directory: Path) -> tuple[list[Row], dict | None]:
    """Manifest, schema and weights checks; returns the rows and results.json (None if bad)."""
    rows = []
    manifest = check_manifest(directory)
    bad = [(p, v) for p, v in manifest if v != "ok"]
    for path, verdict in bad:
        what = {
            "missing": "listed but missing",
            "mismatch": "content does not match its digest",
            "unlisted": "present but not listed in SHA256SUMS",
        }[verdict]
        rows.append(Row("manifest", path, FAIL, what))
    if not bad:
        rows.append(Row("manifest", "SHA256SUMS", PASS, f"{len(manifest)} files match"))
    try:
        data = results.load_results(directory)
    except (ValueError, FileNotFoundError) as exc:
        rows.append(Row("schema", "results.json", FAIL, str(exc)))
        return rows, None
    rows.append(Row("schema", "results.json", PASS, f"schema_version {data['schema_version']}"))
    for trial in data["trials"]:
        path = directory / TRIALS_DIR / trial["id"] / WEIGHTS_FILE
        if not path.is_file():
            rows.append(
                Row(
                    "weights",
                    trial["id"],
                    NOT_DISTRIBUTED,
                    f"recorded sha256 {trial['weights_sha256'][:16]}...",
                )
            )
            continue
        actual = sha256_file(path)
        if actual != trial["weights_sha256"]:
            rows.append(
                Row(
                    "weights",
                    trial["id"],
                    FAIL,
                    f"{path.relative_to(directory)} has sha256 {actual[:16]}..., "
                    f"results.json records {trial['weights_sha256'][:16]}...",
                )
            )
            continue
        try:
            model, _ = load_weights(path)
        except ValueError as exc:
            rows.append(Row("weights", trial["id"], FAIL, str(exc)))
            continue
        if model.config != ModelConfig.from_dict(trial["model"]):
            rows.append(
                Row(
                    "weights",
                    trial["id"],
                    FAIL,
                    "architecture in the file differs from the trial's record",
                )
            )
            continue
        rows.append(Row("weights", trial["id"], PASS, "digest matches; loads into its model"))
    return rows, data


def check_trial_dirs(directory: Path, data: dict) -> list[Row]:
    """A FAIL row for each ``trials/<id>`` directory that results.json does not describe."""
    known = {t["id"] for t in data["trials"]}
    trials_dir = directory / TRIALS_DIR
    present = (
        sorted(p.name for p in trials_dir.iterdir() if p.is_dir()) if trials_dir.is_dir() else []
    )
    return [
        Row(
            "trials",
            f"{TRIALS_DIR}/{name}",
            FAIL,
            "not in results.json: an unfinished trial or one of another config (finish it with "
            "`run`, or ship only results.json's trials with `publish`)",
        )
        for name in present
        if name not in known
    ]


def check_metrics(directory: Path, data: dict, corpus: Corpus, intact: set[str]) -> list[Row]:
    """Evaluate the weights of every ``intact`` trial (shipped, matching its digest, loading
    into its architecture) on the val split and the train sample and compare with the trial's
    recorded final metrics (:data:`METRIC_TOLERANCES`)."""
    rows = []
    for trial in data["trials"]:
        if trial["id"] not in intact:
            continue
        weights = directory / TRIALS_DIR / trial["id"] / WEIGHTS_FILE
        if protocols.is_study(trial):  # its final metrics come from the study's random batches
            tolerance = METRIC_TOLERANCES[trial["train"]["precision_used"]]
            ok, detail = protocols.study_final_metrics(trial, weights, corpus, tolerance)
            rows.append(Row("metrics", trial["id"], PASS if ok else FAIL, detail))
            continue
        model, _ = load_weights(weights)
        torch.set_num_threads(trial["train"]["threads"])  # the summation order of the record
        block = model.config.block_size
        precision = trial["train"]["precision_used"]
        autocast = torch.bfloat16 if precision == "bf16" else None
        batch = trial["train"]["eval_batch_size"]
        tolerance = METRIC_TOLERANCES[precision]
        sets = {
            "val": EvalSet.val(corpus.val, block),
            "train": EvalSet.train_sample(corpus.train, len(corpus.val), block),
        }
        beyond, worst = [], 0.0
        for split, evalset in sets.items():
            here = evaluate(model, evalset, batch, autocast_dtype=autocast)
            for metric in ("loss", "accuracy"):
                recorded = trial["final"][f"{split}_{metric}"]
                off = abs(here[metric] - recorded)
                worst = max(worst, off) if metric == "loss" else worst
                if off > tolerance[metric]:
                    beyond.append(
                        f"{split}_{metric} recorded {recorded:.6g}, the weights give "
                        f"{here[metric]:.6g}"
                    )
        detail = "; ".join(beyond) or "final metrics re-evaluated from the weights: " + (
            f"loss off by {worst:.2g} nats" if worst else "equal to the record"
        )
        rows.append(Row("metrics", trial["id"], FAIL if beyond else PASS, detail))
    return rows


def check_analysis(
    directory: Path, data: dict, corpus: Corpus | None, intact: set[str]
) -> list[Row]:
    """Statistics, prediction differences (when every trial's weights are ``intact``: shipped
    and matching their digest; needs ``corpus``) and the rendered report (:func:`check_report`)."""
    rows = []
    diffs = _close(data["statistics"], results.statistics(data["trials"]), RELATIVE_TOLERANCE)
    rows.append(
        Row(
            "statistics",
            "results.json",
            FAIL if diffs else PASS,
            "; ".join(diffs[:3])
            if diffs
            else f"recomputed from {len(data['trials'])} "
            f"trial records, equal to {RELATIVE_TOLERANCE:g} relative",
        )
    )
    groups: dict[str, dict[int, Path]] = {}
    for trial in data["trials"]:
        groups.setdefault(trial["group"], {})[trial["seed"]] = (
            directory / TRIALS_DIR / trial["id"] / WEIGHTS_FILE
        )
    if not all(t["id"] in intact for t in data["trials"]):
        detail = "needs every trial's weights, shipped and intact"
        rows.append(Row("prediction difference", "results.json", NOT_DISTRIBUTED, detail))
    else:
        torch.set_num_threads(data["render"]["threads"])
        batch_size = data["config"]["report"]["pd_batch_size"]
        recomputed = analysis.prediction_differences(groups, corpus, batch_size)
        diffs = _close(data["prediction_difference"], recomputed, PD_RELATIVE_TOLERANCE)
        rows.append(
            Row(
                "prediction difference",
                "results.json",
                FAIL if diffs else PASS,
                "; ".join(diffs[:3])
                if diffs
                else f"recomputed from the weights, equal to {PD_RELATIVE_TOLERANCE:g}",
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
            (
                t["group"],
                t["seed"],
                protocols.spec_from_record(t),
                directory / TRIALS_DIR / t["id"] / WEIGHTS_FILE,
            )
            for t in data["trials"]
        ],
        data["config"]["sweep"]["seeds"],
    )
    recomputed = protocols.study_prediction_differences(groups, corpus)
    diffs = _close(data["prediction_difference_study"], recomputed, PD_RELATIVE_TOLERANCE)
    detail = "; ".join(diffs[:3]) or (
        f"the study's PD recomputed from the weights, equal to {PD_RELATIVE_TOLERANCE:g}"
    )
    return Row("prediction difference (study's)", "results.json", FAIL if diffs else PASS, detail)


EMBEDDED_PNG = re.compile(rb"data:image/png;base64,[A-Za-z0-9+/=]+")


def check_report(directory: Path, data: dict) -> list[Row]:
    """Re-render the report from results.json and compare every shipped report file.

    The text files (report.md, audit.md) must match byte for byte on any platform. Figure bytes
    depend on the rendering stack (:data:`reproduce.results.RENDERING_KEYS`): where it differs
    from the recorded one, PNGs that differ are "platform differs" and report.html must match
    with its embedded images set aside. A report whose inputs (a reference or compared run
    named in the render options) are missing cannot be checked, which fails.
    """
    recorded, here = data["render"]["stack"], results.rendering_stack()
    differs = [
        f"{k} {recorded.get(k)} recorded, {here.get(k)} here"
        for k in results.RENDERING_KEYS
        if recorded.get(k) != here.get(k)
    ]
    try:
        rendered = report.render_directory(directory, write=False, log=lambda _: None)
    except FileNotFoundError as exc:
        detail = f"cannot re-render: {exc} (a publication ships it; restore it or republish)"
        return [Row("report", "re-render", FAIL, detail)]
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


def _corpus(data: dict, corpus_path: str | None) -> Corpus:
    if data["data"]["sha256"] == TINY_SHAKESPEARE_SHA256:
        return Corpus.load(resolve_data_path(corpus_path))
    if corpus_path is None:
        raise UserError("this result used another corpus; name its file with --data")
    corpus = Corpus.load(corpus_path)
    if corpus.sha256 != data["data"]["sha256"]:
        raise UserError(
            f"--data {corpus_path} is not the corpus of this result "
            f"(sha256 {corpus.sha256}, recorded {data['data']['sha256']})"
        )
    return corpus


def _platform_differences(recorded: dict, here: dict) -> list[str]:
    return [
        f"{k}: {recorded.get(k)!r} recorded, {here.get(k)!r} here"
        for k in determinism.PLATFORM_KEYS
        if k in recorded and recorded[k] != here.get(k)
    ]


def retrain(data: dict, ids: list[str], corpus: Corpus, work: Path) -> list[Row]:
    """Train the named trials again from their records and compare with what was recorded."""
    by_id = {t["id"]: t for t in data["trials"]}
    rows = []
    for trial_id in ids:
        trial = by_id[trial_id]
        train = {k: v for k, v in trial["train"].items() if not k.endswith("_used")}
        spec = TrialSpec(
            ModelConfig.from_dict(trial["model"]),
            TrainConfig.from_dict(train),
            trial["seed"],
            trial["data_seed"],
        )
        record = train_trial(spec, corpus, work / trial_id, progress=False, log=lambda _: None)
        differs = _platform_differences(trial["environment"], record["environment"])
        same_bits = record["weights_sha256"] == trial["weights_sha256"]
        if not differs:
            verdict, detail = PASS, "bit-identical weights and final metrics"
            if not same_bits:
                verdict = FAIL
                detail = (
                    f"same platform but weights sha256 {record['weights_sha256'][:16]}... "
                    f"!= recorded {trial['weights_sha256'][:16]}..."
                )
            elif record["final"] != trial["final"]:
                verdict = FAIL
                mismatch = _close(trial["final"], record["final"], 0.0)
                detail = "bit-identical weights, final metrics differ: " + "; ".join(mismatch[:2])
            rows.append(Row("retrain", trial_id, verdict, detail))
            continue
        out = {k: abs(record["final"][k] - trial["final"][k]) for k in TOLERANCES}
        beyond = [
            f"{k} off by {v:.4g} (tolerance {TOLERANCES[k]})"
            for k, v in out.items()
            if v > TOLERANCES[k]
        ]
        verdict = FAIL if beyond else PLATFORM_DIFFERS
        detail = (
            "; ".join(beyond)
            if beyond
            else (
                f"{'; '.join(differs)}; metrics within tolerance (val_loss off by "
                f"{out['val_loss']:.4g})"
            )
        )
        rows.append(Row("retrain", trial_id, verdict, detail))
    return rows


def verify(
    directory: str | Path,
    retrain_ids: list[str] | None = None,
    data_path: str | None = None,
    work: str | Path | None = None,
    on_row: Callable[[Row], None] | None = None,
    progress: terminal.Progress | bool | None = False,
) -> list[Row]:
    """All checks of a run or published directory; see the module docstring.

    Args:
        directory: the run or published directory.
        retrain_ids: trials to train again (``["all"]`` for every one), or None.
        data_path: the corpus file (tiny Shakespeare: as for ``run``).
        work: where retrained trials go (default: a temporary directory).
        on_row: called with each row as soon as it is decided (the shipped weights' metrics
            and the retrained trials one trial at a time), in the order of the result.
        progress: a :class:`reproduce.terminal.Progress` to announce the slow checks on
            (re-evaluating each trial, recomputing the analysis, retraining), True for one of
            verify's own (a tqdm bar on a terminal, plain lines on stderr otherwise), False or
            None for none.

    Raises:
        FileNotFoundError: no SHA256SUMS in ``directory``.
        UserError: an unknown trial id in ``retrain_ids``.
    """
    directory = Path(directory)
    rows: list[Row] = []

    def add(new: list[Row]) -> None:
        for row in new:
            if on_row is not None:
                on_row(row)
            rows.append(row)

    found, data = check_integrity(directory)
    if data is None:
        add(found)
        return rows
    if retrain_ids:
        known = [t["id"] for t in data["trials"]]
        ids = known if retrain_ids == ["all"] else retrain_ids
        unknown = sorted(set(ids) - set(known))
        if unknown:
            raise UserError(f"unknown trial id(s) {unknown}; this result has {known}")
    add(found)
    add(check_trial_dirs(directory, data))
    intact = {r.subject for r in rows if r.check == "weights" and r.verdict == PASS}
    corpus = None
    if intact or retrain_ids:
        try:
            corpus = _corpus(data, data_path)
        except (OSError, ValueError) as exc:
            raise UserError(f"{exc} (verify evaluates shipped weights on it)") from None
    evaluated = [t["id"] for t in data["trials"] if t["id"] in intact]
    again = ids if retrain_ids else []
    pieces = len(evaluated) + 1 + len(again)
    own = progress is True
    bar = terminal.Progress(pieces, "verify") if own else progress or None
    if bar is not None and not own:
        bar.set_total(pieces)
    try:
        for trial_id in evaluated:  # one trial at a time, so that rows come as decided
            if bar is not None:
                bar.step(f"re-evaluating {trial_id}", plain=False)
            add(check_metrics(directory, data, corpus, {trial_id}))
        if bar is not None:
            bar.step("recomputing the statistics, prediction differences and report")
        add(check_analysis(directory, data, corpus, intact))
        if again:
            with tempfile.TemporaryDirectory(prefix="charlm-verify-") as tmp:
                where = Path(work) if work is not None else Path(tmp)
                for trial_id in again:
                    if bar is not None:
                        bar.step(f"retraining {trial_id}")
                    add(retrain(data, [trial_id], corpus, where))
    finally:
        if own:
            bar.close()
    return rows


def format_row(row: Row, width: int | None = None) -> list[str]:
    """One row as verify prints it while checking: verdict, check and subject, then the
    detail, wrapped to ``width`` columns (default: :func:`reproduce.terminal.width`) with
    continuation lines under the check."""
    width = terminal.width() if width is None else width
    indent = " " * (VERDICT_WIDTH + 1)
    text = f"{row.check} {row.subject}" + (f": {row.detail}" if row.detail else "")
    return terminal.wrap(text, width, indent=indent, first=f"{row.verdict:<{VERDICT_WIDTH}} ")


def format_rows(rows: list[Row]) -> str:
    """The table verify prints."""
    fields = ("check", "subject", "verdict")
    widths = [max(len(f), *(len(getattr(r, f)) for r in rows)) for f in fields]
    lines = [f"{'check':<{widths[0]}}  {'subject':<{widths[1]}}  {'verdict':<{widths[2]}}  detail"]
    for r in rows:
        lines.append(
            f"{r.check:<{widths[0]}}  {r.subject:<{widths[1]}}  "
            f"{r.verdict:<{widths[2]}}  {r.detail}"
        )
    return "\n".join(lines)


def _command(args: argparse.Namespace) -> int:
    ids = None
    if args.retrain:
        ids = ["all"] if args.retrain == "all" else [s for s in args.retrain.split(",") if s]
    width = terminal.width()
    with terminal.Progress(0, "verify") as bar:  # its total is set once the checks are known

        def show(row: Row) -> None:
            for line in format_row(row, width):
                bar.write(line)

        bar.write(f"{'verdict':<{VERDICT_WIDTH}} check subject: detail")
        rows = verify(args.dir, ids, args.data, args.work, on_row=show, progress=bar)
    failed = [r for r in rows if r.verdict == FAIL]
    counts = {
        v: sum(r.verdict == v for r in rows)
        for v in (PASS, FAIL, NOT_DISTRIBUTED, PLATFORM_DIFFERS)
    }
    print(", ".join(f"{n} {v}" for v, n in counts.items() if n))
    if failed:
        names = ", ".join(sorted({r.subject for r in failed}))
        failed_line = f"verification FAILED: {names}"
        print("\n".join(terminal.wrap(failed_line, width, indent="  ", first="")))
        return 1
    print("verification passed")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``verify`` command."""
    p = subparsers.add_parser(
        "verify",
        help="check a run or published directory",
        description="Check a result without trusting its authors: SHA256SUMS, results.json's "
        "schema, every shipped weights file (digest, architecture, recorded final metrics), "
        "the statistics and prediction differences recomputed, the report re-rendered byte "
        "for byte, and with --retrain trials trained again. One row per check: pass, FAIL, "
        "'not distributed' (weights not shipped) or 'platform differs' (a bit-for-bit "
        "comparison this machine cannot make). Exit status 1 if any check fails.",
    )
    p.add_argument("dir", help="directory with SHA256SUMS and results.json")
    p.add_argument(
        "--retrain",
        default=None,
        metavar="all|ID,ID",
        help="train these trials again and compare (e.g. swish-s42,gelu-s43)",
    )
    p.add_argument("--data", default=None, help="tiny Shakespeare's file (as for run)")
    p.add_argument("--work", default=None, help="where retrained trials go (default: temporary)")
    p.set_defaults(func=_command)
