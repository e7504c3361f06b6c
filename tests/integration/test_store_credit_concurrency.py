"""Store credit under concurrency, on SQLite and PostgreSQL alike: 20 redemptions of 10.00 at once
against 150.00 debit exactly 150.00, and the same reference sent twice at once debits once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from sqlalchemy import func, select

from portal.db import session_scope
from portal.db.models import LedgerEntry, StoreCreditCode
from portal.domain.codes import new_store_credit_code
from portal.domain.errors import Conflict
from portal.domain.orders import Redemption
from portal.services.refunds import redeem_store_credit


def credit(session, balance: str) -> str:
    code = new_store_credit_code()
    session.add(StoreCreditCode(code=code, currency="CNY", initial=Decimal(balance), balance=Decimal(balance)))
    session.commit()
    return code


def at_once(app, redemptions: list[Redemption]) -> list[str]:
    start = threading.Barrier(len(redemptions))

    def one(redemption: Redemption) -> str:
        with session_scope(app) as s:
            start.wait()
            try:
                redeem_store_credit(s, redemption)
            except Conflict:
                return "refused"
            return "ok"

    with ThreadPoolExecutor(max_workers=len(redemptions)) as pool:
        return list(pool.map(one, redemptions))


def test_concurrent_redemptions_never_overdraw(app, session):
    code = credit(session, "150.00")
    outcomes = at_once(app, [Redemption(code, Decimal("10.00"), "CNY", f"order-{i}") for i in range(20)])
    assert outcomes.count("ok") == 15 and outcomes.count("refused") == 5
    session.expire_all()
    assert session.scalars(select(StoreCreditCode.balance)).one() == Decimal("0")
    assert session.scalar(select(func.sum(LedgerEntry.amount))) == Decimal("-150.00")


def test_the_same_reference_at_once_debits_once(app, session):
    code = credit(session, "150.00")
    at_once(app, [Redemption(code, Decimal("10.00"), "CNY", "order-7") for _ in range(8)])
    session.expire_all()
    assert session.scalars(select(StoreCreditCode.balance)).one() == Decimal("140.00")
    assert session.scalar(select(func.count(LedgerEntry.id))) == 1
