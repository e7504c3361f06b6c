"""Carriers: a small interface, and the built-in in-house courier that issues its own codes.

A real carrier's API cannot be reached from here; an adapter for one implements
the same three calls. Tracking events come back through the signed
``POST /api/v1/carrier-events`` endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class CarrierError(Exception):
    """The carrier refused or could not be reached; nothing was booked or cancelled."""


@dataclass(frozen=True)
class PickupRequest:
    rma: str
    ship_from: tuple[str, ...]
    return_to: tuple[str, ...]
    parcels: int = 1


@dataclass(frozen=True)
class Booking:
    carrier: str
    pickup_code: str


class Carrier(Protocol):
    name: str

    def request_pickup(self, request: PickupRequest, code: str) -> Booking: ...

    def cancel(self, pickup_code: str) -> None:
        """Call off a booked pickup; raises CarrierError when the carrier cannot."""
        ...

    def tracking_events(self, pickup_code: str) -> list[dict]: ...


class InHouseCourier:
    """Our own couriers: the portal's pickup code is the booking; events arrive by the API."""

    name = "in-house"

    def request_pickup(self, request: PickupRequest, code: str) -> Booking:
        return Booking(self.name, code)

    def cancel(self, pickup_code: str) -> None:
        # Our couriers work from the portal's own records: a cancelled request's code is refused
        # when they scan it (carrier events answer 409), so there is nothing to call off elsewhere.
        return None

    def tracking_events(self, pickup_code: str) -> list[dict]:
        return []


CARRIERS: dict[str, Carrier] = {"in-house": InHouseCourier()}


def carrier_from_config(config) -> Carrier:
    return CARRIERS[config.get("CARRIER", "in-house")]
