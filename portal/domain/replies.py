"""Suggested replies: canned responses chosen by the request's reasons and keywords in what the shopper wrote."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class CannedReply:
    id: int
    name: str
    locale: str
    body: str
    reasons: frozenset[str] = frozenset()
    keywords: tuple[str, ...] = ()
    decision: str | None = None  # a macro: sending it also records "approve", "reject" or "ask"


@dataclass(frozen=True)
class Suggestion:
    reply: CannedReply
    score: int
    why: tuple[str, ...]


def _words(text: str) -> str:
    return " " + re.sub(r"\s+", " ", text.lower()) + " "


def suggest(
    replies: Sequence[CannedReply], reasons: Iterable[str], texts: Iterable[str], locale: str, limit: int = 3
) -> list[Suggestion]:
    """Best replies for the shopper's language (English when none exist in it), highest score first.

    A matching reason counts 2, each keyword found in the shopper's comments 1;
    replies that match nothing are not suggested. Ties keep the admin's order (by id).
    """
    wanted = frozenset(reasons)
    haystack = _words(" ".join(texts))
    in_locale = [r for r in replies if r.locale == locale] or [r for r in replies if r.locale == "en"]
    out = []
    for reply in in_locale:
        why = [f"reason {code}" for code in sorted(reply.reasons & wanted)]
        why += [f"keyword {kw!r}" for kw in reply.keywords if kw.strip() and kw.lower().strip() in haystack]
        score = 2 * len(reply.reasons & wanted) + sum(1 for w in why if w.startswith("keyword"))
        if score:
            out.append(Suggestion(reply, score, tuple(why)))
    out.sort(key=lambda s: (-s.score, s.reply.id))
    return out[:limit]
