"""``python -m reproduce verify DIR [--retrain all|ID,ID]``: check a result without trusting us.

One row per check, with a verdict:

- ``pass`` / ``FAIL``;
- ``not distributed``: weights that were not shipped (their digests stay in results.json);
  never a failure and never a pass;
- ``claim``: a number a reader sees that nothing here can check (timings; a sample or curve
  whose evidence was not shipped); never a failure and never a pass;
- ``platform differs``: a bit-for-bit comparison that this machine cannot make (what differs is
  named); a retrained trial must then fall within :data:`TOLERANCES`, derived from a measured
  cross-platform spread (:mod:`reproduce.verification.tolerance`). After such retrains verify
  says the tolerance, its source, what the measurement does not cover (bf16, GPUs) and which
  of the report's rankings a retrain on another platform cannot confirm.

The checks live in :mod:`reproduce.verification`, one module per concern: integrity and
containment (the directory's layout, SHA256SUMS, results.json's schema, trial ids built from
their records, the weights files; nothing outside the directory is read); every number a
reader sees (curves against the shipped logs, final metrics re-evaluated from the weights with
:data:`METRIC_TOLERANCES`, samples regenerated, timings marked as claims); analysis (the
statistics recomputed to :data:`RELATIVE_TOLERANCE`, the prediction differences when all
weights are present, the report re-rendered byte for byte when the rendering stack matches).
This module runs them, and retrains (named trials trained again from their records:
bit-identical weights and final metrics on the same platform, metrics within
:data:`TOLERANCES` on another; their curve, best and sample compared by
:mod:`reproduce.verification.retrained`). The last line says what was verified and what could
not be. Exit status 1 if any check fails.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from charlm import platforms
from charlm.data import TINY_SHAKESPEARE_SHA256, Corpus, resolve_data_path
from charlm.train import RECORD_FILE
from reproduce import terminal
from reproduce.errors import UserError
from reproduce.options import add_data_option
from reproduce.verification.integrity import check_integrity, check_trial_dirs
from reproduce.verification.numbers import (
    METRIC_TOLERANCES,
    check_consistency,
    check_logs,
    check_metrics,
    check_samples,
    timing_claims,
)
from reproduce.verification.recompute import RELATIVE_TOLERANCE, check_analysis
from reproduce.verification.retrain import (
    TOLERANCES,
    judge_retrain,
    outlook_line,
    retrain,
    retrain_outlook,
)
from reproduce.verification.retrained import retrained_rows
from reproduce.verification.rows import (
    FAIL,
    NOT_DISTRIBUTED,
    NOT_VERIFIABLE,
    PASS,
    PLATFORM_DIFFERS,
    VERDICT_WIDTH,
    Row,
    format_row,
    format_rows,
    summary,
)
from reproduce.verification.tolerance import tolerance_line

__all__ = [
    "TOLERANCES",
    "METRIC_TOLERANCES",
    "RELATIVE_TOLERANCE",
    "PASS",
    "FAIL",
    "NOT_DISTRIBUTED",
    "PLATFORM_DIFFERS",
    "NOT_VERIFIABLE",
    "Row",
    "format_row",
    "format_rows",
    "judge_retrain",
    "outlook_line",
    "parse_retrain",
    "retrain",
    "retrain_outlook",
    "verify",
    "register",
]


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


def verify(
    directory: str | Path,
    retrain_ids: list[str] | None = None,
    data_path: str | None = None,
    work: str | Path | None = None,
    on_row: Callable[[Row], None] | None = None,
    progress: terminal.Progress | bool | None = False,
    on_note: Callable[[str], None] | None = None,
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
        on_note: called, after the retrained trials' rows, with what a retrain judged on
            another platform can show (:func:`reproduce.verification.tolerance.tolerance_line`:
            the tolerance, its source, the rankings it cannot confirm), if any was.

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
    add(check_consistency(data))
    add(check_logs(directory, data))
    intact = {r.subject for r in rows if r.check == "weights" and r.verdict == PASS}
    corpus = None
    if intact or retrain_ids:
        try:
            corpus = _corpus(data, data_path)
        except (OSError, ValueError) as exc:
            raise UserError(f"{exc} (verify evaluates shipped weights on it)") from None
    evaluated = [t["id"] for t in data["trials"] if t["id"] in intact]
    again = ids if retrain_ids else []
    pieces = len(evaluated) + 2 + len(again)
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
            bar.step("regenerating the samples", plain=False)
        # the lowest seed's intact weights: the metrics row checked its vocabulary
        sound = {r.subject for r in rows if r.check == "metrics" and r.verdict == PASS}
        add(check_samples(directory, data, sound, _sample_platform))
        add(timing_claims(data))
        if bar is not None:
            bar.step("recomputing the statistics, prediction differences and report")
        add(check_analysis(directory, data, corpus, intact))
        if again:
            with tempfile.TemporaryDirectory(prefix="charlm-verify-") as tmp:
                where = Path(work) if work is not None else Path(tmp)
                say = None
                if bar is not None:

                    def say(line: str) -> None:
                        for part in terminal.wrap(line, terminal.width(), indent="    "):
                            bar.write(part)

                by_id = {t["id"]: t for t in data["trials"]}
                judged = []  # the platforms of retrains judged within the tolerance
                for trial_id in again:
                    if bar is not None:
                        bar.step(f"retraining {trial_id}")
                    verdicts = retrain(data, [trial_id], corpus, where, log=say)
                    add(verdicts)
                    trial, verdict = by_id[trial_id], verdicts[-1].verdict
                    add(retrained_rows(data, trial, where / trial_id, verdict))
                    record = json.loads(
                        (where / trial_id / RECORD_FILE).read_text(encoding="utf-8")
                    )
                    here = record["environment"]
                    if verdict != PASS and not platforms.compare(trial["environment"], here).same:
                        judged += [trial["environment"], here]
                if judged and on_note is not None:
                    on_note(tolerance_line(data, judged))
    finally:
        if own:
            bar.close()
    return rows


def _sample_platform(trial: dict) -> list[str]:
    """What differs between the platform a trial's sample was drawn on (its training
    platform; the sample's thread count is results.json's render threads, also used here)
    and this one."""
    recorded = trial["environment"]
    here = platforms.record(torch.device("cpu"), recorded["precision"], recorded["threads"])
    match = platforms.compare(recorded, here)
    return [] if match.same else [match.describe()]


def parse_retrain(value: str | None) -> list[str] | None:
    """``--retrain``'s value as :func:`verify` takes it: None, ``["all"]`` or trial ids.

    Raises:
        UserError: a value that names no trial (``","``, spaces).
    """
    if value is None:
        return None
    if value.strip() == "all":
        return ["all"]
    ids = [s.strip() for s in value.split(",") if s.strip()]
    if not ids:
        raise UserError(f"--retrain {value!r} names no trial; give all or ids like relu-s42")
    return ids


def _command(args: argparse.Namespace) -> int:
    ids = parse_retrain(args.retrain)
    width = terminal.width()
    with terminal.Progress(0, "verify") as bar:  # its total is set once the checks are known

        def show(row: Row) -> None:
            for line in format_row(row, width):
                bar.write(line)

        def note(line: str) -> None:
            for part in terminal.wrap(f"note: {line}", width, indent="  ", first=""):
                bar.write(part)

        bar.write(f"{'verdict':<{VERDICT_WIDTH}} check subject: detail")
        rows = verify(args.dir, ids, args.data, args.work, on_row=show, progress=bar, on_note=note)
    n_trials = sum(r.check == "weights" for r in rows) or None
    for line in terminal.wrap(summary(rows, n_trials), width, indent="  ", first=""):
        print(line)
    failed = [r for r in rows if r.verdict == FAIL]
    if failed:
        names = ", ".join(sorted({r.subject for r in failed}))
        failed_line = f"verification FAILED: {names}"
        print("\n".join(terminal.wrap(failed_line, width, indent="  ", first="")))
        return 1
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``verify`` command."""
    p = subparsers.add_parser(
        "verify",
        help="check a run or published directory",
        description="Check a result without trusting its authors, reading nothing outside "
        "DIR: SHA256SUMS, results.json's schema and trial ids, the curves against the shipped "
        "logs, every shipped weights file (digest, vocabulary, architecture, recorded final "
        "metrics, samples), the statistics and prediction differences recomputed, the report "
        "re-rendered byte for byte, and with --retrain trials trained again. One row per "
        "check: pass, FAIL, 'not distributed' (weights not shipped), 'claim' (nothing can "
        "check it: timings) or 'platform differs' (a bit-for-bit comparison this machine "
        "cannot make). The last line says what was verified and what could not be. Exit "
        "status 1 if any check fails.",
    )
    p.add_argument("dir", help="directory with SHA256SUMS and results.json")
    p.add_argument(
        "--retrain",
        default=None,
        metavar="all|ID,ID",
        help="train these trials again and compare (e.g. swish-s42,gelu-s43)",
    )
    add_data_option(p)
    p.add_argument("--work", default=None, help="where retrained trials go (default: temporary)")
    p.set_defaults(func=_command)
