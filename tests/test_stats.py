"""Tests of reproduce.stats against values computed independently here."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
from scipy import stats as sps

from reproduce.stats import (
    analyze_sweep,
    cell_key,
    compare_groups,
    describe,
    min_detectable_difference,
)

# Final val_loss of the published report's appendix (../shared/seed/000_4445acbe398aa690.txt,
# "Appendix: Raw Data"), trials 1-3 in that order.
REPORT_VAL_LOSS = {
    "relu": [1.5527, 1.5651, 1.5601],
    "gelu": [1.5585, 1.5268, 1.5767],
    "swish": [1.4738, 1.5198, 1.4985],
}
# (val_loss, train_acc %, val_acc %, time s) per trial, same appendix.
REPORT_TRIALS = {
    "relu": [
        (1.5527, 71.5, 57.9, 1413.3),
        (1.5651, 72.7, 59.4, 1584.7),
        (1.5601, 73.9, 57.7, 1419.1),
    ],
    "gelu": [
        (1.5585, 73.4, 61.1, 1417.1),
        (1.5268, 70.4, 59.1, 1414.9),
        (1.5767, 74.1, 59.4, 1409.0),
    ],
    "swish": [
        (1.4738, 65.8, 58.2, 1628.2),
        (1.5198, 67.9, 58.6, 1620.0),
        (1.4985, 69.5, 59.5, 1618.8),
    ],
}
SEEDS = (42, 43, 44)


def _dumps(obj) -> str:
    return json.dumps(obj, allow_nan=False, sort_keys=True)


def _walk(obj):
    """Every leaf of a JSON-like structure."""
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _walk(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v)
    else:
        yield obj


def _assert_plain_json(obj):
    for leaf in _walk(obj):
        assert leaf is None or type(leaf) in (int, float, str, bool), repr(leaf)
        if type(leaf) is float:
            assert math.isfinite(leaf)
    assert json.loads(_dumps(obj)) == obj


# ---------------------------------------------------------------------------------- describe


def test_describe_by_hand():
    values = [2.0, 4.0, 4.0, 5.0]
    out = describe(values)
    mean = 15.0 / 4
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 3)  # ddof = 1
    t975_df3 = 3.182446305284263  # Student t 0.975 quantile, 3 df (standard tables)
    half = t975_df3 * sd / math.sqrt(4)
    assert out["n"] == 4
    assert out["mean"] == pytest.approx(mean, abs=1e-15)
    assert out["sd"] == pytest.approx(sd, rel=1e-12)
    assert out["sem"] == pytest.approx(sd / 2, rel=1e-12)
    assert out["ci_low"] == pytest.approx(mean - half, rel=1e-9)
    assert out["ci_high"] == pytest.approx(mean + half, rel=1e-9)
    assert (out["min"], out["max"], out["ci_level"]) == (2.0, 5.0, 0.95)
    assert out["undefined"] == {}
    _assert_plain_json(out)


def test_describe_n1_zero_variance_and_empty():
    one = describe([1.5])
    assert one["sd"] is None and one["sem"] is None
    assert one["ci_low"] is None and one["ci_high"] is None
    assert set(one["undefined"]) == {"sd", "sem", "ci"}
    assert "n=1" in one["undefined"]["sd"]
    assert one["mean"] == one["min"] == one["max"] == 1.5
    _assert_plain_json(one)

    flat = describe([0.1, 0.1, 0.1])  # float mean of these is not exactly 0.1
    assert flat["sd"] == 0.0 and flat["sem"] == 0.0
    assert flat["ci_low"] is None and flat["ci_high"] is None
    assert "zero variance" in flat["undefined"]["ci"]
    _assert_plain_json(flat)

    with pytest.raises(ValueError, match="no values"):
        describe([])
    with pytest.raises(ValueError, match="NaN"):
        describe([1.0, float("nan")])


# ----------------------------------------------------------------------- compare_groups


def test_report_fixture_anova_by_hand():
    res = compare_groups(REPORT_VAL_LOSS)
    groups = [np.array(REPORT_VAL_LOSS[k]) for k in ("gelu", "relu", "swish")]
    allv = np.concatenate(groups)
    grand = allv.mean()
    ss_b = sum(len(g) * (g.mean() - grand) ** 2 for g in groups)
    ss_w = sum(((g - g.mean()) ** 2).sum() for g in groups)
    f_hand = (ss_b / 2) / (ss_w / 6)
    # F(2, d2) has the closed-form survival function (1 + 2x/d2)^(-d2/2); here d2 = 6
    p_hand = (1 + f_hand / 3) ** -3
    anova = res["anova"]
    assert anova["F"] == pytest.approx(f_hand, rel=1e-9)
    assert anova["p"] == pytest.approx(p_hand, rel=1e-9)
    assert (anova["df_between"], anova["df_within"]) == (2, 6)
    assert anova["eta_squared"] == pytest.approx(ss_b / (ss_b + ss_w), rel=1e-9)
    assert anova["ss_within"] == pytest.approx(ss_w, rel=1e-9)
    # The appendix values give F = 8.79, p = 0.0165 (the report prints F = 8.32, p = 0.024).
    assert anova["F"] == pytest.approx(8.7908, abs=1e-4)
    assert anova["p"] == pytest.approx(0.01647, abs=1e-5)
    assert anova["significant"] is True and res["significant"] is True
    assert res["k"] == 3 and res["n_total"] == 9
    _assert_plain_json(res)


def test_report_fixture_kruskal_by_hand():
    res = compare_groups(REPORT_VAL_LOSS)
    # ranks of the 9 (tie-free) values: swish 1,2,3 -> 6; gelu 4,6,9 -> 19; relu 5,7,8 -> 20
    h_hand = 12 / (9 * 10) * (6**2 / 3 + 19**2 / 3 + 20**2 / 3) - 3 * 10
    p_hand = math.exp(-h_hand / 2)  # chi-square with 2 df: survival function exp(-x/2)
    kw = res["kruskal"]
    assert kw["H"] == pytest.approx(h_hand, rel=1e-12)
    assert kw["p"] == pytest.approx(p_hand, rel=1e-9)
    assert kw["df"] == 2
    assert kw["significant"] is False  # p = 0.066
    assert kw["agrees_with_anova"] is False


def test_report_fixture_pairs_ranking_spread():
    res = compare_groups(REPORT_VAL_LOSS)
    means = {k: float(np.mean(v)) for k, v in REPORT_VAL_LOSS.items()}
    sds = {k: float(np.std(v, ddof=1)) for k, v in REPORT_VAL_LOSS.items()}
    assert res["ranking"] == ["swish", "gelu", "relu"]
    assert (res["best"], res["worst"]) == ("swish", "relu")
    assert res["spread_percent"] == pytest.approx(
        (means["relu"] - means["swish"]) / means["swish"] * 100, rel=1e-12
    )
    assert res["groups"]["gelu"]["sd"] == pytest.approx(sds["gelu"], rel=1e-12)

    mse = sum(((np.array(v) - np.mean(v)) ** 2).sum() for v in REPORT_VAL_LOSS.values()) / 6
    q_crit = sps.studentized_range.ppf(0.95, 3, 6)
    pairs = {(p["a"], p["b"]): p for p in res["pairs"]}
    assert list(pairs) == [("gelu", "relu"), ("gelu", "swish"), ("relu", "swish")]
    for (a, b), pair in pairs.items():
        diff = means[a] - means[b]
        assert pair["mean_diff"] == pytest.approx(diff, abs=1e-12)
        # Tukey-Kramer via the studentized range distribution (equal n = 3)
        se = math.sqrt(mse / 3)
        assert pair["tukey_p"] == pytest.approx(
            sps.studentized_range.sf(abs(diff) / se, 3, 6), rel=1e-4
        )
        assert pair["tukey_ci_low"] == pytest.approx(diff - q_crit * se, rel=1e-4)
        assert pair["tukey_ci_high"] == pytest.approx(diff + q_crit * se, rel=1e-4)
        assert pair["tukey_significant"] is (pair["tukey_p"] < 0.05)
        pooled = math.sqrt((2 * sds[a] ** 2 + 2 * sds[b] ** 2) / 4)
        assert pair["cohens_d"] == pytest.approx(diff / pooled, rel=1e-12)
    assert pairs[("gelu", "relu")]["tukey_significant"] is False
    assert pairs[("relu", "swish")]["tukey_significant"] is True


def test_spread_formula_reproduces_report_3_9_percent():
    # groups whose means are the report's summary means (ReLU 1.5555, Swish 1.4974)
    res = compare_groups({"relu": [1.5545, 1.5565], "swish": [1.4964, 1.4984]})
    assert res["spread_percent"] == pytest.approx((1.5555 - 1.4974) / 1.4974 * 100, rel=1e-9)
    assert round(res["spread_percent"], 1) == 3.9
    # higher-is-better: the best is the largest mean and the spread stays positive
    acc = compare_groups({"a": [60.0, 61.0], "b": [58.0, 59.0]}, lower_is_better=False)
    assert acc["ranking"] == ["a", "b"]
    assert acc["spread_percent"] == pytest.approx(2 / 60.5 * 100, rel=1e-12)


def test_min_detectable_difference_has_the_requested_power():
    res = compare_groups(REPORT_VAL_LOSS)
    mdd = res["mdd"]
    variances = [np.var(v, ddof=1) for v in REPORT_VAL_LOSS.values()]
    sd = math.sqrt(sum(2 * v for v in variances) / 6)  # pooled over the 3 groups, df = 6
    assert mdd["sd_pooled"] == pytest.approx(sd, rel=1e-12)
    assert (mdd["sd_pooled_df"], mdd["n_a"], mdd["n_b"], mdd["df_test"]) == (6, 3, 3, 4)
    assert mdd["percent_of_best"] == pytest.approx(
        mdd["delta"] / np.mean(REPORT_VAL_LOSS["swish"]) * 100, rel=1e-12
    )
    delta = mdd["delta"]

    # independent Monte Carlo: two normal samples of 3, true difference delta, Student t test
    rng = np.random.default_rng(12345)
    reps = 200_000
    x = rng.normal(0.0, sd, size=(reps, 3))
    y = rng.normal(delta, sd, size=(reps, 3))
    p = sps.ttest_ind(x, y, axis=1).pvalue
    power_mc = float(np.mean(p < 0.05))
    assert power_mc == pytest.approx(0.80, abs=0.006)  # MC standard error ~0.0009

    # it is the noncentral-t answer, not the normal approximation (z_.975 + z_.8) sd sqrt(2/n),
    # which is far smaller for df = 4
    normal_approx = (1.959963984540054 + 0.8416212335729143) * sd * math.sqrt(2 / 3)
    assert delta > 1.2 * normal_approx


def test_min_detectable_difference_large_n_approaches_normal():
    # with df large the t test approaches the z test: delta -> (z_.975 + z_.8) sd sqrt(2/n)
    out = min_detectable_difference(1.0, 5000, 5000)
    z_answer = (1.959963984540054 + 0.8416212335729143) * math.sqrt(2 / 5000)
    assert out["delta"] == pytest.approx(z_answer, rel=1e-3)
    assert out["achieved_power"] == pytest.approx(0.8, abs=1e-9)
    # small df and high power need a large noncentrality (scipy's nct.cdf gives NaN in parts
    # of that region); check against an independent Monte Carlo t test
    hard = min_detectable_difference(1.0, 2, 2, alpha=0.05, power=0.99)
    assert hard["df_test"] == 2 and hard["achieved_power"] == pytest.approx(0.99, abs=1e-9)
    rng = np.random.default_rng(7)
    x = rng.normal(0.0, 1.0, size=(100_000, 2))
    y = rng.normal(hard["delta"], 1.0, size=(100_000, 2))
    assert float(np.mean(sps.ttest_ind(x, y, axis=1).pvalue < 0.05)) == pytest.approx(
        0.99, abs=0.002
    )
    with pytest.raises(ValueError):
        min_detectable_difference(0.0, 3, 3)
    with pytest.raises(ValueError):
        min_detectable_difference(1.0, 1, 3)


def _assert_never_significant(res):
    assert res["significant"] is not True
    for section in ("anova", "kruskal"):
        if res[section] is None:
            assert res["undefined"][section]
    if res["anova"] is None:
        assert all(pair["tukey_significant"] is None for pair in res["pairs"])
        assert all(pair["tukey_p"] is None for pair in res["pairs"])


def test_degenerate_one_group():
    res = compare_groups({"relu": [1.0, 2.0, 3.0]})
    for section in ("anova", "kruskal", "mdd"):
        assert res[section] is None
        assert "only 1 group" in res["undefined"][section]
    assert res["significant"] is None and "significant" in res["undefined"]
    assert res["pairs"] == [] and res["ranking"] == ["relu"] and res["spread_percent"] == 0.0
    _assert_never_significant(res)
    _assert_plain_json(res)


def test_degenerate_group_with_one_trial():
    res = compare_groups({"relu": [1.5], "gelu": [1.4, 1.6], "swish": [1.0, 1.1]})
    for section in ("anova", "kruskal", "mdd", "tukey"):
        assert "'relu'" in res["undefined"][section]
    assert res["anova"] is None and res["kruskal"] is None and res["mdd"] is None
    for pair in res["pairs"]:
        assert pair["tukey_p"] is None and pair["tukey_significant"] is None
        if "relu" in (pair["a"], pair["b"]):
            assert pair["cohens_d"] is None and "n=1" in pair["undefined"]["cohens_d"]
    # Cohen's d between two complete groups is still defined
    gs = next(p for p in res["pairs"] if (p["a"], p["b"]) == ("gelu", "swish"))
    pooled = math.sqrt((np.var([1.4, 1.6], ddof=1) + np.var([1.0, 1.1], ddof=1)) / 2)
    assert gs["cohens_d"] == pytest.approx((1.5 - 1.05) / pooled, rel=1e-12)
    assert res["groups"]["relu"]["sd"] is None
    _assert_never_significant(res)
    _assert_plain_json(res)


def test_degenerate_zero_within_variance():
    res = compare_groups({"a": [0.1, 0.1, 0.1], "b": [0.3, 0.3, 0.3]})
    assert res["anova"] is None and "zero within-group variance" in res["undefined"]["anova"]
    assert res["mdd"] is None and res["significant"] is None
    assert res["pairs"][0]["cohens_d"] is None and res["pairs"][0]["tukey_p"] is None
    # the rank test is still defined: ranks 1-3 vs 4-6 with ties inside groups
    assert res["kruskal"] is not None
    assert res["kruskal"]["agrees_with_anova"] is None
    assert "agrees_with_anova" in res["kruskal"]["undefined"]
    _assert_never_significant(res)
    _assert_plain_json(res)

    same = compare_groups({"a": [1.0, 1.0], "b": [1.0, 1.0]})
    assert same["kruskal"] is None and "identical" in same["undefined"]["kruskal"]
    assert same["spread_percent"] == 0.0
    _assert_plain_json(same)


def test_compare_groups_bad_input():
    with pytest.raises(ValueError, match="no groups"):
        compare_groups({})
    with pytest.raises(ValueError, match="no values"):
        compare_groups({"a": [], "b": [1.0, 2.0]})
    with pytest.raises(ValueError, match="NaN"):
        compare_groups({"a": [1.0, float("inf")], "b": [1.0, 2.0]})
    with pytest.raises(ValueError, match="alpha"):
        compare_groups(REPORT_VAL_LOSS, alpha=1.5)


def test_json_round_trip_and_input_order_independence():
    res = compare_groups(REPORT_VAL_LOSS)
    _assert_plain_json(res)
    reordered = {k: REPORT_VAL_LOSS[k] for k in ("swish", "relu", "gelu")}
    assert _dumps(compare_groups(reordered)) == _dumps(res)


# ----------------------------------------------------------------------------- analyze_sweep


def _trials(grid=None, acts=REPORT_TRIALS):
    out = []
    for act, rows in acts.items():
        for seed, (vl, tr_acc, va_acc, wall) in zip(SEEDS, rows, strict=True):
            parts = [act, f"s{seed}"] + [f"{k}={v}" for k, v in sorted((grid or {}).items())]
            out.append(
                {
                    "id": "-".join(parts),
                    "group": "-".join(parts[:1] + parts[2:]),
                    "activation": act,
                    "seed": seed,
                    "data_seed": seed,
                    "grid": dict(grid or {}),
                    "final": {
                        "step": 5000,
                        "train_loss": 0.9,
                        "val_loss": vl,
                        "train_accuracy": tr_acc,
                        "val_accuracy": va_acc,
                    },
                    "wall_time_s": wall,
                }
            )
    return out


def test_cell_key():
    assert cell_key({}) == "all" and cell_key(None) == "all"
    assert cell_key({"lr": 0.001, "dropout": 0.1}) == "dropout=0.1,lr=0.001"
    assert cell_key({"flag": True, "name": "x", "n": 3}) == "flag=true,n=3,name=x"


def test_analyze_sweep_single_cell():
    out = analyze_sweep(_trials())
    assert out["n_trials"] == 9 and list(out["cells"]) == ["all"]
    cell = out["cells"]["all"]
    assert cell["grid"] == {}
    assert list(cell["activations"]) == ["gelu", "relu", "swish"]
    swish = cell["activations"]["swish"]
    assert swish["n"] == 3 and swish["seeds"] == [42, 43, 44]
    assert swish["trial_ids"] == ["swish-s42", "swish-s43", "swish-s44"]
    # train - val accuracy gap per trial: 65.8-58.2, 67.9-58.6, 69.5-59.5 = 7.6, 9.3, 10.0
    assert swish["train_val_accuracy_gap"]["mean"] == pytest.approx((7.6 + 9.3 + 10.0) / 3)
    assert swish["train_val_accuracy_gap"]["sd"] == pytest.approx(
        float(np.std([7.6, 9.3, 10.0], ddof=1)), rel=1e-9
    )
    assert swish["val_accuracy"]["mean"] == pytest.approx((58.2 + 58.6 + 59.5) / 3)
    assert swish["wall_time_s"]["max"] == 1628.2
    assert cell["activations"]["relu"]["train_accuracy"]["min"] == 71.5
    cmp = cell["val_loss_comparison"]
    assert cmp["lower_is_better"] is True and cmp["ranking"] == ["swish", "gelu", "relu"]
    assert cmp["anova"]["F"] == pytest.approx(compare_groups(REPORT_VAL_LOSS)["anova"]["F"])
    _assert_plain_json(out)


def test_analyze_sweep_cells_and_byte_stability():
    small = {k: v[:2] + [v[2]] for k, v in REPORT_TRIALS.items()}
    trials = _trials({"lr": 0.001}) + _trials({"lr": 0.0003}, small)
    out = analyze_sweep(trials)
    assert list(out["cells"]) == ["lr=0.0003", "lr=0.001"]
    assert out["cells"]["lr=0.001"]["grid"] == {"lr": 0.001}
    shuffled = list(trials)
    random.Random(0).shuffle(shuffled)
    assert _dumps(analyze_sweep(shuffled)) == _dumps(out)
    assert json.dumps(analyze_sweep(shuffled), allow_nan=False) == json.dumps(out, allow_nan=False)


def test_analyze_sweep_degenerate_and_bad_input():
    one_seed = [t for t in _trials() if t["seed"] == 42]
    out = analyze_sweep(one_seed)
    cmp = out["cells"]["all"]["val_loss_comparison"]
    assert cmp["anova"] is None and cmp["significant"] is None
    assert out["cells"]["all"]["activations"]["relu"]["val_loss"]["sd"] is None
    _assert_plain_json(out)

    with pytest.raises(ValueError, match="no trials"):
        analyze_sweep([])
    dup = _trials() + _trials()[:1]
    with pytest.raises(ValueError, match="duplicate"):
        analyze_sweep(dup)
    broken = _trials()
    del broken[0]["final"]["val_accuracy"]
    with pytest.raises(ValueError, match="final.val_accuracy"):
        analyze_sweep(broken)
    broken = _trials()
    broken[1]["wall_time_s"] = float("nan")
    with pytest.raises(ValueError, match="wall_time_s"):
        analyze_sweep(broken)
