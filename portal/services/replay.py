"""Re-decide past requests under a candidate policy, without saving anything."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.db.models import ReturnRequest
from portal.domain.policy import Decision, LineChoice, Policy, compare_decisions, decide
from portal.services.filing import order_facts


@dataclass(frozen=True)
class ReplayResult:
    rma: str
    order_number: str
    created_at: datetime
    old: Decision
    new: Decision
    changes: list[str]


def replay_requests(
    session: Session, candidate: Policy, since: datetime, baseline: Policy | None = None
) -> list[ReplayResult]:
    """Each request since ``since`` decided again with the facts as they were when it was made,
    compared with its stored decision, or with the decision ``baseline`` makes on the same facts
    (two policy versions side by side)."""
    results = []
    requests = session.scalars(
        select(ReturnRequest).where(ReturnRequest.created_at >= since).order_by(ReturnRequest.created_at)
    )
    for req in requests:
        at = req.created_at
        choices = [
            LineChoice(
                line_id=line.order_line.line_id,
                quantity=line.quantity,
                reason=line.reason or None,
                sub_reason=line.sub_reason,
                outcome=line.outcome,
                exchange_sku=line.exchange_sku,
                photo_count=len(line.photos),
            )
            for line in req.lines
        ]
        new = _decide_as_then(session, req, candidate, choices)
        old = Decision.from_dict(req.decision) if baseline is None else _decide_as_then(session, req, baseline, choices)
        results.append(ReplayResult(req.rma, req.order.order_number, at, old, new, compare_decisions(old, new)))
    return results


def _decide_as_then(session: Session, req: ReturnRequest, policy: Policy, choices: list[LineChoice]) -> Decision:
    at = req.created_at
    facts = order_facts(session, req.order, policy, at, exclude_request_id=req.id, before=at)
    return decide(policy, facts, choices, at)
