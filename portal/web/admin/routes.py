"""Admin pages: staff accounts and roles, teams, routing rules, suggested replies, SLA policies and calendars."""

from __future__ import annotations

import json
from datetime import datetime as _dt
from datetime import timezone as _tz
from decimal import Decimal

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import (BooleanField, DecimalField, FloatField, HiddenField, IntegerField, PasswordField, SelectField,
                     SelectMultipleField, StringField, TextAreaField)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp, ValidationError

from portal.domain.actors import Actor
from portal.db import get_session
from portal.db.models import BusinessCalendarRow, CannedReplyRow, RoutingRuleRow, SlaPolicy, StaffUser, Team, TeamMember
from portal.domain import sla as sla_domain
from portal.domain.reasons import REASONS, RESPONSIBILITIES
from portal.domain.roles import ROLE_LABELS, ROLES
from portal.domain.routing import PRIORITIES, TICKET_CLASSES, Conditions, RuleError
from portal.i18n import LOCALES
from portal.services.sla import retarget_policy_clocks, update_calendar
from portal.services.staff import StaffError, change_role, create_staff, set_active_by
from portal.web.staff.routes import staff_required

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _roles() -> list[SelectChoice]:
    return [SelectChoice(role, gettext(ROLE_LABELS[role])) for role in ROLES]


class NewStaffForm(FlaskForm):
    email = StringField(_l("Email"), validators=[DataRequired(), Regexp(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", message=_l("Enter an email address.")), Length(max=255)])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=255)])
    role = SelectField(_l("Role"))
    password = PasswordField(_l("Initial password"), validators=[DataRequired(), Length(min=10, max=1024)])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.role.choices = _roles()


class RoleForm(FlaskForm):
    role = SelectField(_l("Role"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.role.choices = _roles()


class ActiveForm(FlaskForm):
    active = HiddenField(validators=[DataRequired()])


def _user(user_id: int) -> StaffUser:
    user = get_session().get(StaffUser, user_id)
    if user is None:
        abort(404)
    return user


@bp.route("/staff", methods=["GET", "POST"])
@staff_required("admin")
def staff_list():
    form = NewStaffForm()
    status = 200
    if form.validate_on_submit():
        try:
            create_staff(get_session(), form.email.data, form.name.data, form.role.data, form.password.data)
        except StaffError as exc:
            form.email.errors.append(exc.render(gettext))
            status = 422
        else:
            flash(gettext("Account created."), "success")
            return redirect(url_for("admin.staff_list"), code=303)
    elif form.is_submitted():
        status = 422
    users = get_session().scalars(select(StaffUser).order_by(StaffUser.name)).all()
    return render_template("admin/staff.html", users=users, form=form, role_form=RoleForm, active_form=ActiveForm()), status


@bp.post("/staff/<int:user_id>/role")
@staff_required("admin")
def staff_role(user_id: int):
    user = _user(user_id)
    form = RoleForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        change_role(get_session(), current_user._get_current_object(), user, form.role.data)
    except StaffError as exc:
        flash(exc.render(gettext), "warning")
    else:
        flash(gettext("Role changed; their sessions have ended."), "success")
    return redirect(url_for("admin.staff_list"), code=303)


@bp.post("/staff/<int:user_id>/active")
@staff_required("admin")
def staff_active(user_id: int):
    user = _user(user_id)
    form = ActiveForm()
    if not form.validate_on_submit() or form.active.data not in ("0", "1"):
        abort(400)
    try:
        set_active_by(get_session(), current_user._get_current_object(), user, form.active.data == "1")
    except StaffError as exc:
        flash(exc.render(gettext), "warning")
    else:
        flash(gettext("Account updated."), "success")
    return redirect(url_for("admin.staff_list"), code=303)


# --- routing rules ----------------------------------------------------------------


TRISTATE = [SelectChoice("", "—"), SelectChoice("yes", "yes"), SelectChoice("no", "no")]


def _csv(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


class RuleForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=128)])
    position = IntegerField(_l("Position (lower runs first)"), validators=[DataRequired(), NumberRange(min=0, max=100000)])
    active = BooleanField(_l("Active"), default=True)
    team = SelectField(_l("Team"))
    priority = SelectField(_l("Priority"))
    ticket_class = SelectField(_l("Ticket class"))
    categories = StringField(_l("Categories (comma separated)"), validators=[Optional(), Length(max=500)])
    responsibilities = SelectMultipleField(_l("Responsibility"))
    min_value = DecimalField(_l("Value at least"), validators=[Optional(), NumberRange(min=0)], places=2)
    max_value = DecimalField(_l("Value at most"), validators=[Optional(), NumberRange(min=0)], places=2)
    min_wear = FloatField(_l("Highest wear score at least (0 to 1)"), validators=[Optional(), NumberRange(min=0, max=1)])
    needs_review = SelectField(_l("Policy says needs review"))
    frequent_returner = SelectField(_l("Frequent returner"))
    languages = StringField(_l("Shopper languages (comma separated, e.g. zh_Hans)"), validators=[Optional(), Length(max=200)])
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

    def conditions(self) -> dict:
        data = {
            "categories": _csv(self.categories.data),
            "responsibilities": list(self.responsibilities.data or []),
            "languages": _csv(self.languages.data),
            "channels": _csv(self.channels.data),
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
        return Conditions.from_dict(data).to_dict()

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
        self.frequent_returner.data = "" if c.get("frequent_returner") is None else ("yes" if c["frequent_returner"] else "no")
        self.languages.data = ", ".join(c.get("languages", []))
        self.channels.data = ", ".join(c.get("channels", []))


def _save_rule(form: RuleForm, rule: RoutingRuleRow) -> bool:
    try:
        conditions = form.conditions()
    except RuleError as exc:
        form.name.errors = [*form.name.errors, str(exc)]
        return False
    rule.name, rule.position, rule.active = form.name.data.strip(), form.position.data, bool(form.active.data)
    rule.team_id, rule.priority, rule.ticket_class, rule.conditions = int(form.team.data), form.priority.data, form.ticket_class.data, conditions
    return True


@bp.route("/routing", methods=["GET", "POST"])
@bp.route("/routing/<int:rule_id>", methods=["GET", "POST"])
@staff_required("admin")
def routing(rule_id: int | None = None):
    """Routing rules in the order they are tried (the first match wins); add one, or edit ``rule_id``."""
    rule = None
    if rule_id is not None:
        rule = get_session().get(RoutingRuleRow, rule_id)
        if rule is None:
            abort(404)
    form = RuleForm()
    status = 200
    if form.validate_on_submit():
        target = rule or RoutingRuleRow()
        if _save_rule(form, target):
            if rule is None:
                get_session().add(target)
            get_session().commit()
            flash(gettext("Rule saved.") if rule else gettext("Rule added."), "success")
            return redirect(url_for("admin.routing"), code=303)
        status = 422
    elif form.is_submitted():
        status = 422
    elif rule is not None:
        form.fill_from(rule)
    rules = get_session().scalars(select(RoutingRuleRow).order_by(RoutingRuleRow.position, RoutingRuleRow.id)).all()
    return render_template("admin/routing.html", rules=rules, form=form, editing=rule), status


# --- suggested replies --------------------------------------------------------------


class ReplyTemplateForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=128)])
    locale = SelectField(_l("Language"))
    reasons = SelectMultipleField(_l("Suggest for these reasons"))
    keywords = StringField(_l("Or when the shopper writes (comma separated)"), validators=[Optional(), Length(max=500)])
    body = TextAreaField(_l("Text"), validators=[DataRequired(), Length(max=4000)])
    active = BooleanField(_l("Active"), default=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.locale.choices = [SelectChoice(code, name) for code, name in LOCALES.items()]
        self.reasons.choices = [SelectChoice(code, gettext(r.label)) for code, r in REASONS.items()]


def _save_reply(form: ReplyTemplateForm, row: CannedReplyRow) -> None:
    row.name, row.locale, row.body, row.active = form.name.data.strip(), form.locale.data, form.body.data.strip(), bool(form.active.data)
    row.reasons, row.keywords = list(form.reasons.data or []), _csv(form.keywords.data)


@bp.route("/replies", methods=["GET", "POST"])
@bp.route("/replies/<int:reply_id>", methods=["GET", "POST"])
@staff_required("admin")
def replies(reply_id: int | None = None):
    row = None
    if reply_id is not None:
        row = get_session().get(CannedReplyRow, reply_id)
        if row is None:
            abort(404)
    form = ReplyTemplateForm()
    status = 200
    if form.validate_on_submit():
        target = row or CannedReplyRow()
        _save_reply(form, target)
        if row is None:
            get_session().add(target)
        get_session().commit()
        flash(gettext("Reply saved."), "success")
        return redirect(url_for("admin.replies"), code=303)
    if form.is_submitted():
        status = 422
    elif row is not None:
        form.name.data, form.locale.data, form.body.data, form.active.data = row.name, row.locale, row.body, row.active
        form.reasons.data, form.keywords.data = row.reasons, ", ".join(row.keywords or [])
    rows = get_session().scalars(select(CannedReplyRow).order_by(CannedReplyRow.id)).all()
    return render_template("admin/replies.html", rows=rows, form=form, editing=row), status


# --- SLA policies and calendars -------------------------------------------------------


class PolicyForm(FlaskForm):
    first_response_minutes = IntegerField(_l("First response target (business minutes)"), validators=[DataRequired(), NumberRange(min=1, max=100000)])
    resolution_minutes = IntegerField(_l("Resolution target (business minutes)"), validators=[DataRequired(), NumberRange(min=1, max=1000000)])
    ladder = TextAreaField(_l("Escalation ladder (JSON)"), validators=[DataRequired(), Length(max=4000)])

    def validate_ladder(self, field):
        try:
            steps = json.loads(field.data)
            if not isinstance(steps, list):
                raise ValueError("a list of steps")
            for step in steps:
                sla_domain.EscalationStep(step["key"], step.get("at_fraction"), step.get("after_breach_minutes"), step["action"])
                if step["action"] not in ("remind", "move_to_lead", "notify_manager"):
                    raise ValueError(f"unknown action {step['action']!r}")
        except (ValueError, KeyError, TypeError) as exc:
            raise ValidationError(gettext("The ladder is not valid: %(error)s", error=str(exc))) from None


@bp.route("/sla", methods=["GET"])
@staff_required("admin")
def sla_policies():
    policies = get_session().scalars(select(SlaPolicy).order_by(SlaPolicy.team_id, SlaPolicy.priority)).all()
    calendars = get_session().scalars(select(BusinessCalendarRow).order_by(BusinessCalendarRow.name)).all()
    return render_template("admin/sla.html", policies=policies, calendars=calendars)


@bp.route("/sla/<int:policy_id>", methods=["GET", "POST"])
@staff_required("admin")
def sla_policy(policy_id: int):
    policy = get_session().get(SlaPolicy, policy_id)
    if policy is None:
        abort(404)
    form = PolicyForm()
    status = 200
    if form.validate_on_submit():
        policy.first_response_minutes, policy.resolution_minutes = form.first_response_minutes.data, form.resolution_minutes.data
        policy.ladder = json.loads(form.ladder.data)
        get_session().flush()
        count = retarget_policy_clocks(get_session(), policy, _dt.now(_tz.utc), Actor.staff(current_user.id))
        get_session().commit()
        flash(gettext("Policy saved; %(n)d running clocks re-targeted.", n=count), "success")
        return redirect(url_for("admin.sla_policies"), code=303)
    if form.is_submitted():
        status = 422
    else:
        form.first_response_minutes.data, form.resolution_minutes.data = policy.first_response_minutes, policy.resolution_minutes
        form.ladder.data = json.dumps(policy.ladder, indent=1)
    return render_template("admin/sla_policy.html", policy=policy, form=form), status


DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class CalendarForm(FlaskForm):
    mon = StringField(_l("Monday"))
    tue = StringField(_l("Tuesday"))
    wed = StringField(_l("Wednesday"))
    thu = StringField(_l("Thursday"))
    fri = StringField(_l("Friday"))
    sat = StringField(_l("Saturday"))
    sun = StringField(_l("Sunday"))
    exceptions = TextAreaField(_l("Holidays and partial days: one per line, 'YYYY-MM-DD hours note' (hours: closed, or 09:00-13:00)"), validators=[Length(max=20000)])

    def parsed(self) -> tuple[dict, dict, dict]:
        weekly = {day: _csv(getattr(self, day).data) for day in DAYS}
        exceptions, notes = {}, {}
        for n, line in enumerate((self.exceptions.data or "").splitlines(), start=1):
            parts = line.split(None, 2)
            if not parts:
                continue
            if len(parts) < 2:
                raise ValueError(gettext("line %(n)d: give a date and hours", n=n))
            day, hours = parts[0], parts[1]
            try:
                _dt.fromisoformat(day)
            except ValueError:
                raise ValueError(gettext("line %(n)d: %(day)s is not a date", n=n, day=day)) from None
            exceptions[day] = [] if hours.lower() == "closed" else _csv(hours)
            notes[day] = parts[2] if len(parts) > 2 else ""
        return weekly, exceptions, notes


@bp.route("/calendars/<int:calendar_id>", methods=["GET", "POST"])
@staff_required("admin")
def calendar(calendar_id: int):
    row = get_session().get(BusinessCalendarRow, calendar_id)
    if row is None:
        abort(404)
    form = CalendarForm()
    status = 200
    if form.validate_on_submit():
        try:
            weekly, exceptions, notes = form.parsed()
            count = update_calendar(get_session(), row, weekly, exceptions, notes, _dt.now(_tz.utc), Actor.staff(current_user.id))
        except (ValueError, sla_domain.CalendarError) as exc:
            get_session().rollback()
            form.exceptions.errors = [*form.exceptions.errors, str(getattr(exc, "message", exc))]
            status = 422
        else:
            get_session().commit()
            flash(gettext("Calendar saved; %(n)d running clocks re-targeted.", n=count), "success")
            return redirect(url_for("admin.calendar", calendar_id=row.id), code=303)
    elif form.is_submitted():
        status = 422
    else:
        for day in DAYS:
            getattr(form, day).data = ", ".join(row.weekly.get(day, []))
        form.exceptions.data = "\n".join(
            f"{e.day.isoformat()} {','.join(e.hours) if e.hours else 'closed'} {e.note}".rstrip() for e in row.exceptions
        )
    return render_template("admin/calendar.html", calendar=row, form=form, days=DAYS), status


# --- teams ---------------------------------------------------------------------------


class TeamForm(FlaskForm):
    lead = SelectField(_l("Team lead"))
    manager = SelectField(_l("Manager"))


class MemberForm(FlaskForm):
    staff = SelectField(_l("Add member"))
    cap = IntegerField(_l("Open tickets at most"), default=25, validators=[DataRequired(), NumberRange(min=1, max=1000)])


class MemberEditForm(FlaskForm):
    cap = IntegerField(_l("Cap"), validators=[DataRequired(), NumberRange(min=1, max=1000)])
    available = BooleanField(_l("Available"))


def _people(roles: tuple[str, ...] | None = None) -> list[SelectChoice]:
    stmt = select(StaffUser).where(StaffUser.active.is_(True)).order_by(StaffUser.name)
    if roles:
        stmt = stmt.where(StaffUser.role.in_(roles))
    return [SelectChoice("", "—")] + [SelectChoice(str(u.id), f"{u.name} ({u.role})") for u in get_session().scalars(stmt)]


def _team(team_id: int) -> Team:
    team = get_session().get(Team, team_id)
    if team is None:
        abort(404)
    return team


@bp.get("/teams")
@staff_required("admin")
def teams():
    rows = get_session().scalars(select(Team).order_by(Team.name)).all()
    forms = {}
    for team in rows:
        tf = TeamForm(prefix=f"t{team.id}", lead=str(team.lead_id or ""), manager=str(team.manager_id or ""))
        tf.lead.choices, tf.manager.choices = _people(("lead", "manager", "admin")), _people(("manager", "admin"))
        mf = MemberForm(prefix=f"m{team.id}")
        mf.staff.choices = _people(("agent", "lead", "manager", "admin"))
        forms[team.id] = (tf, mf)
    return render_template("admin/teams.html", teams=rows, forms=forms)


@bp.post("/teams/<int:team_id>")
@staff_required("admin")
def team_update(team_id: int):
    team = _team(team_id)
    form = TeamForm(prefix=f"t{team.id}")
    form.lead.choices, form.manager.choices = _people(("lead", "manager", "admin")), _people(("manager", "admin"))
    if not form.validate_on_submit():
        abort(400)
    team.lead_id = int(form.lead.data) if form.lead.data else None
    team.manager_id = int(form.manager.data) if form.manager.data else None
    get_session().commit()
    flash(gettext("Team saved."), "success")
    return redirect(url_for("admin.teams"), code=303)


@bp.post("/teams/<int:team_id>/members")
@staff_required("admin")
def team_add_member(team_id: int):
    team = _team(team_id)
    form = MemberForm(prefix=f"m{team.id}")
    form.staff.choices = _people(("agent", "lead", "manager", "admin"))
    if not form.validate_on_submit() or not form.staff.data:
        abort(400)
    exists = get_session().scalars(select(TeamMember).where(TeamMember.team_id == team.id, TeamMember.staff_id == int(form.staff.data))).first()
    if exists is None:
        get_session().add(TeamMember(team_id=team.id, staff_id=int(form.staff.data), cap=form.cap.data, available=True))
        get_session().commit()
    flash(gettext("Member added."), "success")
    return redirect(url_for("admin.teams"), code=303)


@bp.post("/members/<int:member_id>")
@staff_required("admin")
def member_update(member_id: int):
    member = get_session().get(TeamMember, member_id)
    if member is None:
        abort(404)
    form = MemberEditForm()
    if not form.validate_on_submit():
        abort(400)
    member.cap, member.available = form.cap.data, bool(form.available.data)
    get_session().commit()
    flash(gettext("Member saved."), "success")
    return redirect(url_for("admin.teams"), code=303)
