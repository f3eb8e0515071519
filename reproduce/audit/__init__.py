"""``python -m reproduce audit FILE``: recompute a report's claims from its own per-trial data.

FILE is either

* a reference file (``artifacts/reference/*.json``, schema ``reference.schema.json``): a published
  report's trials plus its summary claims, each claim saying how to recompute it (``check``); or
* a ``results.json`` of ours (trials as in ``trial.schema.json``, no ``claims``): the audit then
  derives the usual claims (means, SDs, ANOVA F/p, Tukey p, spread %, train-val gaps, rankings)
  per cell, takes the claimed values from the file's stored ``statistics`` and otherwise just
  prints the recomputed values.

Each claim gets one row: claimed value, recomputed value, verdict:

* ``consistent``: the recomputed value equals the claimed one at the claim's printed rounding
  (|recomputed - claimed| <= half a unit in the last printed decimal), or satisfies the claimed
  bound (``p < 0.05``). Where the report leaves the kind of SD/variance open, both the sample
  (ddof=1) and population (ddof=0) values are tried and the note says which one matches. A
  derived figure (a difference, a percentage) also counts as consistent when it follows from the
  report's printed, rounded inputs and those inputs are themselves consistent (double rounding);
  the note says so.
* ``inconsistent``: it does not follow from the per-trial data.
* ``not checkable``: nothing behind it in the data (e.g. prediction-difference values,
  partial-scale or NanoTransformer figures, GPU utilisation).
* ``recomputed only`` (results.json without a stored value): the recomputed value alone.

Column "from": ``trials`` (recomputed from per-trial data) or ``printed`` (arithmetic on the
report's own printed figures only, because no data lies behind them).

Modules, each depending only on those listed before it: ``values`` (verdict names,
statistics, rounding rules), ``schema`` (reading and validation), ``evaluate`` (checks and
verdicts), ``derive`` (claims of a results.json), ``rows``, ``table``; ``command`` (the ``audit``
command, which also audits the raw data: it sits above :mod:`reproduce.rawdata`, so this
package does not import it).

Formulas: means and SDs with numpy (``np.mean``, ``np.std(ddof=...)``, ``np.var``); one-way ANOVA
with ``scipy.stats.f_oneway``; F p-values with ``scipy.stats.f.sf``; Tukey HSD with
``scipy.stats.tukey_hsd``. Percent differences: ``pct_change = 100 (a - b) / b``,
``pct_less = 100 (b - a) / b``.
"""

from __future__ import annotations

from reproduce.audit.derive import derive_claims
from reproduce.audit.rows import audit_document, audit_file
from reproduce.audit.schema import (
    REFERENCE_SCHEMA_ID,
    TRIAL_SCHEMA_ID,
    load_document,
    validate_reference,
    validate_trials,
)
from reproduce.audit.table import format_table
from reproduce.audit.values import CONSISTENT, INCONSISTENT, NOT_CHECKABLE, RECOMPUTED_ONLY

__all__ = [
    "CONSISTENT",
    "INCONSISTENT",
    "NOT_CHECKABLE",
    "RECOMPUTED_ONLY",
    "REFERENCE_SCHEMA_ID",
    "TRIAL_SCHEMA_ID",
    "audit_document",
    "audit_file",
    "derive_claims",
    "format_table",
    "load_document",
    "validate_reference",
    "validate_trials",
]
