"""Back office: shoppers' requests for a copy or erasure of their data, each with its 30-day due
date, answered by leads, managers and admins."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import BooleanField

from portal.db import get_session
from portal.db.models import ReturnRequest, StaffUser
from portal.domain.errors import InvalidInput, NotFound
from portal.domain.privacy import (
    SUBJECT_KIND_LABELS,
    SUBJECT_STATUS_LABELS,
    SUBJECT_TICKET_BADGES,
    SubjectKind,
    SubjectStatus,
)
from portal.domain.roles import CAN_HANDLE_DATA_REQUESTS
from portal.logs import mask_email
from portal.services.privacy import complete_subject_request, get_subject_request, subject_queue
from portal.storage import store_from_config
from portal.web.auth import staff_required
from portal.web.staff.routes import _ticket_clocks, bp


@bp.record_once
def _register_privacy_roles(state) -> None:
    state.app.jinja_env.globals["CAN_HANDLE_DATA_REQUESTS"] = CAN_HANDLE_DATA_REQUESTS
    state.app.jinja_env.globals["SUBJECT_TICKET_BADGES"] = SUBJECT_TICKET_BADGES


class CompleteForm(FlaskForm):
    confirm = BooleanField("")


@bp.get("/privacy")
@staff_required(*CAN_HANDLE_DATA_REQUESTS)
def privacy_queue():
    """Open data requests, the soonest due first (``?all=1`` shows answered ones too)."""
    show_all = request.args.get("all") == "1"
    rows = subject_queue(get_session(), include_done=show_all)
    return render_template(
        "staff/privacy.html",
        rows=rows,
        show_all=show_all,
        now=datetime.now(UTC),
        kind_labels=SUBJECT_KIND_LABELS,
        status_labels=SUBJECT_STATUS_LABELS,
    )


def _detail(row_id: int, form: CompleteForm, status: int = 200):
    try:
        row = get_subject_request(get_session(), row_id)
    except NotFound:
        return render_template("errors/error.html", code=404, message=gettext("Not found.")), 404
    rma = (
        get_session().scalar(select(ReturnRequest.rma).where(ReturnRequest.id == row.request_id))
        if row.request_id
        else None
    )
    done_by = get_session().get(StaffUser, row.completed_by) if row.completed_by else None
    now = datetime.now(UTC)
    return render_template(
        "staff/privacy_request.html",
        row=row,
        rma=rma,
        ticket=row.ticket,
        clocks=_ticket_clocks(row.ticket, now),
        badges=SUBJECT_TICKET_BADGES,
        form=form,
        done_by=done_by,
        now=now,
        masked=mask_email(row.order.customer_email) if row.order.customer_email else "—",
        kind_labels=SUBJECT_KIND_LABELS,
        status_labels=SUBJECT_STATUS_LABELS,
        ERASURE=SubjectKind.ERASURE.value,
        OPEN=SubjectStatus.OPEN.value,
    ), status


@bp.get("/privacy/<int:row_id>")
@staff_required(*CAN_HANDLE_DATA_REQUESTS)
def privacy_request(row_id: int):
    form = CompleteForm(formdata=None)
    form.confirm.label.text = gettext("I checked that nothing still open needs this order's personal data.")
    return _detail(row_id, form)


@bp.post("/privacy/<int:row_id>/complete")
@staff_required(*CAN_HANDLE_DATA_REQUESTS)
def privacy_complete(row_id: int):
    """Answer a data request: make the copy ready for the shopper, or erase (confirmed)."""
    form = CompleteForm()
    form.confirm.label.text = gettext("I checked that nothing still open needs this order's personal data.")
    if not form.validate_on_submit():
        return render_template(
            "errors/error.html", code=400, message=gettext("The form expired; please try again.")
        ), 400
    session = get_session()
    try:
        row = get_subject_request(session, row_id)
    except NotFound:
        return render_template("errors/error.html", code=404, message=gettext("Not found.")), 404
    if row.kind == SubjectKind.ERASURE.value and not form.confirm.data:
        form.confirm.errors = [gettext("Confirm the erasure: it cannot be undone.")]
        return _detail(row_id, form, 422)
    try:
        complete_subject_request(
            session, current_user._get_current_object(), row, store_from_config(current_app.config)
        )
    except InvalidInput as exc:
        session.rollback()
        flash(exc.render(gettext), "warning")
        return redirect(url_for("staff.privacy_request", row_id=row_id), code=303)
    if row.kind == SubjectKind.ERASURE.value:
        flash(gettext("The shopper's personal data has been erased."), "success")
    else:
        flash(gettext("The copy is ready for the shopper to download; they have been emailed."), "success")
    return redirect(url_for("staff.privacy_request", row_id=row_id), code=303)
