"""CharLM: the study's character-level GPT, its data, deterministic training and checkpoints.

The library knows nothing of sweeps or reports (those are :mod:`reproduce`).
"""

from charlm.activations import canonical_name, make_activation
from charlm.data import Corpus, resolve_data_path
from charlm.model import CharLM, ModelConfig
from charlm.train import TrainConfig, TrialSpec, train_trial

__all__ = [
    "CharLM",
    "Corpus",
    "ModelConfig",
    "TrainConfig",
    "TrialSpec",
    "canonical_name",
    "make_activation",
    "resolve_data_path",
    "train_trial",
]
