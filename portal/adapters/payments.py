"""Payment providers for refunds: ``manual`` (made elsewhere, reference recorded) and ``sandbox``.

The sandbox is a simulated gateway for demos and tests. Like a real one it
honours idempotency keys: the same key twice never pays twice. It can be told
to fail, or to time out after paying (the caller then does not know the outcome,
which is exactly when reusing the key matters).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from portal.db.models import SandboxPayment


class GatewayError(Exception):
    """The provider refused or failed; nothing is known to have been paid."""


class GatewayTimeout(GatewayError):
    """No answer in time: the refund may or may not have been made; retry with the same key."""


@dataclass(frozen=True)
class PaymentResult:
    reference: str


class PaymentGateway(Protocol):
    name: str

    def refund(
        self, key: str, amount: Decimal, currency: str, payment_reference: str, manual_reference: str | None = None
    ) -> PaymentResult: ...

    def lookup(self, key: str) -> PaymentResult | None:
        """The refund made under this idempotency key, or None when none was made.
        Raises GatewayError when the provider cannot say."""
        ...


class ManualPayments:
    name = "manual"

    def refund(self, key, amount, currency, payment_reference, manual_reference=None) -> PaymentResult:
        if not (manual_reference or "").strip():
            raise GatewayError("record the reference of the refund made elsewhere")
        return PaymentResult(manual_reference.strip()[:128])

    def lookup(self, key: str) -> PaymentResult | None:
        # Paid elsewhere by a person: the portal only knows of it once the reference is recorded,
        # so an interrupted manual refund is not known to be paid; finance retries and enters it.
        return None


class SandboxGateway:
    name = "sandbox"

    def __init__(self, factory: sessionmaker, mode: str = "ok"):
        self.factory = factory
        self.mode = mode  # ok | fail | timeout

    def refund(self, key, amount, currency, payment_reference, manual_reference=None) -> PaymentResult:
        if self.mode == "fail":
            raise GatewayError("card declined (sandbox)")
        with self.factory() as session:
            existing = session.scalars(
                select(SandboxPayment).where(SandboxPayment.idempotency_key == key).with_for_update()
            ).one_or_none()
            if existing is not None:
                existing.calls += 1
                reference = f"SBX-{existing.id}"
                session.commit()
            else:
                payment = SandboxPayment(
                    idempotency_key=key, amount=amount, currency=currency, payment_reference=payment_reference or ""
                )
                session.add(payment)
                session.commit()
                reference = f"SBX-{payment.id}"
        if self.mode == "timeout":
            raise GatewayTimeout("no answer from the sandbox in time")
        return PaymentResult(reference)

    def lookup(self, key: str) -> PaymentResult | None:
        with self.factory() as session:
            payment_id = session.scalar(select(SandboxPayment.id).where(SandboxPayment.idempotency_key == key))
        return None if payment_id is None else PaymentResult(f"SBX-{payment_id}")


def gateway_for(name: str, factory: sessionmaker, sandbox_mode: str = "ok") -> PaymentGateway:
    if name == "manual":
        return ManualPayments()
    if name == "sandbox":
        return SandboxGateway(factory, sandbox_mode)
    raise ValueError(f"unknown payment provider {name!r}")
