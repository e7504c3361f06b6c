"""Errors a business rule raises, carrying text the person who acted can read in their language.

Services and domain code raise these; the web layer maps each kind to one HTTP
status (or a form error) in one place. No HTTP codes here.
"""

from __future__ import annotations

from typing import Any, ClassVar

from portal.domain.text import N_, Text


class DomainError(Exception):
    """A rule said no. ``message`` is a translatable ``Text``; ``kind`` says what sort of no."""

    kind: ClassVar[str] = "invalid"  # invalid | not_found | conflict | forbidden
    default: ClassVar[str] = N_("That cannot be done.")

    def __init__(self, message: str | Text | None = None, /, **params: Any) -> None:
        if isinstance(message, Text):
            text = message
        else:
            text = Text(message or self.default, params)
        super().__init__(text.render())
        self.message = text

    def render(self, translate: Any = None) -> str:
        return self.message.render(translate) if translate is not None else self.message.render()


class InvalidInput(DomainError):
    """The input breaks a rule (empty reason, unknown role, wrong currency...)."""

    kind = "invalid"


class NotFound(DomainError):
    """The thing asked for does not exist (or is not visible to the caller)."""

    kind = "not_found"
    default = N_("We could not find that.")


class Conflict(DomainError):
    """The thing changed since the caller last saw it (stale form, double submit), or is in a state
    where the action no longer applies."""

    kind = "conflict"
    default = N_("This was changed in the meantime. Reload the page to see where it stands now.")

    def __init__(self, message: str | Text | None = None, /, *, current: str | None = None, **params: Any) -> None:
        super().__init__(message, **params)
        self.current = current


class NotPermitted(DomainError):
    """The person may not do this (a business rule, not a missing login)."""

    kind = "forbidden"
    default = N_("You are not allowed to do that.")


__all__ = ["DomainError", "InvalidInput", "NotFound", "Conflict", "NotPermitted"]
