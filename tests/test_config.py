import pytest
from conftest import write_sweep

from reproduce.config import ConfigError, SweepConfig, load_config, trial_id


def test_trial_ids_are_canonical_and_sorted():
    assert trial_id("silu", 42, {}) == "swish-s42"
    assert trial_id("gelu", 43, {"lr": 1e-3}) == "gelu-s43-lr=0.001"
    assert (
        trial_id("smelu-1", 0, {"lr": 3e-4, "dropout": 0.1}) == "smelu-1.0-s0-dropout=0.1-lr=0.0003"
    )


def test_trials_form_groups_by_everything_but_seed(tmp_path):
    grid = "\n[sweep.grid]\nweight_decay = [0.0, 1e-5]\n"
    config = load_config(write_sweep(tmp_path / "c.toml", extra=grid))
    trials = config.trials(vocab_size=65)
    ids = [t.id for t in trials]
    assert ids == sorted(ids) and len(ids) == 8
    assert "gelu-s1-weight_decay=1e-05" in ids
    groups = {t.group for t in trials}
    assert groups == {
        "gelu-weight_decay=0.0",
        "gelu-weight_decay=1e-05",
        "relu-weight_decay=0.0",
        "relu-weight_decay=1e-05",
    }
    trial = next(t for t in trials if t.id == "gelu-s1-weight_decay=1e-05")
    assert trial.spec.train.weight_decay == 1e-5 and trial.spec.seed == 1
    assert trial.spec.model.activation == "gelu"


def test_shipped_configs_load_with_study_settings():
    full = load_config("configs/full.toml")
    trials = full.trials(vocab_size=65)
    assert [t.id for t in trials][:3] == ["gelu-s42", "gelu-s43", "gelu-s44"] and len(trials) == 9
    spec = trials[0].spec
    assert (spec.model.n_layer, spec.model.n_embd, spec.model.n_head, spec.model.block_size) == (
        6,
        384,
        6,
        256,
    )
    assert (
        spec.train.max_iters,
        spec.train.batch_size,
        spec.train.lr,
        spec.train.eval_interval,
        spec.model.dropout,
    ) == (5000, 64, 3e-4, 500, 0.2)
    partial = load_config("configs/partial.toml")
    assert partial.activations == ("relu", "gelu", "swish", "smelu-0.5", "smelu-1.0")
    smoke = load_config("configs/smoke.toml")
    assert smoke.activations == full.activations and smoke.seeds == full.seeds


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: "foo = 1\n" + t, r"unknown key\(s\) \['foo'\] in \[top level\]"),
        (lambda t: t.replace("n_layer = 1", "n_layers = 1"), r"\['n_layers'\] in \[model\]"),
        (lambda t: t.replace("max_iters = 8", "max_iter = 8"), r"\['max_iter'\] in \[train\]"),
        (lambda t: t.replace("n_embd = 16", "n_embd = 15"), "divisible by model.n_head"),
        (
            lambda t: t.replace('activations = ["relu", "gelu"]', 'activations = ["tanhh"]'),
            "unknown activation 'tanhh'",
        ),
        (lambda t: t.replace("seeds = [0, 1]", "seeds = [0, 0]"), "seeds has duplicates"),
        (lambda t: t.replace("seeds = [0, 1]", "seeds = [-1]"), "non-negative integers"),
        (lambda t: t.replace("max_iters = 8", "max_iters = 0"), "max_iters must be a positive"),
        (lambda t: t.replace('precision = "fp32"', 'precision = "half"'), "precision must be"),
        (lambda t: t + "\n[sweep.grid]\nwidth = [1]\n", r"\['width'\] in \[sweep.grid\]"),
        (lambda t: t + "\n[sweep.grid]\nlr = [0.1]\n", "lr is both a fixed setting"),
        (lambda t: t.replace("[model]", "[model\n"), "invalid TOML"),
    ],
)
def test_bad_configs_name_the_problem(tmp_path, edit, message):
    path = write_sweep(tmp_path / "c.toml")
    path.write_text(edit(path.read_text()))
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_config_file():
    with pytest.raises(FileNotFoundError, match="configs/"):
        load_config("configs/nope.toml")


def test_base_settings_exclude_sweep_axes(tmp_path):
    a = load_config(write_sweep(tmp_path / "a.toml", seeds=(0,)))
    b = load_config(write_sweep(tmp_path / "b.toml", activations=("swish",), seeds=(5, 6)))
    c = SweepConfig.from_dict(
        {
            **a.to_dict(),
            "train": {**a.train, "lr": 0.1},
            "sweep": {"activations": ["relu"], "seeds": [0]},
            "data": {},
        },
        "c",
    )
    assert a.base_settings() == b.base_settings() != c.base_settings()
