"""What ``verify`` checks, one module per concern, below :mod:`reproduce.verify` (which runs
them, retrains, and owns the command line):

- :mod:`.paths`: containment: every path that comes from a file stays inside the directory;
- :mod:`.rows`: the verdict rows and their formatting;
- :mod:`.integrity`: the directory's files, SHA256SUMS, results.json, the weights files;
- :mod:`.numbers`: every number a reader sees, checked against what can check it (the shipped
  logs, the weights) or marked as a claim no one can check.

Dependencies run one way: paths and rows at the bottom, :mod:`reproduce.verify` on top.
"""
