"""The audit as a plain-text table: full lines for audit.md, or fitted to a terminal."""

from __future__ import annotations

import itertools
import textwrap

from reproduce import terminal
from reproduce.audit.values import NOT_CHECKABLE, fmt


def format_table(rows: list[dict], width: int | None = None) -> str:
    """The rows as a plain-text table: claim, claimed, recomputed, verdict, from, note.

    Args:
        rows: :func:`audit_document`'s rows.
        width: None for one line per claim at full length (as audit.md keeps it); a number of
            columns to fit the table into (the command's terminal): when the full table is
            wider, :func:`_fitted_table` wraps it.
    """
    header = ("claim", "claimed", "recomputed", "verdict", "from", "note")
    lines = []
    for row in rows:
        claimed = row["claimed"]
        if claimed is None:
            claimed_text = "-"
        else:
            claimed_text = fmt(claimed, row["decimals"], extra=0)
            if row["relation"] != "=":
                claimed_text = f"{row['relation']} {claimed_text}"
        recomputed = row["recomputed_text"] if row["verdict"] != NOT_CHECKABLE else "-"
        lines.append(
            (row["id"], claimed_text, recomputed, row["verdict"], row["basis"], row["note"])
        )
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=True)]
    widths[-1] = 0
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    out.append("  ".join("-" * max(w, len(h)) for h, w in zip(header, widths, strict=True)))
    out += [
        "  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    ]
    counts = {}
    for row in rows:
        counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
    summary = f"{len(rows)} claims: " + ", ".join(f"{n} {v}" for v, n in counts.items())
    if width is not None and max(map(len, [*out, summary])) > width:
        out = _fitted_table(header[:4], lines, width)
        return "\n".join([*out, "", *terminal.wrap(summary, width, indent="  ", first="")])
    out.append("")
    out.append(summary)
    return "\n".join(out)


def _fitted_table(header: tuple[str, ...], lines: list[tuple], width: int) -> list[str]:
    """The table in ``width`` columns: claim, claimed, recomputed and verdict as columns whose
    cells wrap within them (narrowed one character at a time where that wraps the fewest
    cells, the widest first among equals), and each claim's note on
    indented lines under it. The "from" column is left out: every note of a claim checked on
    the report's printed figures says so, and the others are recomputed from its trials.
    Claim ids and verdicts keep their full width, and no text is cut: where the ids leave too
    little room, :func:`_stacked_table` puts each id on a line of its own."""
    cells = [line[:4] for line in lines]
    notes = [line[5] for line in lines]
    natural = [max(len(str(x)) for x in col) for col in zip(header, *cells, strict=True)]
    columns = list(zip(*cells, strict=True))
    widths = list(natural)
    longest_word = [max(len(w) for x in col for w in [*str(x).split(), ""]) for col in columns]
    # ids and verdicts keep their width; no word of the other cells is broken
    minimum = [natural[0], max(12, longest_word[1]), max(10, longest_word[2]), natural[3]]
    room = width - 2 * (len(widths) - 1)
    if sum(minimum) > room:
        return _stacked_table(cells, notes, width)
    while sum(widths) > room:
        shrinkable = [i for i in range(len(widths)) if widths[i] > minimum[i]]
        if not shrinkable:
            break

        def wrapped_if_narrowed(i: int) -> tuple[int, int]:
            return sum(len(str(x)) >= widths[i] for x in columns[i]), -widths[i]

        widths[min(shrinkable, key=wrapped_if_narrowed)] -= 1

    def row_lines(values: tuple) -> list[str]:
        wrapped = [textwrap.wrap(str(values[0]), widths[0], break_long_words=False) or [""]]
        wrapped += [
            textwrap.wrap(str(v), w, break_on_hyphens=True) or [""]
            for v, w in zip(values[1:], widths[1:], strict=True)
        ]
        return [
            "  ".join(part.ljust(w) for part, w in zip(parts, widths, strict=True)).rstrip()
            for parts in itertools.zip_longest(*wrapped, fillvalue="")
        ]

    out = row_lines(header)
    out.append("  ".join("-" * w for w in widths))
    for values, note in zip(cells, notes, strict=True):
        out += row_lines(values)
        if note:
            out += terminal.wrap(note, width, indent="    ")
    return out


def _stacked_table(cells: list[tuple], notes: list[str], width: int) -> list[str]:
    """Each claim as its id on a line of its own, then its claimed value, recomputed value and
    verdict, then its note, wrapped to ``width`` (for terminals too narrow for the ids)."""
    out = []
    for (cid, claimed, recomputed, verdict), note in zip(cells, notes, strict=True):
        out.append(cid)
        for text in (f"claimed: {claimed}", f"recomputed: {recomputed}", verdict):
            out += terminal.wrap(text, width, indent="    ")
        if note:
            out += terminal.wrap(note, width, indent="    ")
    return out
