"""Our study-protocol trials beside the study's published trials of the same configuration,
seed by seed, and the three-column table (the study, ours under its procedure, ours under
nanoGPT's recipe).

Under the study protocol (:mod:`charlm.study`) a trial starts from the study's initial weights
and sees the study's batches, so each of our trials has one published counterpart: the trial of
the same activation and seed in the study's result file whose configuration is ours
(``artifacts/reference/provenance.json``: only files it *identifies* count; the partial scale
is the study's ``config.py``, ``Config``). The study's trial ``i`` ran seed ``42 + i - 1``
(train.py, ``seed_base + trial``); its result files name activations ``smelu_05`` and
``smelu_1`` where ours are ``smelu-0.5`` and ``smelu-1.0`` (:data:`STUDY_NAMES`).

What is compared (every function here is pure: dicts in, dicts out):

- per trial (:func:`trial_rows`): the step-0 train and val losses (the study's
  ``train_loss_history[0]``, ``val_loss_history[0]``; they must agree to
  :data:`STEP0_TOLERANCE`, the study protocol's parity bound), the final train and val loss
  (the study's final ``estimate_loss`` after the last step) and val accuracy (percent), each
  ours, the study's and ours minus the study's;
- per activation (:func:`paired`): final val loss paired by seed, ``scipy.stats.ttest_rel``
  (two-sided; n is the number of seeds, 3 here, so 2 degrees of freedom);
- the rankings by mean final val loss (:func:`rankings`), ours and the study's;
- :func:`three_columns`: per activation, mean and sample SD of the final val loss of the study's
  same-configuration trials, of ours under the study protocol, of ours under nanoGPT's recipe.

:func:`blocks` and :func:`three_columns_blocks` lay the tables out as
:mod:`reproduce.mdblocks` (the report's section), :func:`markdown` and
:func:`three_columns_markdown` as Markdown (the ``reference trials`` command).
"""

from __future__ import annotations

import statistics
from typing import Any

from scipy import stats as scipy_stats

# the settings that name one of the study's configurations (provenance.json's candidates)
from reproduce import mdblocks
from reproduce.rawdata.provenance import RECOMPUTED_TOLERANCE, REPORTED_KEYS

__all__ = [
    "ALPHA",
    "REPORTED_KEYS",
    "STEP0_TOLERANCE",
    "STUDY_NAMES",
    "blocks",
    "compare_trials",
    "markdown",
    "paired",
    "published_runs",
    "rankings",
    "study_config",
    "three_columns",
    "three_columns_blocks",
    "three_columns_markdown",
    "trial_rows",
]

STUDY_NAMES = {"smelu-0.5": "smelu_05", "smelu-1.0": "smelu_1"}  # ours -> the study's
FIRST_SEED = 42  # the study's seed_base (config.py line 40): trial i ran seed 42 + i - 1
STEP0_TOLERANCE = RECOMPUTED_TOLERANCE  # nats (1e-4): the study protocol's parity bound
ALPHA = 0.05  # "distinguishable" means p < ALPHA by the paired t-test
WIDTH = mdblocks.WIDTH  # columns the Markdown's prose is wrapped to
_MODEL_KEYS = ("n_layer", "n_embd", "n_head", "block_size")


def _settings(trial: dict) -> dict:
    """A trial record's values of :data:`REPORTED_KEYS` (model shape, schedule, batch)."""
    return {
        k: trial["model"].get(k) if k in _MODEL_KEYS else trial["train"].get(k)
        for k in REPORTED_KEYS
    }


def study_config(ours: dict, prov: dict) -> dict:
    """The study's configuration (provenance.json candidate: ``name``, ``file``, ``line``,
    ``values``) whose settings (:data:`REPORTED_KEYS`) are our trials'.

    Raises:
        ValueError: ``ours`` has no trial, a trial not trained under the study protocol, trials
            of different settings, or settings that are none of the study's configurations.
    """
    trials = ours["trials"]
    if not trials:
        raise ValueError("results.json has no trial")
    odd = next((t["id"] for t in trials if t.get("protocol") != "study"), None)
    if odd is not None:
        raise ValueError(
            f"trial {odd} was not trained under the study protocol: only a study-protocol "
            "trial has a published counterpart (same initial weights, same batches)"
        )
    settings = {tuple(_settings(t).items()) for t in trials}
    if len(settings) > 1:
        raise ValueError("the trials have different settings; compare one configuration")
    mine = dict(settings.pop())
    for candidate in prov["candidates"]:
        if all(candidate["values"].get(k) == v for k, v in mine.items()):
            return candidate
    raise ValueError(f"settings {mine} are none of the study's configurations")


def published_runs(raw: dict, prov: dict, config_name: str) -> dict[str, dict]:
    """The study's activation name -> its result run that provenance.json identifies as
    ``config_name`` (study-raw.json's ``runs`` entry).

    Raises:
        ValueError: two identified runs of one activation whose trials differ (which one is
            the published one could not be said).
    """
    identified = {
        r["run"]
        for f in prov["files"]
        for r in f["runs"]
        if r["status"] == "identified" and r["config"]["name"] == config_name
    }
    out: dict[str, dict] = {}
    for run in sorted((r for r in raw["runs"] if r["id"] in identified), key=lambda r: r["id"]):
        first = out.setdefault(run["activation"], run)
        if first is not run and _finals(first) != _finals(run):
            raise ValueError(
                f"{first['id']} and {run['id']} are both {config_name} runs of "
                f"{run['activation']} with different trials"
            )
    return out


def _finals(run: dict) -> list[tuple]:
    return [(t["seed"], t["train_loss"], t["val_loss"], t["val_accuracy"]) for t in run["trials"]]


def _step0(trial: dict) -> dict | None:
    """Our trial's step-0 losses (its first curve point, when that evaluation was computed)."""
    point = next((p for p in trial["curves"] if p["step"] == 0), None)
    if point is None or "val_loss" not in point:
        return None
    return {"train_loss": point["train_loss"], "val_loss": point["val_loss"]}


def _triple(ours: float | None, theirs: float) -> dict:
    return {"ours": ours, "study": theirs, "diff": None if ours is None else ours - theirs}


def trial_rows(ours: dict, raw: dict, prov: dict) -> list[dict]:
    """One row per trial of ``ours`` (a study-protocol results.json), in the order of its
    trials, beside the published trial of the same configuration, activation and seed.

    Each row: ``id``, ``activation``, ``seed``, ``study_activation``, ``source`` (the study's
    file and 1-based trial number), ``published`` (whether the study has that trial), and for
    ``step0_train_loss``, ``step0_val_loss``, ``train_loss``, ``val_loss``, ``val_accuracy``:
    ``{"ours", "study", "diff"}`` (nats; accuracy in percent; diff = ours − study; ``ours``
    None for a step-0 evaluation skipped under ``study_evals``); ``step0_agrees``: both step-0
    differences within :data:`STEP0_TOLERANCE` (None when not computed). A trial without a
    published counterpart has ``published`` False and no metric keys.

    Raises:
        ValueError: as :func:`study_config`.
    """
    config = study_config(ours, prov)
    runs = published_runs(raw, prov, config["name"])
    rows = []
    for trial in ours["trials"]:
        name = STUDY_NAMES.get(trial["activation"], trial["activation"])
        run = runs.get(name)
        theirs = next(
            (t for t in (run or {}).get("trials", []) if t["seed"] == trial["seed"]), None
        )
        row: dict[str, Any] = {
            "id": trial["id"],
            "activation": trial["activation"],
            "seed": trial["seed"],
            "study_activation": name,
            "published": theirs is not None,
        }
        rows.append(row)
        if theirs is None:
            continue
        step0 = _step0(trial) or {}
        row["source"] = {"file": run["file"], "trial": theirs["trial"]}
        row["step0_train_loss"] = _triple(step0.get("train_loss"), theirs["train_loss_history"][0])
        row["step0_val_loss"] = _triple(step0.get("val_loss"), theirs["val_loss_history"][0])
        for key in ("train_loss", "val_loss", "val_accuracy"):
            row[key] = _triple(trial["final"][key], theirs[key])
        diffs = [row[k]["diff"] for k in ("step0_train_loss", "step0_val_loss")]
        row["step0_agrees"] = (
            None if None in diffs else all(abs(d) <= STEP0_TOLERANCE for d in diffs)
        )
    return rows


def paired(rows: list[dict], alpha: float = ALPHA) -> list[dict]:
    """Per activation (in the order of ``rows``), final val loss paired by seed: ours against
    the study's, ``scipy.stats.ttest_rel`` (two-sided).

    Returns:
        ``{"activation", "n" (seeds paired), "ours_mean", "study_mean", "mean_diff"
        (ours − study, nats), "t", "p", "distinguishable" (p < alpha), "undefined" (why t and
        p are None: fewer than 2 pairs, or every difference equal)}``.
    """
    by: dict[str, list[dict]] = {}
    for row in rows:
        if row["published"]:
            by.setdefault(row["activation"], []).append(row)
    out = []
    for activation, members in by.items():
        a = [r["val_loss"]["ours"] for r in members]
        b = [r["val_loss"]["study"] for r in members]
        diffs = [x - y for x, y in zip(a, b, strict=True)]
        entry = {
            "activation": activation,
            "n": len(members),
            "ours_mean": statistics.fmean(a),
            "study_mean": statistics.fmean(b),
            "mean_diff": statistics.fmean(diffs),
            "t": None,
            "p": None,
            "distinguishable": None,
            "undefined": None,
        }
        if len(members) < 2:
            entry["undefined"] = "fewer than 2 seeds paired"
        elif len(set(diffs)) == 1:
            entry["undefined"] = "every seed differs by the same amount (no variance)"
        else:
            result = scipy_stats.ttest_rel(a, b)
            entry["t"], entry["p"] = float(result.statistic), float(result.pvalue)
            entry["distinguishable"] = entry["p"] < alpha
        out.append(entry)
    return out


def rankings(rows: list[dict]) -> dict:
    """The activations ranked by mean final val loss (lowest first), ours and the study's, over
    the trials both have; ``agree``: the same order."""
    means = {}
    for side in ("ours", "study"):
        by: dict[str, list[float]] = {}
        for row in rows:
            if row["published"]:
                by.setdefault(row["activation"], []).append(row["val_loss"][side])
        means[side] = {a: statistics.fmean(v) for a, v in by.items()}
    order = {side: sorted(m, key=lambda a: (m[a], a)) for side, m in means.items()}
    return {
        "ours": order["ours"],
        "study": order["study"],
        "agree": order["ours"] == order["study"],
    }


def _platforms(ours: dict) -> list[str]:
    """Short names of the platforms our trials ran on (device, CPU or GPU, precision)."""
    seen = []
    for t in ours["trials"]:
        env = t.get("environment", {})
        if env.get("device_type") == "cuda":
            text = str(env.get("device_name"))
        else:
            text = f"{env.get('cpu_model', 'CPU')} ({env.get('cpu_capability') or 'CPU'})"
        text += f", {t['train'].get('precision_used', env.get('precision'))}"
        if text not in seen:
            seen.append(text)
    return seen


def compare_trials(ours: dict, raw: dict, prov: dict) -> dict:
    """Everything :func:`markdown` shows: ``config`` (:func:`study_config`), ``rows``
    (:func:`trial_rows`), ``paired`` (:func:`paired`), ``ranking`` (:func:`rankings`),
    ``platforms`` (ours) and ``step0_tolerance``.

    Raises:
        ValueError: as :func:`study_config`; none of the trials has a published counterpart
            (other activations or seeds than the study's trials of that configuration).
    """
    config, rows = study_config(ours, prov), trial_rows(ours, raw, prov)
    if not any(r["published"] for r in rows):
        runs = published_runs(raw, prov, config["name"])
        seeds = sorted({t["seed"] for run in runs.values() for t in run["trials"]})
        raise ValueError(
            f"none of its trials is among the study's trials of {config['name']} (activations "
            f"{', '.join(sorted(runs)) or 'none'}; seeds {', '.join(map(str, seeds)) or 'none'})"
        )
    return {
        "config": config,
        "rows": rows,
        "paired": paired(rows),
        "ranking": rankings(rows),
        "platforms": _platforms(ours),
        "step0_tolerance": STEP0_TOLERANCE,
    }


def _mean_sd(values: list[float]) -> dict | None:
    if not values:
        return None
    sd = statistics.stdev(values) if len(values) > 1 else None
    return {"mean": statistics.fmean(values), "sd": sd, "n": len(values)}


def _by_activation(results: dict | None) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for t in (results or {}).get("trials", []):
        out.setdefault(t["activation"], []).append(t["final"]["val_loss"])
    return out


def three_columns(
    raw: dict,
    prov: dict,
    config_name: str,
    study_protocol: dict | None = None,
    nanogpt: dict | None = None,
) -> list[dict]:
    """Per activation, final val loss ``{"mean", "sd" (sample, ddof 1), "n"}`` (None where a
    column has no trial of it) of: the study's trials of ``config_name`` (``study``, from its
    result files via :func:`published_runs`), ours under the study protocol
    (``study_protocol``, a results.json) and ours under nanoGPT's recipe (``nanogpt``, a
    results.json whose trials record no protocol or ``nanogpt``).

    Rows follow the study protocol's activations, then the nanogpt sweep's, then the study's;
    each has ``activation`` (ours) and ``study_activation``.

    Raises:
        ValueError: ``config_name`` is not a study configuration, a results file of another
            model shape, iteration count or batch size than it, or ``study_protocol`` and
            ``nanogpt`` of the wrong protocols.
    """
    candidate = next((c for c in prov["candidates"] if c["name"] == config_name), None)
    if candidate is None:
        raise ValueError(f"{config_name!r} is not one of the study's configurations")
    if study_protocol is not None and study_config(study_protocol, prov)["name"] != config_name:
        raise ValueError(f"the study-protocol results are not of {config_name}")
    if nanogpt is not None:
        for t in nanogpt["trials"]:
            if t.get("protocol", "nanogpt") != "nanogpt":
                raise ValueError(f"trial {t['id']} of the nanoGPT column is {t['protocol']!r}")
            shape = _settings(t)
            for key in (*_MODEL_KEYS, "max_iters", "batch_size"):
                if shape[key] != candidate["values"][key]:
                    raise ValueError(
                        f"trial {t['id']} of the nanoGPT column has {key} = {shape[key]}, "
                        f"{config_name} {candidate['values'][key]}"
                    )
    reverse = {v: k for k, v in STUDY_NAMES.items()}
    study = {
        reverse.get(name, name): [t["val_loss"] for t in run["trials"]]
        for name, run in published_runs(raw, prov, config_name).items()
    }
    ours, theirs = _by_activation(study_protocol), _by_activation(nanogpt)
    order = list(dict.fromkeys([*ours, *theirs, *study]))
    return [
        {
            "activation": a,
            "study_activation": STUDY_NAMES.get(a, a),
            "study": _mean_sd(study.get(a, [])),
            "study_protocol": _mean_sd(ours.get(a, [])),
            "nanogpt": _mean_sd(theirs.get(a, [])),
        }
        for a in order
    ]


def _num(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _signed(value: float | None, digits: int = 4) -> str:
    """A difference with its sign; one below the last digit shown in scientific notation."""
    if value is None:
        return "—"
    return f"{value:+.{digits}f}" if value == 0 or abs(value) >= 10**-digits else f"{value:+.1e}"


def _triple_cells(entry: dict, digits: int, small: bool = False) -> list[str]:
    """Ours, the study's and the difference of a :func:`trial_rows` metric (``small``: the
    difference in scientific notation, as step-0 differences of about 1e-5 read best)."""
    diff = entry["diff"]
    shown = f"{diff:+.1e}" if small and diff is not None else _signed(diff, digits)
    return [_num(entry["ours"], digits), _num(entry["study"], digits), shown]


def _cell(stat: dict | None, show_n: bool) -> str:
    if stat is None:
        return "—"
    sd = "" if stat["sd"] is None else f" ± {stat['sd']:.4f}"
    return f"{stat['mean']:.4f}{sd}" + (f" (n = {stat['n']})" if show_n else "")


def _yes_no(value: bool | None) -> str:
    return "—" if value is None else ("yes" if value else "no")


def blocks(comparison: dict) -> list[dict]:
    """The trial-by-trial comparison (:func:`compare_trials`) as :mod:`reproduce.mdblocks`:
    what differs between the two runs of a trial, the step-0 table, the final-metrics tables,
    the paired tests and the rankings."""
    cfg, rows = comparison["config"], [r for r in comparison["rows"] if r["published"]]
    tolerance = f"{comparison['step0_tolerance']:.0e}"
    losses = ["Trial", "Train, ours", "Study", "Diff.", "Val, ours", "Study", "Diff."]
    right = [False, *[True] * 6]
    out = [
        mdblocks.para(
            f"Each trial beside the study's trial of the same configuration ({cfg['file']}, "
            f"`{cfg['name']}`), activation and seed. Both start from the same initial weights "
            "and see the same batches; what differs between the two runs of a trial is the "
            "dropout masks (ours from a CPU generator of their own, the study's from its "
            "device's), the rounding of floating-point arithmetic, and the platform (ours: "
            + "; ".join(comparison["platforms"])
            + "; the study's is not recorded in its result files)."
        ),
        mdblocks.para(f"Step-0 losses (nats; diff. = ours − study; agreement: {tolerance}):"),
        mdblocks.table(
            losses,
            right,
            [
                [
                    r["id"],
                    *_triple_cells(r["step0_train_loss"], 6, small=True),
                    *_triple_cells(r["step0_val_loss"], 6, small=True),
                ]
                for r in rows
            ],
        ),
    ]
    computed = [r for r in rows if r["step0_agrees"] is not None]
    agreeing = [r for r in computed if r["step0_agrees"]]
    n = ", ".join(str(k) for k in sorted({p["n"] for p in comparison["paired"]}))
    ranking = comparison["ranking"]
    verdict = "agree" if ranking["agree"] else "differ"
    return out + [
        mdblocks.para(
            f"{len(agreeing)} of {len(computed)} trials with a computed step-0 evaluation agree "
            f"to {tolerance} nats."
        ),
        mdblocks.para("Final losses (nats), after the last step:"),
        mdblocks.table(
            losses,
            right,
            [
                [r["id"], *_triple_cells(r["train_loss"], 4), *_triple_cells(r["val_loss"], 4)]
                for r in rows
            ],
        ),
        mdblocks.table(
            ["Trial", "Val accuracy, ours", "Study", "Diff. (points)"],
            right[:4],
            [[r["id"], *_triple_cells(r["val_accuracy"], 2)] for r in rows],
        ),
        mdblocks.para(
            "Final val loss paired by seed, ours against the study's: paired t-test "
            f"(`scipy.stats.ttest_rel`, two-sided) on n = {n} seeds, so only a large and "
            "consistent difference can show:"
        ),
        mdblocks.table(
            ["Activation", "n", "Ours", "Study", "Mean diff.", "t", "p", f"p < {ALPHA}"],
            [False, *[True] * 6, False],
            [
                [
                    p["activation"],
                    str(p["n"]),
                    _num(p["ours_mean"]),
                    _num(p["study_mean"]),
                    _signed(p["mean_diff"]),
                    _num(p["t"], 2),
                    _num(p["p"]),
                    _yes_no(p["distinguishable"]),
                ]
                for p in comparison["paired"]
            ],
        ),
        mdblocks.para(
            f"By mean final val loss, lowest first: ours {' < '.join(ranking['ours'])}; the "
            f"study's {' < '.join(ranking['study'])}: the rankings {verdict}."
        ),
    ]


def markdown(comparison: dict) -> str:
    """:func:`blocks` as Markdown, prose wrapped to :data:`WIDTH` columns."""
    return mdblocks.to_markdown(blocks(comparison), WIDTH)


def three_columns_blocks(rows: list[dict], config: dict) -> list[dict]:
    """:func:`three_columns`' rows as a caption naming the study's configuration and a table
    (mean ± sample SD; n in the caption when every cell has the same, else in each cell)."""
    columns = ("study", "study_protocol", "nanogpt")
    counts = {r[c]["n"] for r in rows for c in columns if r[c] is not None}
    each = f" n = {counts.pop()} seeds in each cell;" if len(counts) == 1 else ""
    caption = mdblocks.para(
        f"Final val loss (nats, mean ± SD over seeds;{each} — where a column has no trial) at "
        f"the settings of the study's {config['file']} (`{config['name']}`): the study's own "
        "trials (its result files), ours under its procedure (study protocol), ours under "
        "nanoGPT's recipe (nanogpt protocol: other optimizer settings, schedule, "
        "initialisation and evaluation, so not like for like with the study)."
    )
    return [
        caption,
        mdblocks.table(
            ["Activation", "Study", "Ours, study protocol", "Ours, nanoGPT recipe"],
            [False, True, True, True],
            [[r["activation"], *(_cell(r[c], not each) for c in columns)] for r in rows],
        ),
    ]


def three_columns_markdown(rows: list[dict], config: dict) -> str:
    """:func:`three_columns_blocks` as Markdown."""
    return mdblocks.to_markdown(three_columns_blocks(rows, config), WIDTH)
