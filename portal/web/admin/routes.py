"""Admin pages: staff accounts and roles, teams, routing rules, suggested replies, SLA policies and calendars, audit log.

Views check the form, call one service and flash or redirect; the services write the audit log.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_login import current_user
from sqlalchemy import select

from portal.db import get_session
from portal.db.models import BusinessCalendarRow, CannedReplyRow, RoutingRuleRow, SlaPolicy, StaffUser, Team, TeamMember
from portal.domain.errors import InvalidInput
from portal.domain.orders import normalise_order_number
from portal.domain.roles import CAN_ADMIN
from portal.domain.sla import CalendarInputError, LadderInputError, ladder_rows, parse_ladder
from portal.services import admin as admin_service
from portal.services.audit import audit_csv
from portal.services.staff import StaffError, change_role, create_staff, issue_password_reset, set_active_by
from portal.web.admin.forms import (
    DAYS,
    LADDER_MAX_ROWS,
    ActiveForm,
    CalendarForm,
    MemberEditForm,
    MemberForm,
    NewStaffForm,
    PolicyForm,
    ReplyTemplateForm,
    ResetLinkForm,
    RoleForm,
    RuleForm,
    TeamForm,
    csv,
    describe_conditions,
    named,
)
from portal.web.auth import staff_required

bp = Blueprint("admin", __name__, url_prefix="/admin")

AUDIT_PAGE_SIZE = 50


def _me() -> StaffUser:
    return current_user._get_current_object()


def _row(model: type, row_id: int):
    row = get_session().get(model, row_id)
    if row is None:
        abort(404)
    return row


def _now() -> datetime:
    return datetime.now(UTC)


# --- staff accounts -------------------------------------------------------------------


@bp.route("/staff", methods=["GET", "POST"])
@staff_required(CAN_ADMIN)
def staff_list():
    form = NewStaffForm()
    status = 200
    if form.validate_on_submit():
        try:
            create_staff(
                get_session(), form.email.data, form.name.data, form.role.data, form.password.data, actor=_me()
            )
        except StaffError as exc:
            field = form[exc.field] if exc.field in ("email", "role", "password") else form.email
            field.errors = [*field.errors, named(field, exc.render(gettext))]
            status = 422
        else:
            flash(gettext("Account created."), "success")
            return redirect(url_for("admin.staff_list"), code=303)
    elif form.is_submitted():
        status = 422
    users = get_session().scalars(select(StaffUser).order_by(StaffUser.name)).all()
    return render_template(
        "admin/staff.html",
        users=users,
        form=form,
        role_form=RoleForm,
        active_form=ActiveForm(),
        reset_form=ResetLinkForm,
    ), status


@bp.post("/staff/<int:user_id>/role")
@staff_required(CAN_ADMIN)
def staff_role(user_id: int):
    user = _row(StaffUser, user_id)
    form = RoleForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        change_role(get_session(), _me(), user, form.role.data)
    except StaffError as exc:
        flash(exc.render(gettext), "warning")
    else:
        flash(gettext("Role changed; their sessions have ended."), "success")
    return redirect(url_for("admin.staff_list"), code=303)


@bp.post("/staff/<int:user_id>/active")
@staff_required(CAN_ADMIN)
def staff_active(user_id: int):
    user = _row(StaffUser, user_id)
    form = ActiveForm()
    if not form.validate_on_submit() or form.active.data not in ("0", "1"):
        abort(400)
    try:
        set_active_by(get_session(), _me(), user, form.active.data == "1")
    except StaffError as exc:
        flash(exc.render(gettext), "warning")
    else:
        flash(gettext("Account updated."), "success")
    return redirect(url_for("admin.staff_list"), code=303)


@bp.post("/staff/<int:user_id>/reset")
@staff_required(CAN_ADMIN)
def staff_reset(user_id: int):
    """Make a one-time link for the account to set a new password, shown here to pass on (and
    emailed when asked). The link is not kept anywhere else; making another does not end this one."""
    user = _row(StaffUser, user_id)
    form = ResetLinkForm(prefix=f"r{user.id}")
    if not form.validate_on_submit():
        abort(400)
    minutes = int(current_app.config.get("PASSWORD_RESET_MINUTES", 60))
    try:
        link = issue_password_reset(
            get_session(),
            _me(),
            user,
            current_app.config["SECRET_KEY"],
            current_app.config["PUBLIC_URL"],
            minutes,
            email=bool(form.email.data),
        )
    except StaffError as exc:
        flash(exc.render(gettext), "warning")
        return redirect(url_for("admin.staff_list"), code=303)
    return render_template("admin/reset_link.html", user=user, link=link)


# --- routing rules ----------------------------------------------------------------


@bp.route("/routing", methods=["GET", "POST"])
@bp.route("/routing/<int:rule_id>", methods=["GET", "POST"])
@staff_required(CAN_ADMIN)
def routing(rule_id: int | None = None):
    """Routing rules in the order they are tried (the first match wins); add one, or edit ``rule_id``."""
    rule = _row(RoutingRuleRow, rule_id) if rule_id is not None else None
    form = RuleForm()
    status = 200
    if form.validate_on_submit():
        data = admin_service.RuleInput(
            name=form.name.data,
            position=form.position.data,
            active=bool(form.active.data),
            team_id=int(form.team.data),
            priority=form.priority.data,
            ticket_class=form.ticket_class.data,
            conditions=form.conditions(),
        )
        try:
            admin_service.save_routing_rule(get_session(), _me(), rule, data)
        except InvalidInput as exc:
            get_session().rollback()
            form.form_errors.append(exc.render(gettext))
            status = 422
        else:
            flash(gettext("Rule saved.") if rule else gettext("Rule added."), "success")
            return redirect(url_for("admin.routing"), code=303)
    elif form.is_submitted():
        status = 422
    elif rule is not None:
        form.fill_from(rule)
    rules = get_session().scalars(select(RoutingRuleRow).order_by(RoutingRuleRow.position, RoutingRuleRow.id)).all()
    return (
        render_template(
            "admin/routing.html", rules=rules, form=form, editing=rule, describe_conditions=describe_conditions
        ),
        status,
    )


# --- suggested replies --------------------------------------------------------------


@bp.route("/replies", methods=["GET", "POST"])
@bp.route("/replies/<int:reply_id>", methods=["GET", "POST"])
@staff_required(CAN_ADMIN)
def replies(reply_id: int | None = None):
    row = _row(CannedReplyRow, reply_id) if reply_id is not None else None
    form = ReplyTemplateForm()
    status = 200
    if form.validate_on_submit():
        data = admin_service.ReplyInput(
            name=form.name.data,
            locale=form.locale.data,
            body=form.body.data,
            active=bool(form.active.data),
            reasons=list(form.reasons.data or []),
            keywords=csv(form.keywords.data),
            decision=form.decision.data or None,
        )
        admin_service.save_canned_reply(get_session(), _me(), row, data)
        flash(gettext("Reply saved."), "success")
        return redirect(url_for("admin.replies"), code=303)
    if form.is_submitted():
        status = 422
    elif row is not None:
        form.fill_from(row)
    rows = get_session().scalars(select(CannedReplyRow).order_by(CannedReplyRow.id)).all()
    return render_template("admin/replies.html", rows=rows, form=form, editing=row), status


# --- SLA policies and calendars -------------------------------------------------------


@bp.route("/sla", methods=["GET"])
@staff_required(CAN_ADMIN)
def sla_policies():
    policies = get_session().scalars(select(SlaPolicy).order_by(SlaPolicy.team_id, SlaPolicy.priority)).all()
    calendars = get_session().scalars(select(BusinessCalendarRow).order_by(BusinessCalendarRow.name)).all()
    return render_template("admin/sla.html", policies=policies, calendars=calendars)


@bp.route("/sla/<int:policy_id>", methods=["GET", "POST"])
@staff_required(CAN_ADMIN)
def sla_policy(policy_id: int):
    """Targets and the escalation ladder, one row of controls per step. "Add step" and "Remove" are
    submit buttons that redraw the form with what was typed (nothing is saved until "Save policy")."""
    policy = _row(SlaPolicy, policy_id)
    form = PolicyForm()
    status = 200
    if form.is_submitted() and ("add_step" in request.form or "remove_step" in request.form):
        # The CSRF check already ran (CSRFProtect covers every POST); only the rows change.
        if "add_step" in request.form and len(form.ladder.entries) < LADDER_MAX_ROWS:
            form.ladder.append_entry({"when": "used", "action": "remind"})
        elif "remove_step" in request.form:
            index = request.form.get("remove_step", type=int)
            if index is not None and 0 <= index < len(form.ladder.entries):
                form.ladder.entries.pop(index)
    elif form.validate_on_submit():
        try:
            count = admin_service.update_sla_policy(
                get_session(),
                _me(),
                policy,
                form.first_response_minutes.data,
                form.resolution_minutes.data,
                form.rows(),
                _now(),
            )
        except LadderInputError as exc:
            get_session().rollback()
            sub = form.ladder.entries[exc.row - 1].form[exc.field]
            sub.errors = [*sub.errors, exc.render(gettext)]
            status = 422
        except InvalidInput as exc:
            get_session().rollback()
            form.first_response_minutes.errors = [*form.first_response_minutes.errors, exc.render(gettext)]
            status = 422
        else:
            flash(gettext("Policy saved; %(n)d running clocks re-targeted.", n=count), "success")
            return redirect(url_for("admin.sla_policies"), code=303)
    elif form.is_submitted():
        status = 422
    else:
        form.first_response_minutes.data, form.resolution_minutes.data = (
            policy.first_response_minutes,
            policy.resolution_minutes,
        )
        form.fill_ladder(ladder_rows(parse_ladder(policy.ladder or [])))
    return render_template("admin/sla_policy.html", policy=policy, form=form, max_rows=LADDER_MAX_ROWS), status


@bp.route("/calendars/<int:calendar_id>", methods=["GET", "POST"])
@staff_required(CAN_ADMIN)
def calendar(calendar_id: int):
    row = _row(BusinessCalendarRow, calendar_id)
    form = CalendarForm()
    status = 200
    if form.validate_on_submit():
        try:
            count = admin_service.update_business_calendar(
                get_session(), _me(), row, form.weekly(), form.exceptions.data, _now()
            )
        except CalendarInputError as exc:
            get_session().rollback()
            field = form[exc.field]
            field.errors = [*field.errors, named(field, exc.render(gettext))]
            status = 422
        else:
            flash(gettext("Calendar saved; %(n)d running clocks re-targeted.", n=count), "success")
            return redirect(url_for("admin.calendar", calendar_id=row.id), code=303)
    elif form.is_submitted():
        status = 422
    else:
        for day in DAYS:
            getattr(form, day).data = ", ".join(row.weekly.get(day, []))
        form.exceptions.data = "\n".join(
            f"{e.day.isoformat()} {','.join(e.hours) if e.hours else 'closed'} {e.note}".rstrip()
            for e in row.exceptions
        )
    return render_template("admin/calendar.html", calendar=row, form=form, days=DAYS), status


# --- teams ---------------------------------------------------------------------------


def _teams_page(status: int = 200, posted: TeamForm | MemberForm | None = None, errors: list[str] | None = None):
    """The teams page; a refused form (``posted``) is shown with what was typed and its errors."""
    rows = get_session().scalars(select(Team).order_by(Team.name)).all()
    forms = {}
    for team in rows:
        team_form = TeamForm(prefix=f"t{team.id}", lead=str(team.lead_id or ""), manager=str(team.manager_id or ""))
        member_form = MemberForm(prefix=f"m{team.id}", team=team)
        if posted is not None and posted._prefix == team_form._prefix:
            team_form = posted
        if posted is not None and posted._prefix == member_form._prefix:
            member_form = posted
        forms[team.id] = (team_form, member_form)
    return render_template("admin/teams.html", teams=rows, forms=forms, errors=errors or []), status


@bp.get("/teams")
@staff_required(CAN_ADMIN)
def teams():
    return _teams_page()


@bp.post("/teams/<int:team_id>")
@staff_required(CAN_ADMIN)
def team_update(team_id: int):
    team = _row(Team, team_id)
    form = TeamForm(prefix=f"t{team.id}")
    if not form.validate_on_submit():
        return _teams_page(422, form)
    try:
        admin_service.update_team(
            get_session(),
            _me(),
            team,
            int(form.lead.data) if form.lead.data else None,
            int(form.manager.data) if form.manager.data else None,
        )
    except InvalidInput as exc:
        get_session().rollback()
        return _teams_page(422, errors=[exc.render(gettext)])
    flash(gettext("Team saved."), "success")
    return redirect(url_for("admin.teams"), code=303)


@bp.post("/teams/<int:team_id>/members")
@staff_required(CAN_ADMIN)
def team_add_member(team_id: int):
    """Add someone who works tickets and is not yet in the team (the list offers only them)."""
    team = _row(Team, team_id)
    form = MemberForm(prefix=f"m{team.id}", team=team)
    if not form.validate_on_submit():
        return _teams_page(422, form)
    if not form.staff.data:
        form.staff.errors = [named(form.staff, gettext("Choose who to add."))]
        return _teams_page(422, form)
    try:
        admin_service.add_team_member(get_session(), _me(), team, int(form.staff.data), form.cap.data)
    except InvalidInput as exc:
        get_session().rollback()
        form.staff.errors = [named(form.staff, exc.render(gettext))]
        return _teams_page(422, form)
    flash(gettext("Member added."), "success")
    return redirect(url_for("admin.teams"), code=303)


@bp.post("/members/<int:member_id>")
@staff_required(CAN_ADMIN)
def member_update(member_id: int):
    member = _row(TeamMember, member_id)
    form = MemberEditForm()
    if not form.validate_on_submit():
        errors = [gettext("%(name)s: %(error)s", name=member.staff.name, error=e) for e in form.cap.errors]
        return _teams_page(422, errors=errors)
    admin_service.update_team_member(get_session(), _me(), member, form.cap.data, bool(form.available.data))
    flash(gettext("Member saved."), "success")
    return redirect(url_for("admin.teams"), code=303)


# --- audit log -----------------------------------------------------------------------


AUDIT_CSV_MAX = 50_000


def _audit_filter() -> tuple[admin_service.AuditFilter, dict[str, Any], list[str]]:
    """The filters from the query string, the ones to keep in links, and what could not be read."""
    errors: list[str] = []
    actor_id = request.args.get("who", type=int)  # anything else is no filter, as before
    order_number = normalise_order_number(request.args.get("order_number", ""))[:64] or None
    dates: dict[str, date | None] = {}
    for name in ("since", "until"):
        raw = request.args.get(name, "").strip()
        try:
            dates[name] = date.fromisoformat(raw) if raw else None
        except ValueError:
            dates[name] = None
            errors.append(gettext("Give dates as YYYY-MM-DD."))
    since, until = dates["since"], dates["until"]
    if since and until and until < since:
        errors.append(gettext("The end date is before the start date."))
    where = admin_service.AuditFilter(
        actor_id=actor_id,
        action=(request.args.get("kind") or "").strip()[:32] or None,
        oldest_first=request.args.get("order") == "oldest",
        order_number=order_number,
        since=datetime.combine(since, time(), UTC) if since else None,
        before=datetime.combine(until + timedelta(days=1), time(), UTC) if until else None,
    )
    filters = {
        k: v
        for k, v in (
            ("who", where.actor_id),
            ("kind", where.action),
            ("order", "oldest" if where.oldest_first else None),
            ("order_number", where.order_number),
            ("since", since.isoformat() if since else None),
            ("until", until.isoformat() if until else None),
        )
        if v
    }
    return where, filters, list(dict.fromkeys(errors))


@bp.get("/audit")
@staff_required(CAN_ADMIN)
def audit():
    """Every admin change and sensitive staff action (contact reveals, exports, data requests,
    password links), with where it came from and why; filtered by person, kind, order and dates."""
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    where, filters, errors = _audit_filter()
    if errors:
        where = admin_service.AuditFilter()
    result = admin_service.audit_page(get_session(), page, AUDIT_PAGE_SIZE, where)
    pages = max((result.total + AUDIT_PAGE_SIZE - 1) // AUDIT_PAGE_SIZE, 1)
    return render_template(
        "admin/audit.html",
        entries=result.entries,
        actors=result.actors,
        people=result.people,
        actions=result.actions,
        action_labels=admin_service.AUDIT_ACTIONS,
        where=where,
        filters=filters,
        errors=errors,
        args=request.args,
        page=page,
        pages=pages,
        total=result.total,
    ), (400 if errors else 200)


@bp.get("/audit.csv")
@staff_required(CAN_ADMIN)
def audit_export():
    """The filtered audit log as CSV without personal data; the export is itself recorded."""
    where, filters, errors = _audit_filter()
    if errors:
        return Response("\n".join(errors) + "\n", 400, mimetype="text/plain")
    session = get_session()
    entries = list(session.scalars(admin_service.audit_query(where).limit(AUDIT_CSV_MAX)))
    described = ", ".join(f"{k}={v}" for k, v in sorted(filters.items())) or "everything"
    body = audit_csv(session, entries, current_user.id, described)
    return Response(
        body,
        200,
        {
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="audit-{datetime.now(UTC):%Y%m%d-%H%M}.csv"',
            "Cache-Control": "no-store",
        },
    )
