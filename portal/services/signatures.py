"""Signatures the shop API has accepted, remembered for as long as they could be replayed."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from portal.db.models import ApiSignature
from portal.db.upsert import insert_if_absent


def first_use_of_signature(session: Session, signature: str, signed_at: datetime, window: timedelta) -> bool:
    """Record a signature as used; False when it was used before (a replay). Commits.

    A signed request is accepted while its timestamp is within ``window`` of the portal's clock,
    so the signature is kept until ``signed_at + window`` has passed; older ones are pruned here.
    Two identical requests at once: exactly one records it and gets True.
    """
    now = datetime.now(signed_at.tzinfo)
    session.execute(delete(ApiSignature).where(ApiSignature.expires_at < now))
    first = insert_if_absent(
        session, ApiSignature, "signature", {"signature": signature, "expires_at": signed_at + window}
    )
    session.commit()
    return first
