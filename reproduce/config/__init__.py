"""Sweep definitions: TOML files (``configs/*.toml``) read into validated dataclasses.

A sweep is a base configuration (data, model, training) and its axes: activations, seeds and an
optional grid over any other model or training setting. Every combination is one trial, named by
:func:`trial_id`. Layout of a config file::

    name = "smoke"                  # optional; defaults to the file's stem
    description = "..."
    [data]    path = "..."          # optional; default: tiny Shakespeare (checked by digest)
    [model]   n_layer = 6 ...       # charlm.model.ModelConfig fields except activation
    [train]   max_iters = 5000 ...  # charlm.train.TrainConfig fields
    [sweep]   activations = [...]  seeds = [...]  data_seeds = [...] (optional, one per seed)
    [sweep.grid]  lr = [3e-4, 1e-3] # optional: setting name -> list of values
    [report]  sample_prompt = ...   # render and sampling options (not part of the base)

Unknown keys, values of the wrong type and bad values raise :class:`ConfigError` naming the
file and the key; values that could only fail at the end of a run (the report's sampling
options, seeds beyond what a torch generator takes, a sample prompt or context length the corpus
cannot serve) are refused too, so a sweep never trains for hours and then fails in its report.

Modules: :mod:`reproduce.config.values` (the error, value checks),
:mod:`reproduce.config.sweep_config` (the dataclasses), :mod:`reproduce.config.loading` (files
and overrides).
"""

from reproduce.config.loading import (
    SHIPPED_CONFIGS,
    add_override_option,
    apply_overrides,
    load_config,
)
from reproduce.config.sweep_config import (
    MODEL_KEYS,
    TRAIN_KEYS,
    ReportOptions,
    SweepConfig,
    Trial,
    group_id,
    trial_id,
)
from reproduce.config.values import SEED_MAX, ConfigError, format_value

__all__ = [
    "MODEL_KEYS",
    "SEED_MAX",
    "SHIPPED_CONFIGS",
    "TRAIN_KEYS",
    "ConfigError",
    "ReportOptions",
    "SweepConfig",
    "Trial",
    "add_override_option",
    "apply_overrides",
    "format_value",
    "group_id",
    "load_config",
    "trial_id",
]
