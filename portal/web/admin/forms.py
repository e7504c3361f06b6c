"""Admin forms: they check the shape of what was typed; the rules live in the domain and the services."""

from __future__ import annotations

from decimal import Decimal

from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import (
    BooleanField,
    DecimalField,
    FieldList,
    FloatField,
    Form,
    FormField,
    HiddenField,
    IntegerField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, Regexp, ValidationError

from portal.db import get_session
from portal.db.models import CannedReplyRow, RoutingRuleRow, StaffUser, Team
from portal.domain.reasons import REASONS, RESPONSIBILITIES
from portal.domain.roles import CAN_LEAD_TEAM, CAN_MANAGE_TEAM, CAN_WORK_TICKETS, ROLE_LABELS, ROLES, in_role_order
from portal.domain.routing import PRIORITIES, TICKET_CLASSES
from portal.domain.sla import WEEKDAYS, LadderAction, LadderRow, LadderWhen
from portal.i18n import LOCALES


class AdminForm(FlaskForm):
    """A form whose messages say which field they are about ("Email: Enter an email address.")."""

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        for field in self:
            if isinstance(field.errors, list) and field.errors and not isinstance(field.errors[0], dict):
                field.errors = [named(field, str(error)) for error in field.errors]
        return ok


def named(field, error: str) -> str:
    """``error`` beginning with the field's label (unless it already does)."""
    label = str(field.label.text)
    if error.startswith(label):
        return error
    return gettext("%(field)s: %(error)s", field=label, error=error)


def csv(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _roles() -> list[SelectChoice]:
    return [SelectChoice(role, gettext(ROLE_LABELS[role])) for role in ROLES]


class NewStaffForm(AdminForm):
    email = StringField(
        _l("Email"),
        validators=[
            DataRequired(),
            Regexp(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", message=_l("Enter an email address.")),
            Length(max=255),
        ],
    )
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=255)])
    role = SelectField(_l("Role"))
    password = PasswordField(_l("Initial password"), validators=[DataRequired(), Length(min=10, max=1024)])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.role.choices = _roles()


class RoleForm(AdminForm):
    role = SelectField(_l("Role"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.role.choices = _roles()


class ActiveForm(AdminForm):
    active = HiddenField(validators=[DataRequired()])


class ResetLinkForm(AdminForm):
    email = BooleanField(_l("Also email the link to them"))


# --- routing rules ----------------------------------------------------------------

TRISTATE = [SelectChoice("", "—"), SelectChoice("yes", _l("yes")), SelectChoice("no", _l("no"))]


class RuleForm(AdminForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=128)])
    position = IntegerField(
        _l("Position (lower runs first)"), validators=[DataRequired(), NumberRange(min=0, max=100000)]
    )
    active = BooleanField(_l("Active"), default=True)
    team = SelectField(_l("Team"))
    priority = SelectField(_l("Priority"))
    ticket_class = SelectField(_l("Ticket class"))
    categories = StringField(_l("Categories (comma separated)"), validators=[Optional(), Length(max=500)])
    responsibilities = SelectMultipleField(_l("Responsibility"))
    min_value = DecimalField(_l("Value at least"), validators=[Optional(), NumberRange(min=0)], places=2)
    max_value = DecimalField(_l("Value at most"), validators=[Optional(), NumberRange(min=0)], places=2)
    min_wear = FloatField(
        _l("Highest wear score at least (0 to 1)"), validators=[Optional(), NumberRange(min=0, max=1)]
    )
    needs_review = SelectField(_l("Policy says needs review"))
    frequent_returner = SelectField(_l("Frequent returner"))
    languages = StringField(
        _l("Shopper languages (comma separated, e.g. zh_Hans)"), validators=[Optional(), Length(max=200)]
    )
    channels = StringField(_l("Channels (comma separated)"), validators=[Optional(), Length(max=200)])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        teams = get_session().scalars(select(Team).where(Team.active.is_(True)).order_by(Team.name))
        self.team.choices = [SelectChoice(str(t.id), t.name) for t in teams]
        self.priority.choices = [SelectChoice(p) for p in PRIORITIES]
        self.ticket_class.choices = [SelectChoice(c) for c in TICKET_CLASSES]
        self.responsibilities.choices = [SelectChoice(r) for r in RESPONSIBILITIES]
        self.needs_review.choices = TRISTATE
        self.frequent_returner.choices = TRISTATE

    def validate_max_value(self, field) -> None:
        if field.data is not None and self.min_value.data is not None and field.data < self.min_value.data:
            raise ValidationError(gettext("must not be below “%(other)s”.", other=str(self.min_value.label.text)))

    def conditions(self) -> dict:
        """The conditions as typed (the service checks them)."""
        data: dict = {
            "categories": csv(self.categories.data),
            "responsibilities": list(self.responsibilities.data or []),
            "languages": csv(self.languages.data),
            "channels": csv(self.channels.data),
        }
        if self.min_value.data is not None:
            data["min_value"] = str(self.min_value.data)
        if self.max_value.data is not None:
            data["max_value"] = str(self.max_value.data)
        if self.min_wear.data is not None:
            data["min_wear"] = self.min_wear.data
        for name in ("needs_review", "frequent_returner"):
            value = getattr(self, name).data
            if value in ("yes", "no"):
                data[name] = value == "yes"
        return data

    def fill_from(self, rule: RoutingRuleRow) -> None:
        c = rule.conditions or {}
        self.name.data, self.position.data, self.active.data = rule.name, rule.position, rule.active
        self.team.data, self.priority.data, self.ticket_class.data = str(rule.team_id), rule.priority, rule.ticket_class
        self.categories.data = ", ".join(c.get("categories", []))
        self.responsibilities.data = c.get("responsibilities", [])
        self.min_value.data = Decimal(c["min_value"]) if "min_value" in c else None
        self.max_value.data = Decimal(c["max_value"]) if "max_value" in c else None
        self.min_wear.data = c.get("min_wear")
        self.needs_review.data = "" if c.get("needs_review") is None else ("yes" if c["needs_review"] else "no")
        self.frequent_returner.data = (
            "" if c.get("frequent_returner") is None else ("yes" if c["frequent_returner"] else "no")
        )
        self.languages.data = ", ".join(c.get("languages", []))
        self.channels.data = ", ".join(c.get("channels", []))


CONDITION_LABELS = {
    "categories": _l("Categories"),
    "responsibilities": _l("Responsibility"),
    "min_value": _l("Value at least"),
    "max_value": _l("Value at most"),
    "min_wear": _l("Highest wear score at least"),
    "needs_review": _l("Policy says needs review"),
    "frequent_returner": _l("Frequent returner"),
    "languages": _l("Shopper languages"),
    "channels": _l("Channels"),
}


def describe_conditions(conditions: dict | None) -> list[str]:
    """A stored rule's conditions as "label: value" lines, in the form's order."""
    lines = []
    for name, label in CONDITION_LABELS.items():
        value = (conditions or {}).get(name)
        if value is None or value == []:
            continue
        if isinstance(value, bool):
            text = gettext("yes") if value else gettext("no")
        elif isinstance(value, list):
            text = ", ".join(str(v) for v in value)
        else:
            text = str(value)
        lines.append(f"{label}: {text}")
    return lines


# --- suggested replies --------------------------------------------------------------


class ReplyTemplateForm(AdminForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=128)])
    locale = SelectField(_l("Language"))
    reasons = SelectMultipleField(_l("Suggest for these reasons"))
    keywords = StringField(_l("Or when the shopper writes (comma separated)"), validators=[Optional(), Length(max=500)])
    body = TextAreaField(_l("Text"), validators=[DataRequired(), Length(max=4000)])
    decision = SelectField(
        _l("Sending it also"),
        default="",
        validate_choice=False,
        description=_l("A macro: one action sends the reply and records this."),
    )
    active = BooleanField(_l("Active"), default=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.locale.choices = [SelectChoice(code, name) for code, name in LOCALES.items()]
        self.reasons.choices = [SelectChoice(code, gettext(r.label)) for code, r in REASONS.items()]
        self.decision.choices = [
            SelectChoice("", gettext("Nothing else (a plain reply)")),
            SelectChoice("approve", gettext("Approves the return")),
            SelectChoice("reject", gettext("Rejects the return, the reply being the reason")),
            SelectChoice("ask", gettext("Asks the shopper, the reply being the question")),
        ]

    def fill_from(self, row: CannedReplyRow) -> None:
        self.name.data, self.locale.data, self.body.data, self.active.data = row.name, row.locale, row.body, row.active
        self.reasons.data, self.keywords.data = row.reasons, ", ".join(row.keywords or [])
        self.decision.data = row.decision or ""

    def validate_decision(self, field):
        if (field.data or "") not in {choice.value for choice in self.decision.choices}:
            raise ValidationError(_l("Choose from the list."))


# --- SLA policies and calendars -------------------------------------------------------


LADDER_WHEN_LABELS = {
    LadderWhen.USED: _l("percent of the target used"),
    LadderWhen.AFTER_DEADLINE: _l("minutes after the deadline"),
}
LADDER_ACTION_LABELS = {
    LadderAction.REMIND: _l("Remind the assignee"),
    LadderAction.MOVE_TO_LEAD: _l("Move to the team lead"),
    LadderAction.NOTIFY_MANAGER: _l("Tell the manager"),
}
LADDER_MAX_ROWS = 12


class StepForm(Form):
    """One row of the escalation ladder (no CSRF of its own: it rides in the policy form)."""

    # The domain checks each row and names the row and field in its message (``LadderInputError``).
    key = StringField(_l("Name"))
    amount = StringField(_l("Threshold"))
    when = SelectField(
        _l("When"),
        choices=[SelectChoice(w.value, label) for w, label in LADDER_WHEN_LABELS.items()],
        validate_choice=False,
    )
    action = SelectField(
        _l("Action"),
        choices=[SelectChoice(a.value, label) for a, label in LADDER_ACTION_LABELS.items()],
        validate_choice=False,
    )

    def row(self) -> LadderRow:
        return LadderRow(self.key.data or "", self.when.data or "", self.amount.data or "", self.action.data or "")


class PolicyForm(AdminForm):
    first_response_minutes = IntegerField(
        _l("First response target (business minutes)"), validators=[DataRequired(), NumberRange(min=1, max=100000)]
    )
    resolution_minutes = IntegerField(
        _l("Resolution target (business minutes)"), validators=[DataRequired(), NumberRange(min=1, max=1000000)]
    )
    ladder = FieldList(FormField(StepForm), min_entries=0, max_entries=LADDER_MAX_ROWS)

    def rows(self) -> list[LadderRow]:
        return [entry.form.row() for entry in self.ladder]

    def fill_ladder(self, rows: list[LadderRow]) -> None:
        while self.ladder.entries:
            self.ladder.pop_entry()
        for row in rows:
            self.ladder.append_entry({"key": row.key, "when": row.when, "amount": row.amount, "action": row.action})


DAYS = WEEKDAYS


class CalendarForm(AdminForm):
    mon = StringField(_l("Monday"))
    tue = StringField(_l("Tuesday"))
    wed = StringField(_l("Wednesday"))
    thu = StringField(_l("Thursday"))
    fri = StringField(_l("Friday"))
    sat = StringField(_l("Saturday"))
    sun = StringField(_l("Sunday"))
    exceptions = TextAreaField(
        _l("Holidays and partial days"),
        description=_l("One per line, 'YYYY-MM-DD hours note' (hours: closed, or 09:00-13:00)"),
        validators=[Length(max=20000)],
    )

    def weekly(self) -> dict[str, str]:
        return {day: getattr(self, day).data or "" for day in DAYS}


# --- teams ---------------------------------------------------------------------------


def people(roles: frozenset[str]) -> list[SelectChoice]:
    """Active accounts with one of ``roles``, as choices (first: nobody)."""
    stmt = (
        select(StaffUser)
        .where(StaffUser.active.is_(True), StaffUser.role.in_(in_role_order(roles)))
        .order_by(StaffUser.name)
    )
    return [SelectChoice("", "—")] + [
        SelectChoice(str(u.id), f"{u.name} ({u.role})") for u in get_session().scalars(stmt)
    ]


class TeamForm(AdminForm):
    lead = SelectField(_l("Team lead"))
    manager = SelectField(_l("Manager"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lead.choices, self.manager.choices = people(CAN_LEAD_TEAM), people(CAN_MANAGE_TEAM)


class MemberForm(AdminForm):
    staff = SelectField(_l("Add member"))
    cap = IntegerField(
        _l("Open tickets at most"), default=25, validators=[InputRequired(), NumberRange(min=1, max=1000)]
    )

    def __init__(self, *args, team: Team | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        members = {str(m.staff_id) for m in team.members} if team is not None else set()
        self.staff.choices = [c for c in people(CAN_WORK_TICKETS) if c.value not in members]


class MemberEditForm(AdminForm):
    cap = IntegerField(_l("Cap"), validators=[InputRequired(), NumberRange(min=1, max=1000)])
    available = BooleanField(_l("Available"))
