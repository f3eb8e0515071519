"""CharLM: a GPT-style decoder-only character language model (the study's model).

Layout as in nanoGPT (Karpathy, github.com/karpathy/nanoGPT, model.py) and GPT-2 (Radford et al.
2019): token + position embeddings, ``n_layer`` pre-LayerNorm blocks (causal self-attention, then
an MLP of width 4 x ``n_embd`` with the configured activation), a final LayerNorm and a linear
output head without bias, not tied to the token embedding.

Weight initialisation (nanoGPT's scheme, after GPT-2 Section 2.3): every Linear and Embedding
weight ~ N(0, 0.02); every bias 0; the two residual output projections of each block
(attention ``proj`` and MLP ``proj``) ~ N(0, 0.02 / sqrt(2 n_layer)); LayerNorm weight 1, bias 0.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from charlm.activations import canonical_name, make_activation
from charlm.kernels import (
    BlockCausalAttention,
    causal_attention_with_dropout,
    mask_bits,
    threshold_keep,
)

__all__ = ["DROPOUT_SITES", "DROPOUT_KERNELS", "ModelConfig", "CharLM", "Dropout"]

DROPOUT_SITES = ("embedding", "attention", "residual")
DROPOUT_KERNELS = ("auto", "threshold", "threshold16", "torch")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a CharLM. Every choice that changes results or speed is a field.

    Attributes:
        n_layer: number of transformer blocks.
        n_head: attention heads; must divide ``n_embd``.
        n_embd: residual stream width.
        block_size: context length in characters (the longest sequence ``forward`` accepts).
        vocab_size: number of distinct characters (65 for tiny Shakespeare).
        dropout: dropout probability used at every site in ``dropout_sites``.
        bias: biases in every Linear (except the output head) and LayerNorm.
        activation: MLP activation, any name :func:`charlm.activations.canonical_name` accepts;
            stored canonically.
        dropout_sites: where dropout applies: after the embedding sum ("embedding"), on the
            attention probabilities ("attention"), on each residual branch output ("residual").
            All three by default, as nanoGPT does and every study config uses.
        dropout_kernel: how dropout masks are drawn (a speed setting; each draws a different
            random stream, so results differ in their bits): "torch" (``F.dropout`` and
            ``scaled_dot_product_attention``'s own dropout), "threshold" (:class:`Dropout`'s
            int32 masks; attention with dropout is then written out as softmax(QK^T)V) or
            "auto" (threshold on the CPU, where it is about 3x faster to draw, torch elsewhere).

    Raises:
        ValueError: a non-positive size, ``n_embd`` not divisible by ``n_head``, dropout outside
            [0, 1), an unknown dropout site or activation.
    """

    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    block_size: int = 256
    vocab_size: int = 65
    dropout: float = 0.2
    bias: bool = True
    activation: str = "gelu"
    dropout_sites: tuple[str, ...] = field(default=DROPOUT_SITES)
    dropout_kernel: str = "auto"

    def __post_init__(self) -> None:
        for name in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"model.{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(
                f"model.n_embd ({self.n_embd}) must be divisible by model.n_head ({self.n_head})"
            )
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout!r}")
        sites = tuple(self.dropout_sites)
        unknown = sorted(set(sites) - set(DROPOUT_SITES))
        if unknown:
            raise ValueError(
                f"model.dropout_sites has unknown {unknown}: valid sites are {list(DROPOUT_SITES)}"
            )
        object.__setattr__(self, "dropout_sites", tuple(s for s in DROPOUT_SITES if s in sites))
        if self.dropout_kernel not in DROPOUT_KERNELS:
            raise ValueError(
                f"model.dropout_kernel must be one of {DROPOUT_KERNELS}, "
                f"got {self.dropout_kernel!r}"
            )
        object.__setattr__(self, "dropout", float(self.dropout))
        object.__setattr__(self, "activation", canonical_name(self.activation))

    def to_dict(self) -> dict:
        """Plain JSON-serialisable form (lists for tuples)."""
        out = asdict(self)
        out["dropout_sites"] = list(self.dropout_sites)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        """Inverse of :meth:`to_dict`. Raises ValueError naming an unknown key."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model setting(s) {unknown}: valid are {sorted(known)}")
        data = dict(data)
        if "dropout_sites" in data:
            data["dropout_sites"] = tuple(data["dropout_sites"])
        return cls(**data)

    def site_dropout(self, site: str) -> float:
        """Dropout probability at ``site`` (0.0 where dropout does not apply)."""
        return self.dropout if site in self.dropout_sites else 0.0


class Dropout(nn.Module):
    """Inverted dropout (Srivastava et al. 2014, JMLR 15, Section 2) with a selectable kernel.

    In training, each element is kept with probability 1 - p and scaled by 1 / (1 - p). The
    threshold kernels draw uniform integers from the default generator and keep those at or
    above a threshold (:func:`threshold_keep`): 31-bit draws keep with probability 1 - p to
    within 2^-31, 16-bit draws (four from each 64-bit draw, about 4x cheaper) to within 2^-17.
    "torch" calls ``F.dropout``; :func:`mask_bits` says what "auto" picks. In eval mode, or with
    p = 0, the input is returned unchanged. Shapes: (*) in and out.
    """

    def __init__(self, p: float, kernel: str = "auto") -> None:
        super().__init__()
        self.p, self.kernel = float(p), kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        bits = mask_bits(self.kernel, x)
        if bits is None:
            return F.dropout(x, self.p, True)
        return (x * threshold_keep(x, self.p, bits)).mul_(1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}, kernel={self.kernel}"


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention (Vaswani et al. 2017, Eq. 1; dropout on the attention
    weights as in GPT-2 / nanoGPT). Input and output (B, T, n_embd).

    Uses ``F.scaled_dot_product_attention`` (fused kernels) except when attention dropout is
    drawn by a threshold kernel in training (:func:`charlm.kernels.mask_bits`): then
    :func:`charlm.kernels.causal_attention_with_dropout` (31-bit masks) or
    :class:`charlm.kernels.BlockCausalAttention` (16-bit masks) computes it.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = config.site_dropout("attention")
        self.kernel = config.dropout_kernel
        self.resid_dropout = Dropout(config.site_dropout("residual"), config.dropout_kernel)
        causal = torch.ones(config.block_size, config.block_size, dtype=torch.bool).triu(1)
        self.register_buffer("future", causal, persistent=False)  # True above the diagonal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        qkv = self.qkv(x)
        p = self.attn_dropout if self.training else 0.0
        bits = mask_bits(self.kernel, x) if p > 0.0 else None
        if bits == 16:
            bias = torch.zeros(T, T, dtype=qkv.dtype, device=x.device)
            bias.masked_fill_(self.future[:T, :T], float("-inf"))
            y = BlockCausalAttention.apply(qkv, self.n_head, bias, p)
            return self.resid_dropout(self.proj(y))
        # (B, T, C) -> (B, n_head, T, head_dim)
        q, k, v = (
            t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in qkv.split(C, 2)
        )
        if bits == 31:
            y = causal_attention_with_dropout(q, k, v, self.future, p)
        else:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.proj(y))


class MLP(nn.Module):
    """Feed-forward: Linear(C, 4C), activation, Linear(4C, C); (B, T, C) in and out."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.act = make_activation(config.activation)
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = Dropout(config.site_dropout("residual"), config.dropout_kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(self.act(self.fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: ``x + attn(ln1(x))``, then ``x + mlp(ln2(x))``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Under autocast the branches return bf16 and the residual stream stays fp32; casting
        # first gives the same sum as a mixed-dtype add, which is several times slower on CPUs.
        x = x + self.attn(self.ln1(x)).to(x.dtype)
        return x + self.mlp(self.ln2(x)).to(x.dtype)


class CharLM(nn.Module):
    """The character language model. See the module docstring for layout and initialisation.

    With the study's configuration (6 layers, 6 heads, width 384, context 256, vocabulary 65,
    biases, a parameter-free activation) it has 10,795,776 trainable parameters.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.pos_emb = nn.Embedding(config.block_size, config.n_embd)
        self.emb_dropout = Dropout(config.site_dropout("embedding"), config.dropout_kernel)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        residual_std = 0.02 / math.sqrt(2 * config.n_layer)
        for block in self.blocks:
            nn.init.normal_(block.attn.proj.weight, mean=0.0, std=residual_std)
            nn.init.normal_(block.mlp.proj.weight, mean=0.0, std=residual_std)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_parameters(self) -> int:
        """Number of trainable parameters (embeddings included)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Next-character logits, and the loss when ``targets`` are given.

        Args:
            idx: (B, T) int64 character indices, T <= block_size.
            targets: optional (B, T) int64 indices of the next characters.

        Returns:
            logits (B, T, vocab_size); with ``targets``, ``(logits, loss)`` where ``loss`` is the
            mean cross-entropy over all B*T positions in nats (a 0-dim tensor).

        Raises:
            ValueError: ``idx`` is not 2-D or T exceeds ``block_size``.
        """
        if idx.dim() != 2:
            raise ValueError(f"idx must have shape (B, T), got {tuple(idx.shape)}")
        T = idx.size(1)
        if T > self.config.block_size:
            raise ValueError(
                f"sequence length {T} exceeds the model's block_size {self.config.block_size}"
            )
        pos = torch.arange(T, device=idx.device)
        x = self.emb_dropout(self.tok_emb(idx) + self.pos_emb(pos))
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln_f(x))
        if targets is None:
            return logits
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.reshape(-1))
        return logits, loss
