"""Provenance of every CharLM result file of the study: which configuration produced it, and
the evidence (``artifacts/reference/provenance.json``, schema ``provenance.schema.json``).

Candidates are the study's own configuration classes (``code/config*.py``, read into the raw
data by :mod:`reproduce.rawdata.sources`). Evidence, per activation run of a file:

1. **History length.** train.py evaluates at every iteration ``i`` with
   ``i % eval_interval == 0`` or ``i == max_iters - 1``, so a run's loss history has
   :func:`n_evaluations` points; a candidate is consistent when that equals the file's length.
2. **Step-0 losses across files.** Before the first update the losses depend only on the
   activation, the model's shape, the seed (initial weights) and the evaluation batches
   (``batch_size``, ``block_size``, ``eval_iters``, drawn from the seed's generator). Two runs of
   one activation whose trials have equal step-0 train and val losses seed by seed (within
   :data:`STEP0_TOLERANCE`) share those settings (:data:`STEP0_KEYS`); different ones for the same
   activation and seed do not. A run that shares step-0 losses with a run its history identifies
   must have that run's :data:`STEP0_KEYS`; one that differs from it must not. This assumes one
   model, data and evaluation code for all runs (one repository).
3. **Time per trial.** Reported with each run; for runs of the full run's shape, compared with
   the time the full run's log implies for the run's schedule (:func:`log_costs`): seconds
   per evaluation and per training iteration measured on the full run's machine. It supports a
   schedule; it does not decide one (the other runs' machine is not recorded).
4. **Step-0 losses recomputed under the study protocol** from each remaining candidate: the
   slot ``step0_recomputed``. They come from a store of step-0 evaluations computed beforehand
   (:mod:`reproduce.rawdata.step0`, ``python -m reproduce reference step0``: minutes to hours
   of CPU, so never during an import); a run none of whose candidates' evaluations are all in
   the store keeps the slot null with the reason, never guessed.

Status: **identified** (exactly one candidate consistent with all evidence), **ambiguous**
(several: the candidates are listed; recomputed step-0 losses decide), **unidentified** (none:
what the evidence implies is listed instead).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from reproduce.rawdata.importer import REPOSITORY

__all__ = [
    "FORMAT",
    "STEP0_KEYS",
    "STEP0_TOLERANCE",
    "Recompute",
    "build",
    "candidates",
    "log_costs",
    "n_evaluations",
    "remaining_candidates",
]

FILE = "provenance.json"  # beside study-raw.json
FORMAT = "charlm-repro study provenance"
SCHEMA = "provenance.schema.json"
# the settings a step-0 loss depends on besides activation and seed
STEP0_KEYS = ("n_layer", "n_embd", "n_head", "block_size", "batch_size", "eval_iters")
# the configuration reported for each file (issue 21's list)
REPORTED_KEYS = (*STEP0_KEYS[:4], "max_iters", "eval_interval", "eval_iters", "batch_size")
# nats: the study's code recomputed on a CPU agreed with its GPU records to about 1e-5
# (../shared/original-study/README.md); equal step-0 losses within this are "the same"
STEP0_TOLERANCE = 1e-5
# nats: recomputed step-0 losses agree with a file's within this (issue 20's parity bound)
RECOMPUTED_TOLERANCE = 1e-4
# (candidate's values, study activation name, seed) -> {"train_loss", "val_loss"} or None
Recompute = Callable[[dict, str, int], "dict | None"]
TIME_SUPPORT = 0.25  # |measured / predicted - 1| within this: the time supports the schedule


def n_evaluations(max_iters: int, eval_interval: int) -> int:
    """Points in a loss history of train.py's loop: iterations ``i`` in ``range(max_iters)``
    with ``i % eval_interval == 0`` or ``i == max_iters - 1`` (train.py, train_model)."""
    regular = -(-max_iters // eval_interval)  # ceil: 0, e, 2e, ... below max_iters
    return regular + (0 if (max_iters - 1) % eval_interval == 0 else 1)


def log_costs(raw: dict) -> dict:
    """Seconds per evaluation and per training iteration on the full run's machine, from its
    log: an evaluation is the step-0 line's time of every trial but each run's first (whose
    time includes warm-up); an iteration is the median of (time difference / step difference)
    between consecutive progress lines with no evaluation between them."""
    evals, iters = [], []
    for run in raw["log"]["runs"]:
        for trial in run["trials"][1:]:
            evals.append(trial["evaluations"][0]["time_s"])
        for trial in run["trials"]:
            eval_steps = {e["step"] for e in trial["evaluations"]}
            points = trial["progress"]
            for p, q in zip(points, points[1:], strict=False):
                if not any(p["step"] < s < q["step"] for s in eval_steps):
                    iters.append((q["time_s"] - p["time_s"]) / (q["step"] - p["step"]))
    return {
        "evaluation_s": round(statistics.median(evals), 2),
        "iteration_s": round(statistics.median(iters), 4),
        "from": f"{raw['log']['file']}: median step-0 evaluation time of {len(evals)} trials "
        f"(each run's first trial left out: warm-up) and median time per iteration between "
        f"{len(iters)} pairs of progress lines",
    }


def _step0(run: dict) -> dict[int, tuple[float, float]]:
    return {
        t["seed"]: (t["train_loss_history"][0], t["val_loss_history"][0]) for t in run["trials"]
    }


def _same_step0(a: dict, b: dict) -> bool | None:
    """True: every shared seed has equal step-0 losses; False: some differ; None: no shared
    seed or another activation."""
    if a["activation"] != b["activation"]:
        return None
    sa, sb = _step0(a), _step0(b)
    seeds = sorted(set(sa) & set(sb))
    if not seeds:
        return None
    return all(
        abs(sa[s][0] - sb[s][0]) <= STEP0_TOLERANCE and abs(sa[s][1] - sb[s][1]) <= STEP0_TOLERANCE
        for s in seeds
    )


def _recomputed(run: dict, candidates: list[dict], recompute: Recompute) -> tuple:
    """Per candidate, each trial's step-0 losses from ``recompute`` against the file's
    (agreeing within :data:`RECOMPUTED_TOLERANCE`).

    Returns:
        (rows by candidate name, None) or, when a candidate lacks any trial's evaluation or no
        candidate is left, (None, the reason).
    """
    if not candidates:
        return None, "no candidate left to recompute"
    out, missing = {}, 0
    file_values = _step0(run)
    for cand in candidates:
        rows = []
        for seed, (train, val) in sorted(file_values.items()):
            got = recompute(cand["values"], run["activation"], seed)
            if got is None:
                missing += 1
                continue
            rows.append(
                {
                    "seed": seed,
                    "train_loss": got["train_loss"],
                    "val_loss": got["val_loss"],
                    "agrees": abs(got["train_loss"] - train) <= RECOMPUTED_TOLERANCE
                    and abs(got["val_loss"] - val) <= RECOMPUTED_TOLERANCE,
                }
            )
        out[cand["name"]] = rows
    if missing:
        total = len(candidates) * len(file_values)
        return None, (
            f"not recomputed: {missing} of {total} step-0 evaluations are not in the store "
            "(python -m reproduce reference step0)"
        )
    return out, None


def candidates(raw: dict) -> list[dict]:
    """The study's configuration classes that set every value a run's provenance needs, with
    the length of loss history each gives."""
    out = []
    for cls in raw["configs"]:
        values = cls["values"]
        if not all(k in values for k in (*STEP0_KEYS, "max_iters", "eval_interval")):
            continue
        out.append(
            {
                "name": cls["name"],
                "file": cls["file"],
                "line": cls["line"],
                "values": {k: values[k] for k in REPORTED_KEYS},
                "n_evaluations": n_evaluations(values["max_iters"], values["eval_interval"]),
            }
        )
    return out


def _history_length(run: dict) -> int | None:
    lengths = {len(t["val_loss_history"]) for t in run["trials"]}
    lengths |= {len(t["train_loss_history"]) for t in run["trials"]}
    return lengths.pop() if len(lengths) == 1 else None


def _shape(candidate: dict) -> tuple:
    return tuple(candidate["values"][k] for k in STEP0_KEYS)


def _time_check(run: dict, shape_of: dict, costs: dict, candidates: list[dict]) -> dict:
    """Measured time per trial against the full run's costs for each schedule with the run's
    history length, for a run of the full run's shape."""
    schedules = {
        (c["values"]["max_iters"], c["values"]["eval_interval"])
        for c in candidates
        if c["n_evaluations"] == _history_length(run)
    }
    times = [t["training_time_s"] for t in run["trials"]]
    steady = statistics.median(times[1:] if len(times) > 1 else times)
    checks = []
    for max_iters, interval in sorted(schedules):
        n = n_evaluations(max_iters, interval)
        predicted = n * costs["evaluation_s"] + max_iters * costs["iteration_s"]
        ratio = steady / predicted
        checks.append(
            {
                "max_iters": max_iters,
                "eval_interval": interval,
                "predicted_s": round(predicted, 1),
                "measured_s": round(steady, 1),
                "ratio": round(ratio, 3),
                "supports": abs(ratio - 1) <= TIME_SUPPORT,
            }
        )
    return {"shape": shape_of, "schedules": checks}


def _implied(
    history: int | None, same: list[str], first: dict[str, list[dict]], cands: list[dict]
) -> dict:
    """What the evidence says of an unidentified run's configuration: its history length, the
    step-0 settings of a run it shares step-0 losses with (when that run is identified by its
    history), and the candidates' schedules that give that history."""
    implied: dict[str, Any] = {"n_evaluations": history}
    for other in same:
        if len(first[other]) == 1:
            implied.update(zip(STEP0_KEYS, _shape(first[other][0]), strict=True))
            implied["step0_keys_from"] = other
    schedules = sorted(
        {
            (c["values"]["max_iters"], c["values"]["eval_interval"])
            for c in cands
            if c["n_evaluations"] == history
        }
    )
    implied["schedules_with_that_history"] = [
        {"max_iters": m, "eval_interval": e} for m, e in schedules
    ]
    return implied


def _consistent(
    run: dict, runs: list[dict], first: dict[str, list[dict]]
) -> tuple[list[dict], list[str], list[str], list[str]]:
    """The candidates consistent with a run's history length and with the step-0 losses of
    the other runs (evidence 1 and 2), with the runs it shares and differs in step-0 losses
    from, and notes."""
    same = [r["id"] for r in runs if r is not run and _same_step0(run, r) is True]
    differs = [r["id"] for r in runs if r is not run and _same_step0(run, r) is False]
    consistent = list(first[run["id"]])
    notes = []
    for other in same:
        if len(first[other]) == 1:
            shape = _shape(first[other][0])
            kept = [c for c in consistent if _shape(c) == shape]
            if len(kept) < len(consistent):
                notes.append(
                    f"equal step-0 losses with {other} ({first[other][0]['name']}): "
                    f"{', '.join(f'{k}={v}' for k, v in zip(STEP0_KEYS, shape, strict=True))}"
                )
            consistent = kept
    for other in differs:
        if len(first[other]) == 1:
            shape = _shape(first[other][0])
            consistent = [c for c in consistent if _shape(c) != shape]
    return consistent, same, differs, notes


def _first(raw: dict, cands: list[dict]) -> dict[str, list[dict]]:
    return {
        r["id"]: [c for c in cands if c["n_evaluations"] == _history_length(r)] for r in raw["runs"]
    }


def remaining_candidates(raw: dict) -> list[tuple[dict, list[dict]]]:
    """Each run with the candidates left after evidence 1 and 2: the step-0 evaluations
    that recomputation needs (:mod:`reproduce.rawdata.step0`)."""
    cands = candidates(raw)
    first = _first(raw, cands)
    return [(run, _consistent(run, raw["runs"], first)[0]) for run in raw["runs"]]


def _judge(
    run: dict,
    runs: list[dict],
    first: dict[str, list[dict]],
    cands: list[dict],
    recompute: Recompute,
) -> dict:
    """Status, consistent candidates and the evidence of one run (see the module docstring)."""
    consistent, same, differs, notes = _consistent(run, runs, first)
    recomputed, reason = _recomputed(run, consistent, recompute)
    if recomputed is not None:
        consistent = [c for c in consistent if all(r["agrees"] for r in recomputed[c["name"]])]
    history = _history_length(run)
    evidence: dict[str, Any] = {
        "history_length": {
            "value": history,
            "consistent": [c["name"] for c in first[run["id"]]],
        },
        "step0": {
            "trials": [
                {"seed": s, "train_loss": tr, "val_loss": va}
                for s, (tr, va) in sorted(_step0(run).items())
            ],
            "same_as": same,
            "differs_from": differs,
        },
        "time_per_trial_s": [round(t["training_time_s"], 1) for t in run["trials"]],
        "step0_recomputed": recomputed,
        "step0_recomputed_reason": reason,
    }
    out: dict[str, Any] = {"run": run["id"], "activation": run["activation"]}
    if len(consistent) == 1:
        out["status"] = "identified"
        out["config"] = {"name": consistent[0]["name"], **consistent[0]["values"]}
    elif consistent:
        out["status"] = "ambiguous"
        out["config"] = None
    else:
        out["status"] = "unidentified"
        out["config"] = None
    out["candidates"] = [c["name"] for c in consistent]
    if out["status"] == "unidentified":
        out["implied"] = _implied(history, same, first, cands)
        if "step0_keys_from" in out["implied"]:
            why = f"the step-0 settings of {out['implied']['step0_keys_from']}"
        elif recomputed is not None:
            why = "recomputed step-0 losses that agree with the file's"
        else:
            why = "the rest of the evidence"
        notes.append(f"no candidate has both a {history}-point history and {why}")
    out["evidence"] = evidence
    out["notes"] = notes
    return out


def build(raw: dict, raw_name: str, raw_sha256: str, recompute: Recompute | None = None) -> dict:
    """The provenance document for the raw data ``raw`` (the study-raw document, stored as
    ``raw_name`` with SHA-256 ``raw_sha256``); ``recompute`` gives a candidate's step-0 losses
    for an activation and seed, or None where none were computed (default: none)."""
    recompute = recompute or (lambda values, activation, seed: None)
    cands = candidates(raw)
    runs = raw["runs"]
    first = _first(raw, cands)
    costs = log_costs(raw)
    judged = {r["id"]: _judge(r, runs, first, cands, recompute) for r in runs}
    full_shapes = {
        _shape(first[r["id"]][0])
        for r in runs
        if judged[r["id"]]["status"] == "identified" and r["id"].startswith("full/")
    }
    for run in runs:
        entry = judged[run["id"]]
        implied = entry.get("implied") or {}
        shape = tuple(implied.get(k) for k in STEP0_KEYS)
        if entry["status"] == "identified" and run["id"].startswith("full/"):
            shape = _shape(first[run["id"]][0])
        if shape in full_shapes:
            keys = dict(zip(STEP0_KEYS, shape, strict=True))
            entry["evidence"]["time_check"] = _time_check(run, keys, costs, cands)
        else:
            entry["evidence"]["time_check"] = None
    files = []
    for source in raw["files"]:
        if source["kind"] != "result":
            continue
        entries = [judged[r["id"]] for r in runs if r["file"] == source["path"]]
        files.append({"file": source["path"], "sha256": source["sha256"], "runs": entries})
    return {
        "format": FORMAT,
        "format_version": 1,
        "raw_data": {"file": raw_name, "sha256": raw_sha256},
        "repository": REPOSITORY,
        "rules": {
            "history_length": "train.py evaluates at i % eval_interval == 0 and at "
            "i == max_iters - 1: a candidate is consistent when that count equals the file's "
            "history length",
            "step0": f"equal step-0 train and val losses (within {STEP0_TOLERANCE} nats) for the "
            "same activation and seed mean equal " + ", ".join(STEP0_KEYS) + "; different ones "
            "mean some differ",
            "time": f"time per trial (median of all trials but the first) against the full run's "
            f"measured costs; supports a schedule within {TIME_SUPPORT:.0%}, decides nothing",
            "status": "identified: one candidate consistent with all evidence; ambiguous: "
            "several; unidentified: none",
        },
        "step0_tolerance": STEP0_TOLERANCE,
        "candidates": cands,
        "log_costs": costs,
        "files": files,
        "summary": _summary(judged),
    }


def _summary(judged: dict[str, dict]) -> dict:
    counts: dict[str, int] = {}
    for entry in judged.values():
        counts[entry["status"]] = counts.get(entry["status"], 0) + 1
    return {
        "runs": len(judged),
        **{k: counts.get(k, 0) for k in ("identified", "ambiguous", "unidentified")},
        "step0_recomputed": _recomputed_summary(judged),
    }


def _recomputed_summary(judged: dict[str, dict]) -> str:
    """``"for 9 of 14 runs with candidates"``: the runs whose candidates' step-0 losses were
    all recomputed."""
    with_candidates = [
        e
        for e in judged.values()
        if e["evidence"]["step0_recomputed_reason"] != "no candidate left to recompute"
    ]
    done = sum(e["evidence"]["step0_recomputed"] is not None for e in with_candidates)
    return f"for {done} of {len(with_candidates)} runs with candidates"
