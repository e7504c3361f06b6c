"""Warehouse: scan a parcel (scanner, phone camera or typing), then count and grade what arrived."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_login import current_user
from sqlalchemy import select

from portal.adapters.carriers import carrier_from_config
from portal.db import get_session
from portal.db.models import ReturnRequest
from portal.domain.lifecycle import IllegalTransition
from portal.domain.reasons import REASONS
from portal.domain.receiving import SCAN_MESSAGES, ReceiptError, ScanOutcome
from portal.domain.roles import CAN_RECEIVE
from portal.domain.tracking import TrackingEvent
from portal.services import Conflict
from portal.services.receiving import RECEIVABLE, ParcelNotFound, find_parcel, receive_parcel, scan_result
from portal.services.shipping import DuplicateEvent, UnknownPickup, record_tracking_event
from portal.storage import StorageError, store_from_config
from portal.vision.intake import CleanPhoto, PhotoRejected, clean_photo
from portal.web.auth import staff_required
from portal.web.warehouse.forms import ReceiveForm

bp = Blueprint("warehouse", __name__, url_prefix="/warehouse")


@bp.get("/")
@staff_required(*CAN_RECEIVE)
def scan():
    code = (request.args.get("code") or "").strip()
    if not code:
        return render_template("warehouse/scan.html", code="", result=None)
    try:
        parcel = find_parcel(get_session(), code)
    except ParcelNotFound as exc:
        status = 422 if exc.reason == "mistyped" else 404
        return render_template("warehouse/scan.html", code=code, result=exc.reason), status
    outcome = scan_result(parcel)
    if outcome != ScanOutcome.RECEIVE:
        message, tone = SCAN_MESSAGES[outcome]
        page = render_template(
            "warehouse/scan.html", code=code, result=outcome.value, parcel=parcel, message=message, tone=tone
        )
        return page, 409
    # "scanned" lets the parcel page confirm the scan with a sound.
    return redirect(url_for("warehouse.parcel", rma=parcel.rma, scanned=1), code=303)


@bp.post("/pickups")
@staff_required(*CAN_RECEIVE)
def pickup():
    """The in-house courier collected a parcel: the same tracking event a carrier would send."""
    if not ReceiveForm().validate_on_submit():
        abort(400)
    code = (request.form.get("code") or "").strip()[:64]
    event = TrackingEvent(
        f"inhouse-{uuid.uuid4().hex}", code, "picked_up", datetime.now(UTC), (request.form.get("location") or "")[:128]
    )
    try:
        req = record_tracking_event(get_session(), event, carrier_from_config(current_app.config).name)
    except (UnknownPickup, DuplicateEvent):
        flash(gettext("No parcel with that pickup code."), "warning")
        return redirect(url_for("warehouse.scan"), code=303)
    flash(gettext("Pickup recorded: %(rma)s is on its way.", rma=req.rma), "success")
    return redirect(url_for("warehouse.scan"), code=303)


def _parcel(rma: str) -> ReturnRequest:
    req = get_session().scalars(select(ReturnRequest).where(ReturnRequest.rma == rma)).one_or_none()
    if req is None:
        abort(404)
    return req


def _read_photos(form: ReceiveForm) -> tuple[dict[int, list], bool]:
    """Clean each line's uploads; a refused photo's reason goes beside that line's photo field."""
    max_bytes = current_app.config["MAX_PHOTO_BYTES"]
    photos: dict[int, list[CleanPhoto]] = {}
    refused = False
    for entry in form.lines.entries:
        uploads = [u for u in entry.photos.data or [] if u and u.filename]
        for upload in uploads[: current_app.config["MAX_PHOTOS_PER_LINE"]]:
            try:
                photos.setdefault(entry.line.id, []).append(
                    clean_photo(upload.stream.read(max_bytes + 1), upload.filename, max_bytes)
                )
            except PhotoRejected as exc:
                refused = form.show_error(entry.line.id, "photos", exc.message.render(gettext)) or refused
    return photos, refused


@bp.route("/parcels/<rma>", methods=["GET", "POST"])
@staff_required(*CAN_RECEIVE)
def parcel(rma: str):
    req = _parcel(rma)
    form = ReceiveForm(status=req.status)
    form.fill(req.accepted_lines)
    error, status = None, 200
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400)
        lines, findings = form.receipt()
        photos, refused = _read_photos(form)
        if refused:
            return _parcel_page(req, form, None, 422)
        try:
            receive_parcel(
                get_session(),
                req,
                current_user.id,
                lines,
                findings,
                expected_status=form.status.data or None,
                photos=photos,
                store=store_from_config(current_app.config),
            )
        except ReceiptError as exc:
            message = exc.render(gettext)
            if not form.show_error(exc.line_id, exc.field, message):
                error = message
            status = 422
        except StorageError:
            error, status = gettext("Photos could not be saved just now; nothing was recorded. Please try again."), 503
        except (Conflict, IllegalTransition):
            flash(gettext("This parcel was already received, or changed meanwhile. Nothing was saved."), "warning")
            return redirect(url_for("warehouse.parcel", rma=rma), code=303)
        else:
            flash(gettext("Parcel %(rma)s received.", rma=rma), "success")
            return redirect(url_for("warehouse.scan"), code=303)
    return _parcel_page(req, form, error, status)


def _parcel_page(req: ReturnRequest, form: ReceiveForm, error: str | None, status: int):
    return render_template(
        "warehouse/parcel.html",
        req=req,
        form=form,
        error=error,
        receivable=req.status in RECEIVABLE,
        reasons=REASONS,
        scanned=request.method == "GET" and request.args.get("scanned") == "1",
    ), status
