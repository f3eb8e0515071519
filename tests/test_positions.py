"""``positions``: per-position val loss and accuracy, checked against a direct computation of
the same windows, and the study's last-position accuracy (its train.py, lines 65-96)."""

import json

import pytest
import torch
import torch.nn.functional as F

from charlm.checkpoint import save_weights
from charlm.metrics import EvalSet, by_position
from charlm.model import CharLM, ModelConfig
from charlm.study.model import STUDY_DROPOUT_SITES, StudyCharLM
from reproduce.cli import main

BLOCK = 16


def tiny(layout):
    """A 1-layer, 16-wide model of either layout, random weights (seed 3)."""
    torch.manual_seed(3)
    study = {"bias": True, "dropout_sites": STUDY_DROPOUT_SITES} if layout is StudyCharLM else {}
    config = ModelConfig(
        n_layer=1, n_head=2, n_embd=16, block_size=BLOCK, vocab_size=65, dropout=0.0, **study
    )
    return layout(config)


@pytest.mark.parametrize("layout", [CharLM, StudyCharLM])
def test_positions_are_each_position_s_loss_and_the_study_s_last_position_accuracy(
    layout, corpus, data_path, tmp_path, capsys
):
    model = tiny(layout)
    weights = save_weights(tmp_path / "weights.safetensors", model, corpus.chars)
    out = tmp_path / "positions.json"
    args = ["positions", str(weights), "--windows", "30", "--seed", "5", "--json", str(out)]
    assert main([*args, "--data", str(data_path)]) == 0
    got = json.loads(out.read_text(encoding="utf-8"))["models"][0]

    starts = torch.randint(
        len(corpus.val) - BLOCK, (30,), generator=torch.Generator().manual_seed(5)
    )
    x = torch.stack([corpus.val[s : s + BLOCK] for s in starts])
    y = torch.stack([corpus.val[s + 1 : s + BLOCK + 1] for s in starts])
    model.eval()
    with torch.no_grad():
        logits = model(x)
    loss = F.cross_entropy(logits.transpose(1, 2), y, reduction="none").double().mean(dim=0)
    assert len(got["loss"]) == BLOCK and got["block_size"] == BLOCK
    assert got["loss"] == pytest.approx(loss.tolist(), abs=1e-6)
    assert got["every"]["loss"] == pytest.approx(loss.mean().item(), abs=1e-6)
    # the study's calculate_accuracy: the argmax at the last position against its target
    study = 100.0 * (logits[:, -1].argmax(dim=-1) == y[:, -1]).sum().item() / 30
    assert got["last"]["accuracy"] == study == got["accuracy"][-1]
    every = 100.0 * (logits.argmax(dim=-1) == y).double().mean().item()
    assert got["every"]["accuracy"] == pytest.approx(every, abs=1e-9)
    printed = capsys.readouterr().out
    assert f"last position {BLOCK - 1}" in printed and "(the study's accuracy)" in printed
    paths = (str(weights), f"per-position curves: {out}")
    assert all(len(line) <= 80 for line in printed.splitlines() if line not in paths)


def test_by_position_refuses_windows_of_several_lengths(corpus):
    mixed = EvalSet.from_starts(corpus.val, torch.tensor([0, 100]), [BLOCK, BLOCK - 1])
    with pytest.raises(ValueError, match="windows of one length"):
        by_position(tiny(CharLM), mixed, 4)


@pytest.mark.parametrize(
    "case, message",
    [
        ("vocabulary", "was trained on another vocabulary than this corpus's"),
        ("windows", "--windows must be at least 1, got 0"),
        ("missing", "is not a file; name a trial's weights.safetensors"),
    ],
)
def test_bad_input_is_one_line(case, message, corpus, data_path, tmp_path, capsys):
    chars = corpus.chars[:-1] + "~" if case == "vocabulary" else corpus.chars
    weights = save_weights(tmp_path / "w.safetensors", tiny(CharLM), chars)
    named = tmp_path / "none.safetensors" if case == "missing" else weights
    windows = "0" if case == "windows" else "10"
    out = tmp_path / "p.json"
    args = ["positions", str(named), "--windows", windows, "--data", str(data_path)]
    assert main([*args, "--json", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not out.exists()
