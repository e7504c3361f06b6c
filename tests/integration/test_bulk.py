"""``portal.db.bulk``: ``insert_rows`` (new rows, with COPY on PostgreSQL), ``update_rows`` (many rows, each to its own values, in one statement on
PostgreSQL, an ``UPDATE ... FROM unnest(...)``, and the ORM's bulk UPDATE elsewhere; column types
apply) and ``among`` (``IN``, as ``= ANY(:array)`` on PostgreSQL)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, func, select, text

from portal.db.bulk import among, insert_rows, update_rows
from portal.db.models import OutboxMessage


def _messages(session, n: int) -> list[int]:
    # Added directly, not enqueued: nothing is to deliver them meanwhile.
    rows = [
        OutboxMessage(event_id=str(uuid.uuid4()), channel="email", topic="t", payload={"to": f"s{i}@example.com"})
        for i in range(n)
    ]
    session.add_all(rows)
    session.commit()
    return [row.id for row in rows]


def test_each_row_takes_its_own_values_in_one_statement(session):
    ids = _messages(session, 4)
    at = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    statements: list[tuple[str, bool]] = []
    bind = session.get_bind()

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE"):
            statements.append((statement, executemany))

    event.listen(bind, "before_cursor_execute", count)
    try:
        update_rows(
            session,
            OutboxMessage,
            [
                {"id": ids[0], "attempts": 3, "available_at": at, "payload": {"to": "first@example.com"}},
                {"id": ids[2], "attempts": 5, "available_at": at + timedelta(hours=1), "payload": {"to": "3rd"}},
            ],
        )
    finally:
        event.remove(bind, "before_cursor_execute", count)
    session.commit()
    session.expire_all()

    assert len(statements) == 1  # one UPDATE for both rows
    if bind.dialect.name == "postgresql":  # one statement with one parameter set, not an executemany
        assert "unnest" in statements[0][0] and statements[0][1] is False
    else:
        assert statements[0][1] is True
    got = {m.id: m for m in session.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(ids)))}
    assert (got[ids[0]].attempts, got[ids[0]].available_at, got[ids[0]].payload) == (
        3,
        at,
        {"to": "first@example.com"},
    )
    assert (got[ids[2]].attempts, got[ids[2]].available_at, got[ids[2]].payload) == (
        5,
        at + timedelta(hours=1),
        {"to": "3rd"},
    )
    # The rows not named are as they were.
    assert [got[i].attempts for i in (ids[1], ids[3])] == [0, 0]
    assert got[ids[1]].payload == {"to": "s1@example.com"}
    # The sealed column was sealed on the way in: the stored text does not show the address.
    stored = session.execute(text("SELECT payload FROM outbox WHERE id = :id"), {"id": ids[0]}).scalar_one()
    assert "first@example.com" not in stored


def test_rows_must_name_the_same_columns_with_the_key(session):
    ids = _messages(session, 2)
    with pytest.raises(ValueError, match="same columns"):
        update_rows(session, OutboxMessage, [{"id": ids[0], "attempts": 1}, {"id": ids[1], "topic": "x"}])
    with pytest.raises(ValueError, match="'id'"):
        update_rows(session, OutboxMessage, [{"attempts": 1}])
    update_rows(session, OutboxMessage, [])  # nothing to do
    session.rollback()
    assert [m.attempts for m in session.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(ids)))] == [0, 0]


def test_a_naive_time_is_refused(session):
    ids = _messages(session, 1)
    with pytest.raises(Exception, match="naive datetime"):
        update_rows(session, OutboxMessage, [{"id": ids[0], "available_at": datetime(2026, 1, 1)}])
    session.rollback()


def test_among_is_in_with_one_array_on_postgresql(session):
    ids = _messages(session, 5)
    statements: list[str] = []
    bind = session.get_bind()

    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    def found(values, negate=False):
        condition = among(session, OutboxMessage.id, values)
        stmt = select(OutboxMessage.id).where(OutboxMessage.id.in_(ids), ~condition if negate else condition)
        return sorted(session.scalars(stmt))

    event.listen(bind, "before_cursor_execute", seen)
    try:
        assert found([ids[0], ids[3]]) == [ids[0], ids[3]]
        assert found({ids[1], ids[2], ids[4], -1}) == [ids[1], ids[2], ids[4]]
        assert found([ids[0], ids[3]], negate=True) == [ids[1], ids[2], ids[4]]
        assert found([]) == [] and found([], negate=True) == ids
    finally:
        event.remove(bind, "before_cursor_execute", seen)
    if bind.dialect.name == "postgresql":
        # The same text whatever the number of values: one array parameter, not one placeholder each.
        assert "ANY" in statements[0] and statements[0] == statements[1]


def test_new_rows_go_in_with_their_types_and_defaults(session):
    """``insert_rows``: COPY on PostgreSQL, executemany elsewhere; the same rows either way."""
    before = datetime.now(UTC) - timedelta(seconds=1)
    at = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    rows = [
        {"event_id": str(uuid.uuid4()), "channel": "email", "topic": "t", "payload": {"to": "a@example.com"}},
        # Text that COPY must escape, a time of the row's own, a JSON null.
        {
            "event_id": str(uuid.uuid4()),
            "channel": "email",
            "topic": "tab\there\nnewline \\ backslash",
            "payload": {"to": "b@example.com", "n": None, "zh": "退货"},
        },
    ]
    bind = session.get_bind()
    inserts: list[bool] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT"):
            inserts.append(executemany)

    event.listen(bind, "before_cursor_execute", seen)
    try:
        insert_rows(session, OutboxMessage, rows)
        insert_rows(session, OutboxMessage, [])  # nothing to do
    finally:
        event.remove(bind, "before_cursor_execute", seen)
    # PostgreSQL: COPY on the driver's own cursor, no INSERT at all; SQLite: one executemany.
    assert inserts == ([] if bind.dialect.name == "postgresql" else [True])
    with pytest.raises(ValueError, match="same columns"):
        insert_rows(session, OutboxMessage, [rows[0], {"event_id": "x", "channel": "email"}])
    session.commit()
    got = {m.event_id: m for m in session.scalars(select(OutboxMessage))}
    first, second = got[rows[0]["event_id"]], got[rows[1]["event_id"]]
    assert (first.channel, first.topic, first.payload) == ("email", "t", {"to": "a@example.com"})
    assert second.topic == "tab\there\nnewline \\ backslash"
    assert second.payload == {"to": "b@example.com", "n": None, "zh": "退货"}
    # The columns' defaults filled what the rows left out.
    for message in (first, second):
        assert message.attempts == 0 and message.sent_at is None
        assert before <= message.created_at <= datetime.now(UTC) and message.available_at >= before
    # Sealed on the way in.
    stored = session.execute(text("SELECT payload FROM outbox WHERE id = :id"), {"id": first.id}).scalar_one()
    assert "a@example.com" not in stored
    # A time given is kept; a naive one is refused and nothing is written.
    timed = {**rows[0], "event_id": str(uuid.uuid4()), "available_at": at}
    insert_rows(session, OutboxMessage, [timed])
    session.commit()
    assert (
        session.scalars(select(OutboxMessage.available_at).where(OutboxMessage.event_id == timed["event_id"])).one()
        == at
    )
    with pytest.raises(Exception, match="naive datetime"):
        insert_rows(
            session, OutboxMessage, [{**timed, "event_id": str(uuid.uuid4()), "available_at": datetime(2026, 1, 1)}]
        )
    session.rollback()
    assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 3
