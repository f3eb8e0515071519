import math

import pytest
import torch

from charlm.activations import SmeLU, canonical_name, make_activation


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("relu", "relu"),
        ("GELU", "gelu"),
        ("silu", "swish"),
        ("swish", "swish"),
        ("smelu-1", "smelu-1.0"),
        ("smelu-0.5", "smelu-0.5"),
        ("smelu-0.50", "smelu-0.5"),
        ("smelu-2.25", "smelu-2.25"),
        ("mish", "mish"),
        ("prelu", "prelu"),
    ],
)
def test_canonical_names(name, canonical):
    assert canonical_name(name) == canonical


@pytest.mark.parametrize(
    "bad",
    [
        "tanhh",
        "smelu-0",
        "smelu--1",
        "smelu-x",
        "smelu-nan",
        "smelu-inf",
        "smelu-1_0",
        "smelu- 1",
        "",
    ],
)
def test_bad_names_list_valid_ones(bad):
    with pytest.raises(ValueError, match="valid names are .*relu.*smelu-<beta>"):
        make_activation(bad)


@pytest.mark.parametrize(
    ("beta", "x", "expected"),
    [
        (0.5, -1.0, 0.0),
        (0.5, -0.5, 0.0),
        (0.5, 0.0, 0.125),
        (0.5, 0.25, 0.28125),
        (0.5, 0.5, 0.5),
        (0.5, 2.0, 2.0),
        (1.0, -2.0, 0.0),
        (1.0, -1.0, 0.0),
        (1.0, -0.5, 0.0625),
        (1.0, 0.0, 0.25),
        (1.0, 0.5, 0.5625),
        (1.0, 1.0, 1.0),
        (1.0, 3.0, 3.0),
    ],
)
def test_smelu_values(beta, x, expected):
    # (x + beta)^2 / (4 beta) inside [-beta, beta]; e.g. beta 0.5, x 0.25: 0.5625 / 2 = 0.28125
    out = SmeLU(beta)(torch.tensor([x], dtype=torch.float64))
    assert out.item() == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize("beta", [0.5, 1.0])
def test_smelu_gradient_continuous_at_both_edges(beta):
    eps = 1e-7
    points = torch.tensor(
        [-beta - eps, -beta + eps, beta - eps, beta + eps], dtype=torch.float64, requires_grad=True
    )
    SmeLU(beta)(points).sum().backward()
    left_out, left_in, right_in, right_out = points.grad.tolist()
    assert left_out == 0.0 and left_in == pytest.approx(0.0, abs=1e-6)
    assert right_in == pytest.approx(1.0, abs=1e-6) and right_out == 1.0


def test_smelu_rejects_nonpositive_beta():
    with pytest.raises(ValueError, match="positive"):
        SmeLU(0.0)


CLOSED_FORMS = {
    "relu": lambda x: torch.clamp(x, min=0),
    "gelu": lambda x: 0.5 * x * (1 + torch.erf(x / math.sqrt(2))),
    "swish": lambda x: x / (1 + torch.exp(-x)),
    "mish": lambda x: x * torch.tanh(torch.log1p(torch.exp(x))),
    "elu": lambda x: torch.where(x > 0, x, torch.exp(x) - 1),
    "selu": lambda x: (
        1.0507009873554804934193349852946
        * torch.where(x > 0, x, 1.6732632423543772848170429916717 * (torch.exp(x) - 1))
    ),
    "prelu": lambda x: torch.where(x >= 0, x, 0.25 * x),
    "smelu-0.5": lambda x: torch.where(
        x >= 0.5, x, torch.where(x <= -0.5, torch.zeros_like(x), (x + 0.5) ** 2 / 2.0)
    ),
}


@pytest.mark.parametrize("name", sorted(CLOSED_FORMS))
def test_activation_matches_closed_form_in_float64(name):
    x = torch.linspace(-4, 4, 801, dtype=torch.float64)
    module = make_activation(name).double()
    torch.testing.assert_close(module(x), CLOSED_FORMS[name](x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", [*sorted(CLOSED_FORMS), "smelu-1.0"])
def test_activation_keeps_shape(name):
    x = torch.randn(2, 5, 16)
    assert make_activation(name)(x).shape == (2, 5, 16)


def test_prelu_is_learnable_and_others_are_not():
    assert sum(p.numel() for p in make_activation("prelu").parameters()) == 1
    assert sum(p.numel() for p in make_activation("smelu-1.0").parameters()) == 0
