"""One row per claim: the audit of a loaded document."""

from __future__ import annotations

from pathlib import Path

from reproduce.audit.derive import derive_claims
from reproduce.audit.evaluate import Auditor
from reproduce.audit.schema import load_document
from reproduce.audit.values import ByDdof, fmt, plain


def audit_document(doc: dict) -> list[dict]:
    """Audit a loaded, validated document; returns one dict per claim.

    Row keys: id, about, sections, printed, claimed, decimals, relation, unit, recomputed (the
    value the verdict rests on: float, int, str or None), recomputed_by_ddof ({"0": .., "1": ..}
    when the SD/variance kind is open, else None), matched_ddof (0, 1 or None),
    recomputed_from_printed (the value from the report's printed inputs, where it differs),
    recomputed_text, verdict, basis ("trials", "printed" or "-"), note.
    """
    claims = doc["claims"] if "claims" in doc else derive_claims(doc)
    auditor = Auditor(doc["trials"], claims)
    rows = []
    for claim in claims:
        out = auditor.outcome(claim["id"])
        data = out.data
        if isinstance(data, ByDdof):
            by_ddof = {"0": plain(data.pop), "1": plain(data.sample)}
            primary = data.get(out.matched_ddof if out.matched_ddof is not None else 1)
        else:
            by_ddof, primary = None, data
        rows.append(
            {
                "id": claim["id"],
                "about": claim.get("about", ""),
                "sections": claim.get("sections", []),
                "printed": claim.get("printed", ""),
                "claimed": claim.get("claimed"),
                "decimals": claim.get("decimals"),
                "relation": claim.get("relation", "="),
                "unit": claim.get("unit"),
                "recomputed": plain(primary),
                "recomputed_by_ddof": by_ddof,
                "matched_ddof": out.matched_ddof,
                "recomputed_from_printed": plain(out.printed),
                "recomputed_text": fmt(data, claim.get("decimals")),
                "verdict": out.verdict,
                "basis": out.basis,
                "note": out.note,
                "remark": claim.get("remark", ""),
            }
        )
    return rows


def audit_file(path: str | Path) -> list[dict]:
    """:func:`load_document` then :func:`audit_document`."""
    return audit_document(load_document(path))
