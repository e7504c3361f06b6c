"""Back-office forms."""

from __future__ import annotations

from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    FieldList,
    FormField,
    HiddenField,
    PasswordField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.form import Form
from wtforms.validators import DataRequired, Length, ValidationError

from portal.domain.privacy import REASON_MAX
from portal.domain.reasons import OUTCOMES, REASONS, Outcome
from portal.domain.receiving import REFUSED_FATES
from portal.services.filing import LineRequest
from portal.web.forms import int_or_invalid, one_entry_per_line


class LoginForm(FlaskForm):
    email = StringField(_l("Email"), validators=[DataRequired(), Length(max=255)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=1024)])


class ActionForm(FlaskForm):
    assignee = HiddenField()  # who the page showed, to catch a stale take


class RevealForm(FlaskForm):
    """Why a person needs the shopper's full contact details (kept in the audit log)."""

    # Its own id: the page has other "reason" fields (refusing items, rejecting) whose labels must not point here.
    reason = StringField(
        _l("Reason for showing the contact details"),
        validators=[DataRequired(), Length(max=REASON_MAX)],
        id="reveal-reason",
    )


class ArrivedForm(FlaskForm):
    """Accept what the warehouse received for a request with a discrepancy."""

    status = HiddenField(validators=[DataRequired()])  # the status the page showed
    note = TextAreaField(_l("Note for the timeline (optional)"), validators=[Length(max=2000)])


class DiscrepancyQuestionForm(FlaskForm):
    """Ask the shopper about what the warehouse found; the clock pauses until they answer."""

    status = HiddenField(validators=[DataRequired()])
    question = TextAreaField(_l("Question for the shopper"), validators=[DataRequired(), Length(max=2000)])


class RefuseForm(FlaskForm):
    """Refuse some items after a discrepancy: which, why (the shopper reads it) and what happens to them."""

    status = HiddenField(validators=[DataRequired()])
    lines = SelectMultipleField(_l("Items to refuse"), coerce=int, validate_choice=False)
    reason = TextAreaField(_l("Reason the shopper sees"), validators=[DataRequired(), Length(max=2000)])
    fate = SelectField(_l("What happens to the items"), validators=[DataRequired()])

    def fill(self) -> None:
        self.fate.choices = [SelectChoice(code, gettext(label)) for code, label in REFUSED_FATES.items()]


class DecisionForm(FlaskForm):
    status = HiddenField(validators=[DataRequired()])  # the status the page showed
    action = RadioField(
        _l("Decision"),
        choices=[SelectChoice("approve"), SelectChoice("reject"), SelectChoice("ask")],
        validators=[DataRequired()],
    )
    rejection_reason = SelectField(_l("Rejection reason"), validate_choice=False)
    note = TextAreaField(
        _l("Reason, question or note (the shopper sees a rejection reason or a question)"),
        validators=[Length(max=2000)],
    )

    def __init__(self, *args, reasons=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.rejection_reason.choices = [SelectChoice("", gettext("No listed reason"))] + [
            SelectChoice(str(r.id), r.label) for r in reasons
        ]
        self.action.choices = [
            SelectChoice("approve", gettext("Approve")),
            SelectChoice("reject", gettext("Reject")),
            SelectChoice("ask", gettext("Ask the shopper for more information")),
        ]

    def validate_rejection_reason(self, field):
        if (field.data or "") not in {c.value for c in self.rejection_reason.choices}:
            raise ValidationError(_l("Choose a rejection reason from the list."))

    def chosen_reason(self) -> int | None:
        return int(self.rejection_reason.data) if (self.rejection_reason.data or "").isdigit() else None

    def validate_note(self, field):
        if self.action.data == "reject" and not (field.data or "").strip() and not self.rejection_reason.data:
            raise ValidationError(_l("Tell the shopper why the return is rejected."))
        if self.action.data == "ask" and not (field.data or "").strip():
            raise ValidationError(_l("Write the question for the shopper."))


class BulkForm(FlaskForm):
    """An action on the rows ticked in the queue."""

    tickets = SelectMultipleField(
        _l("Tickets"), coerce=str, validate_choice=False, validators=[DataRequired(_l("Tick at least one ticket."))]
    )
    action = SelectField(_l("With the chosen tickets"), validate_choice=True)
    to = SelectField(_l("Assign to"), validate_choice=False)
    note = TextAreaField(_l("Note"), validators=[Length(max=4000)])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.action.choices = [
            SelectChoice("take", gettext("Take them")),
            SelectChoice("assign", gettext("Assign them")),
            SelectChoice("approve", gettext("Approve them")),
            SelectChoice("note", gettext("Add a note to each")),
        ]
        self.to.choices = [SelectChoice("", "")]

    def validate_tickets(self, field):
        if not all(str(v).isdigit() and len(str(v)) < 10 for v in field.data or []):
            raise ValidationError(_l("Tick tickets from the list."))

    def validate_note(self, field):
        if self.action.data == "note" and not (field.data or "").strip():
            raise ValidationError(_l("Write the note to add."))

    def validate_to(self, field):
        if self.action.data == "assign" and (field.data or "") not in {c.value for c in self.to.choices}:
            raise ValidationError(_l("Choose who gets the tickets from the list."))


class NoteForm(FlaskForm):
    text = TextAreaField(_l("Internal note"), validators=[DataRequired(), Length(max=4000)])


class ReplyForm(FlaskForm):
    body = TextAreaField(_l("Message to the shopper"), validators=[DataRequired(), Length(max=4000)])


class ReassignForm(FlaskForm):
    to = SelectField(_l("Reassign to"), validate_choice=True)


class OnBehalfLineForm(Form):
    """One order line of a return filed for the shopper. The view gives it its ``order_line``."""

    line_id = HiddenField()
    quantity = SelectField(_l("How many"), coerce=int_or_invalid, default=0, validate_choice=False)
    reason = SelectField(_l("Reason"), validate_choice=False)
    outcome = SelectField(_l("Outcome"), default="refund", validate_choice=False)

    def validate_quantity(self, field):
        line = self.order_line
        if not 0 <= field.data <= line.quantity:
            raise ValidationError(gettext("%(sku)s: choose a quantity from 0 to %(n)d.", sku=line.sku, n=line.quantity))


class OnBehalfForm(FlaskForm):
    lines = FieldList(FormField(OnBehalfLineForm))
    override = TextAreaField(
        _l("Why the policy is overridden (required when it says no)"), validators=[Length(max=2000)]
    )

    def fill(self, order_lines, prechecks) -> None:
        """One entry per order line, each with its line and the choices it offers."""
        by_id = {line.line_id: line for line in order_lines}
        one_entry_per_line(
            self.lines,
            list(by_id),
            lambda line_id: {"line_id": line_id, "quantity": 0, "outcome": Outcome.REFUND.value},
        )
        reasons = [SelectChoice("", "—")] + [SelectChoice(code, gettext(r.label)) for code, r in REASONS.items()]
        outcomes = [
            SelectChoice(Outcome.REFUND.value, gettext("Refund")),
            SelectChoice(Outcome.STORE_CREDIT.value, gettext("Store credit")),
        ]
        for entry in self.lines.entries:
            entry.form.order_line = by_id[entry.line_id.data]
            entry.quantity.choices = [
                SelectChoice(n, str(n)) for n in range(0, prechecks[entry.line_id.data].remaining + 1)
            ]
            entry.reason.choices, entry.outcome.choices = reasons, outcomes

    def line_requests(self) -> list[LineRequest]:
        """The lines with a quantity, as the filing service takes them."""
        return [
            LineRequest(
                entry.form.order_line.line_id,
                entry.quantity.data,
                entry.reason.data or None,
                outcome=entry.outcome.data if entry.outcome.data in OUTCOMES else None,
            )
            for entry in self.lines.entries
            if entry.quantity.data
        ]
