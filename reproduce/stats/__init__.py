"""Statistics for the activation comparison: summaries, ANOVA, post-hoc tests, power.

Every distributional quantity comes from :mod:`scipy.stats` (t, noncentral t, F via
``f_oneway``, Kruskal-Wallis, Tukey HSD); only sums of squares, eta squared and Cohen's d are
computed here, from their textbook definitions (sources given at each function).

Undefined quantities
--------------------
One representation is used everywhere in this module's output: a quantity that cannot be
computed (n = 1, zero variance, fewer than two groups, ...) is ``None``, and the dict that holds
it has an ``"undefined"`` mapping from that field's name to a one-line reason, e.g.::

    {"sd": None, ..., "undefined": {"sd": "n=1: the sample SD needs at least 2 values"}}
    {"anova": None, ..., "undefined": {"anova": "group 'gelu' has n=1; ..."}}

Every such dict always has its ``"undefined"`` key (``{}`` when everything is defined). No value
is ever NaN or infinite, and an undefined test is never reported as significant. All output is
plain JSON (``json.dumps(x, allow_nan=False)`` works): Python floats/ints/str/bool/None only.

Modules: :mod:`reproduce.stats.sample` (one sample, power), :mod:`reproduce.stats.groups` (one
metric across groups), :mod:`reproduce.stats.sweep` (a sweep's cells).
"""

from reproduce.stats.groups import COHENS_D_SOURCE, ETA_SQUARED_SOURCE, compare_groups
from reproduce.stats.sample import MDD_METHOD, describe, min_detectable_difference
from reproduce.stats.sweep import analyze_sweep, cell_key

__all__ = [
    "COHENS_D_SOURCE",
    "ETA_SQUARED_SOURCE",
    "MDD_METHOD",
    "analyze_sweep",
    "cell_key",
    "compare_groups",
    "describe",
    "min_detectable_difference",
]
