"""Staff queues, active search, take, approve and reject (with stale-page protection)."""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import select

from portal.db.models import OutboxMessage, ReturnRequest, Ticket
from portal.domain.actors import Actor
from portal.jobs import build_email
from portal.services.staff import create_staff
from tests.helpers import (
    COAT,
    PASSWORD,
    csrf_token,
    email_text,
    field_errors,
    form_for,
    jpeg,
    login_shopper,
    order_payload,
    page_values,
    pdf_text,
    post_json,
    sign_in,
    soup,
    submit_coat,
)


def test_my_queue_lists_assigned_ticket_with_masked_customer(client, app, desk):
    rma = submit_coat(app)
    sign_in(client, "agent@example.com")
    page = client.get("/staff/queue?view=mine").get_data(as_text=True)
    assert rma in page and "HV-1" in page and "l***@e***.com" in page and "li.wei@example.com" not in page
    assert "My tickets (1)" in page


def test_active_search_returns_rows_fragment(client, app, desk):
    rma = submit_coat(app, "HV-1")
    submit_coat(app, "HV-2", email="wang@example.com")
    sign_in(client, "agent@example.com")
    fragment = client.get("/staff/queue?view=all&q=hv-1", headers={"HX-Request": "true"})
    body = fragment.get_data(as_text=True)
    assert body.lstrip().startswith('<section id="queue-rows">')
    assert rma in body and "HV-2" not in body
    assert "HX-Request" in fragment.headers["Vary"]
    by_sku = client.get("/staff/queue?view=all&q=COAT-M").get_data(as_text=True)
    assert "HV-1" in by_sku and "HV-2" in by_sku and "<!doctype html>" in by_sku
    # The email is encrypted: found by the whole address (any case), no longer by a part of it.
    by_customer = client.get("/staff/queue?view=all&q=Wang@Example.com").get_data(as_text=True)
    assert "HV-2" in by_customer and "HV-1" not in by_customer


def test_take_then_stale_take(client, app, desk, session):
    rma = submit_coat(app)
    sign_in(client, "other@example.com")
    page = client.get(f"/staff/requests/{rma}").get_data(as_text=True)
    token = csrf_token(page)
    ticket = session.scalars(select(Ticket)).one()
    # The page showed the ticket assigned to the agent; another person takes it first.
    response = client.post(
        f"/staff/tickets/{ticket.id}/take", data={"csrf_token": token, "assignee": str(desk["agent"])}
    )
    assert response.status_code == 303
    session.expire_all()
    assert session.get(Ticket, ticket.id).assignee_id == desk["other"]
    third = app.test_client()
    sign_in(third, "agent@example.com")
    stale = third.post(
        f"/staff/tickets/{ticket.id}/take",
        data={
            "csrf_token": csrf_token(third.get("/staff/queue").get_data(as_text=True)),
            "assignee": str(desk["agent"]),
        },
        follow_redirects=True,
    )
    assert "Someone else took this ticket" in stale.get_data(as_text=True)
    session.expire_all()
    assert session.get(Ticket, ticket.id).assignee_id == desk["other"]


def _decide(client, rma, action, note="", status="pending_review"):
    page = client.get(f"/staff/requests/{rma}").get_data(as_text=True)
    return client.post(
        f"/staff/requests/{rma}/decide",
        data={"csrf_token": csrf_token(page), "status": status, "action": action, "note": note},
    )


def test_approve_closes_ticket_and_tells_shopper(client, app, desk, session):
    rma = submit_coat(app)
    sign_in(client, "agent@example.com")
    assert _decide(client, rma, "approve").status_code == 303
    session.expire_all()
    req = session.scalars(select(ReturnRequest)).one()
    ticket = session.scalars(select(Ticket)).one()
    assert (
        req.status == "label_issued"
        and req.pickup_code
        and ticket.status == "closed"
        and ticket.first_response_at is not None
    )
    assert [
        m.topic
        for m in session.scalars(
            select(OutboxMessage).where(OutboxMessage.channel == "email").order_by(OutboxMessage.id)
        )
    ] == ["return_submitted", "return_approved"]
    assert req.events[-1].actor == Actor.staff(desk["agent"])


def test_reject_needs_a_reason_which_the_shopper_sees(client, app, desk, session):
    rma = submit_coat(app)
    sign_in(client, "agent@example.com")
    missing = _decide(client, rma, "reject")
    assert missing.status_code == 422 and "Tell the shopper why" in missing.get_data(as_text=True)
    assert _decide(client, rma, "reject", note="The coat was worn outdoors").status_code == 303
    session.expire_all()
    assert session.scalars(select(ReturnRequest.status)).one() == "rejected"
    mail = session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "return_rejected")).one()
    assert mail.payload["context"]["reason"] == "The coat was worn outdoors"


def test_stale_decision_does_nothing(client, app, desk, session):
    rma = submit_coat(app)
    sign_in(client, "agent@example.com")
    _decide(client, rma, "approve")
    again = _decide(client, rma, "reject", note="too late", status="pending_review")
    assert again.status_code == 303
    session.expire_all()
    assert session.scalars(select(ReturnRequest.status)).one() == "label_issued"


def test_warehouse_and_finance_cannot_decide(client, app, desk, session):
    rma = submit_coat(app)
    create_staff(session, "wh@example.com", "W", "warehouse", PASSWORD)
    sign_in(client, "wh@example.com")
    assert client.get("/staff/queue").status_code == 403
    token = csrf_token(client.get(f"/staff/requests/{rma}").get_data(as_text=True))
    response = client.post(
        f"/staff/requests/{rma}/decide", data={"csrf_token": token, "status": "pending_review", "action": "approve"}
    )
    assert response.status_code == 403


def test_note_and_reassign_on_the_timeline(client, app, desk, session):
    rma = submit_coat(app)
    sign_in(client, "agent@example.com")
    ticket = session.scalars(select(Ticket)).one()
    token = csrf_token(client.get(f"/staff/requests/{rma}").get_data(as_text=True))
    assert (
        client.post(
            f"/staff/tickets/{ticket.id}/note", data={"csrf_token": token, "text": "Called the courier"}
        ).status_code
        == 303
    )
    assert (
        client.post(
            f"/staff/tickets/{ticket.id}/reassign", data={"csrf_token": token, "to": str(desk["other"])}
        ).status_code
        == 303
    )
    assert (
        client.post(f"/staff/tickets/{ticket.id}/reassign", data={"csrf_token": token, "to": "99999"}).status_code
        == 400
    )
    session.expire_all()
    ticket = session.get(Ticket, ticket.id)
    assert ticket.assignee_id == desk["other"]
    assert [e.kind for e in ticket.events][-2:] == ["note", "assigned"]
    page = client.get(f"/staff/requests/{rma}").get_data(as_text=True)
    assert "Called the courier" in page


def test_reveal_contact_is_audited(client, app, desk, session):
    from portal.db.models import AuditLog

    rma = submit_coat(app)
    sign_in(client, "agent@example.com")
    page = client.get(f"/staff/requests/{rma}").get_data(as_text=True)
    assert "li.wei@example.com" not in page
    fragment = client.post(
        f"/staff/requests/{rma}/contact",
        data={"csrf_token": csrf_token(page), "reason": "shopper asked for a call back"},
        headers={"HX-Request": "true"},
    )
    body = fragment.get_data(as_text=True)
    assert body.lstrip().startswith('<section id="contact"') and "li.wei@example.com" in body
    entry = session.scalars(select(AuditLog).where(AuditLog.action == "reveal_contact")).one()
    assert (entry.actor_id, entry.action, entry.target) == (desk["agent"], "reveal_contact", "order:HV-1")
    assert (entry.reason, entry.address, entry.order_number) == ("shopper asked for a call back", "127.0.0.1", "HV-1")
    assert client.get(f"/staff/requests/{rma}/contact").status_code == 405  # revealing is never a GET


def test_ask_the_shopper_then_the_shopper_answers(client, app, desk, session):
    rma = submit_coat(app)
    sign_in(client, "agent@example.com")
    missing = _decide(client, rma, "ask")
    assert missing.status_code == 422 and "Write the question" in missing.get_data(as_text=True)
    assert _decide(client, rma, "ask", note="Could you send a photo of the label?").status_code == 303
    session.expire_all()
    assert session.scalars(select(ReturnRequest.status)).one() == "awaiting_shopper"
    assert session.scalars(select(Ticket.status)).one() == "waiting"
    question_mail = session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "return_question")).one()
    assert question_mail.payload["context"]["question"] == "Could you send a photo of the label?"

    shopper = app.test_client()
    login_shopper(shopper, number="HV-1")
    page = shopper.get(f"/requests/{rma}").get_data(as_text=True)
    assert "Could you send a photo of the label?" in page and "Waiting for your reply" in page
    empty = shopper.post(f"/requests/{rma}/answer", data={"csrf_token": csrf_token(page), "answer": " "})
    assert empty.status_code == 422
    assert (
        shopper.post(
            f"/requests/{rma}/answer", data={"csrf_token": csrf_token(page), "answer": "Label attached, size M"}
        ).status_code
        == 303
    )
    session.expire_all()
    assert session.scalars(select(ReturnRequest.status)).one() == "pending_review"
    ticket = session.scalars(select(Ticket)).one()
    assert ticket.status == "open" and [e.kind for e in ticket.events][-1] == "answered"
    again = shopper.post(
        f"/requests/{rma}/answer", data={"csrf_token": csrf_token(page), "answer": "twice"}, follow_redirects=True
    )
    assert "no longer waiting for an answer" in again.get_data(as_text=True)


def test_suggested_reply_in_shoppers_language_sent_and_shown(client, app, desk, session):
    from portal.db.models import CannedReplyRow
    from portal.demo import seed_replies

    seed_replies(session)
    session.commit()
    shopper = app.test_client()
    post_json(shopper, "/api/v1/orders", order_payload("WR-1", lines=COAT))
    login_shopper(shopper, number="WR-1")
    shopper.post("/lang", data={"csrf_token": form_for(shopper)["csrf_token"], "lang": "zh_Hans"})
    data = form_for(
        shopper,
        **{"0": {"quantity": "1", "reason": "wrong_item", "comment": "颜色不一样，发错了", "outcome": "refund"}},
    )
    import io

    data["lines-0-photos"] = [(io.BytesIO(jpeg()), "wrong.jpg")]
    rma = (
        shopper.post("/order/request", data=data, content_type="multipart/form-data")
        .headers["Location"]
        .rsplit("/", 1)[1]
    )
    sign_in(client, "agent@example.com")
    page = client.get(f"/staff/requests/{rma}").get_data(as_text=True)
    assert "发错商品：致歉并补发" in page and "Wrong item: apology" not in page  # the shopper's language
    body = session.scalars(
        select(CannedReplyRow.body).where(CannedReplyRow.locale == "zh_Hans", CannedReplyRow.name.like("发错%"))
    ).one()
    assert (
        client.post(f"/staff/requests/{rma}/reply", data={"csrf_token": csrf_token(page), "body": body}).status_code
        == 303
    )
    assert (
        client.post(f"/staff/requests/{rma}/reply", data={"csrf_token": csrf_token(page), "body": ""}).status_code
        == 422
    )
    mail = session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "staff_message")).one()
    assert mail.payload["locale"] == "zh_Hans" and mail.payload["context"]["body"] == body
    assert body in shopper.get(f"/requests/{rma}").get_data(as_text=True)
    assert session.scalars(select(Ticket.first_response_at)).one() is not None


def test_admin_manages_replies(client, session):
    create_staff(session, "root@example.com", "Root", "admin", PASSWORD)
    sign_in(client, "root@example.com")
    page = client.get("/admin/replies").get_data(as_text=True)
    form = {
        "csrf_token": csrf_token(page),
        "name": "Late",
        "locale": "en",
        "reasons": ["late_delivery"],
        "keywords": "late, slow",
        "body": "Sorry for the wait",
        "active": "y",
    }
    assert client.post("/admin/replies", data=form).status_code == 303
    from portal.db.models import CannedReplyRow

    row = session.scalars(select(CannedReplyRow)).one()
    assert (row.reasons, row.keywords) == (["late_delivery"], ["late", "slow"])
    assert client.post(f"/admin/replies/{row.id}", data={**form, "body": ""}).status_code == 422
    assert client.post(f"/admin/replies/{row.id}", data={**form, "locale": "zh_Hans"}).status_code == 303
    session.expire_all()
    assert session.get(CannedReplyRow, row.id).locale == "zh_Hans"


TWO_COATS = COAT + [
    {
        "line_id": "2",
        "sku": "SCARF-RED",
        "product_name": "Silk scarf",
        "variant": "Red",
        "category": "accessories",
        "quantity": 1,
        "unit_price": "259.00",
        "discount": "0",
        "tax": "0",
        "final_sale": False,
    }
]


def test_approve_some_lines(client, app, desk, session):
    from portal.db.models import ReturnLine

    shopper = app.test_client()
    post_json(shopper, "/api/v1/orders", order_payload("PA-1", lines=TWO_COATS))
    login_shopper(shopper, number="PA-1")
    data = form_for(
        shopper,
        **{
            "0": {"quantity": "1", "reason": "size_fit", "outcome": "refund"},
            "1": {"quantity": "1", "reason": "changed_mind", "outcome": "refund"},
        },
    )
    rma = shopper.post("/order/request", data=data).headers["Location"].rsplit("/", 1)[1]
    lines = {rl.order_line.line_id: rl.id for rl in session.scalars(select(ReturnLine))}
    sign_in(client, "agent@example.com")
    page = client.get(f"/staff/requests/{rma}").get_data(as_text=True)
    base = {"csrf_token": csrf_token(page), "status": "pending_review", "action": "approve"}
    no_reason = client.post(f"/staff/requests/{rma}/decide", data={**base, "approve_line": [str(lines["1"])]})
    assert no_reason.status_code == 422 and "Say why the other lines" in no_reason.get_data(as_text=True)
    none = client.post(f"/staff/requests/{rma}/decide", data={**base, "note": "x"})
    assert none.status_code == 422
    ok = client.post(
        f"/staff/requests/{rma}/decide",
        data={**base, "approve_line": [str(lines["1"])], "note": "Scarves are final once worn"},
    )
    assert ok.status_code == 303
    session.expire_all()
    decided = {rl.order_line.line_id: (rl.staff_decision, rl.staff_note) for rl in session.scalars(select(ReturnLine))}
    assert decided == {"1": ("approved", None), "2": ("rejected", "Scarves are final once worn")}
    status = shopper.get(f"/requests/{rma}").get_data(as_text=True)
    assert "Not accepted" in status and "Scarves are final once worn" in status
    # The scarf's unit is free again for another request.
    assert soup(shopper.get("/order")).select_one('input[name="lines-1-pick"]') is not None

    # Everything after the decision shows the accepted line only. The label, HTML and PDF:
    label = soup(shopper.get(f"/requests/{rma}/label")).get_text(" ")
    assert "Coat" in label and "Silk scarf" not in label
    pdf = pdf_text(shopper.get(f"/requests/{rma}/label.pdf").data)
    assert "Coat" in pdf and "Silk scarf" not in pdf
    # The staff page marks the line and counts only the coat.
    staff_page = soup(client.get(f"/staff/requests/{rma}"))
    assert "Not accepted: Scarves are final once worn" in staff_page.get_text(" ")
    session.expire_all()
    req = session.scalars(select(ReturnRequest).where(ReturnRequest.rma == rma)).one()
    assert req.value == Decimal("2899.00")
    # The approval email names the line that was not accepted and why.
    approved = [
        m
        for m in session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "email"))
        if m.payload["template"] == "return_approved"
    ]
    body = email_text(build_email(app, approved[-1]))
    assert "were not accepted" in body and "1 × Silk scarf (Red): Scarves are final once worn" in body
    hook = [
        m.payload["data"]
        for m in session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "webhook"))
        if m.payload["topic"] == "return.approved"
    ][-1]
    assert [(line["sku"], line["accepted"]) for line in hook["lines"]] == [("COAT-M", True), ("SCARF-RED", False)]
    # The warehouse expects the coat alone.
    create_staff(session, "wh@example.com", "Wen", "warehouse", PASSWORD)
    warehouse = app.test_client()
    sign_in(warehouse, "wh@example.com")
    parcel = soup(warehouse.get(f"/warehouse/parcels/{rma}")).select_one("main").get_text(" ")
    assert "Coat" in parcel and "Silk scarf" not in parcel


def test_agent_opens_a_return_overriding_the_window(client, app, desk, session):
    """A shopper phones two days late about a coat that does not fit: the agent overrides the window with a reason."""
    late = order_payload("LATE-1", lines=COAT, delivered_days_ago=9)
    post_json(client, "/api/v1/orders", late)
    sign_in(client, "agent@example.com")
    assert client.get("/staff/orders?number=late-1").headers["Location"].endswith("/staff/orders/LATE-1")
    page = client.get("/staff/orders/LATE-1").get_data(as_text=True)
    assert "Open return for the shopper" in page and 'name="lines-0-quantity"' in page
    form = {
        "csrf_token": csrf_token(page),
        "lines-0-line_id": "1",
        "lines-0-quantity": "1",
        "lines-0-reason": "size_fit",
        "lines-0-outcome": "refund",
    }
    refused = client.post("/staff/orders/LATE-1", data=form)
    assert refused.status_code == 422 and "give a reason to override" in refused.get_data(as_text=True)
    too_many = client.post("/staff/orders/LATE-1", data={**form, "lines-0-quantity": "5", "override": "goodwill"})
    assert too_many.status_code == 422
    ok = client.post("/staff/orders/LATE-1", data={**form, "override": "Customer was in hospital; goodwill"})
    assert ok.status_code == 303
    req = session.scalars(select(ReturnRequest)).one()
    assert req.status == "pending_review" and req.verdict == "needs_review"
    assert (
        req.decision["override"]["rules"] == ["window"] and req.decision["override"]["by"] == f"staff:{desk['agent']}"
    )
    detail = client.get(ok.headers["Location"]).get_data(as_text=True)
    assert "Customer was in hospital; goodwill" in detail
    assert any(e.kind == "override" for e in req.events)


def test_a_refused_return_on_behalf_keeps_what_was_entered(client, desk, session):
    """Too many coats on one line: 422, the error beside that line's quantity, every choice as entered, nothing filed."""
    post_json(client, "/api/v1/orders", order_payload("PHONE-1", lines=TWO_COATS))
    sign_in(client, "agent@example.com")
    page = client.get("/staff/orders/PHONE-1").get_data(as_text=True)
    entered = {
        "lines-0-line_id": "1",
        "lines-0-quantity": "1",
        "lines-0-reason": "size_fit",
        "lines-0-outcome": "store_credit",
        "lines-1-line_id": "2",
        "lines-1-quantity": "3",
        "lines-1-reason": "changed_mind",
        "lines-1-outcome": "refund",
        "override": "Called from the airport",
    }
    response = client.post("/staff/orders/PHONE-1", data={"csrf_token": csrf_token(page), **entered})
    assert response.status_code == 422
    shown_page = response.get_data(as_text=True)
    assert field_errors(shown_page, "lines-1-quantity") == ["SCARF-RED: choose a quantity from 0 to 1."]
    assert field_errors(shown_page, "lines-0-quantity") == []
    shown = page_values(shown_page)
    kept = {name: shown.get(name) for name in entered}
    # The scarf's select offers 0..1, so the refused 3 cannot be shown as chosen; everything else is as typed.
    assert kept == {**entered, "lines-1-quantity": "0"}
    assert 'value="3"' not in str(BeautifulSoup(shown_page, "html.parser").find(id="lines-1-quantity"))
    assert session.scalars(select(ReturnRequest)).all() == []


def test_override_cannot_exceed_what_was_bought(app, desk, session):
    from datetime import datetime

    from portal.domain.orders import parse_order
    from portal.domain.policy import load_policy
    from portal.services.filing import LineRequest, ReturnNotAllowed, open_return
    from portal.services.orders import upsert_order
    from portal.services.policies import default_policy_text
    from portal.storage import LocalPhotoStore

    order, _ = upsert_order(session, parse_order(order_payload("OVR-1", lines=COAT, delivered_days_ago=9)))
    with pytest.raises(ReturnNotAllowed):
        open_return(
            session,
            order,
            [LineRequest("1", 2, "size_fit", outcome="refund")],
            load_policy(default_policy_text()),
            datetime.now(UTC),
            "en",
            LocalPhotoStore(app.config["PHOTO_PATH"]),
            actor=Actor.staff(1),
            override_reason="please",
        )


def test_filters_by_priority_and_team(client, app, desk, session):
    from portal.db.models import Team

    submit_coat(app, "F-1")
    sign_in(client, "agent@example.com")
    finance = session.scalars(select(Team).where(Team.code == "finance")).one()
    assert "F-1" in client.get(f"/staff/queue?view=all&priority=high&team={finance.id}").get_data(as_text=True)
    assert "F-1" not in client.get("/staff/queue?view=all&priority=low").get_data(as_text=True)
    fragment = client.get(f"/staff/queue?view=all&team={finance.id + 999}", headers={"HX-Request": "true"}).get_data(
        as_text=True
    )
    assert "F-1" not in fragment and "Nothing here." in fragment
    assert client.get("/staff/queue?view=all&priority=bogus&team=x").status_code == 200  # unknown filters are ignored


def test_the_ticket_panel_and_queue_speak_the_staff_members_language(client, app, desk, session):
    rma = submit_coat(app, "ZH-1")
    sign_in(client, "agent@example.com")
    page = client.get(f"/staff/requests/{rma}")
    client.post("/lang", data={"csrf_token": csrf_token(page.get_data(as_text=True)), "lang": "zh_Hans"})
    panel = soup(client.get(f"/staff/requests/{rma}")).select_one("section.ticket").get_text(" ")
    assert "高" in panel and "处理中" in panel
    assert " high " not in f" {panel} " and " open " not in f" {panel} "
    queue = soup(client.get("/staff/queue?view=all"))
    assert queue.select_one("#queue-rows .table-scroll table")  # wide tables scroll in their box on a phone
    assert "高" in [td.get_text(strip=True) for td in queue.select("#queue-rows tbody td")]
