#!/usr/bin/env python3
"""Benchmark of the training-time estimate (not a test: it times things, run it on an idle
machine): prints `run --dry-run`'s estimate for a short sweep, trains that sweep, and prints
the real training time beside it, and each "about ... of training left" of the run beside the
time that was really left. Exit status 1 when the estimate is off by more than --bound.

    python scripts/bench-estimate.py --config configs/smoke.toml
    python scripts/bench-estimate.py --config configs/partial.toml --set train.max_iters=100 \\
        --trials relu-s42,gelu-s42,smelu-0.5-s42

The sweep trains into a temporary directory (or --out DIR, kept), never into a run of yours.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reproduce import estimate, runner  # noqa: E402
from reproduce.config import add_override_option  # noqa: E402

ETA = re.compile(r"about (?:(\d+)h(\d+)m|(\d+)m(\d+)s|(\d+)s) of training left")


def _seconds(match: re.Match) -> int:
    h, hm, m, ms, s = (int(g) if g else 0 for g in match.groups())
    return h * 3600 + hm * 60 + m * 60 + ms + s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/bench-estimate.py",
        description="Compare the dry run's training-time estimate with a real run's time.",
    )
    parser.add_argument("--config", required=True, help="sweep config, e.g. configs/smoke.toml")
    add_override_option(parser, "train.max_iters=100")
    parser.add_argument("--trials", default=None, metavar="ID,ID", help="train only these")
    parser.add_argument("--data", default=None, help="tiny Shakespeare's file (as for run)")
    parser.add_argument("--out", default=None, help="train here and keep it (default: a temp dir)")
    parser.add_argument(
        "--bound", type=float, default=0.25, help="allowed relative error (default 0.25)"
    )
    args = parser.parse_args(argv)
    only = [s for s in args.trials.split(",") if s] if args.trials else None
    with tempfile.TemporaryDirectory(prefix="charlm-bench-estimate-") as tmp:
        out = Path(args.out) if args.out else Path(tmp) / "run"
        sweep = runner.Sweep.open(
            args.config, out, args.data, overrides=tuple(args.overrides), only=only
        )
        pending = [t for t in sweep.trials if sweep.status(t) != "done"]
        started = time.perf_counter()
        estimated, how = runner.estimate_seconds(sweep, pending)
        took = time.perf_counter() - started
        print(
            f"estimate: {estimate.format_duration(estimated)} ({estimated:.1f} s), "
            f"made in {took:.1f} s"
        )
        for line in textwrap.wrap(how, 78):
            print(f"  {line}")
        etas: list[tuple[float, int]] = []

        def log(line: str) -> None:
            print(line, flush=True)
            match = ETA.search(line)
            if match:
                etas.append((time.perf_counter(), _seconds(match)))

        started = time.perf_counter()
        failures = runner.train_trials(
            sweep, pending, log=log, progress=False, step_log=lambda line: None
        )
        ended = time.perf_counter()
    if failures:
        print(f"error: trial(s) failed: {failures}", file=sys.stderr)
        return 2
    real = ended - started
    error = estimated / real - 1
    print(
        f"real training time: {estimate.format_duration(real)} ({real:.1f} s) for "
        f"{len(pending)} trial(s)"
    )
    print(
        f"estimate / real = {estimated / real:.3f} ({100 * error:+.1f}%; bound "
        f"{100 * args.bound:.0f}%)"
    )
    for at, said in etas:
        left = ended - at
        print(
            f"  in-run 'about {estimate.format_duration(said)} left': really "
            f"{estimate.format_duration(left)} ({100 * (said / left - 1):+.1f}%)"
        )
    within = abs(error) <= args.bound
    print("within the bound" if within else "OUTSIDE the bound")
    return 0 if within else 1


if __name__ == "__main__":
    raise SystemExit(main())
