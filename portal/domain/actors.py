"""Who did something: a kind and, for people and outside systems, an id. Stored as two columns."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ActorKind(StrEnum):
    SHOPPER = "shopper"
    STAFF = "staff"
    POLICY = "policy"  # the return policy decided on its own
    SYSTEM = "system"  # routing, assignment, background jobs
    SLA = "sla"  # the escalation ladder
    CARRIER = "carrier"  # a courier's tracking event
    SHOP = "shop"  # the shop system through the API
    CLASSIFIER = "classifier"  # the wear model's opinion
    PAYMENT = "payment"  # a payment provider's result


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ActorKind(self.kind))

    @classmethod
    def staff(cls, staff_id: int) -> Actor:
        return cls(ActorKind.STAFF, str(staff_id))

    @classmethod
    def carrier(cls, name: str) -> Actor:
        return cls(ActorKind.CARRIER, name)

    @classmethod
    def payment(cls, provider: str) -> Actor:
        return cls(ActorKind.PAYMENT, provider)

    @property
    def staff_id(self) -> int | None:
        """The staff account's id, or None when the actor is not a person on staff."""
        if self.kind is ActorKind.STAFF and self.id is not None and self.id.isdigit():
            return int(self.id)
        return None

    @property
    def is_staff(self) -> bool:
        return self.kind is ActorKind.STAFF

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.id}" if self.id else self.kind.value


SHOPPER = Actor(ActorKind.SHOPPER)
POLICY = Actor(ActorKind.POLICY)
SYSTEM = Actor(ActorKind.SYSTEM)
SLA = Actor(ActorKind.SLA)
SHOP = Actor(ActorKind.SHOP)
CLASSIFIER = Actor(ActorKind.CLASSIFIER)

__all__ = ["Actor", "ActorKind", "SHOPPER", "POLICY", "SYSTEM", "SLA", "SHOP", "CLASSIFIER"]
