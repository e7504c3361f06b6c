"""Carrier tracking events pushed to ``POST /api/v1/carrier-events``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from portal.domain.orders import FieldError, PayloadError, _Errors, _text, _timestamp
from portal.domain.text import N_

KINDS = ("picked_up", "in_transit", "delivered", "exception")
# Kinds that mean the parcel has left the shopper.
MOVING = frozenset({"picked_up", "in_transit", "delivered"})


@dataclass(frozen=True)
class TrackingEvent:
    event_id: str
    pickup_code: str
    kind: str
    at: datetime
    location: str


def parse_tracking_event(payload: object) -> TrackingEvent:
    """Validate one event; raises PayloadError listing every problem."""
    errs = _Errors()
    if not isinstance(payload, Mapping):
        raise PayloadError([FieldError("", N_("must be a JSON object"))])
    event_id = _text(errs, payload, "event_id", "", required=True, max_length=64)
    code = _text(errs, payload, "pickup_code", "", required=True, max_length=32)
    kind = _text(errs, payload, "kind", "", required=True, max_length=32)
    if kind is not None and kind not in KINDS:
        errs.add("kind", N_("must be one of picked_up, in_transit, delivered, exception"))
    at = _timestamp(errs, payload, "at", "", required=True)
    location = _text(errs, payload, "location", "", required=False, max_length=128) or ""
    if len(errs) or event_id is None or code is None or kind is None or at is None:
        raise PayloadError(errs.items)
    return TrackingEvent(event_id, code, kind, at, location)
