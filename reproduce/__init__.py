"""The study's pipeline on top of :mod:`charlm`: sweeps, results, statistics, reports."""
