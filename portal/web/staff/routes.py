"""Back office: sign in, and read return requests with their decision trace."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from zoneinfo import available_timezones

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext, ngettext
from flask_login import current_user, login_user, logout_user
from PIL import Image
from sqlalchemy import func, select
from wtforms.fields.choices import SelectChoice

from portal.adapters.carriers import carrier_from_config
from portal.db import get_session
from portal.db.models import CannedReplyRow, Order, Photo, ReturnRequest, StaffUser, Team, Ticket
from portal.db.queries import (
    BREACHING_SOON,
    QUEUE_COUNT_LIMIT,
    QUEUE_FACETS,
    QUEUE_SORTS,
    QUEUE_VIEWS,
    queue_counts,
    queue_total,
    shopper_replied,
    sort_queue,
    ticket_queue,
)
from portal.domain.actors import Actor
from portal.domain.lifecycle import IllegalTransition, Status
from portal.domain.orders import normalise_order_number
from portal.domain.policy import Decision
from portal.domain.reasons import REASONS
from portal.domain.roles import CAN_HANDLE_DATA_REQUESTS, CAN_VIEW_REQUESTS, CAN_WORK_TICKETS
from portal.domain.routing import PRIORITIES
from portal.domain.states import ScoreState, TicketStatus
from portal.domain.text import N_, Text
from portal.logs import mask_email
from portal.services import Conflict, InvalidInput, NotFound
from portal.services.bulk import bulk_action
from portal.services.filing import ReturnNotAllowed, open_return, precheck_order
from portal.services.history import customer_history
from portal.services.notifications import mark_notifications_read, recent_notifications
from portal.services.notifications import unread_count as unread_notifications
from portal.services.policies import active_policy, published_policy
from portal.services.presence import mark_seen, others_here
from portal.services.privacy import data_request_tickets
from portal.services.receiving import accept_what_arrived, arrivals, carrier_claims, refuse_items, unplaced_findings
from portal.services.rejections import active_reasons
from portal.services.review import approve_return, ask_shopper, decide_with_reply, reject_return
from portal.services.sla import queue_clocks
from portal.services.staff import authenticate, end_sessions, set_timezone, warn_of_login_attempts
from portal.services.tickets import (
    SETTLED,
    add_note,
    close_follow_up,
    reassign,
    reveal_contact,
    send_reply,
    suggested_replies,
    take_ticket,
    ticket_for,
)
from portal.services.views import clean_query, delete_view, save_view, saved_views
from portal.storage import store_from_config
from portal.vision.classifier import render_overlay
from portal.web import throttle
from portal.web.auth import staff_required
from portal.web.pages import image_response, photo_bytes, render_page_or_partial, safe_next
from portal.web.staff.forms import (
    ActionForm,
    ArrivedForm,
    BulkForm,
    DecisionForm,
    DiscrepancyQuestionForm,
    LoginForm,
    NoteForm,
    OnBehalfForm,
    ReassignForm,
    RefuseForm,
    ReplyForm,
    RevealForm,
)
from portal.web.staff.timeline import request_timeline, ticket_timeline

bp = Blueprint("staff", __name__, url_prefix="/staff")
MACRO_DONE = {
    "approve": Text(N_("Approved and the reply sent.")),
    "reject": Text(N_("Rejected; the reply went with it.")),
    "ask": Text(N_("Question sent. The clock is paused until the shopper answers.")),
    "": Text(N_("Message sent to the shopper.")),
}
PAGE_SIZE = 50


def business_time(minutes: float | None) -> str:
    """``3h 20m`` of business time (negative: overdue)."""
    if minutes is None:
        return "—"
    sign = "-" if minutes < 0 else ""
    total = int(abs(minutes))
    hours, mins = divmod(total, 60)
    return f"{sign}{hours}h {mins:02d}m" if hours else f"{sign}{mins}m"


def _staff_choices() -> list[SelectChoice]:
    users = get_session().scalars(
        select(StaffUser)
        .where(StaffUser.active.is_(True), StaffUser.role.in_(sorted(CAN_WORK_TICKETS)))
        .order_by(StaffUser.name)
    )
    return [SelectChoice("", gettext("Nobody (team queue)"))] + [SelectChoice(str(u.id), u.name) for u in users]


LOGIN_TRIES, LOGIN_WINDOW_MINUTES = 10, 15
LOGIN_LIMIT = f"{LOGIN_TRIES} per {LOGIN_WINDOW_MINUTES} minutes"


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Sign in. Wrong passwords are limited per address and per account (someone trying one account
    from many addresses); when an account's allowance is used up its owner is told by email."""
    form = LoginForm()
    if form.validate_on_submit():
        addr = request.remote_addr or "-"
        account = (form.email.data or "").strip().lower()[:255]
        by_address = throttle.count_attempt("staff-login-ip", addr, LOGIN_LIMIT)
        by_account = throttle.count_attempt("staff-login-account", account, LOGIN_LIMIT)
        if not by_address:
            raise throttle.Throttled(throttle.retry_after("staff-login-ip", addr, LOGIN_LIMIT))
        if not by_account:
            if throttle.count_attempt("staff-login-warned", account, f"1 per {LOGIN_WINDOW_MINUTES} minutes"):
                warn_of_login_attempts(get_session(), account, LOGIN_TRIES, LOGIN_WINDOW_MINUTES)
            raise throttle.Throttled(throttle.retry_after("staff-login-account", account, LOGIN_LIMIT))
        user = authenticate(get_session(), form.email.data, form.password.data)
        if user is not None:
            throttle.forgive("staff-login-ip", addr, LOGIN_LIMIT)
            throttle.forgive("staff-login-account", account, LOGIN_LIMIT)
            login_user(user)
            session["staff_role"] = user.role
            return redirect(safe_next(request.args.get("next"), url_for("staff.home")), code=303)
        return render_template("staff/login.html", form=form, failed=True), 422
    status = 422 if request.method == "POST" else 200
    return render_template("staff/login.html", form=form, failed=False), status


@bp.post("/logout")
@staff_required()
def logout():
    end_sessions(get_session(), current_user._get_current_object())
    logout_user()
    session.pop("staff_role", None)
    flash(gettext("You are signed out."), "success")
    return redirect(url_for("staff.login"), code=303)


def _page_arg() -> int:
    try:
        return max(int(request.args.get("page", 1)), 1)
    except ValueError:
        return 1


def _queue_args() -> dict:
    """The queue's view, search, filters and order, all from the address (shareable, reload-proof)."""
    view = request.args.get("view", "mine")
    priority = request.args.get("priority") or None
    raw_team = request.args.get("team") or ""
    sort = request.args.get("sort", "due")
    return dict(
        view=view if view in QUEUE_VIEWS else "mine",
        q=(request.args.get("q") or "")[:100],
        priority=priority if priority in PRIORITIES else None,
        team_id=int(raw_team) if raw_team.isdigit() and len(raw_team) < 10 else None,
        sort=sort if sort in QUEUE_SORTS else "due",
        desc=request.args.get("dir") == "desc",
        facets=_facets(),
    )


def _facets() -> dict[str, str]:
    """The request filters in the address (status, channel, category, reason), checked and short."""
    raw = {k: (request.args.get(k) or "").strip()[:64] for k in QUEUE_FACETS}
    if raw["status"] not in {s.value for s in Status}:
        raw["status"] = ""
    if raw["reason"] not in REASONS:
        raw["reason"] = ""
    return {k: v for k, v in raw.items() if v}


@bp.get("/queue")
@staff_required(*CAN_WORK_TICKETS)
def queue():
    """Ticket queues with active search, filters and sorting; the rows are a partial for htmx."""
    args = _queue_args()
    page = _page_arg()
    now = datetime.now(UTC)
    session_ = get_session()
    view, q, priority, team_id, facets = args["view"], args["q"], args["priority"], args["team_id"], args["facets"]
    stmt = sort_queue(
        ticket_queue(view, current_user.id, q, now, priority, team_id, facets), args["sort"], args["desc"]
    )
    # One row more than a page says whether there is a next page (the total stops counting at a limit).
    rows = session_.scalars(stmt.limit(PAGE_SIZE + 1).offset((page - 1) * PAGE_SIZE)).unique().all()
    tickets, has_next = rows[:PAGE_SIZE], len(rows) > PAGE_SIZE
    total = session_.scalar(
        queue_total(view, current_user.id, q, now, priority, team_id, facets, limit=QUEUE_COUNT_LIMIT)
    )
    teams = session_.scalars(select(Team).where(Team.active.is_(True)).order_by(Team.name)).all()
    badge_views = ("mine", "team", "unassigned", "breaching", "breached")
    badges = queue_counts(badge_views, current_user.id, now, limit=QUEUE_COUNT_LIMIT)
    counts = dict(zip(badge_views, session_.execute(badges).one(), strict=True))
    ids = [t.id for t in tickets]
    return render_page_or_partial(
        "staff/queue.html",
        "staff/_queue_rows.html",
        **args,
        page=page,
        total=total,
        has_next=has_next,
        count_limit=QUEUE_COUNT_LIMIT,
        tickets=tickets,
        counts=counts,
        clocks=queue_clocks(session_, list(tickets), now, BREACHING_SOON),
        replied=set(session_.scalars(shopper_replied(ids))) if ids else set(),
        mask_email=mask_email,
        VIEWS=QUEUE_VIEWS,
        SORTS=QUEUE_SORTS,
        business_time=business_time,
        teams=teams,
        PRIORITIES=PRIORITIES,
        reasons=REASONS,
        now=now,
        bulk_form=BulkForm(),
        saved=saved_views(session_, current_user.id),
        here_query=clean_query(request.query_string.decode("utf-8", "replace")),
        staff_choices=_staff_choices(),
    )


@bp.route("/settings", methods=["GET", "POST"])
@staff_required()
def settings():
    """My own settings: the time zone I read due times and timelines in."""
    me = current_user._get_current_object()
    zones = sorted(available_timezones())
    status = 200
    if request.method == "POST":
        if not ActionForm().validate_on_submit():
            abort(400)
        try:
            set_timezone(get_session(), me, (request.form.get("timezone") or "")[:64])
        except InvalidInput as exc:
            flash(exc.render(gettext), "warning")
            status = 422
        else:
            flash(gettext("Settings saved."), "success")
            return redirect(url_for("staff.settings"), code=303)
    return render_template(
        "staff/settings.html", zones=zones, mine=me.timezone, portal_zone=current_app.config["BABEL_DEFAULT_TIMEZONE"]
    ), status


@bp.post("/queue/views")
@staff_required(*CAN_WORK_TICKETS)
def save_queue_view():
    """Keep the queue as it is now (view, search, filters, order) under a name, for oneself."""
    if not ActionForm().validate_on_submit():
        abort(400)
    query = request.form.get("query", "")[:1000]
    try:
        save_view(get_session(), current_user.id, request.form.get("name", ""), query)
    except InvalidInput as exc:
        flash(exc.render(gettext), "warning")
    else:
        flash(gettext("View saved."), "success")
    return redirect(url_for("staff.queue") + "?" + clean_query(query), code=303)


@bp.post("/queue/views/<int:view_id>/delete")
@staff_required(*CAN_WORK_TICKETS)
def delete_queue_view(view_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        delete_view(get_session(), current_user.id, view_id)
    except NotFound:
        abort(404)
    flash(gettext("View deleted."), "success")
    return redirect(url_for("staff.queue"), code=303)


@bp.post("/tickets/<int:ticket_id>/here")
@staff_required(*CAN_VIEW_REQUESTS)
def here(ticket_id: int):
    """The open ticket page says "still here" (htmx, every 20 seconds) and hears who else is."""
    if get_session().get(Ticket, ticket_id) is None:
        abort(404)
    now = datetime.now(UTC)
    mark_seen(get_session(), ticket_id, current_user.id, now)
    return render_template(
        "staff/_presence.html", ticket_id=ticket_id, others=others_here(get_session(), ticket_id, current_user.id, now)
    )


@bp.post("/queue/bulk")
@staff_required(*CAN_WORK_TICKETS)
def queue_bulk():
    """One action on the chosen rows; each row's outcome is reported, the queue shown again as it was."""
    form = BulkForm()
    form.to.choices = _staff_choices()
    back = safe_next(request.form.get("next"), url_for("staff.queue"))
    if not form.validate_on_submit():
        for errors in form.errors.values():
            for error in errors:
                flash(str(error), "warning")
        return redirect(back, code=303)
    outcomes = bulk_action(
        get_session(),
        current_user._get_current_object(),
        form.action.data,
        [int(v) for v in form.tickets.data],
        to_staff_id=int(form.to.data) if form.to.data else None,
        note=form.note.data or "",
        carrier=carrier_from_config(current_app.config),
        instant_exchange=active_policy(get_session(), current_app.config).instant_exchange,
    )
    done = [o for o in outcomes if o.done]
    flash(ngettext("%(num)d ticket done.", "%(num)d tickets done.", len(done)), "success" if done else "warning")
    for o in outcomes:
        if not o.done:
            flash(f"{o.rma}: {o.message.render(gettext)}", "warning")
    return redirect(back, code=303)


@bp.post("/tickets/<int:ticket_id>/take")
@staff_required(*CAN_WORK_TICKETS)
def take(ticket_id: int):
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)
    raw = form.assignee.data or ""
    expected = int(raw) if raw.isdigit() else None
    try:
        ticket = take_ticket(get_session(), ticket_id, current_user._get_current_object(), expected_assignee=expected)
    except NotFound:
        abort(404)
    except Conflict:
        flash(gettext("Someone else took this ticket a moment ago."), "warning")
        return redirect(safe_next(request.form.get("next"), url_for("staff.queue")), code=303)
    flash(gettext("The ticket is yours."), "success")
    if ticket.data_request is not None and current_user.role in CAN_HANDLE_DATA_REQUESTS:
        return redirect(url_for("staff.privacy_request", row_id=ticket.data_request.id), code=303)
    return redirect(url_for("staff.request_detail", rma=ticket.request.rma), code=303)


def _changed_meanwhile() -> None:
    flash(
        gettext("This request changed while you were looking at it; nothing was done. Please check it again."),
        "warning",
    )


@bp.post("/requests/<rma>/accept-arrived")
@staff_required(*CAN_WORK_TICKETS)
def accept_arrived(rma: str):
    """Settle a warehouse discrepancy: accept what arrived (finance then refunds the received units)."""
    req = _request_by_rma(rma)
    form = ArrivedForm()
    if not form.validate_on_submit():
        return render_template("staff/request.html", **_detail_context(req)), 422
    try:
        accept_what_arrived(
            get_session(), req, Actor.staff(current_user.id), form.note.data or "", expected_status=form.status.data
        )
    except Conflict:
        _changed_meanwhile()
    else:
        flash(gettext("Accepted what arrived. Finance can now refund the units received."), "success")
    return redirect(url_for("staff.request_detail", rma=req.rma), code=303)


@bp.post("/requests/<rma>/discrepancy/ask")
@staff_required(*CAN_WORK_TICKETS)
def discrepancy_ask(rma: str):
    """Ask the shopper about what the warehouse found; the resolution clock pauses until they answer."""
    req = _request_by_rma(rma)
    form = DiscrepancyQuestionForm()
    if not form.validate_on_submit():
        return render_template("staff/request.html", **{**_detail_context(req), "question_form": form}), 422
    if form.status.data != Status.DISCREPANCY:
        abort(400)
    try:
        ask_shopper(
            get_session(), req, Actor.staff(current_user.id), form.question.data, expected_status=form.status.data
        )
    except (Conflict, IllegalTransition):
        _changed_meanwhile()
    else:
        flash(gettext("Question sent. The clock is paused until the shopper answers."), "success")
    return redirect(url_for("staff.request_detail", rma=req.rma), code=303)


@bp.post("/requests/<rma>/discrepancy/refuse")
@staff_required(*CAN_WORK_TICKETS)
def discrepancy_refuse(rma: str):
    """Refuse some items after a discrepancy, with the reason and their fate the shopper is told."""
    req = _request_by_rma(rma)
    form = RefuseForm()
    form.fill()
    if not form.validate_on_submit():
        return render_template("staff/request.html", **{**_detail_context(req), "refuse_form": form}), 422
    try:
        refuse_items(
            get_session(),
            req,
            Actor.staff(current_user.id),
            set(form.lines.data or []),
            form.reason.data,
            form.fate.data,
            expected_status=form.status.data,
        )
    except InvalidInput as exc:
        form.lines.errors = [*form.lines.errors, exc.render(gettext)]
        return render_template("staff/request.html", **{**_detail_context(req), "refuse_form": form}), 422
    except Conflict:
        _changed_meanwhile()
    else:
        flash(gettext("Refused. The shopper has been told why and what happens to the items."), "success")
    return redirect(url_for("staff.request_detail", rma=req.rma), code=303)


@bp.post("/requests/<rma>/decide")
@staff_required(*CAN_WORK_TICKETS)
def decide(rma: str):
    """Approve or reject a request under review. The posted status is the one the page showed."""
    req = _request_by_rma(rma)
    form = DecisionForm(reasons=active_reasons(get_session()))
    if not form.validate_on_submit():
        return render_template("staff/request.html", **{**_detail_context(req), "decision_form": form}), 422
    actor = Actor.staff(current_user.id)
    try:
        if form.action.data == "approve":
            raw = request.form.getlist("approve_line")
            line_ids = {int(v) for v in raw if v.isdigit()} if len(req.lines) > 1 else None
            try:
                approve_return(
                    get_session(),
                    req,
                    actor,
                    expected_status=form.status.data,
                    note=form.note.data or "",
                    line_ids=line_ids,
                    carrier=carrier_from_config(current_app.config),
                    instant_exchange=active_policy(get_session(), current_app.config).instant_exchange,
                )
            except InvalidInput as exc:
                get_session().rollback()
                form.note.errors = [*form.note.errors, exc.render(gettext)]
                return render_template("staff/request.html", **{**_detail_context(req), "decision_form": form}), 422
            flash(gettext("Approved. The shopper has been told."), "success")
        elif form.action.data == "ask":
            ask_shopper(get_session(), req, actor, form.note.data, expected_status=form.status.data)
            flash(gettext("Question sent. The clock is paused until the shopper answers."), "success")
        else:
            reject_return(
                get_session(),
                req,
                actor,
                form.note.data or "",
                expected_status=form.status.data,
                reason_id=form.chosen_reason(),
            )
            flash(gettext("Rejected. The shopper has been told why."), "success")
    except IllegalTransition:
        flash(gettext("This request can no longer be approved or rejected."), "warning")
    except Conflict:
        _changed_meanwhile()
    else:
        if request.form.get("then") == "next":
            return _open_next(req)
    return redirect(url_for("staff.request_detail", rma=rma, queue=_queue_view()), code=303)


def _open_next(done: ReturnRequest):
    """After a decision, the next ticket of the same queue (in its order), or the queue when it is empty."""
    view = _queue_view()
    stmt = ticket_queue(view, current_user.id, "", datetime.now(UTC)).where(Ticket.request_id != done.id)
    following = get_session().scalars(stmt.limit(1)).unique().first()
    if following is None:
        flash(gettext("That was the last ticket in this queue."), "success")
        return redirect(url_for("staff.queue", view=view), code=303)
    return redirect(url_for("staff.request_detail", rma=following.request.rma, queue=view), code=303)


@bp.post("/tickets/<int:ticket_id>/note")
@staff_required(*CAN_WORK_TICKETS)
def note(ticket_id: int):
    form = NoteForm()
    ticket = get_session().get(Ticket, ticket_id)
    if ticket is None:
        abort(404)
    if not form.validate_on_submit():
        flash(gettext("A note needs some text."), "warning")
        return redirect(url_for("staff.request_detail", rma=ticket.request.rma), code=303)
    add_note(get_session(), ticket_id, current_user._get_current_object(), form.text.data)
    return redirect(url_for("staff.request_detail", rma=ticket.request.rma), code=303)


@bp.post("/tickets/<int:ticket_id>/close")
@staff_required(*CAN_WORK_TICKETS)
def close_ticket(ticket_id: int):
    """Close a follow-up (a survey reopened the ticket of a settled request) with what was done."""
    form = NoteForm()
    ticket = get_session().get(Ticket, ticket_id)
    if ticket is None:
        abort(404)
    rma = ticket.request.rma
    if not form.validate_on_submit():
        flash(gettext("Say what was done to follow up."), "warning")
        return redirect(url_for("staff.request_detail", rma=rma), code=303)
    try:
        close_follow_up(get_session(), ticket_id, current_user._get_current_object(), form.text.data)
    except Conflict as exc:
        flash(exc.render(gettext), "warning")
    else:
        flash(gettext("Follow-up recorded; the ticket is closed."), "success")
    return redirect(url_for("staff.request_detail", rma=rma), code=303)


@bp.post("/requests/<rma>/reply")
@staff_required(*CAN_WORK_TICKETS)
def reply(rma: str):
    """Send a message to the shopper (a suggested reply, edited or not)."""
    req = _request_by_rma(rma)
    form = ReplyForm()
    if not form.validate_on_submit():
        return render_template("staff/request.html", **{**_detail_context(req), "reply_form": form}), 422
    send_reply(get_session(), req, current_user._get_current_object(), form.body.data)
    flash(gettext("Message sent to the shopper."), "success")
    return redirect(url_for("staff.request_detail", rma=rma), code=303)


@bp.post("/requests/<rma>/macro/<int:reply_id>")
@staff_required(*CAN_WORK_TICKETS)
def macro(rma: str, reply_id: int):
    """A suggested reply that also records its decision, in one action (the words may be edited)."""
    req = _request_by_rma(rma)
    reply_row = get_session().get(CannedReplyRow, reply_id)
    form = ReplyForm()
    if reply_row is None or not reply_row.active:
        abort(404)
    if not form.validate_on_submit():
        return render_template("staff/request.html", **{**_detail_context(req), "reply_form": form}), 422
    try:
        decide_with_reply(
            get_session(),
            req,
            current_user._get_current_object(),
            reply_row.decision,
            form.body.data,
            expected_status=request.form.get("status") or None,
            carrier=carrier_from_config(current_app.config),
            instant_exchange=active_policy(get_session(), current_app.config).instant_exchange,
        )
    except IllegalTransition:
        flash(gettext("This request can no longer be approved or rejected."), "warning")
    except Conflict:
        _changed_meanwhile()
    else:
        flash(MACRO_DONE.get(reply_row.decision or "", MACRO_DONE[""]).render(gettext), "success")
    return redirect(url_for("staff.request_detail", rma=rma, queue=_queue_view()), code=303)


@bp.post("/tickets/<int:ticket_id>/reassign")
@staff_required(*CAN_WORK_TICKETS)
def reassign_view(ticket_id: int):
    form = ReassignForm()
    ticket = get_session().get(Ticket, ticket_id)
    if ticket is None:
        abort(404)
    form.to.choices = _staff_choices()
    if not form.validate_on_submit():
        abort(400)
    try:
        reassign(
            get_session(), ticket_id, current_user._get_current_object(), int(form.to.data) if form.to.data else None
        )
    except InvalidInput as exc:
        get_session().rollback()
        flash(exc.render(gettext), "warning")
        return redirect(url_for("staff.request_detail", rma=ticket.request.rma), code=303)
    flash(gettext("Ticket reassigned."), "success")
    return redirect(url_for("staff.request_detail", rma=ticket.request.rma), code=303)


@bp.post("/requests/<rma>/contact")
@staff_required(*CAN_WORK_TICKETS)
def contact(rma: str):
    """Reveal the shopper's email and phone (audited); an htmx fragment or the full page."""
    req = _request_by_rma(rma)
    form = RevealForm()
    if not form.validate_on_submit():
        if form.csrf_token.errors or not request.form:
            abort(400)
        return render_page_or_partial(
            "staff/request.html",
            "staff/_contact.html",
            http_status=422,
            **{**_detail_context(req), "reveal_form": form},
        )
    try:
        details = reveal_contact(get_session(), current_user._get_current_object(), req, form.reason.data)
    except InvalidInput as exc:
        form.reason.errors = [exc.render(gettext)]
        return render_page_or_partial(
            "staff/request.html",
            "staff/_contact.html",
            http_status=422,
            **{**_detail_context(req), "reveal_form": form},
        )
    return render_page_or_partial(
        "staff/request.html", "staff/_contact.html", **{**_detail_context(req), "contact": details}
    )


@bp.route("/orders/<order_number>", methods=["GET", "POST"])
@staff_required(*CAN_WORK_TICKETS)
def order_on_behalf(order_number: str):
    """Open a return for a shopper (by phone or chat), overriding the policy with a reason when needed."""
    order = (
        get_session()
        .scalars(select(Order).where(Order.order_number == normalise_order_number(order_number)))
        .one_or_none()
    )
    if order is None:
        abort(404)
    active = published_policy(get_session(), current_app.config)
    policy = active.policy
    now = datetime.now(UTC)
    prechecks = precheck_order(get_session(), order, policy, now)
    form = OnBehalfForm()
    form.fill(order.lines, prechecks)
    decision, status, errors = None, 200, []
    if form.validate_on_submit():
        locale = order.requests[-1].locale if order.requests else "en"
        try:
            created = open_return(
                get_session(),
                order,
                form.line_requests(),
                policy,
                now,
                locale,
                store_from_config(current_app.config),
                actor=Actor.staff(current_user.id),
                override_reason=form.override.data,
                policy_version_id=active.id,
            )
        except ReturnNotAllowed as exc:
            decision = exc.decision
            errors.append(
                gettext(
                    "The policy says no; give a reason to override it. Quantities above what was bought and unknown reasons cannot be overridden."
                )
            )
        else:
            flash(gettext("Return %(rma)s opened for the shopper.", rma=created.rma), "success")
            return redirect(url_for("staff.request_detail", rma=created.rma), code=303)
        status = 422
    elif form.is_submitted():
        status = 422
    return render_template(
        "staff/order.html", order=order, prechecks=prechecks, form=form, decision=decision, errors=errors
    ), status


@bp.get("/orders")
@staff_required(*CAN_WORK_TICKETS)
def order_lookup():
    number = (request.args.get("number") or "").strip()
    if not number:
        return render_template("staff/order_lookup.html", number="", missing=False)
    found = (
        get_session()
        .scalars(select(Order.order_number).where(Order.order_number == normalise_order_number(number)))
        .first()
    )
    if found is None:
        return render_template("staff/order_lookup.html", number=number, missing=True), 404
    return redirect(url_for("staff.order_on_behalf", order_number=found), code=303)


@bp.get("/notifications")
@staff_required()
def notifications():
    return render_template(
        "staff/notifications.html", items=recent_notifications(get_session(), current_user.id), form=ActionForm()
    )


@bp.get("/tickets/<int:ticket_id>")
@staff_required(*CAN_VIEW_REQUESTS)
def ticket_redirect(ticket_id: int):
    ticket = get_session().get(Ticket, ticket_id)
    if ticket is None:
        abort(404)
    return redirect(url_for("staff.request_detail", rma=ticket.request.rma), code=303)


@bp.post("/notifications/read")
@staff_required()
def notifications_read():
    if not ActionForm().validate_on_submit():
        abort(400)
    mark_notifications_read(get_session(), current_user.id)
    return redirect(url_for("staff.notifications"), code=303)


def unread_count() -> int:
    """The badge in the staff header; asked for only by the staff layout."""
    if not getattr(current_user, "is_authenticated", False):
        return 0
    return unread_notifications(get_session(), current_user.id)


@bp.record_once
def _register_unread_count(state) -> None:
    state.app.jinja_env.globals["unread_count"] = unread_count


@bp.get("/")
@staff_required(*CAN_VIEW_REQUESTS)
def home():
    try:
        page = max(int(request.args.get("page", 1)), 1)
    except ValueError:
        page = 1
    status = request.args.get("status") or None
    stmt = select(ReturnRequest).order_by(ReturnRequest.created_at.desc(), ReturnRequest.id.desc())
    count = select(func.count(ReturnRequest.id))
    if status:
        stmt = stmt.where(ReturnRequest.status == status)
        count = count.where(ReturnRequest.status == status)
    requests = get_session().scalars(stmt.limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).all()
    total = get_session().scalar(count)
    return render_template(
        "staff/home.html",
        requests=requests,
        page=page,
        total=total,
        page_size=PAGE_SIZE,
        status=status,
        mask_email=mask_email,
    )


def _reassign_form(ticket: Ticket | None) -> ReassignForm:
    form = ReassignForm(to=str(ticket.assignee_id or "") if ticket else "")
    form.to.choices = _staff_choices()
    return form


def _refuse_form(req: ReturnRequest) -> RefuseForm:
    form = RefuseForm(status=req.status)
    form.fill()
    return form


def _ticket_clocks(ticket: Ticket | None, now: datetime) -> list[dict]:
    """Both clocks of a ticket for its badges, first response first."""
    if ticket is None:
        return []
    found = queue_clocks(get_session(), [ticket], now, BREACHING_SOON).get(ticket.id, {})
    return [found[m] for m in ("first_response", "resolution") if m in found]


def _queue_view() -> str:
    """The queue the ticket was opened from (for "open the next"), else the staff member's own."""
    view = request.values.get("queue", "mine")
    return view if view in QUEUE_VIEWS else "mine"


def _detail_context(req: ReturnRequest) -> dict:
    scoring = any(p.score_state == ScoreState.PENDING for p in req.photos)
    ticket = ticket_for(get_session(), req)
    now = datetime.now(UTC)
    entries = request_timeline(get_session(), list(req.events), staff_words=ticket is None)
    if ticket is not None:
        entries += ticket_timeline(get_session(), list(ticket.events))
    return dict(
        events=sorted(entries, key=lambda e: e.at),
        clocks=_ticket_clocks(ticket, now),
        history=customer_history(get_session(), req, now),
        queue_view=_queue_view(),
        req=req,
        decision=Decision.from_dict(req.decision),
        reasons=REASONS,
        mask_email=mask_email,
        scoring=scoring,
        ticket=ticket,
        data_tickets=data_request_tickets(get_session(), req),
        decision_form=DecisionForm(status=req.status, reasons=active_reasons(get_session())),
        action_form=ActionForm(assignee=str(ticket.assignee_id or "") if ticket else ""),
        reveal_form=RevealForm(formdata=None),
        note_form=NoteForm(),
        reassign_form=_reassign_form(ticket),
        contact=None,
        reply_form=ReplyForm(),
        question_form=DiscrepancyQuestionForm(status=req.status),
        refuse_form=_refuse_form(req),
        arrivals=arrivals(get_session(), req) if req.status == Status.DISCREPANCY else [],
        claims=carrier_claims(get_session(), req),
        loose_findings=unplaced_findings(get_session(), req) if req.status == Status.DISCREPANCY else [],
        suggestions=suggested_replies(get_session(), req) if ticket else [],
        can_decide=req.status == Status.PENDING_REVIEW and current_user.role in CAN_WORK_TICKETS,
        can_work=current_user.role in CAN_WORK_TICKETS,
        can_close=ticket is not None
        and ticket.status != TicketStatus.CLOSED
        and Status(req.status) in SETTLED
        and current_user.role in CAN_WORK_TICKETS,
    )


@bp.get("/requests/<rma>")
@staff_required(*CAN_VIEW_REQUESTS)
def request_detail(rma: str):
    context = _detail_context(_request_by_rma(rma))
    ticket, others = context["ticket"], []
    if ticket is not None:
        now = datetime.now(UTC)
        mark_seen(get_session(), ticket.id, current_user.id, now)
        others = others_here(get_session(), ticket.id, current_user.id, now)
    return render_template("staff/request.html", **context, others=others)


def _request_by_rma(rma: str) -> ReturnRequest:
    req = get_session().scalars(select(ReturnRequest).where(ReturnRequest.rma == rma)).one_or_none()
    if req is None:
        abort(404)
    return req


@bp.get("/requests/<rma>/photos")
@staff_required(*CAN_VIEW_REQUESTS)
def request_photos(rma: str):
    """The photos with their wear scores; polls itself while scoring is under way."""
    req = _request_by_rma(rma)
    return render_page_or_partial("staff/request.html", "staff/_photos.html", **_detail_context(req))


def _photo_bytes(photo_id: int, variant: str) -> tuple[Photo, bytes]:
    item = get_session().get(Photo, photo_id)
    if item is None:
        abort(404)
    key = item.thumb_key if variant == "thumb" and item.thumb_key else item.storage_key
    return item, photo_bytes(key)


@bp.get("/photos/<int:photo_id>")
@staff_required(*CAN_VIEW_REQUESTS)
def photo(photo_id: int):
    _, data = _photo_bytes(photo_id, "full")
    return image_response(data)


@bp.get("/photos/<int:photo_id>/thumb")
@staff_required(*CAN_VIEW_REQUESTS)
def photo_thumb(photo_id: int):
    _, data = _photo_bytes(photo_id, "thumb")
    return image_response(data)


@bp.get("/photos/<int:photo_id>/overlay")
@staff_required(*CAN_VIEW_REQUESTS)
def photo_overlay(photo_id: int):
    """The photo with the classifier's score map laid over it: where the model looked."""
    item, data = _photo_bytes(photo_id, "full")
    if not item.score_map:
        abort(404)
    with Image.open(io.BytesIO(data)) as img:
        overlay = render_overlay(img.convert("RGB"), item.score_map)
    out = io.BytesIO()
    overlay.convert("RGB").save(out, "JPEG", quality=85)
    return image_response(out.getvalue())
