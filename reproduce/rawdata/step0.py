"""Step-0 losses recomputed under the study protocol for the provenance of the study's files
(``artifacts/reference/step0-recomputed.json``, schema ``step0-recomputed.schema.json``).

A result file's step-0 losses depend only on the activation, the seed, the model's shape and
the evaluation batches (``batch_size``, ``block_size``, ``eval_iters``, drawn from the seed's
generator): :func:`charlm.study.train.step0_losses` recomputes them for any candidate
configuration, and a candidate whose losses disagree with the file's (beyond 1e-4 nats) did
not produce it. Each evaluation costs 2 x ``eval_iters`` forward batches: seconds for the
study's CPU config, about a minute for its lite config, 5 minutes for its partial config and
35 minutes for its full config on two Zen 3 cores. So they are computed once, by
``python -m reproduce reference step0`` (resumable: each evaluation is stored as soon as it is
done), and ``reference import`` reads them from this store (:func:`Store.lookup`).

The full scale's ReLU evaluations may also come from ``python -m reproduce parity --out FILE``
(the same computation): ``reference step0 --parity FILE`` stores them with that file as their
source. So may a study-protocol sweep's fp32 trials (``reference step0 --trials DIR``,
:func:`from_trials`): a trial's first evaluation is this computation (the same model
construction and stream, :mod:`charlm.study.train`), and its record keeps the losses and the
initial weights' digest; the three that were also recomputed here agree bit for bit
(tests/test_rawdata_recomputed.py).
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch

from charlm import platforms
from charlm.data import TINY_SHAKESPEARE_SHA256, Corpus
from charlm.io import atomic_write_json
from charlm.model import ModelConfig
from charlm.study.train import step0_losses
from reproduce import results
from reproduce.rawdata.provenance import RECOMPUTED_TOLERANCE, STEP0_KEYS, remaining_candidates

__all__ = [
    "FILE",
    "FORMAT",
    "SCHEMA",
    "Store",
    "disagreement",
    "key",
    "from_parity",
    "from_trials",
    "needed",
    "our_activation",
    "trial_shape",
]

FILE = "step0-recomputed.json"
FORMAT = "charlm-repro study step-0 recomputed"
SCHEMA = "step0-recomputed.schema.json"
# the study's activation names -> ours (its config.py ACTIVATIONS, smelu_05 and smelu_1)
STUDY_TO_OURS = {"smelu_05": "smelu-0.5", "smelu_1": "smelu-1.0"}
# the study's dropout sites (model.py: attention probabilities, after the projections) and
# rate (every config*.py); neither changes an evaluation in eval mode, both shape the model
STUDY_MODEL = {"dropout": 0.2, "bias": True, "dropout_sites": ("attention", "residual")}


def our_activation(study_name: str) -> str:
    """Our name of a study activation (``smelu_05`` -> ``smelu-0.5``; others unchanged)."""
    return STUDY_TO_OURS.get(study_name, study_name)


def _key(values: dict, activation: str, seed: int) -> tuple:
    return (*(int(values[k]) for k in STEP0_KEYS), activation, int(seed))


def key(entry: dict) -> tuple:
    """The store's key of an item (:func:`needed`) or entry: shape, activation, seed."""
    return _key(entry, entry["activation"], entry["seed"])


def cost(values: dict) -> float:
    """Relative cost of one step-0 evaluation: forward multiply-adds of 2 x ``eval_iters``
    batches (weights 12 n_embd^2 per layer and token, attention 2 block_size n_embd), for
    ordering the work cheapest first."""
    per_token = values["n_layer"] * (
        12 * values["n_embd"] ** 2 + 2 * values["block_size"] * values["n_embd"]
    )
    return 2.0 * values["eval_iters"] * values["batch_size"] * values["block_size"] * per_token


class Store:
    """The stored evaluations, keyed by shape (:data:`STEP0_KEYS`), activation and seed.

    Args:
        path: the store's JSON file; a missing file is an empty store.

    Raises:
        ValueError: the file is not valid JSON or fails its schema (one line naming it).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.entries: dict[tuple, dict] = {}
        if self.path.is_file():
            try:
                doc = json.loads(self.path.read_text(encoding="utf-8"))
                results.validate(doc, SCHEMA)
            except (json.JSONDecodeError, ValueError) as exc:
                raise ValueError(f"{self.path}: {exc}; delete it to recompute") from None
            for entry in doc["evaluations"]:
                self.entries[_key(entry, entry["activation"], entry["seed"])] = entry

    def lookup(self, values: dict, activation: str, seed: int) -> dict | None:
        """The stored losses of ``activation`` (the study's name) and ``seed`` under a
        candidate's ``values``, or None (the :data:`provenance.Recompute` interface)."""
        return self.entries.get(_key(values, activation, seed))

    def seconds_per_cost(self) -> tuple[float | None, str]:
        """Seconds per unit of :func:`cost` on this CPU, from the stored evaluations computed
        on a platform described as this one, and what that estimate is based on."""
        here = platforms.describe(platforms.record(torch.device("cpu"), "fp32", 2))
        mine = [e for e in self.entries.values() if e["platform"] == here]
        if not mine:
            return None, "no time estimate until one evaluation is stored from this CPU"
        rate = sum(e["seconds"] for e in mine) / sum(cost(e) for e in mine)
        return rate, (
            f"times estimated from the {len(mine)} stored on this CPU ({here}), "
            "scaled by arithmetic"
        )

    def add(self, entry: dict) -> None:
        """Store one evaluation and write the file atomically (sorted, so the same
        evaluations always give the same bytes)."""
        self.entries[_key(entry, entry["activation"], entry["seed"])] = entry
        doc = {
            "format": FORMAT,
            "format_version": 1,
            "tolerance_note": "the study's GPU records and these CPU evaluations agree to "
            "about 1e-5 nats (README, The study protocol)",
            "evaluations": [self.entries[k] for k in sorted(self.entries, key=str)],
        }
        results.validate(doc, SCHEMA)
        atomic_write_json(self.path, doc)


def needed(raw: dict) -> list[dict]:
    """Every step-0 evaluation the provenance of ``raw`` (study-raw.json) can use: for each
    run, each remaining candidate (:func:`provenance.remaining_candidates`) x the run's
    seeds; one entry per distinct shape, activation and seed, cheapest first.

    Returns:
        ``[{"config": name, **values, "activation": study name, "seed", "runs": [ids]}]``.
    """
    found: dict[tuple, dict] = {}
    for run, cands in remaining_candidates(raw):
        for cand in cands:
            for trial in run["trials"]:
                key = _key(cand["values"], run["activation"], trial["seed"])
                item = found.setdefault(
                    key,
                    {
                        "config": cand["name"],
                        **{k: cand["values"][k] for k in STEP0_KEYS},
                        "activation": run["activation"],
                        "seed": trial["seed"],
                        "runs": [],
                    },
                )
                item["runs"].append(run["id"])
    return sorted(found.values(), key=lambda e: (cost(e), str(_key(e, e["activation"], e["seed"]))))


def compute(
    item: dict, corpus: Corpus, threads: int = 2, on_batch: Callable[[], None] | None = None
) -> dict:
    """One step-0 evaluation under the study protocol on this CPU, in fp32, as a store entry
    (losses, the initial weights' SHA-256, seconds, this platform in words, the date)."""
    config = ModelConfig(
        n_layer=item["n_layer"],
        n_head=item["n_head"],
        n_embd=item["n_embd"],
        block_size=item["block_size"],
        vocab_size=corpus.vocab_size,
        activation=our_activation(item["activation"]),
        **STUDY_MODEL,
    )
    started = time.perf_counter()
    got = step0_losses(
        config, corpus, item["seed"], item["eval_iters"], item["batch_size"], threads, on_batch
    )
    env = platforms.record(torch.device("cpu"), "fp32", threads)
    return _entry(
        item,
        got,
        time.perf_counter() - started,
        platforms.describe(env),
        datetime.date.today().isoformat(),
        "python -m reproduce reference step0",
    )


def _matched(items: list[dict], by_key: dict[tuple, dict]) -> list[tuple[dict, dict]]:
    """``(item, what by_key holds for it)`` for each of ``items`` that ``by_key`` (keyed by
    :func:`_key`) holds, in ``items``' order."""
    return [(item, by_key[key(item)]) for item in items if key(item) in by_key]


def _entry(item: dict, losses: dict, seconds: float, platform: str, date: str, source: str) -> dict:
    """A store entry: ``item``'s configuration, shape, activation and seed, ``losses``'
    ``train_loss``, ``val_loss`` (nats) and ``init_sha256``, and where they came from."""
    return {
        **{k: item[k] for k in ("config", *STEP0_KEYS, "activation", "seed")},
        "train_loss": losses["train_loss"],
        "val_loss": losses["val_loss"],
        "init_sha256": losses["init_sha256"],
        "seconds": round(seconds, 1),
        "platform": platform,
        "date": date,
        "source": source,
    }


def from_parity(doc: dict, name: str, items: list[dict]) -> list[dict]:
    """Store entries for the evaluations of ``items`` (:func:`needed`) that a parity output
    ``doc`` (``python -m reproduce parity --out``, file ``name``) holds: matched by the scale's
    shape, activation and seed. Raises ValueError for a file that is not a parity output."""
    from reproduce.parity import SCALES, STUDY_NAMES

    if not isinstance(doc, dict) or "scale" not in doc or "results" not in doc:
        raise ValueError(f"{name}: not an output of python -m reproduce parity --out")
    order = ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "eval_iters")
    shapes = {scale: dict(zip(order, key, strict=True)) for key, scale in SCALES.items()}
    shape = shapes[doc["scale"]]
    by_key = {}
    for r in doc["results"]:
        study_name = STUDY_NAMES.get(r["activation"], r["activation"])
        by_key[_key(shape, study_name, r["seed"])] = r
    out = []
    for item, r in _matched(items, by_key):
        out.append(
            _entry(
                item,
                r,
                r["seconds"],
                doc.get("platform", "not recorded"),
                doc.get("date", "not recorded"),
                f"python -m reproduce parity --out {name}",
            )
        )
    return out


def trial_shape(trial: dict) -> dict | None:
    """A trial's step-0 shape (:data:`STEP0_KEYS`), or None where its first evaluation is not
    the one :func:`compute` makes: another protocol, precision, corpus or model, or an
    evaluation batch other than the training batch (the study evaluates with ``batch_size``)."""
    model, train = trial["model"], trial["train"]
    same = (
        trial.get("protocol") == "study"
        and train.get("precision_used") == "fp32"
        and train.get("device_used") == "cpu"
        and trial["data"]["sha256"] == TINY_SHAKESPEARE_SHA256
        and trial.get("data_seed") == trial["seed"]
        and train["eval_batch_size"] == train["batch_size"]
        and all(model.get(k) == v for k, v in STUDY_MODEL.items() if k != "dropout_sites")
        and tuple(model.get("dropout_sites", ())) == STUDY_MODEL["dropout_sites"]
    )
    first = trial["curves"][0] if trial["curves"] else {}
    if not same or first.get("step") != 0 or not {"train_loss", "val_loss"} <= set(first):
        return None
    return {**{k: model[k] for k in STEP0_KEYS[:4]}, **{k: train[k] for k in STEP0_KEYS[4:]}}


def from_trials(doc: dict, name: str, items: list[dict]) -> list[dict]:
    """Store entries for the evaluations of ``items`` (:func:`needed`) that a study-protocol
    sweep's trials made as their first evaluation: matched by shape, activation and seed.

    Only trials whose step 0 is :func:`compute`'s computation count (:func:`trial_shape`:
    the study protocol, fp32 on a CPU, the tiny Shakespeare, the study's model); others are
    skipped. ``seconds`` is the trial's elapsed time at that evaluation (model construction
    included), ``platform`` the trial's recorded one; a trial records no date.

    Args:
        doc: a results.json (:func:`reproduce.results.load_results`) of a run or published
            directory.
        name: that directory as the user gave it, for ``source``.
        items: what is wanted, from :func:`needed`.

    Returns:
        store entries, in ``items``' order.
    """
    from reproduce.studytrials import STUDY_NAMES  # ours -> the study's activation names

    by_key = {}
    for trial in doc["trials"]:
        values = trial_shape(trial)
        if values is not None:
            study_name = STUDY_NAMES.get(trial["activation"], trial["activation"])
            by_key[_key(values, study_name, trial["seed"])] = trial
    out = []
    for item, trial in _matched(items, by_key):
        first = trial["curves"][0]
        out.append(
            _entry(
                item,
                {**first, "init_sha256": trial["study"]["init_sha256"]},
                first["elapsed_s"],
                platforms.describe(trial["environment"]),
                "not recorded",
                f"python -m reproduce reference step0 --trials {name} "
                f"(trial {trial['id']}, step 0)",
            )
        )
    return out


def disagreement(stored: dict, entry: dict) -> str | None:
    """Why ``entry`` cannot stand beside the ``stored`` evaluation of the same shape,
    activation and seed, or None: other initial weights, or a train or val loss more than
    :data:`reproduce.rawdata.provenance.RECOMPUTED_TOLERANCE` nats away (one platform gives the
    same floats; two CPUs differ by about 1e-6)."""
    if entry["init_sha256"] != stored["init_sha256"]:
        return (
            f"initial weights {entry['init_sha256'][:12]}... differ from the stored "
            f"{stored['init_sha256'][:12]}... ({stored['source']})"
        )
    worst = max(abs(entry[k] - stored[k]) for k in ("train_loss", "val_loss"))
    if worst > RECOMPUTED_TOLERANCE:
        return (
            f"losses differ by {worst:.1e} nats (more than {RECOMPUTED_TOLERANCE:g}) from the "
            f"stored ones ({stored['source']})"
        )
    return None
