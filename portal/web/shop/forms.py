"""Shopper forms."""

from __future__ import annotations

from functools import lru_cache

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    FieldList,
    FormField,
    HiddenField,
    MultipleFileField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.form import Form
from wtforms.validators import DataRequired, Length, Optional

from portal.domain.reasons import OUTCOME_LABELS, OUTCOMES, REASONS
from portal.i18n import current_locale
from portal.web.forms import int_or_invalid


class LookupForm(FlaskForm):
    order_number = StringField(_l("Order number"), validators=[DataRequired(), Length(max=64)])
    contact = StringField(
        _l("Email or postcode"),
        validators=[DataRequired(), Length(max=255)],
        description=_l("The email address or postcode on the order."),
    )


class ReturnLineForm(Form):
    """One order line's choice. Choices are filled per line by the view."""

    line_id = HiddenField()
    quantity = SelectField(_l("How many to return"), coerce=int_or_invalid, validate_choice=True)
    reason = SelectField(_l("Reason"), validators=[Optional()], validate_choice=False)
    sub_reason = SelectField(_l("What exactly?"), validators=[Optional()], validate_choice=False)
    comment = TextAreaField(_l("Anything else we should know?"), validators=[Optional(), Length(max=2000)])
    outcome = RadioField(_l("What would you like?"), validators=[Optional()], validate_choice=False)
    exchange_sku = SelectField(_l("Exchange for"), validators=[Optional()], validate_choice=False)
    photos = MultipleFileField(
        _l("Photos"), description=_l("JPEG, PNG, WebP or HEIC. Required for damaged, wrong or faulty items.")
    )


class ReturnForm(FlaskForm):
    lines = FieldList(FormField(ReturnLineForm))


class CancelForm(FlaskForm):
    status = HiddenField()


# The lists are the same for every line, request and shopper of a language: built once per locale
# (the catalogue does not change while the process runs). Callers get their own copy of the list.
@lru_cache(maxsize=8)
def _choices(kind: str, locale: str, gettext) -> tuple[SelectChoice, ...]:
    if kind == "reason":
        return (SelectChoice("", gettext("Choose a reason")),) + tuple(
            SelectChoice(code, gettext(r.label)) for code, r in REASONS.items()
        )
    if kind == "sub_reason":
        # Every sub-reason, grouped under its reason, so the list works without JavaScript.
        return (SelectChoice("", gettext("Choose one (optional)")),) + tuple(
            SelectChoice(sub.code, gettext(sub.label), optgroup=gettext(r.label))
            for r in REASONS.values()
            for sub in r.sub_reasons
        )
    return tuple(SelectChoice(code, gettext(OUTCOME_LABELS[code])) for code in OUTCOMES)


def reason_choices(gettext) -> list[SelectChoice]:
    return list(_choices("reason", current_locale(), gettext))


def sub_reason_choices(gettext) -> list[SelectChoice]:
    return list(_choices("sub_reason", current_locale(), gettext))


def outcome_choices(gettext) -> list[SelectChoice]:
    return list(_choices("outcome", current_locale(), gettext))


class AnswerForm(FlaskForm):
    answer = TextAreaField(_l("Your answer"), validators=[DataRequired(), Length(max=2000)])
