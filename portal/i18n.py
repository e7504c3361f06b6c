"""Locale choice and translation helpers for templates and emails."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from functools import lru_cache
from typing import Any

from babel.support import NullTranslations, Translations
from flask import Flask, has_request_context, request, session
from flask_babel import force_locale, format_date, get_locale, get_translations, gettext
from flask_login import current_user
from jinja2.ext import _make_new_gettext, _make_new_ngettext, _make_new_npgettext, _make_new_pgettext
from wtforms.i18n import messages_path

from portal.domain.money import format_money
from portal.domain.text import Text

LOCALES = {"en": "English", "zh_Hans": "简体中文"}
DEFAULT_LOCALE = "en"


def choose_locale() -> str:
    chosen = session.get("lang")
    if chosen in LOCALES:
        return chosen
    best = request.accept_languages.best_match(["en", "zh", "zh-CN", "zh-Hans"], default="en")
    return "zh_Hans" if best and best.lower().startswith("zh") else DEFAULT_LOCALE


def choose_timezone() -> str | None:
    """A signed-in staff member's own time zone, else the portal's (``TIMEZONE``)."""
    zone = getattr(current_user, "timezone", None) if has_request_context() else None
    return zone if isinstance(zone, str) and zone else None


def current_locale() -> str:
    """The request's locale (or the one forced for an email); the default outside any request."""
    if not has_request_context():
        return DEFAULT_LOCALE
    locale = get_locale()
    return str(locale) if locale is not None else DEFAULT_LOCALE


def _localised(params: dict[str, Any]) -> dict[str, Any]:
    """Dates the domain passes as ISO strings (``deadline``, ``quality_deadline``) in the reader's
    locale, like every other date on the page ("28 Nov 2026", "2026年11月28日")."""
    out = dict(params)
    for key, value in params.items():
        if key.endswith("deadline") and isinstance(value, str):
            try:
                out[key] = format_date(date.fromisoformat(value), "medium")
            except ValueError:
                pass
    return out


def render_text(value: Text | dict[str, Any] | None) -> str:
    """Translate a domain ``Text`` (or its stored dict form) in the current locale."""
    if value is None:
        return ""
    text = value if isinstance(value, Text) else Text.from_dict(value)
    return Text(text.msgid, _localised(dict(text.params))).render(gettext) if text.params else text.render(gettext)


def money(amount: Decimal | int | str | None, currency: str, locale: str | None = None) -> str:
    """An amount for people, by currency (its symbol and decimals) and locale.

    ``locale`` defaults to the current one; work done outside a request passes
    the shopper's locale stored on the return request (or gets the default).
    Also the Jinja filter ``money``: ``{{ amount|money(currency) }}``.
    """
    if amount is None or amount == "":
        return ""
    return format_money(amount, currency, locale or current_locale())


@lru_cache(maxsize=len(LOCALES))
def wtforms_translations(locale: str) -> NullTranslations:
    """WTForms' own messages ("Not a valid choice") in ``locale``, read from disk once per process."""
    return Translations.load(messages_path(), [locale], domain="wtforms")


def _share_wtforms_translations() -> None:
    # Flask-WTF would parse WTForms' catalogue again on every request; it looks for a copy on the
    # request first (``request.wtforms_translations``), so hand it the one loaded for this locale.
    request.wtforms_translations = wtforms_translations(current_locale())  # type: ignore[attr-defined]


@lru_cache(maxsize=8)
def _bound_template_gettext(translations: NullTranslations) -> dict[str, Any]:
    # Jinja's own wrappers, so ``_()`` escapes and fills in exactly as the ones Flask-Babel installs.
    return {
        "gettext": _make_new_gettext(translations.ugettext),
        "ngettext": _make_new_ngettext(translations.ungettext),
        "pgettext": _make_new_pgettext(translations.upgettext),
        "npgettext": _make_new_npgettext(translations.unpgettext),
    }


def _template_gettext() -> dict[str, Any]:
    """The catalogue of this render's locale, looked up once per render: Flask-Babel's template
    functions look it up again (through the request context) for every string on the page."""
    return _bound_template_gettext(get_translations())


def init_app(app: Flask) -> None:
    app.before_request(_share_wtforms_translations)
    app.context_processor(_template_gettext)


__all__ = ["LOCALES", "choose_locale", "current_locale", "render_text", "money", "force_locale"]
