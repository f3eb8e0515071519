"""One sample's summary (:func:`describe`) and the power of a two-sample t-test
(:func:`min_detectable_difference`); the finiteness helpers the package shares.

The undefined-quantity convention (``None`` with a reason under ``"undefined"``) is described in
:mod:`reproduce.stats`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import optimize
from scipy import stats as sps

__all__ = ["MDD_METHOD", "describe", "min_detectable_difference"]

MDD_METHOD = (
    "smallest |mean_a - mean_b| at which a two-sided two-sample Student t-test "
    "(df = n_a + n_b - 2) at level alpha has the requested power, sigma = SD pooled over all "
    "groups (df = N - k); "
    "power from scipy.stats.nct / scipy.stats.t, solved with scipy.optimize.brentq"
)


def finite_array(values: Any, what: str) -> np.ndarray:
    """``values`` as a 1-D float64 array; ValueError if it is not 1-D or has NaN/inf."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}: expected a sequence of numbers ({exc})") from None
    if arr.ndim != 1:
        raise ValueError(f"{what}: expected a 1-D sequence of numbers, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what}: contains NaN or infinite values; drop or fix those trials")
    return arr


def finite(x: Any) -> float:
    """A finite Python float (numpy scalars converted); ValueError on NaN/inf."""
    value = float(x)
    if not math.isfinite(value):
        raise ValueError(f"internal error: non-finite statistic {value!r}")
    return value


def is_constant(arr: np.ndarray) -> bool:
    """True if every value is identical (exact test: float means of equal values may drift)."""
    return bool(arr.size == 0 or np.all(arr == arr[0]))


def describe(values: Sequence[float], confidence: float = 0.95) -> dict:
    """Summary of one sample: n, mean, sample SD, SEM, t confidence interval of the mean, min, max.

    Args:
        values: 1-D sequence of finite numbers (any unit; the output keeps it).
        confidence: level of the interval of the mean, in (0, 1).

    Returns:
        ``{"n": int, "mean": float, "sd": float|None, "sem": float|None, "ci_level": float,
        "ci_low": float|None, "ci_high": float|None, "min": float, "max": float,
        "undefined": {field: reason}}``.
        ``sd`` is the sample SD (``numpy.std(ddof=1)``), ``sem = sd / sqrt(n)``
        (``scipy.stats.sem(ddof=1)``), and the interval is ``scipy.stats.t.interval(confidence,
        df=n-1, loc=mean, scale=sem)`` (Student t). With n = 1, ``sd``/``sem``/``ci_*`` are None;
        with zero variance ``sd = sem = 0.0`` and ``ci_*`` are None (a t interval needs a
        positive scale); the reasons are under ``"undefined"`` (keys ``"sd"``, ``"sem"``,
        ``"ci"``).

    Raises:
        ValueError: empty input, non-finite values, or ``confidence`` outside (0, 1).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    arr = finite_array(values, "describe()")
    n = int(arr.size)
    if n == 0:
        raise ValueError("describe(): no values; need at least one number")
    out: dict[str, Any] = {
        "n": n,
        "mean": finite(np.mean(arr)),
        "sd": None,
        "sem": None,
        "ci_level": float(confidence),
        "ci_low": None,
        "ci_high": None,
        "min": finite(np.min(arr)),
        "max": finite(np.max(arr)),
        "undefined": {},
    }
    if n == 1:
        reason = "n=1: the sample SD (ddof=1) needs at least 2 values"
        out["undefined"] = {"sd": reason, "sem": reason, "ci": reason}
        return out
    if is_constant(arr):
        out["sd"] = 0.0
        out["sem"] = 0.0
        out["undefined"] = {"ci": "zero variance: all values identical, a t interval is degenerate"}
        return out
    sd = finite(np.std(arr, ddof=1))
    sem = finite(sps.sem(arr, ddof=1))
    low, high = sps.t.interval(confidence, df=n - 1, loc=out["mean"], scale=sem)
    out.update(sd=sd, sem=sem, ci_low=finite(low), ci_high=finite(high))
    return out


def _two_sided_t_power(nc: float, df: float, alpha: float) -> float:
    """Power of a two-sided one-parameter t test with noncentrality ``nc`` (scipy.stats.nct).

    ``P(T > c) + P(T < -c)`` with ``T ~ nct(df, nc)``, ``c = t_{1-alpha/2}(df)``. The lower tail
    is evaluated as ``P(T' > c)`` with ``T' ~ nct(df, -nc)`` (same value by symmetry), because
    scipy's ``nct.cdf`` returns NaN far in the lower tail for some (df, nc) (seen with scipy
    1.17, e.g. df=4, nc=12).
    """
    crit = sps.t.ppf(1.0 - alpha / 2.0, df)
    power = float(sps.nct.sf(crit, df, nc) + sps.nct.sf(crit, df, -nc))
    if not math.isfinite(power):
        raise ValueError(f"scipy.stats.nct gave a non-finite power at df={df}, nc={nc}")
    return power


def min_detectable_difference(
    sd: float, n_a: int, n_b: int, alpha: float = 0.05, power: float = 0.8
) -> dict:
    """Smallest true mean difference a two-sided two-sample t-test detects with ``power``.

    With common SD ``sd`` and group sizes ``n_a``, ``n_b``, the test statistic follows a
    noncentral t with ``df = n_a + n_b - 2`` and noncentrality
    ``nc = delta / (sd * sqrt(1/n_a + 1/n_b))``; its power is
    ``P(T > t_{1-alpha/2}) + P(T < -t_{1-alpha/2})`` (scipy.stats.nct, scipy.stats.t).
    ``nc`` is solved for the requested power with scipy.optimize.brentq (no normal
    approximation).

    Returns:
        ``{"delta": float (same unit as sd), "noncentrality": float, "effect_size_d": float,
        "df_test": int, "achieved_power": float}``.

    Raises:
        ValueError: ``sd <= 0``, a group size below 2, ``alpha`` outside (0, 1) or ``power``
        outside (alpha, 1).
    """
    if not (math.isfinite(sd) and sd > 0):
        raise ValueError(f"sd must be a positive finite number, got {sd!r}")
    if n_a < 2 or n_b < 2:
        raise ValueError(f"group sizes must be at least 2, got {n_a} and {n_b}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if not alpha < power < 1.0:
        raise ValueError(f"power must be in (alpha, 1) = ({alpha}, 1), got {power!r}")
    df = n_a + n_b - 2
    hi = 1.0
    while _two_sided_t_power(hi, df, alpha) < power:
        hi *= 2.0
        if hi > 1e6:  # pragma: no cover - impossible for power < 1
            raise ValueError("could not bracket the noncentrality for the requested power")
    nc = optimize.brentq(
        lambda x: _two_sided_t_power(x, df, alpha) - power, 0.0, hi, xtol=1e-12, rtol=1e-12
    )
    scale = math.sqrt(1.0 / n_a + 1.0 / n_b)
    return {
        "delta": finite(nc * sd * scale),
        "noncentrality": finite(nc),
        "effect_size_d": finite(nc * scale),
        "df_test": int(df),
        "achieved_power": finite(_two_sided_t_power(nc, df, alpha)),
    }
