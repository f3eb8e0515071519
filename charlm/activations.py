"""Activation functions of the study, by name.

The registry maps a name to a fresh ``torch.nn.Module``; :func:`canonical_name` gives the form
written into results (``silu`` -> ``swish``, ``smelu-1`` -> ``smelu-1.0``). Every module maps a
tensor of any shape to one of the same shape.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import torch
from torch import nn

__all__ = ["SmeLU", "ACTIVATIONS", "ALIASES", "canonical_name", "make_activation"]


class SmeLU(nn.Module):
    """Smooth ReLU with quadratic region half-width ``beta`` (no learnable parameters).

    ``SmeLU(x) = 0`` for ``x <= -beta``; ``(x + beta)^2 / (4 beta)`` for ``|x| <= beta``;
    ``x`` for ``x >= beta``. Value and first derivative are continuous (the derivative is
    ``(x + beta) / (2 beta)`` inside the quadratic region, 0 left of it, 1 right of it).
    Source: Shamir, Lin & Coviello, "Smooth activations and reproducibility in deep networks",
    arXiv 2010.09931, Section 4 (Eq. 6).

    Shapes: input (*), output (*), same dtype.

    Raises:
        ValueError: ``beta`` is not a finite positive number.
    """

    def __init__(self, beta: float) -> None:
        super().__init__()
        beta = float(beta)
        if not math.isfinite(beta) or beta <= 0:
            raise ValueError(f"SmeLU beta must be a finite positive number, got {beta!r}")
        self.beta = beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype in (torch.float32, torch.float64):
            # the reference expression, differentiated by autograd (every fp32 SmeLU trial
            # published so far computed exactly this)
            quadratic = (x + self.beta) ** 2 / (4.0 * self.beta)
            return torch.where(x >= self.beta, x, torch.where(x <= -self.beta, 0.0, quadratic))
        return _SmeLUFunction.apply(x, self.beta)

    def extra_repr(self) -> str:
        return f"beta={self.beta}"


class _SmeLUFunction(torch.autograd.Function):
    """SmeLU in fewer passes over memory, for bf16 and fp16 tensors (memory-bound there).

    Forward: with t = clamp(x + beta, 0, 2 beta), SmeLU(x) = t^2 / (4 beta) + relu(x - beta),
    equal to the piecewise form of :class:`SmeLU`. Backward: the derivative is
    clamp((x + beta) / (2 beta), 0, 1) (Shamir et al., Eq. 6 differentiated), so only ``x`` is
    saved and the gradient takes one fused pass more than the incoming one.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, beta: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.beta = beta
        t = (x + beta).clamp_(0.0, 2.0 * beta)
        return torch.addcmul(torch.relu(x - beta), t, t, value=1.0 / (4.0 * beta))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        beta = ctx.beta
        slope = torch.add(x, beta).mul_(1.0 / (2.0 * beta)).clamp_(0.0, 1.0)
        return grad * slope, None


# canonical name -> constructor; SmeLU is parameterised and handled by name pattern.
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": lambda: nn.GELU(approximate="none"),  # exact erf form (Hendrycks & Gimpel 2016)
    "swish": nn.SiLU,  # x * sigmoid(x) (Ramachandran et al. 2017; Elfwing et al. 2018)
    "mish": nn.Mish,  # x * tanh(softplus(x)) (Misra 2019)
    "elu": nn.ELU,  # alpha = 1 (Clevert et al. 2015)
    "selu": nn.SELU,  # Klambauer et al. 2017
    "prelu": nn.PReLU,  # one learnable slope, initialised at 0.25 (He et al. 2015)
}
ALIASES = {"silu": "swish"}
SMELU_PREFIX = "smelu-"
VALID_NAMES = ", ".join([*ACTIVATIONS, *ALIASES, "smelu-<beta> (beta > 0, e.g. smelu-0.5)"])


# a decimal number as written in a config: digits, an optional fraction and exponent, no sign,
# underscore, space, inf or nan (float() alone would take "1_0" as 10.0)
SMELU_BETA = re.compile(r"(\d+\.?\d*|\.\d+)(e[-+]?\d+)?")


def _smelu_beta(name: str) -> float:
    text = name[len(SMELU_PREFIX) :]
    if not SMELU_BETA.fullmatch(text):
        raise ValueError(
            f"SmeLU beta must be a positive decimal number in {name!r}: valid names are "
            f"{VALID_NAMES}"
        )
    beta = float(text)
    if not math.isfinite(beta) or beta <= 0:
        raise ValueError(f"SmeLU beta must be positive in {name!r}: valid names are {VALID_NAMES}")
    return beta


def canonical_name(name: str) -> str:
    """The canonical spelling of an activation name, as written in results.

    ``silu`` becomes ``swish``; ``smelu-<beta>`` is written with at least one decimal
    (``smelu-1`` -> ``smelu-1.0``, ``smelu-0.50`` -> ``smelu-0.5``); case and surrounding
    whitespace are ignored.

    Raises:
        ValueError: the name is unknown or SmeLU's beta is not positive; the message lists
            the valid names.
    """
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    if key in ACTIVATIONS:
        return key
    if key.startswith(SMELU_PREFIX):
        return f"{SMELU_PREFIX}{_smelu_beta(key)!r}"
    raise ValueError(f"unknown activation {name!r}: valid names are {VALID_NAMES}")


def make_activation(name: str) -> nn.Module:
    """A new module for activation ``name`` (any spelling :func:`canonical_name` accepts).

    Raises:
        ValueError: as :func:`canonical_name`.
    """
    key = canonical_name(name)
    if key.startswith(SMELU_PREFIX):
        return SmeLU(_smelu_beta(key))
    return ACTIVATIONS[key]()
