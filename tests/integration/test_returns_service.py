"""Return services against the real database: locking, storage failures, facts."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from portal.db import session_scope
from portal.db.models import Order, Photo, ReturnRequest
from portal.domain.actors import SHOPPER
from portal.domain.orders import parse_order
from portal.domain.policy import load_policy
from portal.services.filing import LineRequest, ReturnNotAllowed, cancel_return, open_return, requested_units
from portal.services.orders import upsert_order
from portal.services.policies import default_policy_text
from portal.storage import LocalPhotoStore, StorageError
from portal.vision.intake import clean_photo
from tests.helpers import jpeg, order_payload

POLICY = load_policy(default_policy_text())
NOW = datetime.now(UTC)


@pytest.fixture
def single_unit_order(app):
    lines = [
        {
            "line_id": "1",
            "sku": "BAG-1",
            "product_name": "Bag",
            "variant": "",
            "category": "bags",
            "quantity": 1,
            "unit_price": "120.00",
            "discount": "0",
            "tax": "0",
            "final_sale": False,
        }
    ]
    with session_scope(app) as s:
        order, _ = upsert_order(s, parse_order(order_payload("ONE-1", lines=lines)))
        return order.id


def _open(app, order_id, store, barrier=None):
    with session_scope(app) as s:
        order = s.get(Order, order_id)
        if barrier:
            barrier.wait()
        return open_return(s, order, [LineRequest("1", 1, "size_fit", outcome="refund")], POLICY, NOW, "en", store).rma


def test_two_simultaneous_requests_cannot_both_take_the_last_unit(app, single_unit_order, tmp_path):
    store = LocalPhotoStore(tmp_path / "photos")
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def worker():
        try:
            outcomes.append(_open(app, single_unit_order, store, barrier))
        except ReturnNotAllowed:
            outcomes.append("refused")

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(o == "refused" for o in outcomes) == [False, True], outcomes
    with session_scope(app) as s:
        assert s.scalar(select(func.count(ReturnRequest.id))) == 1


def test_cancelled_request_releases_units(app, single_unit_order, tmp_path):
    store = LocalPhotoStore(tmp_path / "photos")
    _open(app, single_unit_order, store)
    with pytest.raises(ReturnNotAllowed):
        _open(app, single_unit_order, store)
    with session_scope(app) as s:
        req = s.scalars(select(ReturnRequest)).one()
        cancel_return(s, req, SHOPPER)
        assert requested_units(s, s.get(Order, single_unit_order)) == {}
    _open(app, single_unit_order, store)


class BrokenStore(LocalPhotoStore):
    """A store whose second write fails, to prove nothing half-written is left behind."""

    def __init__(self, root):
        super().__init__(root)
        self.writes = 0

    def put(self, key, data, content_type):
        self.writes += 1
        if self.writes == 2:
            raise StorageError("store is down")
        super().put(key, data, content_type)


def test_storage_failure_leaves_nothing_behind(app, single_unit_order, tmp_path):
    store = BrokenStore(tmp_path / "photos")
    photos = [clean_photo(jpeg((10, 10, 10)), "a.jpg", 10**7), clean_photo(jpeg((200, 10, 10)), "b.jpg", 10**7)]
    with session_scope(app) as s:
        order = s.get(Order, single_unit_order)
        with pytest.raises(StorageError):
            open_return(
                s, order, [LineRequest("1", 1, "damaged", outcome="refund", photos=photos)], POLICY, NOW, "en", store
            )
    with session_scope(app) as s:
        assert s.scalar(select(func.count(ReturnRequest.id))) == 0
        assert s.scalar(select(func.count(Photo.id))) == 0
    assert [p for p in (tmp_path / "photos").rglob("*") if p.is_file()] == []


def test_not_eligible_writes_nothing(app, single_unit_order, tmp_path):
    with session_scope(app) as s:
        order = s.get(Order, single_unit_order)
        with pytest.raises(ReturnNotAllowed) as caught:
            open_return(
                s,
                order,
                [LineRequest("1", 1, "damaged", outcome="refund")],
                POLICY,
                NOW,
                "en",
                LocalPhotoStore(tmp_path),
            )
        assert caught.value.decision.verdict.value == "not_eligible"
    with session_scope(app) as s:
        assert s.scalar(select(func.count(ReturnRequest.id))) == 0


def test_high_value_goes_to_review(app, tmp_path):
    lines = [
        {
            "line_id": "1",
            "sku": "COAT-M",
            "product_name": "Coat",
            "variant": "M",
            "category": "outerwear",
            "quantity": 1,
            "unit_price": "2899.00",
            "discount": "0",
            "tax": "0",
            "final_sale": False,
        }
    ]
    with session_scope(app) as s:
        order, _ = upsert_order(s, parse_order(order_payload("HV-1", lines=lines)))
        req = open_return(
            s, order, [LineRequest("1", 1, "size_fit", outcome="refund")], POLICY, NOW, "en", LocalPhotoStore(tmp_path)
        )
        assert (req.status, req.verdict) == ("pending_review", "needs_review")
        assert [e.to_status for e in req.events] == ["submitted", "pending_review"]


def test_frequent_returner_goes_to_review(app, tmp_path):
    store = LocalPhotoStore(tmp_path)
    statuses = []
    with session_scope(app) as s:
        for i in range(5):
            order, _ = upsert_order(s, parse_order(order_payload(f"FR-{i}", email="often@example.com")))
            req = open_return(
                s,
                order,
                [LineRequest("1", 1, "size_fit", outcome="refund")],
                POLICY,
                NOW - timedelta(hours=5 - i),
                "en",
                store,
            )
            statuses.append(req.verdict)
    assert statuses == ["eligible"] * 4 + ["needs_review"]
