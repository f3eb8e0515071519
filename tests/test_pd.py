"""Tests of reproduce.pd against hand-worked distributions and an independent numpy version."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from reproduce.pd import (
    METRICS,
    PredictionDifference,
    pair_key,
    prediction_difference,
    summarize_pairs,
)

# Two positions, V = 3, worked by hand:
#   position 0: p1 = (0.5, 0.3, 0.2), p2 = (0.2, 0.3, 0.5)
#     |p1 - p2| = (0.3, 0, 0.3)           -> TV = 1/2 * 0.6 = 0.3
#     2|d|/(p1+p2) = (0.6/0.7, 0, 0.6/0.7) -> sum 12/7
#     argmax 0 vs 2                       -> disagree
#   position 1: p1 = (1, 0, 0), p2 = (0.6, 0.4, 0)
#     |p1 - p2| = (0.4, 0.4, 0)           -> TV = 0.4
#     2|d|/(p1+p2) = (0.8/1.6, 0.8/0.4, 0 [both zero]) = (0.5, 2, 0) -> sum 5/2
#     argmax 0 vs 0                       -> agree
#   absolute PD = (0.3 + 0.4) / 2 = 0.35
#   relative PD = (12/7 + 5/2) / (2 positions * 3 characters) = (59/14) / 6 = 59/84
#   top-1 disagreement = 1/2
P1 = [[0.5, 0.3, 0.2], [1.0, 0.0, 0.0]]
P2 = [[0.2, 0.3, 0.5], [0.6, 0.4, 0.0]]


def _numpy_pd(p1: np.ndarray, p2: np.ndarray, eps: float = 1e-7) -> dict:
    """Independent reference: plain numpy loops over positions and characters."""
    p1 = np.asarray(p1, dtype=np.float64).reshape(-1, p1.shape[-1])
    p2 = np.asarray(p2, dtype=np.float64).reshape(-1, p2.shape[-1])
    n, v = p1.shape
    tv = rel = 0.0
    dis = 0
    for i in range(n):
        tv += 0.5 * sum(abs(p1[i, j] - p2[i, j]) for j in range(v))
        for j in range(v):
            if p1[i, j] < eps and p2[i, j] < eps:
                continue
            rel += 2 * abs(p1[i, j] - p2[i, j]) / (p1[i, j] + p2[i, j])
        dis += int(np.argmax(p1[i]) != np.argmax(p2[i]))
    return {"absolute_pd": tv / n, "relative_pd": rel / (n * v), "top1_disagreement": dis / n}


def _random_logits(shape, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=torch.float32) * 3.0


def test_hand_worked_example():
    p1 = torch.tensor(P1, dtype=torch.float64)
    p2 = torch.tensor(P2, dtype=torch.float64)
    res = prediction_difference(p1, p2, logits=False)
    assert res["absolute_pd"] == pytest.approx(0.35, abs=1e-12)
    assert res["relative_pd"] == pytest.approx(59 / 84, abs=1e-12)
    assert res["top1_disagreement"] == 0.5
    assert res["positions"] == 2
    assert res["vocab_size"] == 3


def test_disjoint_supports_reach_the_maxima():
    # V = 2, p1 = (1, 0), p2 = (0, 1): TV = 1, each character 2*1/1 = 2 -> relative 2, top-1 1
    res = prediction_difference([[1.0, 0.0]], [[0.0, 1.0]], logits=False)
    assert res == {
        "absolute_pd": 1.0,
        "relative_pd": 2.0,
        "top1_disagreement": 1.0,
        "positions": 1,
        "vocab_size": 2,
    }


def test_identical_inputs_give_exactly_zero():
    probs = torch.softmax(_random_logits((3, 7, 11), 0).double(), dim=-1)
    probs[0, 0] = torch.tensor([1.0] + [0.0] * 10, dtype=torch.float64)  # exact zeros too
    res = prediction_difference(probs, probs.clone(), logits=False)
    assert res["absolute_pd"] == 0.0
    assert res["relative_pd"] == 0.0
    assert res["top1_disagreement"] == 0.0
    assert res["positions"] == 21


def test_small_probability_rule():
    # character 1: 9e-8 vs 0 and character 2: 0 vs 5e-8 -> both below 1e-7 -> counted as 0
    # (without the rule each would contribute 2). Character 0: 2*4e-8/(2 - 1.4e-7).
    p1 = torch.tensor([[1 - 9e-8, 9e-8, 0.0]], dtype=torch.float64)
    p2 = torch.tensor([[1 - 5e-8, 0.0, 5e-8]], dtype=torch.float64)
    res = prediction_difference(p1, p2, logits=False)
    expected_char0 = 2 * 4e-8 / (2 - 1.4e-7)
    assert res["relative_pd"] == pytest.approx(expected_char0 / 3, rel=1e-6)
    assert res["relative_pd"] < 1e-7
    # 2e-7 vs 0 is not below the threshold: that character counts fully (2)
    p1 = torch.tensor([[1 - 2e-7, 2e-7, 0.0]], dtype=torch.float64)
    p2 = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    res = prediction_difference(p1, p2, logits=False)
    assert res["relative_pd"] == pytest.approx((2 * 2e-7 / (2 - 2e-7) + 2.0 + 0.0) / 3, rel=1e-9)
    # the threshold is configurable; with eps = 3e-7 the 2e-7 entry is ignored
    acc = PredictionDifference(eps=3e-7)
    acc.update(p1, p2)
    assert acc.result()["relative_pd"] == pytest.approx(2 * 2e-7 / (2 - 2e-7) / 3, rel=1e-9)


def test_matches_independent_numpy_reference():
    l1 = _random_logits((2, 9, 13), 1)
    l2 = l1 + _random_logits((2, 9, 13), 2) / 3.0  # related models: some argmaxes agree
    p1 = torch.softmax(l1.double(), dim=-1)
    p2 = torch.softmax(l2.double(), dim=-1)
    ref = _numpy_pd(p1.numpy(), p2.numpy())
    res = prediction_difference(l1, l2, logits=True)
    for m in METRICS:
        assert res[m] == pytest.approx(ref[m], rel=1e-12, abs=1e-15)
    assert 0 < ref["top1_disagreement"] < 1  # the example really exercises both cases


def test_streaming_over_chunks_equals_one_shot():
    l1, l2 = _random_logits((4, 50, 65), 3), _random_logits((4, 50, 65), 4)
    one_shot = prediction_difference(l1, l2, logits=True)
    acc = PredictionDifference()
    flat1, flat2 = l1.reshape(-1, 65), l2.reshape(-1, 65)
    for start, stop in [(0, 1), (1, 37), (37, 37), (37, 150), (150, 200)]:
        acc.update_logits(flat1[start:stop], flat2[start:stop])
    streamed = acc.result()
    assert streamed["positions"] == one_shot["positions"] == 200
    assert streamed["top1_disagreement"] == one_shot["top1_disagreement"]
    for m in ("absolute_pd", "relative_pd"):
        assert streamed[m] == pytest.approx(one_shot[m], rel=1e-12)
    # the internal chunking of the convenience function does not change the result either
    small = prediction_difference(l1, l2, logits=True, chunk_positions=7)
    for m in METRICS:
        assert small[m] == pytest.approx(one_shot[m], rel=1e-12)


def test_symmetric_in_the_two_models():
    l1, l2 = _random_logits((3, 20, 17), 5), _random_logits((3, 20, 17), 6)
    assert prediction_difference(l1, l2, logits=True) == prediction_difference(l2, l1, logits=True)


def test_logits_path_equals_probability_path():
    l1, l2 = _random_logits((2, 5, 8), 7), _random_logits((2, 5, 8), 8)
    from_logits = prediction_difference(l1, l2, logits=True)
    from_probs = prediction_difference(
        torch.softmax(l1.double(), -1), torch.softmax(l2.double(), -1), logits=False
    )
    assert from_logits == from_probs


def test_bad_input_raises():
    acc = PredictionDifference()
    with pytest.raises(ValueError, match="no positions"):
        acc.result()
    with pytest.raises(ValueError, match="same shape"):
        acc.update(torch.ones(2, 3) / 3, torch.ones(2, 4) / 4)
    with pytest.raises(ValueError, match="do not sum to 1"):
        acc.update(torch.randn(2, 3).abs(), torch.ones(2, 3) / 3)
    with pytest.raises(ValueError, match="negative"):
        acc.update(torch.tensor([[1.5, -0.5]]), torch.tensor([[0.5, 0.5]]))
    with pytest.raises(ValueError, match="NaN"):
        acc.update(torch.tensor([[float("nan"), 1.0]]), torch.tensor([[0.5, 0.5]]))
    acc.update(torch.ones(1, 3) / 3, torch.ones(1, 3) / 3)
    with pytest.raises(ValueError, match="vocabulary size changed"):
        acc.update(torch.ones(1, 4) / 4, torch.ones(1, 4) / 4)
    with pytest.raises(ValueError, match="eps"):
        PredictionDifference(eps=0.0)


def test_summarize_pairs():
    pairs = {
        "s43-s44": {
            "absolute_pd": 0.3,
            "relative_pd": 0.9,
            "top1_disagreement": 0.2,
            "positions": 10,
            "vocab_size": 3,
        },
        "s42-s43": {
            "absolute_pd": 0.1,
            "relative_pd": 0.7,
            "top1_disagreement": 0.0,
            "positions": 10,
            "vocab_size": 3,
        },
        "s42-s44": {
            "absolute_pd": np.float64(0.2),
            "relative_pd": 0.8,
            "top1_disagreement": 0.1,
            "positions": np.int64(10),
            "vocab_size": 3,
        },
    }
    out = summarize_pairs(pairs)
    assert out["n_pairs"] == 3
    assert list(out["pairs"]) == ["s42-s43", "s42-s44", "s43-s44"]
    assert out["mean"]["absolute_pd"] == pytest.approx(0.2, abs=1e-15)
    assert out["mean"]["relative_pd"] == pytest.approx(0.8, abs=1e-15)
    assert out["mean"]["top1_disagreement"] == pytest.approx(0.1, abs=1e-15)
    assert out["min"]["relative_pd"] == 0.7 and out["max"]["relative_pd"] == 0.9
    assert out["pairs"]["s42-s44"]["positions"] == 10
    text = json.dumps(out, allow_nan=False, sort_keys=True)
    assert json.loads(text) == out
    assert type(out["pairs"]["s42-s44"]["positions"]) is int
    with pytest.raises(ValueError, match="no pairs"):
        summarize_pairs({})
    with pytest.raises(ValueError, match="missing metric"):
        summarize_pairs({"s1-s2": {"absolute_pd": 0.1}})
    with pytest.raises(ValueError, match="not finite"):
        summarize_pairs(
            {"s1-s2": {"absolute_pd": float("nan"), "relative_pd": 0.1, "top1_disagreement": 0.1}}
        )


def test_pair_key_and_result_json():
    assert pair_key(43, 42) == "s42-s43"
    res = prediction_difference(np.array(P1), np.array(P2), logits=False)
    assert json.loads(json.dumps(res, allow_nan=False)) == res
    assert all(type(res[m]) is float for m in METRICS)
