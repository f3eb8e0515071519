"""The study's own raw data as reference data (``artifacts/reference/``).

Modules, each depending only on those before it: ``sources`` (parsers of the study's files),
``importer`` (the study-raw document, its schema checks, deterministic text), ``provenance``
(which configuration produced each result file, and the evidence), ``partial``, ``trials`` and
``curves`` (the findings of the audit against the raw data), ``findings`` (their verdicts),
``markdown`` (audit.md), ``command`` (``python -m reproduce reference import``).
"""
