"""Locale choice and translation helpers for templates and emails."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from babel.numbers import format_currency
from flask import request, session
from flask_babel import force_locale, get_locale, gettext

from portal.domain.text import Text

LOCALES = {"en": "English", "zh_Hans": "简体中文"}
DEFAULT_LOCALE = "en"


def choose_locale() -> str:
    chosen = session.get("lang")
    if chosen in LOCALES:
        return chosen
    best = request.accept_languages.best_match(["en", "zh", "zh-CN", "zh-Hans"], default="en")
    return "zh_Hans" if best and best.lower().startswith("zh") else DEFAULT_LOCALE


def current_locale() -> str:
    locale = get_locale()
    return str(locale) if locale is not None else DEFAULT_LOCALE


def render_text(value: Text | dict[str, Any] | None) -> str:
    """Translate a domain ``Text`` (or its stored dict form) in the current locale."""
    if value is None:
        return ""
    text = value if isinstance(value, Text) else Text.from_dict(value)
    return text.render(gettext)


def money(amount: Decimal | None, currency: str) -> str:
    if amount is None:
        return ""
    return format_currency(amount, currency, locale=current_locale())


__all__ = ["LOCALES", "choose_locale", "current_locale", "render_text", "money", "force_locale"]
