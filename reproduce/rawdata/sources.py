"""Reading the study's own files (a local copy of its repository): per-trial result files,
summary tables, the full run's log and the configuration classes.

Everything here parses what the study's files hold, as data; nothing of the study's code runs.
Where the study's code decides how to read a file, the docstring names the file and function.
Numbers keep the precision their file gives: JSON floats exactly (Python's float round-trips
them), the log's printed figures as printed (their decimals in :data:`LOG_DECIMALS`).

Errors: every parser raises ``ValueError`` with one line naming the file and what was wrong.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

__all__ = [
    "CONFIG_KEYS",
    "LOG_DECIMALS",
    "SEED_BASE",
    "parse_configs",
    "parse_log",
    "parse_result_file",
    "parse_summary_table",
    "seed_of_trial",
]

# the study's configuration fields that decide a trial (config*.py class attributes)
CONFIG_KEYS = (
    "n_layer",
    "n_embd",
    "n_head",
    "block_size",
    "batch_size",
    "max_iters",
    "eval_interval",
    "eval_iters",
    "learning_rate",
    "dropout",
    "device",
    "trials_per_activation",
    "seed_base",
)

# every config*.py of the study sets seed_base = 42; train.py's run_experiment seeds trial k
# (1-based trial_id) with seed_base + k - 1
SEED_BASE = 42

# decimals of the log's printed figures (train.py's format strings)
LOG_DECIMALS = {
    "eval_loss": 4,  # "Step ... | Train loss: 4.3444 | Val loss: 4.3433"
    "eval_time_s": 1,  # "| Time: 92.2s"
    "training_time_s": 2,  # "Training completed in 1583.06s"
    "final_loss": 4,  # "Final train loss: 0.8671"
    "accuracy": 2,  # "Train accuracy: 73.90%"
    "relative_pd": 6,  # "  Relative PD: 0.908809"
    "summary_loss": 4,  # "Average val loss: 1.5555 ± 0.0033"
    "summary_accuracy": 2,
    "summary_time_s": 1,
    "total_time_s": 1,
}


def seed_of_trial(trial_id: int) -> int:
    """The seed of the study's trial ``trial_id`` (1-based): ``SEED_BASE + trial_id - 1``
    (train.py, run_experiment: ``seed = config.seed_base + trial``, trial counted from 0)."""
    return SEED_BASE + int(trial_id) - 1


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot be read as JSON ({exc})") from None


def _run_from_record(record: dict, where: str) -> dict:
    """One activation's record (train.py's ``experiment_results``) in our layout."""
    try:
        trials = [
            {
                "trial": t["trial_id"],
                "seed": seed_of_trial(t["trial_id"]),
                "train_loss": t["train_loss"],
                "val_loss": t["val_loss"],
                "train_accuracy": t["train_accuracy"],
                "val_accuracy": t["val_accuracy"],
                "training_time_s": t["training_time"],
                "train_loss_history": t["train_loss_history"],
                "val_loss_history": t["val_loss_history"],
            }
            for t in record["trials"]
        ]
        pairs = []
        for m in record["reproducibility_metrics"]:
            a, b = (int(x) for x in m["model_pair"].split("_vs_"))
            pairs.append(
                {
                    "a": a,
                    "b": b,
                    "relative_pd": m["relative_pd"],
                    "prediction_differences": m["prediction_differences"],
                    "total_predictions": m["total_predictions"],
                }
            )
        stored = {k: record[k] for k in record if k.startswith(("avg_", "std_"))}
        return {
            "model": record["model_name"],
            "activation": record["activation"],
            "timestamp": record["timestamp"],
            "trials": trials,
            "pd_pairs": pairs,
            "stored": stored,
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{where}: not a result record of the study ({exc!r})") from None


def parse_result_file(path: Path) -> list[dict]:
    """The activation runs of one result file: a per-activation file
    (``{model}-{activation}-{timestamp}.json``, train.py's run_experiment) gives one, the
    run's ``all_experiments_summary.json`` (run_all_experiments.py) one per activation."""
    doc = _load_json(path)
    if isinstance(doc, dict) and "trials" in doc:
        return [_run_from_record(doc, str(path))]
    if isinstance(doc, dict) and isinstance(doc.get("results"), dict):
        return [
            _run_from_record(record, f"{path}: results/{model}/{act}")
            for model, acts in doc["results"].items()
            for act, record in acts.items()
        ]
    raise ValueError(f"{path}: neither a per-activation result file nor a run summary")


_SUMMARY_ROW = re.compile(
    r"^(?P<act>\S+)\s+(?P<loss>[\d.]+)\s+(?P<acc>[\d.]+)\s+(?P<pd>[\d.]+)\s+"
    r"(?P<time>[\d.]+)\s+(?P<n>\d+)\s*$"
)


def parse_summary_table(path: Path, model: str = "CHARLM") -> list[dict]:
    """The rows of ``model``'s block of a summary.txt (process_results.py's
    create_summary_table: per activation the mean over result files of each file's average
    val loss, val accuracy, relative PD and training time, and the total number of trials),
    as printed (4, 2, 6 and 1 decimals)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot be read ({exc})") from None
    rows, inside = [], False
    for line in lines:
        if line.startswith("Model: "):
            inside = line.strip() == f"Model: {model}"
            continue
        match = _SUMMARY_ROW.match(line) if inside else None
        if match:
            rows.append(
                {
                    "activation": match["act"],
                    "val_loss": float(match["loss"]),
                    "val_accuracy": float(match["acc"]),
                    "relative_pd": float(match["pd"]),
                    "training_time_s": float(match["time"]),
                    "trials": int(match["n"]),
                }
            )
    if not rows:
        raise ValueError(f"{path}: no {model} rows found")
    return rows


_NUM = r"([-\d.,]+)"
_LOG_PATTERNS = {
    "activation": re.compile(r"^\[\d+/\d+\] (\S+) with (\S+)\.\.\.$"),
    "trial": re.compile(r"^Training Trial (\d+)$"),
    "eval": re.compile(
        rf"^Step\s+(\d+) \| Train loss: {_NUM} \| Val loss: {_NUM} \| Time: {_NUM}s$"
    ),
    "progress": re.compile(rf"^Step\s+(\d+) \| Progress: {_NUM}% \| Time: {_NUM}s$"),
    "completed": re.compile(rf"^Training completed in {_NUM}s$"),
    "final_train_loss": re.compile(rf"^Final train loss: {_NUM}$"),
    "final_val_loss": re.compile(rf"^Final val loss: {_NUM}$"),
    "train_accuracy": re.compile(rf"^Train accuracy: {_NUM}%$"),
    "val_accuracy": re.compile(rf"^Val accuracy: {_NUM}%$"),
    "pair": re.compile(r"^Comparing Model (\d+) vs Model (\d+)\.\.\.$"),
    "pd": re.compile(rf"^\s+Relative PD: {_NUM}$"),
    "pred_diff": re.compile(r"^\s+Prediction differences: (\d+)/(\d+)$"),
    "avg_loss": re.compile(rf"^Average val loss: {_NUM} ± {_NUM}$"),
    "avg_acc": re.compile(rf"^Average val accuracy: {_NUM}% ± {_NUM}%$"),
    "avg_pd": re.compile(rf"^Average relative PD: {_NUM}$"),
    "avg_time": re.compile(rf"^Average training time: {_NUM}s$"),
    "saved": re.compile(r"^Results saved to (\S+)$"),
    "done": re.compile(rf"^✓ \S+ completed in {_NUM}s$"),
    "total": re.compile(rf"^Total time: {_NUM}s \("),
    "n_params": re.compile(r"^\[INFO\] Model initialized with ([\d,]+) parameters$"),
    "vocab": re.compile(r"^\[INFO\] Vocabulary size: (\d+)$"),
    "config": re.compile(r"Using (.+ config .+)$"),
}


def _f(text: str) -> float:
    return float(text.replace(",", ""))


class _LogReader:
    """State of :func:`parse_log` while it reads the log line by line."""

    def __init__(self, path: Path):
        self.path = path
        self.out: dict[str, Any] = {"runs": []}
        self.run: dict | None = None
        self.trial: dict | None = None
        self.pair: dict | None = None

    def need(self, what: dict | None, line_no: int, name: str) -> dict:
        if what is None:
            raise ValueError(f"{self.path}:{line_no}: a {name} line outside a {name}")
        return what

    def line(self, line_no: int, line: str) -> None:
        for kind, pattern in _LOG_PATTERNS.items():
            match = pattern.search(line) if kind == "config" else pattern.match(line)
            if match:
                getattr(self, f"_{kind}")(line_no, match)
                return

    def _config(self, n: int, m: re.Match) -> None:
        self.out.setdefault("config_line", m[1].strip())

    def _n_params(self, n: int, m: re.Match) -> None:
        self.out["n_params"] = int(_f(m[1]))

    def _vocab(self, n: int, m: re.Match) -> None:
        self.out["vocab_size"] = int(m[1])

    def _activation(self, n: int, m: re.Match) -> None:
        self.run = {"model": m[1], "activation": m[2], "trials": [], "pd_pairs": []}
        self.out["runs"].append(self.run)
        self.trial = None

    def _trial(self, n: int, m: re.Match) -> None:
        run = self.need(self.run, n, "run")
        number = int(m[1])
        self.trial = {"trial": number, "seed": seed_of_trial(number), "evaluations": []}
        self.trial["progress"] = []
        run["trials"].append(self.trial)

    def _eval(self, n: int, m: re.Match) -> None:
        point = {"step": int(m[1]), "train_loss": _f(m[2]), "val_loss": _f(m[3])}
        point["time_s"] = _f(m[4])
        self.need(self.trial, n, "trial")["evaluations"].append(point)

    def _progress(self, n: int, m: re.Match) -> None:
        point = {"step": int(m[1]), "time_s": _f(m[3])}
        self.need(self.trial, n, "trial")["progress"].append(point)

    def _completed(self, n: int, m: re.Match) -> None:
        self.need(self.trial, n, "trial")["training_time_s"] = _f(m[1])

    def _final(self, n: int, key: str, value: float) -> None:
        self.need(self.trial, n, "trial").setdefault("final", {})[key] = value

    def _final_train_loss(self, n: int, m: re.Match) -> None:
        self._final(n, "train_loss", _f(m[1]))

    def _final_val_loss(self, n: int, m: re.Match) -> None:
        self._final(n, "val_loss", _f(m[1]))

    def _train_accuracy(self, n: int, m: re.Match) -> None:
        self._final(n, "train_accuracy", _f(m[1]))

    def _val_accuracy(self, n: int, m: re.Match) -> None:
        self._final(n, "val_accuracy", _f(m[1]))

    def _pair(self, n: int, m: re.Match) -> None:
        self.pair = {"a": int(m[1]), "b": int(m[2])}
        self.need(self.run, n, "run")["pd_pairs"].append(self.pair)

    def _pd(self, n: int, m: re.Match) -> None:
        # outside a pair, "  Relative PD:" repeats the run's average (after "completed in")
        if self.pair is not None:
            self.pair["relative_pd"] = _f(m[1])

    def _pred_diff(self, n: int, m: re.Match) -> None:
        pair = self.need(self.pair, n, "pair")
        pair["prediction_differences"] = int(m[1])
        pair["total_predictions"] = int(m[2])
        self.pair = None

    def _summary(self, n: int, key: str, value: Any) -> None:
        self.need(self.run, n, "run").setdefault("summary", {})[key] = value

    def _avg_loss(self, n: int, m: re.Match) -> None:
        self._summary(n, "avg_val_loss", _f(m[1]))
        self._summary(n, "std_val_loss", _f(m[2]))

    def _avg_acc(self, n: int, m: re.Match) -> None:
        self._summary(n, "avg_val_accuracy", _f(m[1]))
        self._summary(n, "std_val_accuracy", _f(m[2]))

    def _avg_pd(self, n: int, m: re.Match) -> None:
        self._summary(n, "avg_relative_pd", _f(m[1]))

    def _avg_time(self, n: int, m: re.Match) -> None:
        self._summary(n, "avg_training_time_s", _f(m[1]))

    def _saved(self, n: int, m: re.Match) -> None:
        self.need(self.run, n, "run")["results_file"] = m[1]

    def _done(self, n: int, m: re.Match) -> None:
        self.need(self.run, n, "run")["completed_s"] = _f(m[1])

    def _total(self, n: int, m: re.Match) -> None:
        self.out.setdefault("total_time_s", _f(m[1]))


def parse_log(path: Path) -> dict:
    """The full run's log (run_all_experiments.py's console output): per activation run its
    trials (every evaluation: step, train and val loss, seconds since the trial began; every
    progress line: step and seconds; training time; final losses and accuracies), PD pairs,
    printed averages and results file name; the run's total time, parameter count and
    vocabulary size. Figures as printed (decimals in :data:`LOG_DECIMALS`)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot be read ({exc})") from None
    reader = _LogReader(path)
    for line_no, line in enumerate(lines, 1):
        reader.line(line_no, line)
    out = reader.out
    if not out["runs"] or any(not r["trials"] for r in out["runs"]):
        raise ValueError(f"{path}: no activation runs with trials found (not the study's log?)")
    for run in out["runs"]:
        for trial in run["trials"]:
            if "final" not in trial or "training_time_s" not in trial:
                raise ValueError(
                    f"{path}: {run['activation']} trial {trial['trial']} has no final metrics "
                    "(log cut short?)"
                )
    return out


def parse_configs(path: Path) -> list[dict]:
    """The configuration classes of one of the study's config*.py files, read with ``ast``
    (nothing runs): class name, line, and each of :data:`CONFIG_KEYS` the class assigns a
    literal to, with the line it is on."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, UnicodeDecodeError, SyntaxError) as exc:
        raise ValueError(f"{path}: cannot be parsed ({exc})") from None
    classes = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        values, lines = {}, {}
        for stmt in node.body:
            if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1):
                continue
            target = stmt.targets[0]
            if isinstance(target, ast.Name) and target.id in CONFIG_KEYS:
                try:
                    values[target.id] = ast.literal_eval(stmt.value)
                except ValueError:
                    continue
                lines[target.id] = stmt.lineno
        if values:
            classes.append({"name": node.name, "line": node.lineno, "values": values})
            classes[-1]["lines"] = lines
    return classes
