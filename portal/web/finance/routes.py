"""Finance: requests awaiting a refund with the itemised preview, approvals, execution, failures, export."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_login import current_user
from sqlalchemy import select

from portal.adapters.payments import gateway_for
from portal.db import get_session
from portal.db.models import Refund, ReturnRequest
from portal.db.queries import refund_queue
from portal.domain.errors import Conflict, InvalidInput, NotPermitted
from portal.domain.roles import CAN_REFUND
from portal.domain.states import RefundStatus
from portal.exports import reconciliation_csv
from portal.services.refunds import (
    StalePreview,
    approve_refund,
    execute_refund,
    is_stuck,
    ledger_rows,
    preview_refund,
    refund_settings,
    resolve_stuck_refund,
    retry_refund,
    second_approve,
)
from portal.web.auth import staff_required
from portal.web.finance.forms import ActionForm

bp = Blueprint("finance", __name__, url_prefix="/finance")


def _threshold() -> Decimal:
    return Decimal(str(current_app.config.get("SECOND_APPROVAL_ABOVE", "2000")))


def _settings():
    return refund_settings(current_app.config)


def _gateway(name: str):
    return gateway_for(
        name, current_app.extensions["portal.sessionmaker"], current_app.config.get("SANDBOX_MODE", "ok")
    )


@bp.get("/")
@staff_required(*CAN_REFUND)
def queue():
    return _queue_page()


def _queue_page(errors: dict[int, str] | None = None) -> str:
    """The finance queue; ``errors`` shows a message beside a refund's execute form."""
    session = get_session()
    rows = session.execute(refund_queue()).all()
    waiting = [req for req, _ in rows]
    order_totals = {req.id: total for req, total in rows}
    previews = {req.id: preview_refund(session, req, _settings()) for req in waiting}
    open_refunds = session.scalars(
        select(Refund)
        .where(Refund.status.in_([s.value for s in RefundStatus if s != RefundStatus.SUCCEEDED]))
        .order_by(Refund.id)
    ).all()
    done = session.scalars(
        select(Refund).where(Refund.status == RefundStatus.SUCCEEDED.value).order_by(Refund.id.desc()).limit(20)
    ).all()
    return render_template(
        "finance/queue.html",
        waiting=waiting,
        previews=previews,
        order_totals=order_totals,
        open_refunds=open_refunds,
        done=done,
        form=ActionForm(),
        errors=errors or {},
        threshold=_threshold(),
        stuck={r.id for r in open_refunds if is_stuck(r, datetime.now(UTC))},
    )


@bp.post("/requests/<rma>/approve")
@staff_required(*CAN_REFUND)
def approve(rma: str):
    if not ActionForm().validate_on_submit():
        abort(400)
    req = get_session().scalars(select(ReturnRequest).where(ReturnRequest.rma == rma)).one_or_none()
    if req is None:
        abort(404)
    provider = request.form.get("provider", "sandbox")
    if provider not in ("sandbox", "manual"):
        abort(400)
    try:
        refund = approve_refund(
            get_session(),
            req,
            current_user._get_current_object(),
            request.form.get("basis", ""),
            provider,
            _threshold(),
            _settings(),
        )
    except StalePreview:
        flash(
            gettext(
                "The refund changed since you looked at it (for example a new receipt or refund). Check the new amounts and approve again."
            ),
            "warning",
        )
        return redirect(url_for("finance.queue"), code=303)
    except Conflict:
        flash(gettext("This request cannot be refunded now, or a refund is already under way."), "warning")
        return redirect(url_for("finance.queue"), code=303)
    if refund.status == RefundStatus.AWAITING_SECOND:
        flash(
            gettext("Approved. Above %(limit)s a second finance user must approve too.", limit=_threshold()), "success"
        )
    else:
        flash(gettext("Approved. Execute it when ready."), "success")
    return redirect(url_for("finance.queue"), code=303)


def _refund(refund_id: int) -> Refund:
    refund = get_session().get(Refund, refund_id)
    if refund is None:
        abort(404)
    return refund


@bp.post("/refunds/<int:refund_id>/second")
@staff_required(*CAN_REFUND)
def second(refund_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        second_approve(get_session(), _refund(refund_id), current_user._get_current_object())
    except NotPermitted:
        flash(gettext("The second approval must come from another finance user."), "warning")
    except Conflict:
        flash(gettext("This refund no longer waits for a second approval."), "warning")
    return redirect(url_for("finance.queue"), code=303)


@bp.post("/refunds/<int:refund_id>/execute")
@staff_required(*CAN_REFUND)
def execute(refund_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    refund = _refund(refund_id)
    try:
        done = execute_refund(
            current_app.extensions["portal.sessionmaker"],
            refund.id,
            _gateway(refund.provider),
            manual_reference=request.form.get("reference") or None,
        )
    except InvalidInput as exc:
        return _queue_page({refund.id: exc.render(gettext)}), 422
    if done.status == RefundStatus.SUCCEEDED:
        flash(gettext("Refunded."), "success")
    elif done.status == RefundStatus.FAILED:
        flash(
            gettext("The refund failed: %(error)s. Nothing was paid twice; you can retry.", error=done.last_error),
            "warning",
        )
    else:
        flash(gettext("This refund is not ready to execute (%(status)s).", status=done.status), "warning")
    return redirect(url_for("finance.queue"), code=303)


@bp.post("/refunds/<int:refund_id>/resolve")
@staff_required(*CAN_REFUND)
def resolve(refund_id: int):
    """A refund left "processing" by an interrupted attempt: ask its gateway and settle it once."""
    if not ActionForm().validate_on_submit():
        abort(400)
    refund = _refund(refund_id)
    result = resolve_stuck_refund(current_app.extensions["portal.sessionmaker"], refund.id, _gateway(refund.provider))
    messages = {
        RefundStatus.SUCCEEDED.value: (gettext("The provider had paid it: the refund is now recorded."), "success"),
        RefundStatus.FAILED.value: (
            gettext("The provider never paid it: it is marked failed and you can retry it safely."),
            "warning",
        ),
        "unknown": (gettext("The provider could not say whether it paid. Try again later."), "warning"),
        "running": (gettext("This refund is still being paid. Check again in a few minutes."), "warning"),
    }
    message, category = messages.get(result.outcome, (gettext("This refund is no longer processing."), "warning"))
    flash(message, category)
    return redirect(url_for("finance.queue"), code=303)


@bp.post("/refunds/<int:refund_id>/retry")
@staff_required(*CAN_REFUND)
def retry(refund_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        retry_refund(get_session(), _refund(refund_id).id)
    except Conflict:
        flash(gettext("Only a failed refund can be retried."), "warning")
    return redirect(url_for("finance.queue"), code=303)


def _day(value: str | None, default: datetime) -> datetime:
    try:
        return datetime.combine(datetime.strptime(value, "%Y-%m-%d").date(), time(), tzinfo=UTC) if value else default
    except ValueError:
        abort(400)


@bp.get("/export.csv")
@staff_required(*CAN_REFUND)
def export():
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = _day(request.args.get("from"), today - timedelta(days=30))
    end = _day(request.args.get("to"), today) + timedelta(days=1)
    body = reconciliation_csv(ledger_rows(get_session(), start, end))
    return (
        body,
        200,
        {
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="reconciliation-{start:%Y%m%d}-{end - timedelta(days=1):%Y%m%d}.csv"',
        },
    )
