"""The returns-portal command: import, QR, policy check and replay, schema upgrade, outbox."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from PIL import Image
from sqlalchemy import func, select

from portal.cli import main
from portal.db.models import Order, OutboxMessage, ReturnRequest
from tests.helpers import form_for, login_shopper, order_payload


@pytest.fixture
def cli(app, monkeypatch, database_url):
    """Run the real console entry point against the test database and instance folder."""
    monkeypatch.setenv("PORTAL_INSTANCE_PATH", app.config["INSTANCE_PATH"])
    monkeypatch.setenv("PORTAL_DATABASE_URL", database_url)
    monkeypatch.setenv("PORTAL_SECRET_KEY", app.config["SECRET_KEY"])
    monkeypatch.setenv("PORTAL_API_SECRET", app.config["API_SECRET"])
    runner = CliRunner()

    def run(*args):
        result = runner.invoke(main, list(args), catch_exceptions=False)
        return result

    return run


def test_import_jsonl_reports_rows_and_keeps_good_ones(cli, tmp_path, session):
    good1 = order_payload("IMP-1")
    good2 = order_payload("IMP-2")
    bad = order_payload("IMP-3")
    bad["currency"] = "XYZ"
    path = tmp_path / "orders.jsonl"
    path.write_text("\n".join([json.dumps(good1), "{broken", json.dumps(bad), json.dumps(good2)]) + "\n")
    result = cli("import-orders", str(path))
    assert result.exit_code == 0, result.output
    assert "created 2, updated 0, rejected 2" in result.output
    assert "row 2:" in result.output and "row 3:" in result.output and "currency" in result.output
    assert session.scalar(select(func.count(Order.id))) == 2
    again = cli("import-orders", str(path))
    assert "created 0, updated 2, rejected 2" in again.output


def test_import_csv_groups_lines_by_order(cli, tmp_path, session):
    path = tmp_path / "orders.csv"
    cols = [
        "order_number",
        "placed_at",
        "delivered_at",
        "currency",
        "channel",
        "customer_name",
        "customer_email",
        "customer_phone",
        "customer_postcode",
        "payment_method",
        "payment_reference",
        "shipping_paid",
        "gift",
        "line_id",
        "sku",
        "product_name",
        "variant",
        "category",
        "quantity",
        "unit_price",
        "discount",
        "tax",
        "final_sale",
    ]
    base = [
        "CSV-1",
        "2026-11-01T10:00:00+08:00",
        "2026-11-03T10:00:00+08:00",
        "CNY",
        "tmall",
        "王芳",
        "wang@example.com",
        "",
        "100000",
        "alipay",
        "P-1",
        "0",
        "no",
    ]
    rows = [
        base + ["1", "TEE-S", "T恤", "S", "tops", "1", "99.00", "0", "0", "no"],
        base + ["2", "TEE-L", "T恤", "L", "tops", "2", "99.00", "0", "0", "no"],
        ["CSV-2"] + base[1:] + ["1", "X", "X", "", "tops", "-1", "1.00", "0", "0", "no"],
    ]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(cols)
    writer.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")
    result = cli("import-orders", str(path))
    assert "created 1, updated 0, rejected 1" in result.output, result.output
    assert "row 4:" in result.output and "quantity" in result.output
    order = session.scalars(select(Order)).one()
    assert order.customer_name == "王芳" and len(order.lines) == 2


def test_import_unknown_format_is_a_clear_error(cli, tmp_path):
    path = tmp_path / "orders.xml"
    path.write_text("<orders/>")
    result = cli("import-orders", str(path))
    assert result.exit_code != 0 and "Error" in result.output


@pytest.mark.parametrize("kind,magic", [("--svg", b"<?xml"), ("--png", b"\x89PNG")])
def test_qr_writes_the_signed_link(cli, client, order, tmp_path, kind, magic):
    out = tmp_path / f"qr.{kind[2:]}"
    result = cli("qr", "so-1001", kind, "-o", str(out))
    assert result.exit_code == 0, result.output
    link = result.output.splitlines()[0]
    assert link.startswith("http") and "/r/" in link
    assert out.read_bytes().startswith(magic)
    # The link printed is the one that works.
    response = client.get("/r/" + link.rsplit("/r/", 1)[1])
    assert response.status_code == 303
    if kind == "--png":
        with Image.open(out) as img:
            assert img.size[0] > 100


def test_qr_unknown_order(cli):
    result = cli("qr", "NOPE")
    assert result.exit_code != 0 and "no order NOPE" in result.output


def _submit(client, quantity="1", reason="size_fit"):
    assert login_shopper(client).status_code == 303
    data = form_for(client, **{"0": {"quantity": quantity, "reason": reason, "outcome": "refund"}})
    return client.post("/order/request", data=data)


def test_policy_check_prints_decision_and_trace(cli, client, order):
    _submit(client)
    result = cli("policy", "check", "SO-1001")
    assert result.exit_code == 0, result.output
    assert "Order SO-1001 under policy default-1" in result.output
    assert "line 1 TEE-S" in result.output and "1 of 2 returnable" in result.output
    assert "[ok ] window" in result.output
    assert "request R-" in result.output and "eligible" in result.output


def test_policy_replay_shows_what_would_change(cli, client, order, tmp_path, app):
    _submit(client)
    from portal.services.policies import default_policy_text

    stricter = (
        default_policy_text()
        .replace('version = "default-1"', 'version = "strict-2"')
        .replace('auto_approve_max = "200.00"', 'auto_approve_max = "50.00"')
    )
    path = tmp_path / "candidate.toml"
    path.write_text(stricter)
    since = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
    result = cli("policy", "replay", "--policy", str(path), "--since", since)
    assert result.exit_code == 0, result.output
    assert "1 requests re-decided under strict-2; 1 would change" in result.output
    assert "auto" in result.output.lower()
    same = cli("policy", "replay", "--policy", str(path).replace("candidate", "candidate"), "--since", "2999-01-01")
    assert "0 requests re-decided" in same.output


def test_policy_replay_rejects_broken_policy(cli, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('version = "x"\n[window]\ndays = -1\n')
    result = cli("policy", "replay", "--policy", str(path), "--since", "2026-01-01")
    assert result.exit_code != 0 and "policy:" in result.output


def test_db_upgrade_is_idempotent(cli):
    result = cli("db", "upgrade")
    assert result.exit_code == 0 and "schema at revision" in result.output


def test_outbox_send(cli, client, order, session):
    result = cli("outbox", "send")
    assert result.exit_code == 0 and "sent 0, failed 0" in result.output


def test_demo_seeds_every_case(cli, session):
    result = cli("demo", "--no-serve", "--port", "8123")
    assert result.exit_code == 0, result.output
    assert session.scalar(select(func.count(Order.id))) >= 50
    for case in [
        "outside every window",
        "not delivered yet",
        "final-sale line",
        "excluded categories",
        "gift order",
        "high value",
        "already partly returned",
        "multi-line with discounts",
        "frequent returner",
    ]:
        assert case in result.output
    assert "http://127.0.0.1:8123/r/" in result.output
    assert session.scalar(select(func.count(ReturnRequest.id))) >= 1
    # The background work the demo started (emails, photo scoring) finished before the command
    # let go of the database: nothing is left half-done by a worker thread still running.
    assert (
        session.scalar(
            select(func.count(OutboxMessage.id)).where(
                OutboxMessage.channel == "email", OutboxMessage.sent_at.is_(None)
            )
        )
        == 0
    )
    # Running it again refreshes rather than duplicates.
    count = session.scalar(select(func.count(Order.id)))
    cli("demo", "--no-serve", "--port", "8123")
    assert session.scalar(select(func.count(Order.id))) == count


def test_insights_export_writes_the_csv_the_page_offers(cli, app, client, session, tmp_path):
    from sqlalchemy import update

    from portal.services.staff import create_staff
    from tests.helpers import PASSWORD, PRODUCTS, post_json, sign_in

    assert post_json(client, "/api/v1/products", PRODUCTS).status_code == 200
    assert post_json(client, "/api/v1/orders", order_payload("CLI-1")).status_code == 201
    shopper = app.test_client()
    login_shopper(shopper, number="CLI-1")
    comment = "Runs small, text me on 138 0000 0000"
    data = form_for(
        shopper, **{"0": {"quantity": "1", "reason": "size_fit", "sub_reason": "too_small", "comment": comment}}
    )
    assert shopper.post("/order/request", data=data).status_code == 303
    # Placed at 10:00 and returned at 23:30 on 30 November, Shanghai time: both November's.
    session.execute(update(Order).values(placed_at=datetime(2026, 11, 30, 2, 0, tzinfo=UTC)))
    session.execute(update(ReturnRequest).values(created_at=datetime(2026, 11, 30, 15, 30, tzinfo=UTC)))
    session.commit()

    out = tmp_path / "november.csv"
    result = cli("insights", "export", "--month", "2026-11", "-o", str(out))
    assert result.exit_code == 0, result.output
    body = out.read_bytes().decode("utf-8")  # as written: CSV rows end in CRLF
    printed = cli("insights", "export", "--month", "2026-11")
    assert printed.exit_code == 0 and printed.stdout_bytes.decode("utf-8") == body
    rows = {row["sku"]: row for row in csv.DictReader(io.StringIO(body))}
    # order_payload: two T-shirts (S) and one scarf; one T-shirt came back.
    assert rows["TEE-S"]["units_sold"] == "2" and rows["TEE-S"]["units_returned"] == "1"
    assert rows["TEE-S"]["return_rate"] == "0.5000" and rows["TEE-S"]["top_reasons"] == "size_fit 1"
    assert rows["TEE-S"]["product_code"] == "TEE" and rows["TEE-S"]["month"] == "2026-11"
    assert rows["SCARF-RED"]["units_sold"] == "1" and rows["SCARF-RED"]["units_returned"] == "0"
    for personal in ("li.wei@example.com", "Li Wei", "SO-1001", "CLI-1", "138 0000 0000", "200001"):
        assert personal not in body

    create_staff(session, "lead@example.com", "Lena Lead", "lead", PASSWORD)
    sign_in(client, "lead@example.com")
    assert client.get("/staff/products/export.csv?month=2026-11").get_data(as_text=True) == body
    december = cli("insights", "export", "--month", "2026-12")
    assert "TEE-S" not in december.output


def test_insights_export_refuses_a_bad_month(cli):
    result = cli("insights", "export", "--month", "2026-13")
    assert result.exit_code != 0 and "YYYY-MM" in result.output
