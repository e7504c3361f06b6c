"""What the blueprints' forms share."""

from __future__ import annotations


def int_or_invalid(value) -> int:
    """Coerce a posted number; anything that is not one becomes -1, which every range check refuses
    (so the rule that owns the range reports it, not a generic "could not coerce")."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1
