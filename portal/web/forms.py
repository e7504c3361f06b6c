"""What the blueprints' forms share."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from wtforms import FieldList


def int_or_invalid(value) -> int:
    """Coerce a posted number; anything that is not one becomes -1, which every range check refuses
    (so the rule that owns the range reports it, not a generic "could not coerce")."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def one_entry_per_line(entries: FieldList, line_ids: Sequence[object], blank: Callable[[object], dict]) -> None:
    """Line up a per-line FieldList with the lines the page is about, in their order: the first posted
    entry for each line is kept (what was typed survives a refused post), posted entries for unknown
    or repeated lines are dropped, and a line nothing was posted for gets a ``blank(line_id)`` entry."""
    posted: dict[str, object] = {}
    for entry in entries.entries:
        posted.setdefault(str(entry.line_id.data), entry)
    entries.entries = []
    for line_id in line_ids:
        if str(line_id) in posted:
            entries.entries.append(posted[str(line_id)])
        else:
            entries.append_entry(blank(line_id))
