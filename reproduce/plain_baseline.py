"""A plain PyTorch implementation of the same model and step, the benchmark's point of comparison.

Written the way a straightforward GPT training script is: ``nn.Dropout`` modules and
``scaled_dot_product_attention(dropout_p=...)``, PyTorch's default AdamW, batches stacked from a
Python list of windows, and the loss read back with ``.item()`` every step. Same shapes, same
parameter count and the same amount of work as :class:`charlm.model.CharLM`; nothing here is used
for results. ``python -m reproduce bench --baseline`` times both on the same machine and prints
the ratio.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from charlm.activations import make_activation
from charlm.model import ModelConfig

__all__ = ["PlainGPT", "time_plain_steps"]


class _Block(nn.Module):
    def __init__(self, c: ModelConfig) -> None:
        super().__init__()
        self.n_head, self.p = c.n_head, c.dropout
        self.ln1, self.ln2 = nn.LayerNorm(c.n_embd), nn.LayerNorm(c.n_embd)
        self.qkv = nn.Linear(c.n_embd, 3 * c.n_embd)
        self.proj = nn.Linear(c.n_embd, c.n_embd)
        self.fc = nn.Linear(c.n_embd, 4 * c.n_embd)
        self.act = make_activation(c.activation)
        self.fc_proj = nn.Linear(4 * c.n_embd, c.n_embd)
        self.drop1, self.drop2 = nn.Dropout(c.dropout), nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, -1).transpose(1, 2) for t in (q, k, v))
        p = self.p if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        x = x + self.drop1(self.proj(y.transpose(1, 2).reshape(B, T, C)))
        return x + self.drop2(self.fc_proj(self.act(self.fc(self.ln2(x)))))


class PlainGPT(nn.Module):
    """The plain model: (B, T) int64 in, (logits (B, T, V), mean cross-entropy) out."""

    def __init__(self, c: ModelConfig) -> None:
        super().__init__()
        self.tok = nn.Embedding(c.vocab_size, c.n_embd)
        self.pos = nn.Embedding(c.block_size, c.n_embd)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(_Block(c) for _ in range(c.n_layer))
        self.ln = nn.LayerNorm(c.n_embd)
        self.head = nn.Linear(c.n_embd, c.vocab_size, bias=False)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor):
        x = self.drop(self.tok(idx) + self.pos(torch.arange(idx.size(1))))
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln(x))
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def time_plain_steps(
    config: ModelConfig,
    train_data: torch.Tensor,
    batch_size: int,
    lr: float,
    iters: int,
    warmup: int,
    threads: int,
) -> dict:
    """Time ``iters`` plain training steps (after ``warmup``) on the CPU with ``threads`` threads.

    Returns:
        ms/iter (median, mean) and tokens/s from the median.
    """
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = PlainGPT(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.1)
    T = config.block_size
    times = []
    for step in range(warmup + iters):
        start = time.perf_counter()
        ix = torch.randint(len(train_data) - T, (batch_size,))
        x = torch.stack([train_data[i : i + T] for i in ix])
        y = torch.stack([train_data[i + 1 : i + 1 + T] for i in ix])
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        loss.item()
        if step >= warmup:
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {
        "ms_per_iter_median": 1000 * median,
        "ms_per_iter_mean": 1000 * statistics.fmean(times),
        "tokens_per_s": batch_size * T / median,
    }
