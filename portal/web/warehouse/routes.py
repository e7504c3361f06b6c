"""Warehouse: scan a parcel (scanner, phone camera or typing), then count and grade what arrived."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_login import current_user
from sqlalchemy import select

from portal.db import get_session
from portal.db.models import ReturnRequest
from portal.domain.lifecycle import IllegalTransition
from portal.domain.receiving import DISCREPANCIES, DISPOSITIONS, GRADES, Finding, ReceiptError, ReceivedLine
from portal.services import Conflict
from portal.storage import StorageError, store_from_config
from portal.vision.intake import PhotoRejected, clean_photo
from portal.services.receiving import ParcelNotFound, RECEIVABLE, find_parcel, receive_parcel
from portal.domain.roles import CAN_RECEIVE
from portal.web.staff.routes import staff_required
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
    if parcel.status not in RECEIVABLE:
        return render_template("warehouse/scan.html", code=code, result="already", parcel=parcel), 409
    return redirect(url_for("warehouse.parcel", rma=parcel.rma), code=303)


@bp.post("/pickups")
@staff_required(*CAN_RECEIVE)
def pickup():
    """The in-house courier collected a parcel: the same tracking event a carrier would send."""
    import uuid
    from datetime import datetime, timezone

    from portal.adapters.carriers import carrier_from_config
    from portal.domain.tracking import TrackingEvent
    from portal.services.shipping import DuplicateEvent, UnknownPickup, record_tracking_event

    if not ReceiveForm().validate_on_submit():
        abort(400)
    code = (request.form.get("code") or "").strip()[:64]
    event = TrackingEvent(f"inhouse-{uuid.uuid4().hex}", code, "picked_up", datetime.now(timezone.utc),
                          (request.form.get("location") or "")[:128])
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


def _read_form(req: ReturnRequest) -> tuple[list[ReceivedLine], list[Finding]]:
    lines, findings = [], []
    for line in req.lines:
        if line.staff_decision == "rejected":
            continue
        raw = request.form.get(f"qty-{line.id}", "")
        qty = int(raw) if raw.isdigit() else -1
        lines.append(ReceivedLine(line.id, qty, request.form.get(f"grade-{line.id}", ""), request.form.get(f"wear-{line.id}") == "y",
                                  request.form.get(f"disposition-{line.id}", ""), (request.form.get(f"note-{line.id}") or "")[:2000]))
        kind = request.form.get(f"issue-{line.id}", "")
        if kind:
            # Damage concerns the units that arrived; the other problems the units that did not.
            units = max(qty, 0) if kind == "damaged_in_transit" else max(line.quantity - max(qty, 0), 0)
            findings.append(Finding(kind, line.id, units or 1, (request.form.get(f"issue-note-{line.id}") or "")[:2000]))
    extra = (request.form.get("extra") or "").strip()
    if extra:
        findings.append(Finding("extra", None, 1, extra[:2000]))
    return lines, findings


def _read_photos(req: ReturnRequest):
    max_bytes = current_app.config["MAX_PHOTO_BYTES"]
    photos, errors = {}, []
    for line in req.lines:
        for upload in request.files.getlist(f"photos-{line.id}")[: current_app.config["MAX_PHOTOS_PER_LINE"]]:
            if not upload or not upload.filename:
                continue
            try:
                photos.setdefault(line.id, []).append(clean_photo(upload.stream.read(max_bytes + 1), upload.filename, max_bytes))
            except PhotoRejected as exc:
                errors.append(exc.message.render(gettext))
    return photos, errors


@bp.route("/parcels/<rma>", methods=["GET", "POST"])
@staff_required(*CAN_RECEIVE)
def parcel(rma: str):
    req = _parcel(rma)
    form = ReceiveForm()
    error, status = None, 200
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400)
        lines, findings = _read_form(req)
        photos, photo_errors = _read_photos(req)
        try:
            if photo_errors:
                raise ReceiptError("; ".join(photo_errors))
            receive_parcel(get_session(), req, current_user.id, lines, findings, expected_status=request.form.get("status") or None,
                           photos=photos, store=store_from_config(current_app.config))
        except ReceiptError as exc:
            get_session().rollback()
            error, status = str(exc), 422
        except StorageError:
            get_session().rollback()
            error, status = gettext("Photos could not be saved just now; nothing was recorded. Please try again."), 503
        except (Conflict, IllegalTransition):
            flash(gettext("This parcel was already received, or changed meanwhile. Nothing was saved."), "warning")
            return redirect(url_for("warehouse.parcel", rma=rma), code=303)
        else:
            flash(gettext("Parcel %(rma)s received.", rma=rma), "success")
            return redirect(url_for("warehouse.scan"), code=303)
    return render_template("warehouse/parcel.html", req=req, form=form, error=error, GRADES=GRADES, DISPOSITIONS=DISPOSITIONS,
                           DISCREPANCIES=DISCREPANCIES, receivable=req.status in RECEIVABLE), status
