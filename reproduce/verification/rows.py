"""verify's rows: one per check, with a verdict, and how they are printed and summed up."""

from __future__ import annotations

import math
from dataclasses import dataclass

from reproduce import terminal

__all__ = [
    "PASS",
    "FAIL",
    "NOT_DISTRIBUTED",
    "PLATFORM_DIFFERS",
    "NOT_VERIFIABLE",
    "VERDICTS",
    "VERDICT_WIDTH",
    "Row",
    "close",
    "format_row",
    "format_rows",
    "summary",
]

PASS, FAIL, NOT_DISTRIBUTED, PLATFORM_DIFFERS = (
    "pass",
    "FAIL",
    "not distributed",
    "platform differs",
)
# a number a reader sees that nothing here can check (a timing, or a figure whose evidence
# was not shipped): shown as what it is, never counted as a pass
NOT_VERIFIABLE = "claim"
VERDICTS = (PASS, FAIL, NOT_DISTRIBUTED, PLATFORM_DIFFERS, NOT_VERIFIABLE)
VERDICT_WIDTH = max(len(v) for v in VERDICTS)


@dataclass(frozen=True)
class Row:
    """One check: what was checked, on what, the verdict, and why."""

    check: str
    subject: str
    verdict: str
    detail: str = ""


def close(a, b, rel: float, path: str = "") -> list[str]:
    """Paths where two JSON-like values differ beyond ``rel`` (relative; absolute near 0)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path or '/'}: keys differ"]
        return [d for k in sorted(a) for d in close(a[k], b[k], rel, f"{path}/{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: lengths differ"]
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in close(x, y, rel, f"{path}/{i}")
        ]
    numeric = (int, float)
    if isinstance(a, numeric) and isinstance(b, numeric) and not isinstance(a, bool):
        ok = math.isclose(a, b, rel_tol=rel, abs_tol=rel)
        return [] if ok else [f"{path}: stored {a!r}, recomputed {b!r}"]
    return [] if a == b else [f"{path}: stored {a!r}, recomputed {b!r}"]


def format_row(row: Row, width: int | None = None) -> list[str]:
    """One row as verify prints it while checking: verdict, check and subject, then the
    detail, wrapped to ``width`` columns (default: :func:`reproduce.terminal.width`) with
    continuation lines under the check."""
    width = terminal.width() if width is None else width
    indent = " " * (VERDICT_WIDTH + 1)
    text = f"{row.check} {row.subject}" + (f": {row.detail}" if row.detail else "")
    return terminal.wrap(text, width, indent=indent, first=f"{row.verdict:<{VERDICT_WIDTH}} ")


def format_rows(rows: list[Row]) -> str:
    """The table verify prints."""
    fields = ("check", "subject", "verdict")
    widths = [max(len(f), *(len(getattr(r, f)) for r in rows)) for f in fields]
    lines = [f"{'check':<{widths[0]}}  {'subject':<{widths[1]}}  {'verdict':<{widths[2]}}  detail"]
    for r in rows:
        lines.append(
            f"{r.check:<{widths[0]}}  {r.subject:<{widths[1]}}  "
            f"{r.verdict:<{widths[2]}}  {r.detail}"
        )
    return "\n".join(lines)


def summary(rows: list[Row], n_trials: int | None = None) -> str:
    """What was verified and what could not be (never a bare "passed" over unverifiable
    data), e.g. ``verification passed: 11 checks; 15 trials' metrics not verifiable without
    weights or --retrain; 1 claim not verifiable``; with a failure, ``checked: 9 passed, 2
    failed; ...`` (the command then names what failed).

    ``n_trials``: trials in the result (None when results.json could not be read)."""
    failed = sum(r.verdict == FAIL for r in rows)
    passed = sum(r.verdict == PASS for r in rows)
    parts = [f"{passed} check{'s' if passed != 1 else ''}"]
    if failed:
        parts[0] = f"{passed} passed, {failed} failed"
    differs = sum(r.verdict == PLATFORM_DIFFERS for r in rows)
    if differs:
        parts.append(f"{differs} only within a tolerance (platform differs)")
    checked = {
        r.subject
        for r in rows
        if r.check in ("metrics", "retrain") and r.verdict in (PASS, PLATFORM_DIFFERS)
    }
    if n_trials is not None and len(checked) < n_trials:
        unchecked = n_trials - len(checked)
        parts.append(
            f"{unchecked} trial{'s' if unchecked != 1 else ''}' metrics not verifiable "
            "without weights or --retrain"
        )
    claims = sum(r.verdict == NOT_VERIFIABLE for r in rows)
    if claims:
        parts.append(f"{claims} claim{'s' if claims != 1 else ''} not verifiable")
    return ("checked: " if failed else "verification passed: ") + "; ".join(parts)
