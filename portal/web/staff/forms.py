"""Back-office forms."""

from __future__ import annotations

from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, RadioField, SelectField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, ValidationError


class ActionForm(FlaskForm):
    assignee = HiddenField()  # who the page showed, to catch a stale take


class DecisionForm(FlaskForm):
    status = HiddenField(validators=[DataRequired()])  # the status the page showed
    action = RadioField(_l("Decision"), choices=[SelectChoice("approve"), SelectChoice("reject"), SelectChoice("ask")], validators=[DataRequired()])
    note = TextAreaField(_l("Reason, question or note (the shopper sees a rejection reason or a question)"), validators=[Length(max=2000)])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.action.choices = [SelectChoice("approve", gettext("Approve")), SelectChoice("reject", gettext("Reject")),
                               SelectChoice("ask", gettext("Ask the shopper for more information"))]

    def validate_note(self, field):
        if self.action.data == "reject" and not (field.data or "").strip():
            raise ValidationError(_l("Tell the shopper why the return is rejected."))
        if self.action.data == "ask" and not (field.data or "").strip():
            raise ValidationError(_l("Write the question for the shopper."))


class NoteForm(FlaskForm):
    text = TextAreaField(_l("Internal note"), validators=[DataRequired(), Length(max=4000)])


class ReplyForm(FlaskForm):
    body = TextAreaField(_l("Message to the shopper"), validators=[DataRequired(), Length(max=4000)])


class ReassignForm(FlaskForm):
    to = SelectField(_l("Reassign to"), validate_choice=True)


class OnBehalfForm(FlaskForm):
    override = TextAreaField(_l("Why the policy is overridden (required when it says no)"), validators=[Length(max=2000)])
