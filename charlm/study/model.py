"""The study's CharLM, module for module, so that it initialises from the generator as the
study's did.

Layout (the study's ``model.py``, classes ``SelfAttention``, ``FeedForward``,
``TransformerBlock``, ``CharLM``): token and position ``nn.Embedding``; ``n_layer`` pre-LayerNorm
blocks, each with separate ``key``, ``query``, ``value`` and ``proj`` Linears (bias), dropout on
the attention probabilities and after ``proj``, and a feed-forward ``nn.Sequential(Linear(C, 4C),
activation, Linear(4C, C), Dropout)``; a final LayerNorm and a Linear head without bias. No
dropout after the embedding; attention is written out as softmax(QK^T / sqrt(d) + causal mask) V.

Initialisation draws from PyTorch's default CPU generator in the study's order: every module's
own default initialisation as it is constructed (``nn.Embedding``: N(0, 1); ``nn.Linear``:
Kaiming-uniform weight, uniform bias), then one pass over the modules in ``Module.apply``'s order
(children before parents) that sets every Linear and Embedding weight to N(0, 0.02) and every
Linear bias to zero. The first draws are thus consumed and overwritten, exactly as the study's
were. Build the model on the CPU right after seeding the default generator
(:func:`charlm.study.stream.seeded_build`).

Dropout masks come from :class:`DropoutSource`, not from the default generator, so that the
default generator's stream (data, evaluation, accuracy and PD windows) is the study's.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from charlm.activations import canonical_name, make_activation
from charlm.model import ModelConfig

__all__ = ["STUDY_DROPOUT_SITES", "DropoutSource", "StudyCharLM", "check_config"]

STUDY_DROPOUT_SITES = ("attention", "residual")
INIT_STD = 0.02  # the study's model.py, CharLM._init_weights


def check_config(config: ModelConfig) -> None:
    """Refuse a model config that does not describe the study's layout.

    Raises:
        ValueError: ``bias`` is false or ``dropout_sites`` is not attention and residual (the
            study's layout has biases and no embedding dropout); the message names the setting.
    """
    if not config.bias:
        raise ValueError("model.bias = false: the study protocol's model has biases; set true")
    if tuple(config.dropout_sites) != STUDY_DROPOUT_SITES:
        raise ValueError(
            f"model.dropout_sites = {list(config.dropout_sites)}: the study protocol drops out "
            f"at {list(STUDY_DROPOUT_SITES)} only (none after the embedding); set that"
        )


class DropoutSource:
    """Where a study model's dropout masks come from.

    ``generator`` None: ``F.dropout`` on the device's default generator (the study's GPU runs:
    the CUDA generator, seeded with the trial's seed). A CPU ``torch.Generator``: masks are
    Bernoulli(1 - p) draws from it, so dropout never touches the default CPU generator.
    """

    def __init__(self, generator: torch.Generator | None = None) -> None:
        self.generator = generator

    def apply(self, x: torch.Tensor, p: float) -> torch.Tensor:
        """Inverted dropout of ``x`` (any shape) with probability ``p``; same shape out."""
        if self.generator is None or x.device.type != "cpu":
            return F.dropout(x, p, True)
        keep = torch.empty_like(x).bernoulli_(1.0 - p, generator=self.generator)
        return x * keep * (1.0 / (1.0 - p))


class StudyDropout(nn.Module):
    """Dropout at one of the study's sites, masks from a shared :class:`DropoutSource`."""

    def __init__(self, p: float, source: DropoutSource) -> None:
        super().__init__()
        self.p, self.source = float(p), source

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        return self.source.apply(x, self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class StudySwish(nn.Module):
    """Swish as the study computed it: ``x * sigmoid(x)`` (its ``activations.py``); shapes (*)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


def study_activation(name: str) -> nn.Module:
    """The study's activation module for a canonical name: ReLU, GELU (erf form) and SmeLU have
    the same values as :func:`charlm.activations.make_activation`'s; Swish is ``x*sigmoid(x)``."""
    if canonical_name(name) == "swish":
        return StudySwish()
    return make_activation(name)


class SelfAttention(nn.Module):
    """Causal multi-head self-attention with separate key/query/value Linears; (B, T, C) in and
    out. Scores are scaled by 1/sqrt(head_dim), masked to -inf above the diagonal, softmaxed,
    dropped out, then multiply V (the study's model.py, SelfAttention.forward)."""

    def __init__(self, config: ModelConfig, source: DropoutSource) -> None:
        super().__init__()
        C = config.n_embd
        self.n_head = config.n_head
        self.key = nn.Linear(C, C)
        self.query = nn.Linear(C, C)
        self.value = nn.Linear(C, C)
        self.proj = nn.Linear(C, C)
        self.attn_dropout = StudyDropout(config.dropout, source)
        self.resid_dropout = StudyDropout(config.dropout, source)
        future = torch.ones(config.block_size, config.block_size, dtype=torch.bool).triu(1)
        self.register_buffer("future", future, persistent=False)  # True above the diagonal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        hd = C // self.n_head
        k = self.key(x).view(B, T, self.n_head, hd).transpose(1, 2)
        q = self.query(x).view(B, T, self.n_head, hd).transpose(1, 2)
        v = self.value(x).view(B, T, self.n_head, hd).transpose(1, 2)
        # in place where the study made copies: the same values, less memory traffic
        att = (q @ k.transpose(-2, -1)).mul_(1.0 / math.sqrt(hd))
        att = att.masked_fill_(self.future[:T, :T], float("-inf"))
        att = self.attn_dropout(F.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.proj(y))


class TransformerBlock(nn.Module):
    """``x + attn(ln1(x))``, then ``x + ffn(ln2(x))``; (B, T, C) in and out."""

    def __init__(self, config: ModelConfig, activation: nn.Module, source: DropoutSource):
        super().__init__()
        C = config.n_embd
        self.ln1 = nn.LayerNorm(C)
        self.attn = SelfAttention(config, source)
        self.ln2 = nn.LayerNorm(C)
        self.ffn = nn.Module()
        self.ffn.net = nn.Sequential(
            nn.Linear(C, 4 * C),
            activation,
            nn.Linear(4 * C, C),
            StudyDropout(config.dropout, source),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.ffn.net(self.ln2(x))


class StudyCharLM(nn.Module):
    """The study's character GPT (see the module docstring); parameter names as the study's
    (``token_embedding``, ``blocks.0.attn.key``, ``blocks.0.ffn.net.0``, ``head`` ...).

    Args:
        config: sizes, dropout and activation (``bias`` and ``dropout_sites`` must describe the
            study's layout, :func:`check_config`; ``dropout_kernel`` is not used).
        dropout: where dropout masks come from (default: the device's default generator).

    With 6 layers, 6 heads, width 384, context 256 and 65 characters it has 10,795,776
    parameters, the number the study's log prints.

    Raises:
        ValueError: from :func:`check_config`.
    """

    protocol = "study"  # written into its weights file (charlm.checkpoint)

    def __init__(self, config: ModelConfig, dropout: DropoutSource | None = None) -> None:
        super().__init__()
        check_config(config)
        self.config = config
        self.dropout_source = dropout or DropoutSource()
        C = config.n_embd
        self.token_embedding = nn.Embedding(config.vocab_size, C)
        self.position_embedding = nn.Embedding(config.block_size, C)
        # one activation module shared by every block, as the study passed one instance
        activation = study_activation(config.activation)
        self.blocks = nn.ModuleList(
            TransformerBlock(config, activation, self.dropout_source) for _ in range(config.n_layer)
        )
        self.ln_f = nn.LayerNorm(C)
        self.head = nn.Linear(C, config.vocab_size, bias=False)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=INIT_STD)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=INIT_STD)

    def num_parameters(self) -> int:
        """Number of trainable parameters (embeddings included)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Next-character logits, and the loss when ``targets`` are given.

        Args:
            idx: (B, T) int64 character indices, T <= block_size.
            targets: optional (B, T) int64 next characters.

        Returns:
            logits (B, T, vocab_size); with ``targets``, ``(logits, loss)``, the loss being the
            mean cross-entropy over all B*T positions in nats (0-dim).

        Raises:
            ValueError: ``idx`` is not 2-D or T exceeds ``block_size``.
        """
        if idx.dim() != 2 or idx.size(1) > self.config.block_size:
            raise ValueError(
                f"idx must have shape (B, T) with T <= {self.config.block_size}, "
                f"got {tuple(idx.shape)}"
            )
        pos = torch.arange(idx.size(1), device=idx.device)
        x = self.token_embedding(idx) + self.position_embedding(pos)
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln_f(x))
        if targets is None:
            return logits
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss
