"""Personal data at rest: encrypted in every table, readable through the portal, rotatable.

The dump test runs on the session's database: raw SQLite file bytes by default, ``pg_dump`` of it
when PORTAL_DATABASE_URL is PostgreSQL. The migration test builds its own database at 0027 with
plaintext rows (SQLite always, PostgreSQL when configured).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from portal import create_app, crypto
from portal.cli import main
from portal.db import downgrade, get_engine, make_engine, session_scope, upgrade
from portal.db.models import Order, OutboxMessage, RequestEvent, ReturnLine, ReturnRequest
from portal.demo import demo_orders, seed, seed_requests, seed_staff
from portal.services.keys import rotate_data_key
from tests.helpers import (
    PASSWORD,
    app_config,
    csrf_token,
    login_shopper,
    order_payload,
    post_json,
    scratch_database,
    service_missing,
    sign_in,
    submit_coat,
)

K1 = crypto.new_key("k1")
K2 = crypto.new_key("k2")


def _demo_needles() -> list[str]:
    """Every demo customer's email and phone, as sent and as digits, and their names."""
    out: set[str] = set()
    for _case, payload in demo_orders():
        customer = payload["customer"]
        out |= {customer["email"], customer["phone"], "".join(ch for ch in customer["phone"] if ch.isdigit())}
        out.add(customer["name"])
    return sorted(out)


def _database_bytes(url: str, engine) -> bytes:
    """What a backup would hold: ``pg_dump`` output, or the SQLite file and its write-ahead log."""
    if url.startswith("postgresql"):
        if shutil.which("pg_dump") is None:
            service_missing("pg_dump is not installed")
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        return subprocess.run(["pg_dump", "--no-owner", "-d", dsn], capture_output=True, check=True).stdout
    path = Path(make_url(url).database or "")
    data = path.read_bytes()
    wal = path.with_name(path.name + "-wal")
    return data + (wal.read_bytes() if wal.exists() else b"")


def test_a_dump_of_the_demo_data_holds_no_customer_email_phone_or_name(app, database_url, engine):
    with app.app_context(), session_scope(app) as session:
        seed(session)
        seed_staff(session)
        assert seed_requests(app, session) > 0
    dump = _database_bytes(database_url, engine)
    assert b"DEMO-1001" in dump  # the dump is of the right database, and holds the orders
    needles = _demo_needles()
    assert len(needles) > 100
    found = [n for n in needles if n.encode() in dump]
    assert found == []

    # The portal reads them back as they were sent.
    with session_scope(app) as session:
        orders = {o.order_number: o for o in session.scalars(select(Order))}
        for _case, payload in demo_orders():
            order = orders[payload["order_number"]]
            customer = payload["customer"]
            assert (order.customer_name, order.customer_email, order.customer_phone, order.customer_postcode) == (
                customer["name"],
                customer["email"],
                customer["phone"],
                customer["postcode"],
            )
        # Emails waiting in the outbox are encrypted too, and read back whole.
        mails = [m.payload for m in session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "email"))]
        assert mails and all("@" in m["to"] for m in mails)


def test_staff_see_the_decrypted_details_and_find_the_shopper_by_email_and_phone(app, client, desk, session):
    rma = submit_coat(app, "HV-1", email="Wang.Fang@Example.com")
    raw = session.execute(text("SELECT customer_email, customer_phone FROM shop_order")).one()
    assert (
        "wang" not in raw.customer_email
        and "0000" not in raw.customer_phone
        and raw.customer_email.startswith(crypto.keyring().current.id + ":")
    )
    sign_in(client, "agent@example.com", PASSWORD)
    detail = client.get(f"/staff/requests/{rma}")
    assert detail.status_code == 200
    revealed = client.post(
        f"/staff/requests/{rma}/contact", data={"csrf_token": csrf_token(detail), "reason": "shopper called"}
    )
    shown = revealed.get_data(as_text=True)
    assert revealed.status_code == 200 and "wang.fang@example.com" in shown and "+86 138 0000 0000" in shown
    for q in ("wang.fang@example.com", "WANG.FANG@EXAMPLE.COM"):
        assert rma in client.get(f"/staff/queue?view=all&q={q}").get_data(as_text=True)
    # Part of an address no longer finds it: the database cannot look inside an encrypted value.
    assert rma not in client.get("/staff/queue?view=all&q=wang.fang").get_data(as_text=True)


def test_shopper_lookup_matches_the_blind_index_in_any_spelling(client):
    assert (
        post_json(
            client, "/api/v1/orders", order_payload("SO-7", email="Li.Wei@Example.com", postcode="sw1a 1aa")
        ).status_code
        == 201
    )
    assert login_shopper(client, number="SO-7", contact="  li.wei@EXAMPLE.com ").status_code == 303
    other = client.application.test_client()
    assert login_shopper(other, number="SO-7", contact="SW1A1AA").status_code == 303
    # A wrong contact and an unknown order get the same answer.
    wrong = login_shopper(client.application.test_client(), number="SO-7", contact="li.wei@example.org")
    unknown = login_shopper(client.application.test_client(), number="SO-8", contact="li.wei@example.com")
    assert wrong.status_code == unknown.status_code == 422


def _app_with(tmp_path: Path, database_url: str, data_key: str, name: str):
    return create_app(app_config(tmp_path / name, database_url, DATA_KEY=data_key))


def _sealed_ids(session) -> set[str | None]:
    """The key ids of every sealed value in the order, request, line and event tables."""
    ids: set[str | None] = set()
    for sql in (
        "SELECT customer_name, customer_email, customer_phone, customer_postcode FROM shop_order",
        "SELECT customer_email FROM return_request",
        "SELECT comment FROM return_line WHERE comment <> ''",
        "SELECT payload FROM outbox",
    ):
        for row in session.execute(text(sql)):
            ids |= {crypto.sealed_key_id(v) for v in row if v}
    return ids


def test_rotation_moves_every_value_to_the_new_key_in_batches_and_is_resumable(tmp_path, database_url, engine, desk):
    first = _app_with(tmp_path, database_url, K1, "one")
    for n in range(5):
        submit_coat(first, f"RO-{n}", email=f"rot{n}@example.com")
    get_engine(first).dispose()

    # Every host gets the new ring (new key first, old key kept), then the rotation runs.
    second = _app_with(tmp_path, database_url, f"{K2},{K1}", "two")
    with session_scope(second) as session:
        assert _sealed_ids(session) == {"k1"}

    class Interrupted(Exception):
        pass

    def stop_after_first_batch(table, report):
        if table == "shop_order":
            raise Interrupted

    with pytest.raises(Interrupted):
        rotate_data_key(
            get_engine(second), second.extensions["portal.keyring"], batch=2, progress=stop_after_first_batch
        )
    with session_scope(second) as session:
        rows = session.execute(text("SELECT customer_email FROM shop_order ORDER BY id")).scalars().all()
        assert [crypto.sealed_key_id(v) for v in rows] == ["k2", "k2", "k1", "k1", "k1"]  # the first batch stayed

    reports = rotate_data_key(get_engine(second), second.extensions["portal.keyring"], batch=2)
    assert reports["shop_order"].rewritten == 3 and reports["return_request"].rewritten == 5
    again = rotate_data_key(get_engine(second), second.extensions["portal.keyring"], batch=2)
    assert sum(r.rewritten for r in again.values()) == 0
    get_engine(second).dispose()

    # With the old key gone, everything still opens and the shopper still finds the order.
    third = _app_with(tmp_path, database_url, K2, "three")
    with session_scope(third) as session:
        assert _sealed_ids(session) == {"k2"}
        emails = sorted(session.scalars(select(Order.customer_email)))
        assert emails == [f"rot{n}@example.com" for n in range(5)]
        assert {r.customer_email for r in session.scalars(select(ReturnRequest))} == set(emails)
    assert login_shopper(third.test_client(), number="RO-3", contact="ROT3@example.com").status_code == 303
    get_engine(third).dispose()


def test_rotation_seals_plaintext_it_finds(app, session, order):
    # A value written before encryption existed (or by hand): plain text in the column.
    session.execute(text("UPDATE shop_order SET customer_phone = '+44 20 7946 0000', customer_phone_bidx = NULL"))
    session.commit()
    reports = rotate_data_key(get_engine(app), app.extensions["portal.keyring"])
    assert reports["shop_order"].plaintext == 1
    raw = session.execute(text("SELECT customer_phone, customer_phone_bidx FROM shop_order")).one()
    assert "7946" not in raw.customer_phone and raw.customer_phone_bidx
    session.expire_all()
    assert session.scalars(select(Order.customer_phone)).one() == "+44 20 7946 0000"


def test_cli_prints_a_new_key_and_rotates(app, order, monkeypatch, database_url):
    runner = CliRunner()
    result = runner.invoke(main, ["keys", "new", "--id", "k7"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    new = result.output.strip()
    assert crypto.parse_keyring(new).current.id == "k7"
    monkeypatch.setenv("PORTAL_DATABASE_URL", database_url)
    monkeypatch.setenv("PORTAL_INSTANCE_PATH", app.config["INSTANCE_PATH"])
    monkeypatch.setenv("PORTAL_DATA_KEY", f"{new},{app.config['DATA_KEY']}")
    rotated = runner.invoke(main, ["keys", "rotate", "--batch", "10"], catch_exceptions=False)
    assert rotated.exit_code == 0, rotated.output
    assert "current key: k7" in rotated.output and "shop_order: 1 rows, 1 re-encrypted" in rotated.output
    bad = runner.invoke(main, ["keys", "new", "--id", "not ok"])
    assert bad.exit_code == 1 and "a key id is letters" in bad.output


def test_a_bad_data_key_stops_the_start_without_showing_it(tmp_path, database_url, engine):
    with pytest.raises(RuntimeError, match="PORTAL_DATA_KEY: data key 'k1': the key must be 32 bytes") as caught:
        _app_with(tmp_path, database_url, "k1:c2hvcnRrZXk=", "bad")
    assert "c2hvcnRrZXk" not in str(caught.value)


def test_embedded_mode_generates_the_key_once_in_the_instance_folder(tmp_path, database_url, engine):
    overrides = {"TESTING": True, "INSTANCE_PATH": str(tmp_path / "inst"), "DATABASE_URL": database_url}
    first = create_app(overrides)
    key_file = tmp_path / "inst" / "data_key"
    assert key_file.exists() and oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert create_app(overrides).config["DATA_KEY"] == first.config["DATA_KEY"] == key_file.read_text()
    crypto.parse_keyring(first.config["DATA_KEY"])


def test_scaled_mode_refuses_to_start_without_a_data_key(tmp_path, monkeypatch):
    from portal.config import ConfigError

    monkeypatch.delenv("PORTAL_DATA_KEY", raising=False)
    scaled = {
        "TESTING": True,
        "INSTANCE_PATH": str(tmp_path / "scaled"),
        "JOBS_MODE": "celery",
        "BROKER_URL": "redis://127.0.0.1:6379/9",
        "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/9",
        "SECRET_KEY": "s",
        "API_SECRET": "a",
        "SMTP_HOST": "mail.example",
        "S3_BUCKET": "photos",
    }
    with pytest.raises(ConfigError, match="PORTAL_DATA_KEY"):
        create_app(scaled)
    assert not (tmp_path / "scaled" / "data_key").exists()


# --- migration 0028 on a database with plaintext rows -------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url_at_0027(request, tmp_path):
    """A database upgraded to 0027 holding an order, a request, a line comment, an event and an
    outbox email in plain text, as a portal before encryption left them."""
    database = scratch_database(request.param, tmp_path, "portal_sealing")
    url = database.__enter__()
    engine = make_engine(url)
    try:
        upgrade(engine, "0027")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO shop_order (id, order_number, placed_at, currency, channel, customer_name,"
                    " customer_email, customer_phone, customer_postcode, payment_method, shipping_paid, gift,"
                    " created_at, updated_at) VALUES (1, 'OLD-1', :t, 'CNY', 'web', 'Zhao Lei',"
                    " 'zhao.lei@example.com', '+86 139 8888 7777', '100080', 'alipay', 0, false, :t, :t)"
                ),
                {"t": "2026-01-02 03:04:05"},
            )
            conn.execute(
                text(
                    "INSERT INTO return_request (id, rma, order_id, status, locale, verdict, decision,"
                    " policy_version, value, returnless, customer_email, created_at, updated_at)"
                    " VALUES (1, 'R-OLD', 1, 'submitted', 'en', 'eligible', '{}', 'v1', 10, false,"
                    " 'zhao.lei@example.com', :t, :t)"
                ),
                {"t": "2026-01-02 03:04:05"},
            )
            conn.execute(
                text(
                    "INSERT INTO order_line (id, order_id, line_id, sku, product_name, variant, category, quantity,"
                    " unit_price, discount, tax, final_sale) VALUES (1, 1, '1', 'TEE-S', 'Tee', 'S', 'tops', 1,"
                    " 10, 0, 0, false)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO return_line (id, request_id, order_line_id, quantity, reason, responsibility,"
                    " comment, outcome, verdict, value, reserved_quantity) VALUES (1, 1, 1, 1, 'size_fit',"
                    " 'customer', 'call me on 13988887777', 'refund', 'eligible', 10, 0)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO request_event (id, request_id, at, actor_kind, kind, note)"
                    " VALUES (1, 1, :t, 'shopper', 'answered', 'it is Zhao Lei here')"
                ),
                {"t": "2026-01-02 03:04:05"},
            )
            conn.execute(
                text(
                    "INSERT INTO outbox (id, event_id, channel, topic, payload, created_at, available_at, attempts)"
                    " VALUES (1, 'e1', 'email', 'return_received', :p, :t, :t, 0)"
                ),
                {"t": "2026-01-02 03:04:05", "p": '{"to": "zhao.lei@example.com", "template": "x"}'},
            )
        yield url, engine
    finally:
        engine.dispose()
        database.__exit__(None, None, None)


def test_migration_0028_encrypts_the_rows_already_stored(url_at_0027, tmp_path):
    url, engine = url_at_0027
    app = _app_with(tmp_path, url, K1, "upgrade")  # the key ring is installed before the upgrade, as `db upgrade` does
    upgrade(get_engine(app))
    with engine.connect() as conn:
        order = conn.execute(text("SELECT * FROM shop_order")).mappings().one()
        comment = conn.execute(text("SELECT comment FROM return_line")).scalar_one()
        note = conn.execute(text("SELECT note FROM request_event")).scalar_one()
        payload = conn.execute(text("SELECT payload FROM outbox")).scalar_one()
    for value in (order["customer_name"], order["customer_email"], order["customer_phone"], comment, note, payload):
        assert crypto.sealed_key_id(value) == "k1", value
    assert order["customer_email_bidx"] == crypto.blind_index(crypto.parse_keyring(K1), "email", "zhao.lei@example.com")
    with session_scope(app) as session:
        old = session.scalars(select(Order)).one()
        assert (old.customer_name, old.customer_email, old.customer_phone, old.customer_postcode) == (
            "Zhao Lei",
            "zhao.lei@example.com",
            "+86 139 8888 7777",
            "100080",
        )
        assert session.scalars(select(ReturnLine.comment)).one() == "call me on 13988887777"
        assert session.scalars(select(RequestEvent.note)).one() == "it is Zhao Lei here"
        assert session.scalars(select(OutboxMessage)).one().payload == {"to": "zhao.lei@example.com", "template": "x"}
    # The shopper finds the old order by its postcode through the blind index the migration wrote.
    assert login_shopper(app.test_client(), number="OLD-1", contact="100080").status_code == 303
    get_engine(app).dispose()

    # Going back to 0027 decrypts them again.
    downgrade(engine, "0027")
    with engine.connect() as conn:
        row = conn.execute(text("SELECT customer_email, customer_phone FROM shop_order")).one()
        assert tuple(row) == ("zhao.lei@example.com", "+86 139 8888 7777")
        assert conn.execute(text("SELECT payload FROM outbox")).scalar_one() in (
            '{"to": "zhao.lei@example.com", "template": "x"}',
            {"to": "zhao.lei@example.com", "template": "x"},  # PostgreSQL's json column, decoded by the driver
        )


def test_migration_0028_without_a_key_refuses_to_touch_plaintext_rows(url_at_0027, monkeypatch):
    _url, engine = url_at_0027
    monkeypatch.setattr(crypto, "_installed", None)
    with pytest.raises(RuntimeError, match="needs the data key"):
        upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT customer_email FROM shop_order")).scalar_one() == "zhao.lei@example.com"


def test_processes_starting_together_keep_one_generated_key(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from portal.config import _keep_secret

    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: _keep_secret(tmp_path, "data_key", crypto.new_key), range(32)))
    assert keys == {(tmp_path / "data_key").read_text()}
    assert [p.name for p in tmp_path.iterdir()] == ["data_key"]  # nothing left aside
