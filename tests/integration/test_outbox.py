"""Outbox delivery: each message is committed as soon as it is sent, and a backlog drains in one run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select

from portal.db.models import OutboxMessage
from portal.services.outbox import LEASE, deliver_pending


def queue(session, n: int) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(n)]
    session.add_all(
        OutboxMessage(event_id=i, channel="email", topic="return_submitted", payload={"to": "a@example.com"})
        for i in ids
    )
    session.commit()
    return ids


def test_a_backlog_drains_in_one_run(session):
    """After a burst (1,200 escalations' emails) one run sends everything, not one batch."""
    queue(session, 1200)
    sent: list[str] = []
    assert deliver_pending(session, lambda m: sent.append(m.event_id)) == (1200, 0)
    assert len(set(sent)) == 1200
    assert session.scalar(select(func.count()).where(OutboxMessage.sent_at.is_(None))) == 0


def test_out_of_time_hands_the_rest_back(session):
    queue(session, 5)
    sent: list[str] = []
    assert deliver_pending(session, lambda m: sent.append(m.event_id), budget_seconds=0) == (0, 0)
    # Nothing leased is left stranded: the next run sends them all at once.
    assert deliver_pending(session, lambda m: sent.append(m.event_id)) == (5, 0)
    assert session.scalar(select(func.max(OutboxMessage.attempts))) == 1


SENDER = textwrap.dedent(
    """
    import os, signal, sys
    from sqlalchemy.orm import Session
    from portal import crypto
    from portal.db import make_engine
    from portal.services.outbox import deliver_pending

    crypto.install(crypto.parse_keyring(sys.argv[3]))  # the outbox payloads are encrypted
    engine = make_engine(sys.argv[1])
    log = open(sys.argv[2], "a")
    count = 0

    def send(message):
        global count
        log.write(message.event_id + "\\n")
        log.flush()
        count += 1
        if count == 5:
            os.kill(os.getpid(), signal.SIGKILL)  # the process dies after the 5th send, before its commit

    with Session(engine) as session:
        deliver_pending(session, send)
    """
)


def test_a_killed_sender_resends_at_most_the_message_in_flight(app, session, database_url, tmp_path):
    ids = queue(session, 10)
    log = tmp_path / "sent.log"
    proc = subprocess.run(
        [sys.executable, "-c", SENDER, database_url, str(log), app.config["DATA_KEY"]], capture_output=True, timeout=120
    )
    assert proc.returncode == -9, proc.stderr.decode()
    first_run = log.read_text().split()
    assert first_run == ids[:5]
    session.expire_all()
    assert session.scalar(select(func.count()).where(OutboxMessage.sent_at.is_not(None))) == 4
    # Once the dead sender's lease has run out, the next run sends the rest: only the 5th twice.
    later = datetime.now(UTC) + LEASE
    with log.open("a") as out:
        sent, failed = deliver_pending(session, lambda m: out.write(m.event_id + "\n"), now=later)
    assert (sent, failed) == (6, 0)
    deliveries = log.read_text().split()
    assert sorted(set(deliveries)) == sorted(ids)
    assert len(deliveries) == 11
