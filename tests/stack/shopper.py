"""The shop and the shopper over HTTP against the stack: a signed order push, a lookup, a request
with photos; and what the processes made of it, read from the database."""

from __future__ import annotations

import json
import secrets

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.db.models import Order, Photo, RequestEvent, ReturnRequest
from tests.helpers import csrf_token, jpeg, order_payload, signed_headers, soup
from tests.stack.harness import Browser


def push_order(base_url: str, lines: list[dict] | None = None) -> tuple[str, str]:
    """A delivered order pushed by the shop through the signed API; its number and email."""
    tag = secrets.token_hex(4).upper()
    number, address = f"ST-{tag}", f"shopper-{tag.lower()}@example.com"
    body = json.dumps(order_payload(number, email=address, lines=lines)).encode()
    response = Browser(base_url).post_json("/api/v1/orders", body, signed_headers(body))
    assert response.status == 201, response.text
    return number, address


def request_with_photos(base_url: str, number: str, address: str, photos: int = 3) -> str:
    """A shopper looks the order up and asks to return a damaged line with ``photos`` photos; the RMA."""
    browser = Browser(base_url)
    home = browser.get("/")
    assert home.status == 200, home.text
    found = browser.post("/lookup", {"csrf_token": csrf_token(home.text), "order_number": number, "contact": address})
    assert found.status == 303, found.text
    page = browser.get("/order")
    assert page.status == 200, page.text
    form = {"csrf_token": csrf_token(page.text)}
    for hidden in soup(page.text).select('input[type="hidden"][name^="lines-"][name$="-line_id"]'):
        prefix = hidden["name"].removesuffix("-line_id")
        form.update({f"{prefix}-line_id": hidden["value"], f"{prefix}-quantity": "0", f"{prefix}-outcome": "refund"})
    form.update({"lines-0-quantity": "1", "lines-0-reason": "damaged", "lines-0-comment": "torn seam"})
    shots = [(f"photo-{i}.jpg", jpeg((40 * i, 90, 20), size=(800, 600))) for i in range(photos)]
    sent = browser.post("/order/request", form, files={"lines-0-photos": shots})
    assert sent.status == 303, sent.text
    return sent.location.rsplit("/", 1)[1]


def request_row(session: Session, rma: str) -> ReturnRequest:
    session.expire_all()
    return session.scalars(select(ReturnRequest).where(ReturnRequest.rma == rma)).one()


def photo_states(session: Session, rma: str) -> list[str]:
    session.expire_all()
    return list(
        session.scalars(
            select(Photo.score_state)
            .join(ReturnRequest, Photo.request_id == ReturnRequest.id)
            .where(ReturnRequest.rma == rma)
        )
    )


def scored_events(session: Session, rma: str) -> int:
    session.expire_all()
    return session.scalar(
        select(func.count())
        .select_from(RequestEvent)
        .join(ReturnRequest, RequestEvent.request_id == ReturnRequest.id)
        .where(ReturnRequest.rma == rma, RequestEvent.kind == "scored")
    )


def order_exists(session: Session, number: str) -> bool:
    return session.scalar(select(func.count()).select_from(Order).where(Order.order_number == number)) == 1
