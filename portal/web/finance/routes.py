"""Finance: requests awaiting a refund with the itemised preview, approvals, execution, failures, export."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext, ngettext
from flask_login import current_user
from sqlalchemy import select

from portal.adapters.payments import gateway_for
from portal.db import get_session
from portal.db.models import Order, OrderLine, Refund, ReturnRequest, StaffUser, StoreCreditCode
from portal.db.queries import refund_queue
from portal.domain import refunds as money
from portal.domain.errors import Conflict, InvalidInput, NotFound, NotPermitted
from portal.domain.roles import CAN_REFUND
from portal.domain.states import RefundStatus
from portal.domain.text import N_
from portal.exports import movements_csv, reconciliation_csv
from portal.i18n import money as money_text
from portal.services.audit import record_export
from portal.services.refunds import (
    LEDGER_KINDS,
    PROVIDERS,
    LedgerFilter,
    StalePreview,
    approve_refund,
    approve_refunds,
    day_totals,
    execute_refund,
    is_stuck,
    ledger_movements,
    ledger_rows,
    needs_second_approval,
    preview_refund,
    refund_settings,
    resolve_stuck_refund,
    retry_refund,
    second_approve,
)
from portal.web.auth import staff_required
from portal.web.finance.forms import ActionForm, LedgerFilterForm, parse_day

bp = Blueprint("finance", __name__, url_prefix="/finance")

REFUND_STATUS_LABELS = {
    RefundStatus.AWAITING_SECOND: N_("Waiting for a second approval"),
    RefundStatus.APPROVED: N_("Approved, not paid yet"),
    RefundStatus.PROCESSING: N_("Being paid"),
    RefundStatus.SUCCEEDED: N_("Refunded"),
    RefundStatus.FAILED: N_("Failed"),
}
BULK_LIMIT = 100


def _threshold() -> Decimal:
    return Decimal(str(current_app.config.get("SECOND_APPROVAL_ABOVE", "2000")))


def _settings():
    return refund_settings(current_app.config)


def _gateway(name: str):
    return gateway_for(
        name, current_app.extensions["portal.sessionmaker"], current_app.config.get("SANDBOX_MODE", "ok")
    )


def _order_lines(order: Order) -> dict[str, OrderLine]:
    """The order's lines by line id: a preview item names its product through them."""
    return {ol.line_id: ol for ol in order.lines}


def _staff_names(ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(get_session().execute(select(StaffUser.id, StaffUser.name).where(StaffUser.id.in_(ids))).all())


def _credit_codes(refund_ids: list[int]) -> dict[int, str]:
    """The store-credit code each refund issued (issued when the refund is paid)."""
    if not refund_ids:
        return {}
    rows = get_session().execute(
        select(StoreCreditCode.refund_id, StoreCreditCode.code).where(StoreCreditCode.refund_id.in_(refund_ids))
    )
    return {refund_id: code for refund_id, code in rows if refund_id is not None}


def _waiting_totals(waiting: list[ReturnRequest], previews: dict[int, money.RefundPreview]) -> list[dict]:
    """Per currency: how many requests wait and what they would pay and credit."""
    totals: dict[str, dict] = {}
    for req in waiting:
        p = previews[req.id]
        row = totals.setdefault(
            p.currency, {"currency": p.currency, "count": 0, "refund": Decimal(0), "credit": Decimal(0)}
        )
        row["count"] += 1
        row["refund"] += p.refund_total
        row["credit"] += p.store_credit_total
    return [totals[c] for c in sorted(totals)]


@bp.get("/")
@staff_required(*CAN_REFUND)
def queue():
    return _queue_page()


def _queue_page(errors: dict[int, str] | None = None, bulk_error: str | None = None) -> str:
    """The finance queue; ``errors`` shows a message beside a refund's execute form, ``bulk_error``
    one beside the bulk approval."""
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
    threshold = _threshold()
    return render_template(
        "finance/queue.html",
        waiting=waiting,
        previews=previews,
        order_totals=order_totals,
        order_lines={req.id: _order_lines(req.order) for req in waiting},
        second_needed={req.id for req in waiting if needs_second_approval(previews[req.id], threshold)},
        waiting_totals=_waiting_totals(waiting, previews),
        open_refunds=open_refunds,
        done=done,
        approvers=_staff_names({r.approved_by for r in open_refunds}),
        credit_codes=_credit_codes([r.id for r in done]),
        status_labels=REFUND_STATUS_LABELS,
        providers=PROVIDERS,
        form=ActionForm(),
        errors=errors or {},
        bulk_error=bulk_error,
        threshold=threshold,
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
    if provider not in PROVIDERS:
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


@bp.get("/refunds/<int:refund_id>/second")
@staff_required(*CAN_REFUND)
def second_confirm(refund_id: int):
    """The second approver's step: the same itemised preview the first approver approved, who that
    was and when, and a button to confirm."""
    refund = _refund(refund_id)
    preview = money.RefundPreview.from_dict(refund.preview)
    names = _staff_names({refund.approved_by, *([refund.second_by] if refund.second_by else [])})
    return render_template(
        "finance/second.html",
        refund=refund,
        req=refund.request,
        preview=preview,
        order_lines=_order_lines(refund.request.order),
        first_approver=names.get(refund.approved_by, "?"),
        second_approver=names.get(refund.second_by) if refund.second_by else None,
        own=refund.approved_by == current_user.id,
        waiting=refund.status == RefundStatus.AWAITING_SECOND,
        status_labels=REFUND_STATUS_LABELS,
        form=ActionForm(),
    )


@bp.post("/refunds/<int:refund_id>/second")
@staff_required(*CAN_REFUND)
def second(refund_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    refund = _refund(refund_id)
    if request.form.get("confirm") != "yes":
        # Not from the confirmation step: show it, nothing is approved.
        flash(gettext("Check the refund and confirm the second approval."), "warning")
        return redirect(url_for("finance.second_confirm", refund_id=refund.id), code=303)
    try:
        second_approve(get_session(), refund, current_user._get_current_object())
    except NotPermitted:
        flash(gettext("The second approval must come from another finance user."), "warning")
        return redirect(url_for("finance.second_confirm", refund_id=refund.id), code=303)
    except Conflict:
        flash(gettext("This refund no longer waits for a second approval."), "warning")
        return redirect(url_for("finance.queue"), code=303)
    flash(gettext("Second approval given for %(rma)s. Execute it when ready.", rma=refund.request.rma), "success")
    return redirect(url_for("finance.queue"), code=303)


@bp.post("/bulk-approve")
@staff_required(*CAN_REFUND)
def bulk_approve():
    """Approve the chosen refunds at once: only those up to the second-approval threshold, each checked
    as a single approval is; the page then says what happened to each one."""
    if not ActionForm().validate_on_submit():
        abort(400)
    provider = request.form.get("provider", "sandbox")
    if provider not in PROVIDERS:
        abort(400)
    rmas = request.form.getlist("pick")
    if len(rmas) > BULK_LIMIT:
        message = gettext("Choose at most %(num)d refunds at once.", num=BULK_LIMIT)
        return _queue_page(bulk_error=message), 422
    picks = [(rma, request.form.get(f"basis-{rma}", "")) for rma in rmas]
    try:
        outcomes = approve_refunds(
            get_session(), picks, current_user._get_current_object(), provider, _threshold(), _settings()
        )
    except (InvalidInput, NotFound) as exc:
        get_session().rollback()
        return _queue_page(bulk_error=exc.render(gettext)), 422 if isinstance(exc, InvalidInput) else 404
    rows = []
    for o in outcomes:
        if o.refund is not None:
            message = gettext(
                "Approved: %(refund)s to the payment method, %(credit)s as store credit. Execute it when ready.",
                refund=money_text(o.refund.amount, o.refund.currency),
                credit=money_text(o.refund.store_credit, o.refund.currency),
            )
        elif o.outcome == "stale":
            message = gettext("Not approved: the refund changed since you looked at it. Check it and approve again.")
        else:
            message = gettext("Not approved: %(why)s", why=o.error.render(gettext) if o.error else "")
        rows.append((o.rma, o.outcome, message))
    approved = sum(1 for o in outcomes if o.refund is not None)
    summary = ngettext(
        "%(approved)d of %(num)d refund approved.",
        "%(approved)d of %(num)d refunds approved.",
        len(outcomes),
        approved=approved,
    )
    return render_template("finance/bulk.html", rows=rows, summary=summary)


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


def _bad_request(message: str):
    return render_template("errors/error.html", code=400, message=message), 400


@bp.get("/export.csv")
@staff_required(*CAN_REFUND)
def export():
    """Daily totals by payment method, currency and kind (``from`` and ``to`` are days, the last 30 by default)."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        start = _day(request.args.get("from"), today - timedelta(days=30))
        end = _day(request.args.get("to"), today) + timedelta(days=1)
    except ValueError:
        return _bad_request(gettext("Enter the days as YYYY-MM-DD, for example 2026-03-31."))
    body = reconciliation_csv(ledger_rows(get_session(), start, end))
    record_export(
        get_session(), current_user.id, "reconciliation", f"{start:%Y-%m-%d}..{end - timedelta(days=1):%Y-%m-%d}"
    )
    return _csv(body, f"reconciliation-{start:%Y%m%d}-{end - timedelta(days=1):%Y%m%d}.csv")


def _day(value: str | None, default: datetime) -> datetime:
    return datetime.combine(parse_day(value), time(), tzinfo=UTC) if value else default


def _csv(body: str, filename: str):
    return (
        body,
        200,
        {"Content-Type": "text/csv; charset=utf-8", "Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _ledger_filter(form: LedgerFilterForm) -> LedgerFilter:
    """The filter a valid form asks for; one day, today (UTC) when none is given."""
    return LedgerFilter(
        day=form.chosen_day(datetime.now(UTC).date()),
        method=(form.method.data or "").strip() or None,
        provider=form.provider.data or None,
        kind=form.kind.data or None,
    )


@bp.get("/ledger")
@staff_required(*CAN_REFUND)
def ledger():
    """Every money movement of one day, filtered by payment method, provider and kind, beside that
    day's totals; the same rows download as CSV."""
    form = LedgerFilterForm(formdata=request.args)
    if not form.validate():
        return render_template(
            "finance/ledger.html", form=form, movements=[], totals=[], day=None, kinds=LEDGER_KINDS
        ), 400
    wanted = _ledger_filter(form)
    session = get_session()
    return render_template(
        "finance/ledger.html",
        form=form,
        day=wanted.day,
        movements=ledger_movements(session, wanted),
        totals=day_totals(session, wanted.day),
        kinds=LEDGER_KINDS,
        csv_args={k: v for k, v in request.args.items() if k in ("day", "method", "provider", "kind") and v},
    )


@bp.get("/ledger.csv")
@staff_required(*CAN_REFUND)
def ledger_export():
    """The reconciliation: one row per money movement of the day, with the ledger page's filters."""
    form = LedgerFilterForm(formdata=request.args)
    if not form.validate():
        errors = [error for field in form for error in field.errors]
        return _bad_request(" ".join(str(e) for e in errors))
    wanted = _ledger_filter(form)
    body = movements_csv(ledger_movements(get_session(), wanted))
    record_export(get_session(), current_user.id, "ledger", f"{wanted.day:%Y-%m-%d}")
    return _csv(body, f"ledger-{wanted.day:%Y%m%d}.csv")
