"""The shop system's signed HTTP API (``/api/v1``)."""

from __future__ import annotations

import hmac
import json
import logging
import time
from datetime import UTC, datetime, timedelta

from flask import Blueprint, current_app, jsonify, request

from portal.adapters.carriers import carrier_from_config
from portal.db import get_session
from portal.domain.money import plain_amount
from portal.domain.orders import PayloadError, parse_order, parse_products, parse_redemption
from portal.domain.tracking import parse_tracking_event
from portal.links import return_link
from portal.services.orders import StaleUpdate, upsert_order, upsert_products
from portal.services.refunds import redeem_store_credit
from portal.services.shipping import DuplicateEvent, PickupCancelled, UnknownPickup, record_tracking_event
from portal.services.signatures import first_use_of_signature
from portal.signing import sign  # re-exported: callers import it from here too

bp = Blueprint("api", __name__, url_prefix="/api/v1")
log = logging.getLogger("portal.api")

MAX_SKEW_SECONDS = 300


def _problem(status: int, message: str, errors: list | None = None):
    body: dict[str, object] = {"error": message}
    if errors is not None:
        body["errors"] = errors
    return jsonify(body), status


@bp.before_request
def authenticate():
    length = request.content_length
    limit = current_app.config["API_MAX_BYTES"]
    if length is not None and length > limit:
        return _problem(413, f"body larger than {limit} bytes")
    body = request.get_data(cache=True)
    if len(body) > limit:
        return _problem(413, f"body larger than {limit} bytes")
    timestamp = request.headers.get("X-Portal-Timestamp", "")
    signature = request.headers.get("X-Portal-Signature", "")
    # isdigit() alone accepts "²" and other non-ASCII digits, which int() then refuses.
    if (
        not (timestamp.isascii() and timestamp.isdigit())
        or len(timestamp) > 12
        or abs(time.time() - int(timestamp)) > MAX_SKEW_SECONDS
    ):
        log.warning("api: missing or stale timestamp from %s", request.remote_addr)
        return _problem(401, "missing, malformed or stale X-Portal-Timestamp")
    expected = sign(current_app.config["API_SECRET"], timestamp, body)
    if not hmac.compare_digest(expected, signature):
        log.warning("api: bad signature from %s", request.remote_addr)
        return _problem(401, "bad X-Portal-Signature")
    signed_at = datetime.fromtimestamp(int(timestamp), UTC)
    if not first_use_of_signature(get_session(), expected, signed_at, timedelta(seconds=MAX_SKEW_SECONDS)):
        log.warning("api: replayed signature from %s", request.remote_addr)
        return _problem(409, "request already received (replayed signature)")
    return None


def _json_body():
    try:
        return json.loads(request.get_data(cache=True).decode("utf-8")), None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, _problem(400, "body is not valid JSON", [{"field": "", "message": str(exc)}])
    except ValueError:  # an integer longer than Python's 4,300-digit conversion limit
        return None, _problem(400, "body is not valid JSON", [{"field": "", "message": "number too long"}])
    except RecursionError:
        return None, _problem(400, "body is nested too deeply", [{"field": "", "message": "nested too deeply"}])


@bp.post("/orders")
def push_order():
    payload, error = _json_body()
    if error:
        return error
    try:
        data = parse_order(payload)
    except PayloadError as exc:
        return _problem(400, "invalid order", [e.to_dict() for e in exc.errors])
    try:
        order, created = upsert_order(get_session(), data)
    except StaleUpdate as exc:
        return _problem(409, "stale update", [{"field": "updated_at", "message": exc.render()}])
    cfg = current_app.config
    return jsonify(
        order_number=order.order_number,
        return_link=return_link(cfg["PUBLIC_URL"], cfg["SECRET_KEY"], order.order_number),
        created=created,
    ), (201 if created else 200)


@bp.post("/products")
def push_products():
    payload, error = _json_body()
    if error:
        return error
    try:
        products = parse_products(payload)
    except PayloadError as exc:
        return _problem(400, "invalid products", [e.to_dict() for e in exc.errors])
    try:
        result = upsert_products(get_session(), products)
    except StaleUpdate as exc:
        return _problem(409, "stale update", [{"field": "updated_at", "message": exc.render()}])
    return jsonify(created=result.created, updated=result.updated), 200


@bp.post("/carrier-events")
def carrier_event():
    """A tracking event from the courier; unknown codes are 404 and replays 409, with nothing written."""

    payload, error = _json_body()
    if error:
        return error
    try:
        event = parse_tracking_event(payload)
    except PayloadError as exc:
        return _problem(400, "invalid carrier event", [e.to_dict() for e in exc.errors])
    try:
        request_ = record_tracking_event(get_session(), event, carrier_from_config(current_app.config).name)
    except UnknownPickup:
        return _problem(404, "unknown pickup code")
    except DuplicateEvent:
        return _problem(409, "event already recorded")
    except PickupCancelled:
        return _problem(409, "pickup cancelled: the return was cancelled, do not collect this parcel")
    return jsonify(rma=request_.rma, status=request_.status), 200


@bp.post("/store-credit/redeem")
def redeem_credit():
    """Spend store credit: {"code", "amount", "currency", "reference"}; the same reference twice debits once."""
    payload, error = _json_body()
    if error:
        return error
    try:
        redemption = parse_redemption(payload)
    except PayloadError as exc:
        return _problem(400, "invalid redemption", [e.to_dict() for e in exc.errors])
    credit = redeem_store_credit(
        get_session(), redemption
    )  # an unknown code or a refusal: the DomainError handler answers
    return jsonify(
        code=credit.code, balance=plain_amount(credit.balance, credit.currency), currency=credit.currency
    ), 200
