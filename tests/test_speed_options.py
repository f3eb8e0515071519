"""Every speed option keeps the bit-exact rerun guarantee on the CPU, and the fast kernels
compute what they claim."""

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_spec

from charlm import cpu
from charlm import kernels as kernels_mod
from charlm import model as model_mod
from charlm.activations import SmeLU
from charlm.kernels import (
    ATTENTION_BLOCK,
    BlockCausalAttention,
    causal_attention_with_dropout,
    mask_bits,
    threshold_keep,
)
from charlm.model import Dropout
from charlm.train import resolve_precision, train_trial

OPTIONS = [
    ("model", {"dropout_kernel": "threshold"}),
    ("model", {"dropout_kernel": "threshold16"}),
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
        kernels_mod, "threshold_keep", lambda x, p: torch.ones(x.shape, dtype=torch.bool)
    )
    y = causal_attention_with_dropout(q, k, v, future, 0.2) * 0.8
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(y, expected, rtol=1e-12, atol=1e-12)


def test_auto_kernel_follows_device_and_precision():
    cpu_x, cuda_x = torch.empty(1), torch.empty(1, device="meta")
    assert mask_bits("auto", cpu_x) == 31  # fp32 on the CPU: the published masks
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert mask_bits("auto", cpu_x) == 16
        assert mask_bits("threshold", cpu_x) == 31
    assert mask_bits("threshold16", cpu_x) == 16
    assert mask_bits("auto", cuda_x) is None  # not the CPU: PyTorch's kernels
    assert mask_bits("torch", cpu_x) is None


def test_16_bit_masks_keep_1_minus_p_in_the_input_dtype():
    torch.manual_seed(0)
    x = torch.ones(1000, 1001, dtype=torch.bfloat16)  # numel not a multiple of 4
    keep = threshold_keep(x, 0.2, 16)
    assert keep.dtype == torch.bfloat16 and keep.shape == x.shape
    assert set(torch.unique(keep).tolist()) == {0.0, 1.0}
    assert abs(keep.float().mean().item() - 0.8) < 0.002  # 1e6 draws: SD 0.0004
    torch.manual_seed(0)
    words = torch.empty((x.numel() + 3) // 4, dtype=torch.int64).random_(-(2**63), None)
    quarters = words.view(torch.int16)[: x.numel()].view(x.shape)
    assert torch.equal(keep.bool(), quarters >= round(0.2 * 65536) - 32768)


@pytest.mark.parametrize("T", [1, 63, 64, 150, 256])
def test_block_attention_equals_causal_attention_with_the_same_masks(T):
    """Forward and backward of BlockCausalAttention equal plain causal attention with the masks
    it drew (float64; the masks replayed block by block from the same generator state)."""
    B, H, d, p = 2, 3, 8, 0.2
    C = H * d
    torch.manual_seed(1)
    qkv = torch.randn(B, T, 3 * C, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(B, T, C, dtype=torch.float64)
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    bias = torch.zeros(T, T, dtype=torch.float64).masked_fill_(future, float("-inf"))
    torch.manual_seed(5)
    y = BlockCausalAttention.apply(qkv, H, bias, p)
    (dqkv,) = torch.autograd.grad(y, qkv, grad)
    torch.manual_seed(5)
    masks = torch.zeros(B * H, T, T, dtype=torch.float64)
    for start in range(0, T, ATTENTION_BLOCK):
        end = min(T, start + ATTENTION_BLOCK)
        block = torch.empty(B * H, end - start, end, dtype=torch.float64)
        masks[:, start:end, :end] = threshold_keep(block, p, 16)
    q, k, v = (t.view(B, T, H, d).transpose(1, 2) for t in qkv.split(C, 2))
    probs = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d) + bias, dim=-1)
    expected = (probs * masks.view(B, H, T, T) / (1 - p)) @ v
    expected = expected.transpose(1, 2).reshape(B, T, C)
    (expected_grad,) = torch.autograd.grad(expected, qkv, grad)
    torch.testing.assert_close(y, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(dqkv, expected_grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("beta", [0.5, 1.0])
def test_smelu_bf16_path_matches_its_formula_and_derivative(beta):
    """bf16 SmeLU (the fused path) against the reference expression in float64: values to bf16
    rounding, gradient equal to clamp((x + beta) / (2 beta), 0, 1) times the incoming one."""
    x = torch.linspace(-3, 3, 6001).to(torch.bfloat16).requires_grad_()
    y = SmeLU(beta)(x)
    assert y.dtype == torch.bfloat16
    exact = SmeLU(beta)(x.detach().double())  # float64 takes the reference expression
    torch.testing.assert_close(y.double(), exact, rtol=2**-7, atol=2**-8)
    y.backward(torch.ones_like(y))
    slope = ((x.detach().double() + beta) / (2 * beta)).clamp(0, 1)
    torch.testing.assert_close(x.grad.double(), slope, rtol=2**-7, atol=2**-8)
    assert torch.equal(
        SmeLU(beta)(torch.tensor([-beta - 1, beta + 1])), torch.tensor([0, beta + 1])
    )


def test_auto_precision_is_bf16_exactly_where_the_cpu_computes_it_natively(monkeypatch):
    cpu_device = torch.device("cpu")
    expected = "bf16" if cpu.bf16_native() else "fp32"
    assert resolve_precision("auto", cpu_device) == expected
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert resolve_precision("fp32", cpu_device) == "fp32"
    monkeypatch.setattr(cpu, "bf16_native", lambda: False)
    assert resolve_precision("auto", cpu_device) == "fp32"
    monkeypatch.setattr(cpu, "bf16_native", lambda: True)
    assert resolve_precision("auto", cpu_device) == "bf16"


def test_bf16_capability_reads_torch_or_cpuinfo(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert cpu.bf16_capability() == "avx512_bf16"
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    monkeypatch.setattr(cpu, "_cpuinfo_flags", lambda: {"avx2", "fma"})
    assert cpu.bf16_capability() == "none" and not cpu.bf16_native()
    monkeypatch.setattr(cpu, "_cpuinfo_flags", lambda: {"avx512f", "amx_bf16"})
    assert cpu.bf16_capability() == "amx"
