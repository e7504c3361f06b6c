"""A refund preview exists only while a refund is waiting: asking again after it is paid is a Conflict."""

from __future__ import annotations

from decimal import Decimal

import pytest

from portal.adapters.payments import SandboxGateway
from portal.domain.errors import Conflict
from portal.services.refunds import approve_refund, execute_refund, preview_refund
from tests.helpers import finance_user, inspected


def test_preview_after_the_refund_is_a_conflict_not_a_crash(app, client, order, session):
    req = inspected(app, client, session)
    preview = preview_refund(session, req)
    refund = approve_refund(session, req, finance_user(session, "fay"), preview.basis_hash, "sandbox", Decimal("1000"))
    factory = app.extensions["portal.sessionmaker"]
    execute_refund(factory, refund.id, SandboxGateway(factory))
    session.expire_all()
    with pytest.raises(Conflict):
        preview_refund(session, req)  # found by the lifecycle model: it raised ValueError (a 500)
