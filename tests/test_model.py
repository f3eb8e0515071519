import math

import pytest
import torch

from charlm.model import CharLM, ModelConfig

STUDY = dict(n_layer=6, n_head=6, n_embd=384, block_size=256, vocab_size=65, dropout=0.2, bias=True)


@pytest.mark.parametrize("activation", ["relu", "gelu", "swish", "smelu-0.5"])
def test_study_model_has_the_reported_parameter_count(activation):
    # The report's 10,795,776: per block 2*768 (LayerNorms) + 384*1152+1152 + 384*384+384
    # + 384*1536+1536 + 1536*384+384 = 1,774,464; six blocks 10,646,784; + embeddings
    # 65*384 + 256*384 = 123,264; + final LayerNorm 768; + head 384*65 = 24,960.
    model = CharLM(ModelConfig(**STUDY, activation=activation))
    assert model.num_parameters() == 10_795_776


def test_prelu_adds_one_parameter_per_block():
    model = CharLM(ModelConfig(**STUDY, activation="prelu"))
    assert model.num_parameters() == 10_795_776 + 6


def small(**kw):
    cfg = dict(n_layer=2, n_head=2, n_embd=16, block_size=8, vocab_size=11, dropout=0.2)
    cfg.update(kw)
    return CharLM(ModelConfig(**cfg))


def test_forward_shapes_and_loss_in_nats():
    torch.manual_seed(0)
    model = small()
    idx = torch.randint(11, (3, 8))
    logits = model(idx)
    assert logits.shape == (3, 8, 11)
    logits2, loss = model(idx, idx)
    assert loss.shape == ()
    # at initialisation the output is nearly uniform: loss near ln(11)
    assert abs(loss.item() - math.log(11)) < 0.1
    manual = torch.nn.functional.cross_entropy(logits2.reshape(-1, 11), idx.reshape(-1))
    assert loss.item() == pytest.approx(manual.item(), rel=1e-6)


def test_too_long_sequence_is_refused():
    with pytest.raises(ValueError, match="sequence length 9 exceeds the model's block_size 8"):
        small()(torch.zeros(1, 9, dtype=torch.int64))


def test_eval_mode_has_no_dropout_on_any_path():
    torch.manual_seed(0)
    model = small(dropout=0.5).eval()
    idx = torch.randint(11, (2, 8))
    first = model(idx)
    torch.manual_seed(123)
    assert torch.equal(first, model(idx))
    model.train()
    assert not torch.equal(model(idx), model(idx))


def test_dropout_sites_are_explicit():
    model = small(dropout=0.3, dropout_sites=("residual",))
    assert model.emb_dropout.p == 0.0
    assert model.blocks[0].attn.attn_dropout == 0.0
    assert model.blocks[0].attn.resid_dropout.p == 0.3
    assert model.config.to_dict()["dropout_sites"] == ["residual"]


def test_causality_future_tokens_do_not_change_past_logits():
    torch.manual_seed(0)
    model = small().eval()
    a = torch.randint(11, (1, 8))
    b = a.clone()
    b[0, 5:] = (b[0, 5:] + 1) % 11
    torch.testing.assert_close(model(a)[:, :5], model(b)[:, :5])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n_embd": 10, "n_head": 3}, "divisible"),
        ({"n_layer": 0}, "n_layer"),
        ({"dropout": 1.0}, "dropout"),
        ({"activation": "nope"}, "unknown activation"),
        ({"dropout_sites": ("mlp",)}, "unknown"),
    ],
)
def test_invalid_configs_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        small(**change)


def test_initialisation_follows_the_stated_scheme():
    torch.manual_seed(0)
    model = CharLM(ModelConfig(**STUDY, activation="gelu"))
    assert model.tok_emb.weight.std().item() == pytest.approx(0.02, rel=0.02)
    assert model.blocks[0].mlp.fc.weight.std().item() == pytest.approx(0.02, rel=0.02)
    assert model.blocks[0].mlp.proj.weight.std().item() == pytest.approx(
        0.02 / math.sqrt(12), rel=0.02
    )
    assert model.blocks[0].mlp.fc.bias.abs().max().item() == 0.0


def test_config_round_trips_and_names_unknown_keys():
    cfg = ModelConfig(**STUDY, activation="silu")
    assert cfg.activation == "swish"
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown model setting.*'width'"):
        ModelConfig.from_dict({**cfg.to_dict(), "width": 3})
