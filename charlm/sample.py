"""Text generation from a trained CharLM."""

from __future__ import annotations

import math

import torch

from charlm.data import decode, encode
from charlm.model import CharLM

__all__ = ["DEFAULT_TEMPERATURE", "DEFAULT_TOKENS", "SEED_MAX", "generate", "sample_text"]

# The samples in every report: 300 characters at temperature 0.8 (below 1 sharpens the softmax).
DEFAULT_TEMPERATURE = 0.8
DEFAULT_TOKENS = 300
SEED_MAX = 2**64 - 1  # torch.Generator.manual_seed's range


@torch.no_grad()
def generate(
    model: CharLM,
    idx: torch.Tensor,
    n_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Extend ``idx`` by ``n_tokens`` characters sampled autoregressively.

    Each step feeds the last ``block_size`` characters, divides the final logits by
    ``temperature``, keeps the ``top_k`` largest (all when None), and samples from the softmax
    with ``generator`` (CPU), so the output is fixed by the generator's seed.

    Args:
        model: the model (put in eval mode here).
        idx: (B, T0) int64 prompt indices on the model's device, T0 >= 1.
        n_tokens: characters to add (>= 0).

    Returns:
        (B, T0 + n_tokens) int64.

    Raises:
        ValueError: ``temperature`` not a positive finite number, ``top_k`` < 1, or
            ``n_tokens`` < 0.
    """
    if not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a positive finite number, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    if n_tokens < 0:
        raise ValueError(f"the number of tokens must be >= 0, got {n_tokens}")
    model.eval()
    block = model.config.block_size
    for _ in range(n_tokens):
        logits = model(idx[:, -block:])[:, -1, :].float().cpu() / temperature
        if top_k is not None:
            kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        nxt = torch.multinomial(probs, 1, generator=generator).to(idx.device)
        idx = torch.cat([idx, nxt], dim=1)
    return idx


def sample_text(
    model: CharLM,
    chars: str,
    prompt: str,
    n_tokens: int,
    temperature: float = DEFAULT_TEMPERATURE,
    top_k: int | None = None,
    seed: int = 0,
) -> str:
    """The prompt followed by ``n_tokens`` sampled characters (CPU generator seeded ``seed``).

    Raises:
        ValueError: an empty prompt, a prompt character outside the vocabulary (named), a seed
            outside 0 .. 2**64 - 1 (what a torch generator takes), or the errors of
            :func:`generate`.
    """
    if not 0 <= seed <= SEED_MAX:
        raise ValueError(f"the seed must be from 0 to 2**64 - 1, got {seed}")
    if not prompt:
        raise ValueError("the prompt must contain at least one character")
    device = next(model.parameters()).device
    idx = encode(prompt, chars).unsqueeze(0).to(device)
    generator = torch.Generator().manual_seed(seed)
    out = generate(model, idx, n_tokens, temperature, top_k, generator)
    return decode(out[0].tolist(), chars)
