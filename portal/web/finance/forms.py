"""Finance forms."""

from __future__ import annotations

from datetime import date, datetime

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.validators import Length, ValidationError

from portal.services.refunds import LEDGER_KINDS, PROVIDERS


class ActionForm(FlaskForm):
    """CSRF only: every finance button posts one of these."""


def parse_day(value: str) -> date:
    """A day typed as YYYY-MM-DD (what a date input sends); ValueError otherwise."""
    return datetime.strptime(value.strip(), "%Y-%m-%d").date()


class LedgerFilterForm(FlaskForm):
    """Which ledger movements to show or export (a GET form: no CSRF token)."""

    class Meta:
        csrf = False

    day = StringField(_l("Day"))
    method = StringField(_l("Payment method"), validators=[Length(max=32)])
    provider = SelectField(_l("Provider"), validate_choice=False)
    kind = SelectField(_l("Kind"), validate_choice=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.provider.choices = [("", _l("Any")), *((p, p) for p in PROVIDERS)]
        self.kind.choices = [("", _l("Any")), *((k, _l(label)) for k, label in LEDGER_KINDS.items())]

    def validate_day(self, field: StringField) -> None:
        if field.data:
            try:
                parse_day(field.data)
            except ValueError:
                raise ValidationError(_l("Enter the day as YYYY-MM-DD, for example 2026-03-31.")) from None

    def validate_provider(self, field: SelectField) -> None:
        if field.data and field.data not in PROVIDERS:
            raise ValidationError(_l("Choose a provider from the list."))

    def validate_kind(self, field: SelectField) -> None:
        if field.data and field.data not in LEDGER_KINDS:
            raise ValidationError(_l("Choose a kind from the list."))

    def chosen_day(self, default: date) -> date:
        """The day asked for (call after ``validate``), or ``default`` when none was typed."""
        return parse_day(self.day.data) if self.day.data else default
