"""Deterministic dropout masks and causal attention with dropout, written for CPU speed.

:mod:`charlm.model` uses PyTorch's own kernels (``F.dropout``, ``scaled_dot_product_attention``)
on CUDA. On the CPU those are slow with dropout: ``bernoulli_`` draws slowly, and
``scaled_dot_product_attention`` with ``dropout_p > 0`` leaves its fused kernel for a plain path
that computes the whole T x T score matrix. The kernels here draw their own masks from the
default generator (so a trial's seed fixes them) and skip the work above the causal diagonal.

Two mask resolutions (:func:`mask_bits`): 31-bit draws, used by every fp32 trial published so
far and kept unchanged for them, and 16-bit draws, four from each 64-bit draw, used under bf16.
With 16-bit masks attention runs in :class:`BlockCausalAttention`, whose backward is written out
so that each step takes the fewest passes over memory that the math allows.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "ATTENTION_BLOCK",
    "BlockCausalAttention",
    "causal_attention_with_dropout",
    "mask_bits",
    "threshold_keep",
]

ATTENTION_BLOCK = 64  # query rows per block (fastest measured at context 256 on two cores)


def mask_bits(kernel: str, x: torch.Tensor) -> int | None:
    """The mask resolution ``kernel`` draws for ``x``: 31 or 16 bits, or None for torch's kernels.

    "threshold" draws 31 bits, "threshold16" 16 and "torch" none (PyTorch's kernels). "auto" is
    torch's on CUDA and, on the CPU, 16 bits under bf16 autocast (bf16 keeps 8 significant bits,
    so 16-bit masks lose nothing that matters and cost a quarter of the draws), else 31 bits.
    """
    if kernel == "threshold":
        return 31
    if kernel == "threshold16":
        return 16
    if kernel == "torch" or x.device.type != "cpu":
        return None
    return 16 if torch.is_autocast_enabled("cpu") else 31


def threshold_keep(x: torch.Tensor, p: float, bits: int = 31) -> torch.Tensor:
    """The keep mask of inverted dropout with probability ``p``, shaped like ``x``.

    31 bits: int32 draws in [0, 2^31) from the default generator, kept at or above
    round(p * 2^31) (keep probability 1 - p to within 2^-31); a bool tensor.
    16 bits: the four int16 quarters of full-range int64 draws (memory order), kept at or above
    round(p * 2^16) - 2^15 (1 - p to within 2^-17); 0/1 in ``x``'s dtype, because on the CPU a
    product with a bool tensor takes a mixed-dtype path several times slower than one dtype.
    """
    if bits == 31:
        draws = torch.empty(x.shape, dtype=torch.int32, device=x.device).random_()
        return draws >= round(p * 2**31)
    words = torch.empty((x.numel() + 3) // 4, dtype=torch.int64, device=x.device)
    draws = words.random_(-(2**63), None).view(torch.int16)[: x.numel()].view(x.shape)
    keep = draws >= round(p * 2**16) - 2**15
    return keep.view(torch.uint8).to(x.dtype)  # bool -> uint8 -> float: the fast conversion


def causal_attention_with_dropout(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, future: torch.Tensor, p: float
) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d) + causal mask) V with 31-bit threshold dropout on the probabilities.

    Queries go in blocks of :data:`ATTENTION_BLOCK` rows and each block attends only to the keys
    up to its last row, skipping the work above the diagonal that the causal mask discards (on
    two CPU cores at context 256 this takes under half the time of
    ``scaled_dot_product_attention`` with dropout). Dropped probabilities are zeroed and the
    result scaled by 1 / (1 - p), which equals scaling the kept probabilities (Vaswani et al.
    2017, Eq. 1; dropout on the attention weights as in GPT-2 / nanoGPT). Autograd differentiates
    it; this is the fp32 path of every published fp32 trial.

    Args:
        q, k, v: (B, H, T, d). future: (>=T, >=T) bool, True above the diagonal. p: in (0, 1).

    Returns:
        (B, H, T, d).
    """
    T, d = q.size(-2), q.size(-1)
    q = q * (1.0 / math.sqrt(d))
    blocks = []
    for start in range(0, T, ATTENTION_BLOCK):
        end = min(T, start + ATTENTION_BLOCK)
        scores = q[..., start:end, :] @ k[..., :end, :].transpose(-2, -1)
        probs = torch.softmax(scores.masked_fill(future[start:end, :end], float("-inf")), dim=-1)
        blocks.append((probs * threshold_keep(probs, p)) @ v[..., :end, :])
    return torch.cat(blocks, dim=-2).mul_(1.0 / (1.0 - p))


class BlockCausalAttention(torch.autograd.Function):
    """Causal multi-head attention with 16-bit threshold dropout, forward and backward by hand.

    The same function as :func:`causal_attention_with_dropout` (query blocks of
    :data:`ATTENTION_BLOCK` rows, keys up to each block's last row), computed with fewer passes
    over memory: the 1/sqrt(d) scale and the causal mask enter the score product itself
    (``baddbmm`` with an additive 0 / -inf bias), masks are 0/1 in the compute dtype, each
    block's output is written in place into the (B, T, C) result, and the backward accumulates
    the key and value gradients of all blocks in place instead of through autograd's zero-padded
    slices. Backward, per block with S = scores, P = softmax(S), M = mask, s = 1 / (1 - p):
    dV += (P M)^T dY s; dP = (dY s V^T) M; dS = P (dP - rowsum(dP P)) (softmax's Jacobian);
    dQ = dS K / sqrt(d); dK += dS^T Q / sqrt(d).

    Call as ``BlockCausalAttention.apply(qkv, n_head, bias, p)``: ``qkv`` (B, T, 3C), the
    concatenated query, key and value projections; ``bias`` (>=T, >=T) in ``qkv``'s dtype, 0 on
    and below the diagonal and -inf above; ``p`` in (0, 1). Returns (B, T, C).
    """

    @staticmethod
    def forward(ctx, qkv: torch.Tensor, n_head: int, bias: torch.Tensor, p: float) -> torch.Tensor:
        B, T, C3 = qkv.shape
        C, H = C3 // 3, n_head
        d = C // H
        # (B, T, 3, H, d) -> (3, B*H, T, d), one copy; q, k, v are contiguous slices of it.
        heads = qkv.view(B, T, 3, H, d).permute(2, 0, 3, 1, 4).reshape(3, B * H, T, d)
        q, k, v = heads.unbind(0)
        alpha, scale = 1.0 / math.sqrt(d), 1.0 / (1.0 - p)
        y = qkv.new_empty(B, T, H, d)
        saved = []
        for start in range(0, T, ATTENTION_BLOCK):
            end = min(T, start + ATTENTION_BLOCK)
            scores = torch.baddbmm(
                bias[start:end, :end], q[:, start:end], k[:, :end].transpose(1, 2), alpha=alpha
            )
            probs = torch.softmax(scores, dim=-1)
            keep = threshold_keep(probs, p, 16)
            dropped = probs * keep
            out = torch.bmm(dropped, v[:, :end]).view(B, H, end - start, d).transpose(1, 2)
            torch.mul(out, scale, out=y[:, start:end])
            saved += [probs, keep, dropped]
        ctx.save_for_backward(heads, *saved)
        ctx.n_head, ctx.alpha, ctx.scale = H, alpha, scale
        return y.view(B, T, C)

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        heads, *saved = ctx.saved_tensors
        _, BH, T, d = heads.shape
        H, alpha = ctx.n_head, ctx.alpha
        B = BH // H
        q, k, v = heads.unbind(0)
        g = grad_y.new_empty(B, H, T, d)
        torch.mul(grad_y.view(B, T, H, d).transpose(1, 2), ctx.scale, out=g)
        g = g.view(BH, T, d)
        grads = torch.empty_like(heads)
        dq, dk, dv = grads.unbind(0)
        dk.zero_()
        dv.zero_()
        for i, start in enumerate(range(0, T, ATTENTION_BLOCK)):
            end = min(T, start + ATTENTION_BLOCK)
            probs, keep, dropped = saved[3 * i : 3 * i + 3]
            g_block = g[:, start:end]
            dv[:, :end].baddbmm_(dropped.transpose(1, 2), g_block)
            d_probs = torch.bmm(g_block, v[:, :end].transpose(1, 2)).mul_(keep)
            d_scores = torch._softmax_backward_data(d_probs, probs, -1, probs.dtype)
            dq[:, start:end].baddbmm_(d_scores, k[:, :end], beta=0.0, alpha=alpha)
            dk[:, :end].baddbmm_(d_scores.transpose(1, 2), q[:, start:end], alpha=alpha)
        C = H * d
        grad_qkv = grads.view(3, B, H, T, d).permute(1, 3, 0, 2, 4).reshape(B, T, 3 * C)
        return grad_qkv, None, None, None
