"""Warehouse forms."""

from __future__ import annotations

from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, FieldList, FormField, HiddenField, MultipleFileField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.form import Form

from portal.domain.receiving import DISCREPANCIES, DISPOSITIONS, GRADES, Finding, ReceivedLine, finding_units
from portal.web.forms import int_or_invalid, one_entry_per_line

NOTE_MAX = 2000


class ReceivedLineForm(Form):
    """What arrived for one return line. Whether it adds up is ``check_receipt``'s call, not the form's:
    the selects do not refuse unknown values, the receipt rules do (and the view puts their error here)."""

    line_id = HiddenField()
    quantity = SelectField(_l("Received"), coerce=int_or_invalid, validate_choice=False)
    grade = SelectField(_l("Grade"), validate_choice=False)
    disposition = SelectField(_l("Disposition"), validate_choice=False)
    wear = BooleanField(_l("Wear confirmed"))
    issue = SelectField(_l("Problem"), validate_choice=False)
    issue_note = StringField(_l("What was wrong"))
    note = StringField(_l("Note"))
    photos = MultipleFileField(_l("Photos of what arrived (optional)"))


class ReceiveForm(FlaskForm):
    """One parcel's receipt: a sub-form per accepted line, plus the status the page showed."""

    status = HiddenField()
    lines = FieldList(FormField(ReceivedLineForm))
    extra = StringField(_l("Extra items in the parcel (describe them)"))

    def fill(self, lines) -> None:
        """One entry per line, each with its line and the choices it offers. A fresh page expects a clean
        parcel (everything arrived, as new, back on the shelf), so one click records it; a posted
        form keeps what was posted."""
        by_id = {line.id: line for line in lines}
        clean = {} if self.is_submitted() else {"grade": "A", "disposition": "restock"}
        one_entry_per_line(
            self.lines,
            list(by_id),
            lambda line_id: {"line_id": line_id, "quantity": by_id[line_id].quantity, **clean},
        )
        grades = [SelectChoice("", "—")] + [SelectChoice(code, gettext(label)) for code, label in GRADES.items()]
        dispositions = [SelectChoice("", "—")] + [
            SelectChoice(code, gettext(label)) for code, label in DISPOSITIONS.items()
        ]
        issues = [SelectChoice("", gettext("none"))] + [
            SelectChoice(code, gettext(label)) for code, (_, label) in DISCREPANCIES.items() if code != "extra"
        ]
        for entry in self.lines.entries:
            entry.line = by_id[int_or_invalid(entry.line_id.data)]
            entry.quantity.choices = [SelectChoice(n, str(n)) for n in range(entry.line.quantity, -1, -1)]
            entry.grade.choices, entry.disposition.choices, entry.issue.choices = grades, dispositions, issues

    def receipt(self) -> tuple[list[ReceivedLine], list[Finding]]:
        """The counted lines and the problems reported, as the receipt rules take them."""
        lines, findings = [], []
        for entry in self.lines.entries:
            line_id = entry.line.id
            quantity = entry.quantity.data  # int_or_invalid: -1 when not a number
            lines.append(
                ReceivedLine(
                    line_id,
                    quantity,
                    entry.grade.data or "",
                    bool(entry.wear.data),
                    entry.disposition.data or "",
                    (entry.note.data or "")[:NOTE_MAX],
                )
            )
            kind = entry.issue.data or ""
            if kind:
                findings.append(
                    Finding(
                        kind,
                        line_id,
                        finding_units(kind, entry.line.quantity, quantity),
                        (entry.issue_note.data or "")[:NOTE_MAX],
                    )
                )
        extra = (self.extra.data or "").strip()
        if extra:
            findings.append(Finding("extra", None, 1, extra[:NOTE_MAX]))
        return lines, findings

    def show_error(self, line_id: int | None, field: str | None, message: str) -> bool:
        """Put a rule's error beside the field it is about; False when no field on the page is."""
        for entry in self.lines.entries:
            if entry.line.id == line_id and field in ("quantity", "grade", "disposition", "issue", "photos"):
                target = getattr(entry, field)
                target.errors = [*target.errors, message]
                return True
        return False
