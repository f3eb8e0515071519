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


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t + "\n[data]\npath = 5\n", "[data] path = 5 must be a file name (a string)"),
        (lambda t: t.replace("n_layer = 1", 'n_layer = "1"'), '[model] n_layer = "1" must be an'),
        (lambda t: t.replace("dropout = 0.1", "dropout = true"), "dropout = true must be a number"),
        (lambda t: t.replace("[model]", "[model]\nbias = 1"), "[model] bias = 1 must be true or"),
        (
            lambda t: t.replace("[model]", '[model]\ndropout_sites = "embedding"'),
            '[model] dropout_sites = "embedding" must be a list of strings',
        ),
        (lambda t: t.replace("lr = 3e-3", 'lr = "3e-3"'), '[train] lr = "3e-3" must be a number'),
        (lambda t: t.replace('precision = "fp32"', "precision = 32"), "precision = 32 must be a"),
        (lambda t: t.replace("threads = 2", "threads = 2.0"), "threads = 2.0 must be an integer"),
        (lambda t: "name = 3\n" + t.replace('name = "tiny"\n', ""), "name = 3 must be a string"),
        (
            lambda t: t.replace('activations = ["relu", "gelu"]', "activations = [1]"),
            "[sweep] activations = [1] must be a non-empty list of names",
        ),
        (
            lambda t: t + '\n[sweep.grid]\nbeta1 = [0.9, "0.95"]\n',
            '[sweep.grid] beta1 = [0.9, "0.95"]: "0.95" must be a number',
        ),
        (
            lambda t: t.replace("seeds = [0, 1]", 'seeds = [0, 1]\ndata_seeds = ["a", 1]'),
            '[sweep] data_seeds: "a" must be an integer',
        ),
        (lambda t: t.replace("sample_tokens = 40", "sample_tokens = 2.5"), "sample_tokens = 2.5"),
        (lambda t: t.replace("[report]", "[report]\nsample_prompt = 7"), "sample_prompt = 7"),
        (lambda t: t.replace("[report]", "[report]\nsample_top_k = 1.5"), "sample_top_k = 1.5"),
    ],
)
def test_every_value_has_its_type_checked(tmp_path, edit, message):
    path = write_sweep(tmp_path / "c.toml")
    path.write_text(edit(path.read_text()))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def test_a_dict_round_trip_keeps_its_none_values(tmp_path):
    config = load_config(write_sweep(tmp_path / "c.toml"))
    again = SweepConfig.from_dict(config.to_dict(), "again")
    assert again == config and again.report.sample_top_k is None and again.data_path is None


# Values that could only fail at the end of a run (sampling, the report) or in every trial are
# refused before anything is trained or written: by `run` and by `run --dry-run`.
SEED_LIMIT = "18446744073709551616"  # 2**64: one more than a torch generator takes
REFUSED = [
    ('report.sample_prompt="ROMEO\u20ac"', "has characters that are not in the corpus: '\u20ac'"),
    ('report.sample_prompt=""', "report.sample_prompt must contain at least one character"),
    ("report.sample_tokens=-1", "report.sample_tokens must be 0 or more, got -1"),
    ("report.sample_temperature=0", "report.sample_temperature must be a positive number"),
    ("report.sample_temperature=nan", "report.sample_temperature must be a positive number"),
    ("report.sample_top_k=0", "report.sample_top_k must be at least 1, got 0"),
    (f"report.sample_seed={SEED_LIMIT}", "report.sample_seed must be between 0 and"),
    ("report.sample_seed=-1", "report.sample_seed must be between 0 and"),
    ("report.pd_batch_size=0", "report.pd_batch_size must be at least 1, got 0"),
    ("sweep.seeds=[99999999999999999999]", "99999999999999999999 must be between 0 and"),
    (f"sweep.data_seeds=[{SEED_LIMIT}, 1]", f"data_seeds: {SEED_LIMIT} must be between 0 and"),
    ("model.block_size=200000", "model.block_size 200000 does not fit the data"),
    ("data.path=5", "[data] path = 5 must be a file name"),
    ('train.lr="fast"', '[train] lr = "fast" must be a number'),
]


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "run"])
@pytest.mark.parametrize(("override", "message"), REFUSED, ids=[o for o, _ in REFUSED])
def test_values_that_would_fail_later_are_refused_before_training(
    tmp_path, data_path, capsys, override, message, dry_run
):
    from reproduce.cli import main

    config = write_sweep(tmp_path / "tiny.toml")
    out = tmp_path / "out"
    args = ["run", "--config", str(config), "--out", str(out), "--data", str(data_path)]
    code = main([*args, "--set", override] + (["--dry-run"] if dry_run else []))
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1
    assert message in captured.err
    assert captured.out == "" and not out.exists()  # nothing listed, trained or written


def test_a_missing_reference_is_refused_before_training(tmp_path, data_path, capsys):
    from reproduce.cli import main

    config = write_sweep(tmp_path / "tiny.toml")
    out = tmp_path / "out"
    args = ["run", "--config", str(config), "--out", str(out), "--data", str(data_path)]
    assert main([*args, "--reference", str(tmp_path / "nope.json")]) == 2
    captured = capsys.readouterr()
    assert "reference file" in captured.err and "not found" in captured.err
    assert captured.err.count("\n") == 1 and not out.exists()


def test_the_largest_seed_a_generator_takes_is_accepted(tmp_path):
    path = write_sweep(tmp_path / "c.toml", seeds=(0, 2**64 - 1))
    config = load_config(path, [f"report.sample_seed={2**64 - 1}"])
    assert config.seeds == (0, 2**64 - 1) and config.report.sample_seed == 2**64 - 1


@pytest.mark.parametrize(
    "given, hint",
    [
        ("configs/partal.toml", "did you mean configs/partial.toml?"),
        ("configs/smoke", "did you mean configs/smoke.toml?"),
        ("elsewhere/cpu.tml", "did you mean configs/cpu.toml?"),
        ("configs/zzzzzz.toml", "the shipped configs are configs/"),
    ],
)
def test_a_mistyped_config_path_names_the_nearest_shipped_config(given, hint):
    with pytest.raises(FileNotFoundError) as caught:
        load_config(given)
    assert str(caught.value).startswith(f"config {given} not found; {hint}")
