"""Trains the tests' tiny trial in a fresh process: ``python tests/train_worker.py OUT SEED
[STOP_STEP [MAX_ITERS [EVAL_INTERVAL]]]`` (STOP_STEP -1: no stop). Exit 0 when finished, 3 when
stopped early (state saved)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import SHARED_DATA, tiny_spec  # noqa: E402

from charlm.data import Corpus, resolve_data_path  # noqa: E402
from charlm.train import TrainingInterrupted, train_trial  # noqa: E402

if __name__ == "__main__":
    out, seed = sys.argv[1], int(sys.argv[2])
    stop = int(sys.argv[3]) if len(sys.argv) > 3 else None
    max_iters = int(sys.argv[4]) if len(sys.argv) > 4 else 24
    eval_interval = int(sys.argv[5]) if len(sys.argv) > 5 else 8
    corpus = Corpus.load(resolve_data_path(SHARED_DATA if SHARED_DATA.is_file() else None))
    try:
        train_trial(
            tiny_spec(seed, max_iters=max_iters, eval_interval=eval_interval),
            corpus,
            out,
            stop_check=(lambda step: step == stop) if stop not in (None, -1) else None,
            progress=False,
        )
    except TrainingInterrupted as exc:
        print(exc, file=sys.stderr)
        sys.exit(3)
