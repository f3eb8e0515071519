"""What ``verify`` checks, one module per concern, below :mod:`reproduce.verify` (which runs
them, retrains, and owns the command line):

- :mod:`.paths`: containment: every path that comes from a file stays inside the directory;
- :mod:`.rows`: the verdict rows, how they are printed, and the last line's summary;
- :mod:`.integrity`: the directory's layout, SHA256SUMS, results.json, trial ids, the weights;
- :mod:`.numbers`: every number a reader sees, checked against what can check it (the records,
  the shipped logs, the weights, the samples) or marked as a claim (timings);
- :mod:`.recompute`: the statistics, prediction differences and report recomputed;
- :mod:`.tolerance`: the tolerance of a retrain on another platform, from a measured spread,
  and the report's rankings it cannot confirm;
- :mod:`.retrain`: what a retrain can show on this platform, the retrain itself, and the
  verdict on its weights and final metrics;
- :mod:`.retrained`: a retrained trial's curve, best and sample against its record.

Dependencies run one way: paths and rows at the bottom, :mod:`reproduce.verify` on top.
"""
