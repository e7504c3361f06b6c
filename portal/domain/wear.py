"""The wear classifier's decision threshold, per product category.

The model's contract carries one threshold (chosen on synthetic images). A
merchant may set another per category, read off the wear report's agreement
with the warehouse (``returns-portal wear report``), on the admin wear report page
(stored per model version) or with the setting ``PORTAL_WEAR_THRESHOLDS``:
``shoes=0.45, knitwear=0.62``; the page's comes first. Categories are matched
without regard to case or surrounding spaces; a category without its own
threshold keeps the model's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from portal.domain.errors import InvalidInput
from portal.domain.text import N_

WORN, NOT_WORN = "wear", "no_wear"
# The model the portal loads unless ``PORTAL_WEAR_MODEL`` names another: wear-v2 quantised to int8,
# within 0.002 ROC AUC of it on both evaluation sets and scoring in about half its time. wear-v2 is
# ahead of wear-v1 on both ROC AUCs and on false alarms (README, "The wear classifier").
DEFAULT_MODEL = "wear-v2-int8"
# What a merchant may set on the page: a threshold at 0 or 1 would call every photo worn (or none).
LOWEST, HIGHEST = 0.05, 0.95


def category_key(category: str | None) -> str:
    return (category or "").strip().casefold()


def parse_thresholds(text: str | None) -> dict[str, float]:
    """``"shoes=0.45, knitwear=0.62"`` -> ``{"shoes": 0.45, "knitwear": 0.62}``; ``ValueError`` on bad input."""
    out: dict[str, float] = {}
    for part in (text or "").replace(";", ",").split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        key = category_key(name)
        if not sep or not key:
            raise ValueError(f"wear thresholds: expected category=number, got {part.strip()!r}")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"wear thresholds: {value.strip()!r} for {name.strip()!r} is not a number") from None
        if not 0.0 <= number <= 1.0:
            raise ValueError(f"wear thresholds: {number} for {name.strip()!r} is outside 0..1")
        if key in out:
            raise ValueError(f"wear thresholds: {name.strip()!r} is given twice")
        out[key] = number
    return out


def check_threshold(category: str | None, value: float | None) -> tuple[str, float]:
    """(category key, threshold) for a merchant's setting, or ``InvalidInput`` saying what is wrong."""
    key = category_key(category)
    if not key:
        raise InvalidInput(N_("Name the product category."))
    if len(key) > 64:
        raise InvalidInput(N_("A product category has at most 64 characters."))
    if value is None or not LOWEST <= value <= HIGHEST:
        raise InvalidInput(N_("The threshold is a number from %(low)s to %(high)s."), low=LOWEST, high=HIGHEST)
    return key, round(float(value), 2)


def threshold_for(category: str | None, thresholds: Mapping[str, float] | None, default: float) -> float:
    return (thresholds or {}).get(category_key(category), default)


def label_for(
    probability: float,
    category: str | None,
    thresholds: Mapping[str, float] | None,
    default: float,
    labels: Sequence[str] = (NOT_WORN, WORN),
) -> str:
    """The label at the category's threshold (or the model's): worn at or above it."""
    return labels[1] if probability >= threshold_for(category, thresholds, default) else labels[0]


def agreement_at(pairs: Sequence[tuple[float, bool]], threshold: float) -> float | None:
    """Share of (probability, warehouse says worn) pairs on which the threshold agrees with the warehouse."""
    if not pairs:
        return None
    return sum((p >= threshold) == worn for p, worn in pairs) / len(pairs)


def best_threshold(pairs: Sequence[tuple[float, bool]], default: float) -> tuple[float, float | None]:
    """(threshold, agreement): the candidate (0.05 steps) agreeing most often; ties go to the one nearest ``default``."""
    if not pairs:
        return default, None
    candidates = [round(0.05 * i, 2) for i in range(1, 20)]
    best = max(candidates, key=lambda t: (agreement_at(pairs, t) or 0.0, -abs(t - default)))
    return best, agreement_at(pairs, best)
