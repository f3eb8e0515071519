"""The study protocol: train, evaluate and measure PD as the study's own code did.

The study's code (github.com/pankajtakawale/llm-reproducibility-activations, commit 1551da0) is
the specification: :mod:`charlm.study.model` (its module layout and initialisation order),
:mod:`charlm.study.stream` (its one random stream: batches, evaluation, accuracy, PD windows),
:mod:`charlm.study.train` (its training loop, resumable) and :mod:`charlm.study.pd` (its relative
PD). Chosen with ``train.protocol = "study"``; the package's other protocol, ``nanogpt``, is
:mod:`charlm.train`.
"""
