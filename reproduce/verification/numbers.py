"""Every number a reader sees, checked against what can check it or marked as a claim.

- **the records** (:func:`check_consistency`): a trial's final metrics are its curve's last
  evaluation, its best its curve's lowest val_loss (the trainer writes them so,
  :func:`charlm.train.train_trial`), its parameter count its model's (counted on the meta
  device, nothing allocated) and its corpus sizes results.json's;
- **the shipped logs** (:func:`check_logs`): results.json's curves equal, value for value, the
  ``log.jsonl`` each trial wrote while training, read from ``logs.tar.gz`` (a publication) or
  ``trials/<id>/log.jsonl`` (a run directory) without extracting anything;
- **the weights** (:func:`check_metrics`): the header's vocabulary equals the corpus's and the
  final metrics are re-evaluated from the tensors;
- **the samples** (:func:`check_samples`): regenerated from the shipped weights with the
  recorded sampling options;
- **timings** (:func:`timing_claims`): wall times, elapsed seconds and tokens/s were measured on
  the authors' machine; nothing can check them, so they are shown as claims.

Logs and weights are evidence of the same run, so a forgery must change them consistently,
which their digests (in results.json and SHA256SUMS) and the re-evaluation prevent for the
weights; logs are as forgeable as results.json itself, so they catch careless forgeries and
a retrain (``--retrain``) catches the rest.
"""

from __future__ import annotations

import json
import math
import tarfile
from collections.abc import Callable
from pathlib import Path

import torch

from charlm.checkpoint import load_weights
from charlm.data import Corpus
from charlm.metrics import EvalSet, evaluate
from charlm.model import CharLM, ModelConfig
from charlm.sample import SEED_MAX, sample_text
from charlm.study.model import StudyCharLM
from charlm.train import LOG_FILE
from reproduce import protocols
from reproduce.sweep import TRIALS_DIR
from reproduce.verification.integrity import weights_path
from reproduce.verification.paths import UnsafePath, inside, read_bounded, regular_file
from reproduce.verification.rows import FAIL, NOT_VERIFIABLE, PASS, PLATFORM_DIFFERS, Row

__all__ = [
    "METRIC_TOLERANCES",
    "TIMING_KEYS",
    "MAX_SAMPLE_TOKENS",
    "check_consistency",
    "check_logs",
    "check_metrics",
    "check_samples",
    "timing_claims",
    "read_logs",
    "curve_without_timings",
]

# Recorded final metrics vs the shipped weights evaluated here (CPU), by the precision the trial
# was evaluated in: fp32 differs only in summation order; bf16 autocast differs by kernel.
METRIC_TOLERANCES = {
    "fp32": {"loss": 1e-4, "accuracy": 0.01},  # nats, percentage points
    "bf16": {"loss": 0.01, "accuracy": 0.2},
}
TIMING_KEYS = ("elapsed_s", "tokens_per_s")  # in curve points; trials add wall_time_s
FINAL_KEYS = ("step", "train_loss", "val_loss", "train_accuracy", "val_accuracy")
LOGS_ARCHIVE = "logs.tar.gz"  # reproduce.publish's
MAX_LOG_BYTES = 64 << 20  # one trial's log.jsonl (a 5,000-step trial's is ~20 kB)
MAX_LOGS_BYTES = 512 << 20  # all of them, decompressed
MAX_LAYERS = 10_000  # a model counted from an untrusted record (the study's has 6)
MAX_SAMPLE_TOKENS = 100_000  # a sample regenerated from untrusted options (reports use 300)
SAMPLE_OPTIONS = ("tokens", "temperature", "top_k", "sample_seed")


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _jsonl(payload: bytes, what: str) -> list[dict]:
    try:
        lines = payload.decode("utf-8").splitlines()
        records = [json.loads(line, parse_constant=_refuse_constant) for line in lines if line]
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ValueError(f"{what} is not JSON lines ({exc})") from None
    if not all(isinstance(r, dict) for r in records):
        raise ValueError(f"{what} holds a line that is not a JSON object")
    return records


def curve_without_timings(curve: list[dict]) -> list[dict]:
    """A curve with its timing fields (:data:`TIMING_KEYS`) left out: what a retrain on any
    machine must give again."""
    return [{k: v for k, v in point.items() if k not in TIMING_KEYS} for point in curve]


def check_consistency(data: dict) -> list[Row]:
    """One row: every trial's final metrics are its curve's last point, its best is the curve's
    lowest val_loss (the first, on a tie), its parameter count is its model's, and its corpus
    is results.json's."""
    problems = []
    for trial in data["trials"]:
        problems += [f"{trial['id']}: {p}" for p in _trial_problems(trial, data["data"])]
    detail = (
        "; ".join(problems[:3])
        if problems
        else "final, best, parameter counts and corpus as the records give them"
    )
    return [Row("records", "results.json", FAIL if problems else PASS, detail)]


def _trial_problems(trial: dict, corpus: dict) -> list[str]:
    """What in one trial's record disagrees with the rest of it. A study-protocol trial's
    final metrics come from its evaluation after training and its accuracy windows, not from
    its curve, whose skipped evaluations have no losses (:mod:`charlm.study`)."""
    curve, problems = trial["curves"], []
    study = protocols.is_study(trial)
    if not study and any(curve[-1].get(k) != trial["final"].get(k) for k in FINAL_KEYS):
        problems.append("final is not the curve's last evaluation")
    scored = [p for p in curve if p.get("val_loss") is not None]
    if study:  # its evaluation after training counts too (charlm.study.train)
        scored.append(
            {"step": trial["final"].get("step"), "val_loss": trial["final"].get("val_loss")}
        )
    if scored:
        lowest = min(scored, key=lambda p: p["val_loss"])
        if trial["best"] != {"step": lowest["step"], "val_loss": lowest["val_loss"]}:
            problems.append("best is not the curve's lowest val_loss")
    if any(trial["data"].get(k) != corpus.get(k) for k in ("n_train", "n_val", "vocab_size")):
        problems.append("its corpus is not results.json's")
    try:
        config = ModelConfig.from_dict(trial["model"])
        if config.n_layer > MAX_LAYERS:
            raise ValueError(f"n_layer {config.n_layer} is more than {MAX_LAYERS}")
        with torch.device("meta"):  # counted, not allocated
            n_params = (StudyCharLM if study else CharLM)(config).num_parameters()
    except (TypeError, ValueError) as exc:
        return [*problems, f"its model cannot be built ({exc})"]
    if n_params != trial["n_params"]:
        problems.append(f"n_params {trial['n_params']:,}, its model has {n_params:,}")
    return problems


def read_logs(directory: Path, ids: list[str]) -> tuple[dict[str, list[dict]], str]:
    """Each trial's ``log.jsonl`` records and where they were read: ``logs.tar.gz`` (read in
    memory, bounded, nothing extracted) or ``trials/<id>/log.jsonl`` of a run directory.

    Returns:
        (trial id -> records; only the logs found), the source's name ("" if none).

    Raises:
        ValueError: an unreadable archive, a member that is not one of ``ids``' logs, a log
            given twice, too large, or not JSON lines (the member is named).
    """
    archive = directory / LOGS_ARCHIVE
    if regular_file(archive):
        return _read_archive(archive, set(ids)), LOGS_ARCHIVE
    found = {}
    for trial_id in ids:
        path = inside(directory, f"{TRIALS_DIR}/{trial_id}/{LOG_FILE}", f"trial {trial_id}")
        if regular_file(path):
            payload = read_bounded(path, MAX_LOG_BYTES, "the log")
            found[trial_id] = _jsonl(payload, str(path.relative_to(directory)))
    return found, f"{TRIALS_DIR}/<id>/{LOG_FILE}" if found else ""


def _read_archive(archive: Path, ids: set[str]) -> dict[str, list[dict]]:
    expected = {f"{TRIALS_DIR}/{i}/{LOG_FILE}": i for i in ids}
    found, total = {}, 0
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            for member in tar:
                name = member.name
                if name not in expected or not member.isfile():
                    raise ValueError(f"{archive.name}: {name!r} is not a log of results.json")
                if expected[name] in found:
                    raise ValueError(f"{archive.name}: {name!r} is given twice")
                total += member.size
                if member.size > MAX_LOG_BYTES or total > MAX_LOGS_BYTES:
                    raise ValueError(f"{archive.name}: {name!r} is larger than a log can be")
                handle = tar.extractfile(member)
                payload = handle.read(member.size) if handle is not None else b""
                found[expected[name]] = _jsonl(payload, f"{archive.name}: {name}")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ValueError(f"{archive.name} is not a readable .tar.gz ({exc})") from None
    return found


def check_logs(directory: Path, data: dict) -> list[Row]:
    """One row: results.json's curves equal the shipped logs value for value (a curve whose
    log was not shipped is a claim)."""
    ids = [t["id"] for t in data["trials"]]
    try:
        logs, source = read_logs(directory, ids)
    except (ValueError, UnsafePath) as exc:
        return [Row("logs", LOGS_ARCHIVE, FAIL, str(exc))]
    if not logs:
        detail = "no training logs shipped: the curves are the authors' claim"
        return [Row("logs", "curves", NOT_VERIFIABLE, detail)]
    differ = [t["id"] for t in data["trials"] if t["id"] in logs and logs[t["id"]] != t["curves"]]
    missing = [i for i in ids if i not in logs]
    if differ:
        detail = f"results.json's curves differ from {source} for {', '.join(differ[:4])}"
        return [Row("logs", source, FAIL, detail)]
    if missing:
        detail = f"no log for {', '.join(missing[:4])}: a publication ships every trial's"
        return [Row("logs", source, FAIL, detail)]
    return [Row("logs", source, PASS, f"{len(logs)} trials' curves equal to their logs")]


def timing_claims(data: dict) -> list[Row]:
    """One row marking the timings (wall time, elapsed seconds, tokens/s) as claims."""
    trials = data["trials"]
    detail = (
        f"wall_time_s, tokens_per_s and curves' elapsed_s of {len(trials)} trials were "
        "measured on the authors' machine: no file here can confirm them"
    )
    return [Row("timings", "results.json", NOT_VERIFIABLE, detail)]


def _vocabulary_problem(chars: str, corpus: Corpus) -> str | None:
    if chars == corpus.chars:
        return None
    if sorted(chars) == sorted(corpus.chars):
        moved = [i for i, (a, b) in enumerate(zip(chars, corpus.chars, strict=True)) if a != b]
        return f"the weights header's vocabulary is the corpus's reordered (positions {moved[:4]})"
    return "the weights header's vocabulary is not the corpus's"


def check_metrics(directory: Path, data: dict, corpus: Corpus, intact: set[str]) -> list[Row]:
    """Evaluate the weights of every ``intact`` trial (shipped, matching its digest, loading
    into its architecture) on the val split and the train sample and compare with the trial's
    recorded final metrics (:data:`METRIC_TOLERANCES`); their header's vocabulary must be the
    corpus's (it decodes every sample)."""
    rows = []
    for trial in data["trials"]:
        if trial["id"] not in intact:
            continue
        weights = weights_path(directory, trial)
        model, chars = load_weights(weights)
        problem = _vocabulary_problem(chars, corpus)
        if problem:
            rows.append(Row("metrics", trial["id"], FAIL, problem))
            continue
        if protocols.is_study(trial):  # its final metrics come from the study's random batches
            tolerance = METRIC_TOLERANCES[trial["train"]["precision_used"]]
            ok, detail = protocols.study_final_metrics(trial, weights, corpus, tolerance)
            rows.append(Row("metrics", trial["id"], PASS if ok else FAIL, detail))
            continue
        torch.set_num_threads(trial["train"]["threads"])  # the summation order of the record
        beyond, worst = _evaluate_against(model, trial, corpus)
        detail = "; ".join(beyond) or "final metrics re-evaluated from the weights: " + (
            f"loss off by {worst:.2g} nats" if worst else "equal to the record"
        )
        rows.append(Row("metrics", trial["id"], FAIL if beyond else PASS, detail))
    return rows


def _evaluate_against(model, trial: dict, corpus: Corpus) -> tuple[list[str], float]:
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
                    f"{split}_{metric} recorded {recorded:.6g}, the weights give {here[metric]:.6g}"
                )
    return beyond, worst


def sample_option_problem(sample: dict, chars: str) -> str | None:
    """Why a recorded sample's options cannot be used to regenerate it (bounded work from
    untrusted input), or None."""
    tokens, temperature = sample.get("tokens"), sample.get("temperature")
    top_k, seed, prompt = sample.get("top_k"), sample.get("sample_seed"), sample.get("prompt")
    if not isinstance(tokens, int) or not 0 <= tokens <= MAX_SAMPLE_TOKENS:
        return f"tokens {tokens!r} is not an integer from 0 to {MAX_SAMPLE_TOKENS:,}"
    if not isinstance(temperature, int | float) or not (
        math.isfinite(temperature) and temperature > 0
    ):
        return f"temperature {temperature!r} is not a positive finite number"
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        return f"top_k {top_k!r} is not a positive integer"
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= SEED_MAX:
        return f"sample_seed {seed!r} is not an integer from 0 to 2**64 - 1"
    if not isinstance(prompt, str) or not prompt or len(prompt) > MAX_SAMPLE_TOKENS:
        return "the prompt is empty or too long"
    if set(prompt) - set(chars):
        outside = sorted(set(prompt) - set(chars))
        return f"the prompt has characters outside the vocabulary: {outside}"
    return None


def regenerate(sample: dict, weights: Path) -> str:
    """The text :func:`reproduce.analysis.samples` wrote for ``sample``'s options, from
    ``weights`` (whose options passed :func:`sample_option_problem`)."""
    model, chars = load_weights(weights)
    return sample_text(
        model,
        chars,
        sample["prompt"],
        sample["tokens"],
        sample["temperature"],
        sample["top_k"],
        sample["sample_seed"],
    )


def check_samples(
    directory: Path, data: dict, intact: set[str], platform_differs: Callable[[dict], list[str]]
) -> list[Row]:
    """One row per group's sample: regenerated from its lowest seed's shipped weights and
    compared character for character; ``platform differs`` where the texts differ and
    ``platform_differs(trial)`` names what differs between the trial's platform and this one
    (a last-bit difference in the logits can change a drawn character)."""
    torch.set_num_threads(data["render"]["threads"])  # as the run's samples were drawn
    by_group: dict[str, list[dict]] = {}
    for trial in data["trials"]:
        by_group.setdefault(trial["group"], []).append(trial)
    rows = []
    for group, sample in sorted(data["samples"].items()):
        trials = by_group.get(group)
        if not trials:
            rows.append(Row("sample", group, FAIL, "no trial of results.json has this group"))
            continue
        source = min(trials, key=lambda t: t["seed"])
        if sample.get("seed") != source["seed"]:
            detail = (
                f"recorded from seed {sample.get('seed')!r}, the group's lowest is {source['seed']}"
            )
            rows.append(Row("sample", group, FAIL, detail))
            continue
        if source["id"] not in intact:
            detail = f"{source['id']}'s weights not shipped or not sound: the text is a claim"
            rows.append(Row("sample", group, NOT_VERIFIABLE, detail))
            continue
        rows.append(_sample_row(directory, group, sample, source, platform_differs))
    return rows


def _sample_row(directory, group, sample, trial, platform_differs) -> Row:
    if any(k not in sample for k in SAMPLE_OPTIONS):
        detail = "its sampling options are not recorded (an older results.json): a claim"
        return Row("sample", group, NOT_VERIFIABLE, detail)
    weights = weights_path(directory, trial)
    _, chars = load_weights(weights)
    problem = sample_option_problem(sample, chars)
    if problem:
        return Row("sample", group, FAIL, f"cannot be regenerated: {problem}")
    text = regenerate(sample, weights)
    return compare_sample(group, sample["text"], text, platform_differs(trial))


def compare_sample(group: str, recorded: str, text: str, differs: list[str]) -> Row:
    """The row for a recorded sample against one generated here (from shipped or retrained
    weights); ``differs`` names what differs between the platforms (empty: the same)."""
    if text == recorded:
        return Row("sample", group, PASS, "regenerated character for character")
    at = next((i for i, (a, b) in enumerate(zip(text, recorded, strict=False)) if a != b), None)
    at = min(len(text), len(recorded)) if at is None else at
    detail = f"the weights give another text from character {at}"
    if differs:
        return Row("sample", group, PLATFORM_DIFFERS, f"{detail} ({'; '.join(differs)})")
    return Row("sample", group, FAIL, detail)
