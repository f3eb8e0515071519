"""Every speed option keeps the bit-exact rerun guarantee on the CPU, and the fast kernels
compute what they claim."""

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_spec

from charlm import model as model_mod
from charlm.model import Dropout, causal_attention_with_dropout, threshold_keep
from charlm.train import train_trial

OPTIONS = [
    ("model", {"dropout_kernel": "threshold"}),
    ("model", {"dropout_kernel": "torch"}),
    ("train", {"optimizer_impl": "fused"}),
    ("train", {"optimizer_impl": "foreach"}),
    ("train", {"optimizer_impl": "for-loop"}),
    ("train", {"precision": "bf16"}),
    ("train", {"compile": True}),
]


def spec_with(where, change):
    spec = tiny_spec(0, max_iters=12, eval_interval=12)
    if where == "train":
        return tiny_spec(0, max_iters=12, eval_interval=12, **change)
    model = model_mod.ModelConfig.from_dict({**spec.model.to_dict(), **change})
    return type(spec)(model, spec.train, spec.seed)


@pytest.mark.parametrize(("where", "change"), OPTIONS, ids=lambda v: str(v))
def test_each_speed_option_reruns_bit_identically(corpus, tmp_path, where, change):
    spec = spec_with(where, change)
    first = train_trial(spec, corpus, tmp_path / "a", progress=False)
    second = train_trial(spec, corpus, tmp_path / "b", progress=False)
    assert first["weights_sha256"] == second["weights_sha256"]
    timing = ("elapsed_s", "tokens_per_s")
    assert [{k: v for k, v in c.items() if k not in timing} for c in first["curves"]] == [
        {k: v for k, v in c.items() if k not in timing} for c in second["curves"]
    ]
    recorded = {**first["model"], **first["train"]}
    for key, value in change.items():
        assert recorded[key] == value  # the option is recorded with the trial
    assert first["final"]["val_loss"] < math.log(65)


def test_kernels_draw_different_bits_but_learn_alike(corpus, tmp_path):
    a = train_trial(
        spec_with("model", {"dropout_kernel": "threshold"}), corpus, tmp_path / "a", progress=False
    )
    b = train_trial(
        spec_with("model", {"dropout_kernel": "torch"}), corpus, tmp_path / "b", progress=False
    )
    assert a["weights_sha256"] != b["weights_sha256"]
    assert abs(a["final"]["val_loss"] - b["final"]["val_loss"]) < 0.05


def test_threshold_dropout_keeps_1_minus_p_and_rescales():
    torch.manual_seed(0)
    x = torch.ones(1000, 1000)
    keep = threshold_keep(x, 0.2)
    assert keep.dtype == torch.bool and keep.shape == x.shape
    assert abs(keep.float().mean().item() - 0.8) < 0.002  # 1e6 draws: SD 0.0004
    layer = Dropout(0.2, "threshold").train()
    y = layer(x)
    assert set(torch.unique(y).tolist()) == {0.0, 1.25}
    assert abs(y.mean().item() - 1.0) < 0.005
    assert torch.equal(layer.eval()(x), x)
    assert torch.equal(Dropout(0.0, "threshold").train()(x), x)


def test_threshold_dropout_gradient_is_the_mask():
    torch.manual_seed(1)
    x = torch.randn(64, 32, requires_grad=True)
    torch.manual_seed(2)
    y = Dropout(0.5, "threshold").train()(x)
    y.sum().backward()
    torch.manual_seed(2)
    expected = threshold_keep(x, 0.5).float() * 2.0
    assert torch.equal(x.grad, expected)


@pytest.mark.parametrize("T", [1, 63, 64, 150, 256])
def test_blocked_attention_equals_causal_softmax_attention(T, monkeypatch):
    """With every probability kept, the blocked attention times (1 - p) is exactly causal
    attention (checked against scaled_dot_product_attention's math, in float64)."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, T, 8, dtype=torch.float64) for _ in range(3))
    future = torch.ones(256, 256, dtype=torch.bool).triu(1)
    monkeypatch.setattr(
        model_mod, "threshold_keep", lambda x, p: torch.ones(x.shape, dtype=torch.bool)
    )
    y = causal_attention_with_dropout(q, k, v, future, 0.2) * 0.8
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(y, expected, rtol=1e-12, atol=1e-12)


def test_auto_kernel_is_threshold_on_cpu_and_torch_on_cuda():
    assert model_mod._threshold_kernel("auto", torch.device("cpu"))
    assert not model_mod._threshold_kernel("auto", torch.device("cuda"))
    assert model_mod._threshold_kernel("threshold", torch.device("cuda"))
    assert not model_mod._threshold_kernel("torch", torch.device("cpu"))
