"""A refund left "processing" by a process that died: the gateway is asked by the idempotency key
and the outcome is recorded exactly once (paid), or the refund is marked failed and retryable
(never paid). The first case is produced by SIGKILLing a real process between the gateway's
payment and its commit."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select, update

from portal.adapters.payments import SandboxGateway
from portal.db.models import LedgerEntry, OutboxMessage, Refund, ReturnRequest, SandboxPayment
from portal.domain.states import RefundStatus
from portal.services.refunds import (
    approve_refund,
    execute_refund,
    preview_refund,
    resolve_stuck_refund,
    resolve_stuck_refunds,
    retry_refund,
)
from portal.services.staff import create_staff
from tests.helpers import PASSWORD, csrf_token, inspected, sign_in, soup

THRESHOLD = Decimal("1000")

DIES_AFTER_PAYING = """
import os, signal, sys
from sqlalchemy.orm import sessionmaker
from portal import crypto
from portal.adapters.payments import SandboxGateway
from portal.db import make_engine
from portal.services.refunds import execute_refund

crypto.install(crypto.parse_keyring(sys.argv[3]))  # the order's details are encrypted
factory = sessionmaker(make_engine(sys.argv[1]), expire_on_commit=False)


class DiesAfterPaying(SandboxGateway):
    def refund(self, *args, **kwargs):
        result = super().refund(*args, **kwargs)  # the provider has paid and said so
        os.kill(os.getpid(), signal.SIGKILL)  # the process dies before it records anything
        return result


execute_refund(factory, int(sys.argv[2]), DiesAfterPaying(factory))
"""


def factory(app):
    return app.extensions["portal.sessionmaker"]


def approved_refund(app, client, session, number: str = "ST-1") -> Refund:
    request = inspected(app, client, session, number=number)
    finance = create_staff(session, f"fin-{number.lower()}@example.com", "Fay", "finance", PASSWORD)
    return approve_refund(session, request, finance, preview_refund(session, request).basis_hash, "sandbox", THRESHOLD)


def topics(session, channel: str) -> list[str]:
    key = "topic" if channel == "webhook" else "template"
    return [m.payload[key] for m in session.scalars(select(OutboxMessage).where(OutboxMessage.channel == channel))]


def age(session, refund_id: int, minutes: int) -> None:
    """Move the claim back in time, as if the process had died that long ago."""
    session.execute(
        update(Refund)
        .where(Refund.id == refund_id)
        .values(processing_since=datetime.now(UTC) - timedelta(minutes=minutes))
    )
    session.commit()


def test_a_process_killed_after_the_gateway_paid_is_settled_once(app, client, session):
    refund = approved_refund(app, client, session)
    killed = subprocess.run(
        [sys.executable, "-c", DIES_AFTER_PAYING, app.config["DATABASE_URL"], str(refund.id), app.config["DATA_KEY"]],
        capture_output=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    session.expire_all()
    assert session.get(Refund, refund.id).status == RefundStatus.PROCESSING
    assert session.scalar(select(func.count(SandboxPayment.id))) == 1  # paid at the provider...
    assert session.scalar(select(func.count(LedgerEntry.id))) == 0  # ...and nothing recorded here
    assert "refund.succeeded" not in topics(session, "webhook")

    # Too recent to judge: the attempt might still be running, so neither the job nor the button acts.
    assert resolve_stuck_refunds(factory(app), lambda _: SandboxGateway(factory(app))) == []
    assert resolve_stuck_refund(factory(app), refund.id, SandboxGateway(factory(app))).outcome == "running"
    age(session, refund.id, minutes=10)

    # Finance sees it as interrupted and asks the provider.
    create_staff(session, "fin@example.com", "Fin", "finance", PASSWORD)
    sign_in(client, "fin@example.com")
    page = soup(client.get("/finance/"))
    button = page.select_one(f'form[action="/finance/refunds/{refund.id}/resolve"]')
    assert button is not None and "interrupted" in page.get_text(" ")
    answered = client.post(
        f"/finance/refunds/{refund.id}/resolve", data={"csrf_token": csrf_token(str(page))}, follow_redirects=True
    )
    assert "The provider had paid it" in answered.get_data(as_text=True)

    session.expire_all()
    settled = session.get(Refund, refund.id)
    assert settled.status == RefundStatus.SUCCEEDED and settled.provider_ref.startswith("SBX-")
    assert session.scalars(select(LedgerEntry.amount)).all() == [settled.amount]
    assert topics(session, "webhook").count("refund.succeeded") == 1
    assert topics(session, "email").count("return_refunded") == 1
    assert session.get(ReturnRequest, settled.request_id).status == "refunded"

    # The periodic job finds nothing more to do; asking again changes nothing.
    assert resolve_stuck_refunds(factory(app), lambda _: SandboxGateway(factory(app))) == []
    assert resolve_stuck_refund(factory(app), refund.id, SandboxGateway(factory(app))).outcome == "succeeded"
    assert session.scalar(select(func.count(LedgerEntry.id))) == 1
    assert session.scalar(select(func.count(SandboxPayment.id))) == 1


def test_an_attempt_interrupted_before_paying_becomes_failed_and_retryable(app, client, session):
    refund = approved_refund(app, client, session)
    session.execute(
        update(Refund).where(Refund.id == refund.id).values(status=RefundStatus.PROCESSING.value, attempts=1)
    )
    session.commit()
    age(session, refund.id, minutes=10)
    results = resolve_stuck_refunds(factory(app), lambda _: SandboxGateway(factory(app)))
    assert [(r.refund_id, r.outcome) for r in results] == [(refund.id, "failed")]
    session.expire_all()
    assert "retry" in session.get(Refund, refund.id).last_error
    assert session.scalar(select(func.count(LedgerEntry.id))) == 0
    retry_refund(session, refund.id)
    done = execute_refund(factory(app), refund.id, SandboxGateway(factory(app)))
    assert done.status == RefundStatus.SUCCEEDED
    assert session.scalar(select(func.count(LedgerEntry.id))) == 1


def test_a_slow_attempt_finishing_after_the_resolver_records_nothing_twice(app, client, session):
    refund = approved_refund(app, client, session)

    class SlowGateway(SandboxGateway):
        def refund(self, *args, **kwargs):
            result = super().refund(*args, **kwargs)
            # While this attempt waits for its answer, the resolver settles the refund.
            assert (
                resolve_stuck_refund(
                    factory(app), refund.id, SandboxGateway(factory(app)), older_than=timedelta(0)
                ).outcome
                == "succeeded"
            )
            return result

    done = execute_refund(factory(app), refund.id, SlowGateway(factory(app)))
    assert done.status == RefundStatus.SUCCEEDED
    session.expire_all()
    assert session.scalar(select(func.count(LedgerEntry.id))) == 1
    assert topics(session, "webhook").count("refund.succeeded") == 1


def test_when_the_gateway_cannot_say_the_refund_is_left_for_later(app, client, session):
    from portal.adapters.payments import GatewayError

    class Unreachable(SandboxGateway):
        def lookup(self, key):
            raise GatewayError("provider unreachable")

    refund = approved_refund(app, client, session)
    session.execute(update(Refund).where(Refund.id == refund.id).values(status=RefundStatus.PROCESSING.value))
    session.commit()
    age(session, refund.id, minutes=10)
    assert resolve_stuck_refund(factory(app), refund.id, Unreachable(factory(app))).outcome == "unknown"
    session.expire_all()
    assert session.get(Refund, refund.id).status == RefundStatus.PROCESSING
