"""SLA clocks on tickets and the escalation sweep.

Clock arithmetic is ``portal.domain.sla``; this module persists clocks, writes
an audit event for every deadline change, keeps one ``EscalationDue`` row per
step that has not fired yet, and runs the sweep that fires them.

The sweep fires each step exactly once: a sweeper claims due rows with a
conditional update (and ``SKIP LOCKED`` on PostgreSQL) under a claim token
that expires, then acts and marks the row done in one transaction. A sweeper
killed mid-batch leaves claims that expire and are picked up again; a row
that is already done is never acted on twice.
"""

from __future__ import annotations

import gc
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import holidays as holidays_lib
from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session, selectinload, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from portal.db.bulk import among, insert_rows, update_rows
from portal.db.dialects import on_postgresql
from portal.db.insight_rollups import changing
from portal.db.models import (
    BusinessCalendarRow,
    CalendarException,
    EscalationDue,
    ReturnRequest,
    SlaPolicy,
    StaffNotification,
    StaffUser,
    Team,
    Ticket,
    TicketClock,
    TicketEvent,
)
from portal.domain import sla
from portal.domain.actors import SLA, SYSTEM, Actor
from portal.domain.roles import MANAGER
from portal.domain.states import STEP_OPEN, StepStatus, check_step
from portal.domain.text import N_, Text
from portal.services.outbox import email_payload, enqueue, enqueue_emails

# A clock transition: (calendar, clock, at) -> (new clock, the deadline change if any).
ClockStep = Callable[[sla.BusinessCalendar, sla.Clock, datetime], tuple[sla.Clock, sla.DeadlineChange | None]]
log = logging.getLogger("portal.sla")

CLAIM_TTL = timedelta(minutes=5)
# Clocks that still measure something (a stopped clock only changes when reopened).
LIVE = (sla.ClockState.RUNNING, sla.ClockState.PAUSED)
OPEN_STEP_VALUES = frozenset(s.value for s in STEP_OPEN)
METRIC_TARGETS = (("first_response", "first_response_minutes"), ("resolution", "resolution_minutes"))


def calendar_of(row: BusinessCalendarRow) -> sla.BusinessCalendar:
    return sla.BusinessCalendar.from_spec(
        {
            "timezone": row.timezone,
            "weekly": row.weekly,
            "exceptions": {e.day.isoformat(): list(e.hours) for e in row.exceptions},
        }
    )


def ladder_of(policy: SlaPolicy) -> list[sla.EscalationStep]:
    return sla.parse_ladder(policy.ladder or [])


def to_clock(row: TicketClock) -> sla.Clock:
    return sla.Clock(
        metric=row.metric,
        target_minutes=row.target_minutes,
        started_at=row.started_at,
        changed_at=row.changed_at,
        state=sla.ClockState(row.state),
        used_minutes=row.used_minutes,
        running_since=row.running_since,
        deadline=row.deadline,
        stopped_at=row.stopped_at,
        met=row.met,
        breached_at=row.breached_at,
    )


def _store(row: TicketClock, clock: sla.Clock) -> None:
    if row.state is not None:  # a new row has no state yet
        sla.check_clock(row.state, clock.state)
    row.metric, row.target_minutes, row.started_at, row.changed_at = (
        clock.metric,
        clock.target_minutes,
        clock.started_at,
        clock.changed_at,
    )
    row.state, row.used_minutes, row.running_since, row.deadline = (
        clock.state.value,
        clock.used_minutes,
        clock.running_since,
        clock.deadline,
    )
    row.stopped_at, row.met, row.breached_at = clock.stopped_at, clock.met, clock.breached_at


def find_policy(session: Session, team_id: int, priority: str) -> SlaPolicy | None:
    """The team's policy for this priority, else the policy for any team."""
    rows = session.scalars(
        select(SlaPolicy).where(
            SlaPolicy.priority == priority, or_(SlaPolicy.team_id == team_id, SlaPolicy.team_id.is_(None))
        )
    ).all()
    return next((p for p in rows if p.team_id == team_id), None) or next((p for p in rows if p.team_id is None), None)


def _audit(ticket: Ticket, change: sla.DeadlineChange | None, actor: Actor, why: str) -> None:
    if change is None:
        return
    data = change.as_dict()
    ticket.events.append(
        TicketEvent(
            actor=actor,
            kind="deadline",
            data={**data, "why": why},
            note=f"{change.metric} deadline {data['old_deadline'] or '—'} → {data['new_deadline'] or '—'} ({change.reason.value}: {why})",
        )
    )


def _schedule(session: Session, row: TicketClock, cal: sla.BusinessCalendar, steps: list[sla.EscalationStep]) -> None:
    """Replace the clock's pending steps with its current fire times (steps already done stay done)."""
    if row.id is None:
        session.flush()
    session.execute(
        update(EscalationDue)
        .where(EscalationDue.clock_id == row.id, EscalationDue.status.in_([s.value for s in STEP_OPEN]))
        .values(status=StepStatus.CANCELLED.value, outcome="clock changed")
    )
    row.generation = (row.generation or 0) + 1
    done = set(
        session.scalars(
            select(EscalationDue.step_key).where(
                EscalationDue.clock_id == row.id, EscalationDue.status == StepStatus.DONE.value
            )
        )
    )
    actions = {s.key: s.action for s in steps}
    for key, fire_at in sla.step_fire_times(cal, to_clock(row), steps):
        if key not in done:
            session.add(
                EscalationDue(
                    clock_id=row.id,
                    ticket_id=row.ticket_id,
                    step_key=key,
                    action=actions[key],
                    generation=row.generation,
                    fire_at=fire_at,
                    status=StepStatus.PENDING.value,
                )
            )


def start_ticket_clocks(session: Session, ticket: Ticket, at: datetime, actor: Actor = SYSTEM) -> list[TicketClock]:
    """Start first-response and resolution clocks under the matching SLA policy (none without a policy)."""
    policy = find_policy(session, ticket.team_id, ticket.priority)
    if policy is None:
        return []
    cal, steps = calendar_of(policy.calendar), ladder_of(policy)
    rows = []
    for metric, attr in METRIC_TARGETS:
        clock, change = sla.start_clock(cal, metric, getattr(policy, attr), at)
        row = TicketClock(ticket=ticket, policy_id=policy.id, calendar_id=policy.calendar_id, generation=0)
        _store(row, clock)
        session.add(row)
        session.flush()
        _audit(ticket, change, actor, f"policy {policy.id} ({policy.priority})")
        _schedule(session, row, cal, _steps_for(metric, steps))
        rows.append(row)
    return rows


def _clock_rows(session: Session, ticket: Ticket) -> list[TicketClock]:
    return list(session.scalars(select(TicketClock).where(TicketClock.ticket_id == ticket.id).order_by(TicketClock.id)))


def _steps_for(metric: str, steps: list[sla.EscalationStep]) -> list[sla.EscalationStep]:
    """The whole ladder escalates the resolution clock; the first-response clock only reminds."""
    return steps if metric == "resolution" else [s for s in steps if s.action == sla.LadderAction.REMIND]


class _PolicyCache:
    """Policies and calendars loaded once per batch of clocks."""

    def __init__(self, session: Session):
        self.session = session
        self.calendars: dict[int, sla.BusinessCalendar] = {}
        self.ladders: dict[int, list[sla.EscalationStep]] = {}
        self._managers: list[StaffUser] | None = None

    def managers(self) -> list[StaffUser]:
        """The active managers, who are told when a team has no manager of its own."""
        if self._managers is None:
            self._managers = list(
                self.session.scalars(select(StaffUser).where(StaffUser.role == MANAGER, StaffUser.active.is_(True)))
            )
        return self._managers

    def context(self, clock: TicketClock) -> tuple[sla.BusinessCalendar, list[sla.EscalationStep]]:
        if clock.calendar_id not in self.calendars:
            self.calendars[clock.calendar_id] = calendar_of(
                self.session.get_one(BusinessCalendarRow, clock.calendar_id)
            )
        if clock.policy_id not in self.ladders:
            self.ladders[clock.policy_id] = ladder_of(self.session.get_one(SlaPolicy, clock.policy_id))
        return self.calendars[clock.calendar_id], _steps_for(clock.metric, self.ladders[clock.policy_id])


def _transition(
    session: Session,
    ticket: Ticket,
    at: datetime,
    actor: Actor,
    why: str,
    fn: ClockStep,
    metrics: tuple[str, ...] | None = None,
    only_states: tuple[sla.ClockState, ...] = (),
) -> int:
    changed = 0
    cache = _PolicyCache(session)
    for row in _clock_rows(session, ticket):
        if (metrics and row.metric not in metrics) or (only_states and row.state not in only_states):
            continue
        cal, steps = cache.context(row)
        clock, change = fn(cal, to_clock(row), at)
        _store(row, clock)
        _audit(ticket, change, actor, why)
        _schedule(session, row, cal, steps)
        changed += 1
    return changed


def pause_ticket_clocks(
    session: Session, ticket: Ticket, at: datetime, actor: Actor, why: str = "waiting on the shopper"
) -> int:
    return _transition(session, ticket, at, actor, why, sla.pause, only_states=(sla.ClockState.RUNNING,))


def resume_ticket_clocks(
    session: Session, ticket: Ticket, at: datetime, actor: Actor, why: str = "the shopper answered"
) -> int:
    return _transition(session, ticket, at, actor, why, sla.resume, only_states=(sla.ClockState.PAUSED,))


def reopen_ticket_clocks(session: Session, ticket: Ticket, at: datetime, actor: Actor, why: str = "reopened") -> int:
    """A closed ticket is open again (a warehouse discrepancy): its resolution clock runs again, with
    its escalation ladder, from the time it had used. A ticket that never had clocks (auto-approved)
    gets new ones."""
    if not _clock_rows(session, ticket):
        return len(start_ticket_clocks(session, ticket, at, actor))
    return _transition(
        session, ticket, at, actor, why, sla.reopen, metrics=("resolution",), only_states=(sla.ClockState.STOPPED,)
    )


def stop_ticket_clocks(
    session: Session, ticket: Ticket, at: datetime, actor: Actor, metrics: tuple[str, ...], why: str
) -> int:
    return _transition(session, ticket, at, actor, why, sla.stop, metrics=metrics, only_states=LIVE)


def retarget_policy_clocks(session: Session, policy: SlaPolicy, at: datetime, actor: Actor, batch: int = 500) -> int:
    """After a policy's targets change: re-target its running and paused clocks, batch by batch (one commit each)."""
    total = 0
    cal, steps = calendar_of(policy.calendar), ladder_of(policy)
    for rows in _live_clocks_in_batches(session, TicketClock.policy_id == policy.id, batch):
        for row in rows:
            target = policy.first_response_minutes if row.metric == "first_response" else policy.resolution_minutes
            clock, change = sla.retarget(cal, to_clock(row), target, at)
            _store(row, clock)
            _audit(row.ticket, change, actor, f"policy {policy.id} targets changed")
            _schedule(session, row, cal, _steps_for(row.metric, steps))
        total += len(rows)
    return total


def _live_clocks_in_batches(
    session: Session, condition: ColumnElement[bool], batch: int
) -> Iterator[list[TicketClock]]:
    """Running and paused clocks matching ``condition``, a batch at a time; each batch's changes
    are committed before the next batch is read."""
    last_id = 0
    while True:
        rows = list(
            session.scalars(
                select(TicketClock)
                .where(condition, TicketClock.state.in_([s.value for s in LIVE]), TicketClock.id > last_id)
                .order_by(TicketClock.id)
                .limit(batch)
            )
        )
        if not rows:
            return
        yield rows
        last_id = rows[-1].id
        session.commit()


# --- the sweep ---------------------------------------------------------------------


@dataclass
class SweepResult:
    claimed: int = 0
    fired: list[str] = field(default_factory=list)
    dropped: int = 0
    # Wall seconds per phase: claim, read (lock and load), decide (re-check and act, in memory),
    # write (flush the step and clock changes, insert the new rows), commit.
    seconds: dict[str, float] = field(default_factory=dict)

    def phases(self) -> str:
        """``claim 0.01 s, read 0.02 s, ...``: where the sweep's time went."""
        return ", ".join(f"{phase} {value:.2f} s" for phase, value in self.seconds.items())


@contextmanager
def _timed(seconds: dict[str, float] | None, phase: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        if seconds is not None:
            seconds[phase] = seconds.get(phase, 0.0) + time.perf_counter() - start


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector waits while a batch is fired. The batch makes tens of
    thousands of ORM objects that all live until its commit, and collecting the young objects over
    and over while they pile up was one of the largest costs in a profile of the sweep on
    bench.sweep's data; whatever the batch leaves behind is collected once it is done. The
    collector is the whole process's: other threads' cycles wait for the same second or less."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _claim(session: Session, now: datetime, token: str, batch: int) -> list[int]:
    """Claim up to ``batch`` due rows under ``token``: pending ones first (the partial index on
    pending fire times serves the order and stops after ``batch`` rows), then expired claims."""
    pending = (EscalationDue.status == StepStatus.PENDING.value) & (EscalationDue.fire_at <= now)
    expired = (EscalationDue.status == StepStatus.CLAIMED.value) & (EscalationDue.claim_expires < now)
    claimed = {
        "status": StepStatus.CLAIMED.value,
        "claimed_by": token,
        "claim_expires": now + CLAIM_TTL,
        "attempts": EscalationDue.attempts + 1,
    }
    if not on_postgresql(session):
        # SQLite: write first (one UPDATE with a subquery) so the database lock is taken before
        # anything is read; a read-then-write transaction could not wait for a busy writer.
        for condition, order in ((pending, EscalationDue.fire_at), (expired, EscalationDue.claim_expires)):
            chosen = select(EscalationDue.id).where(condition).order_by(order).limit(batch).scalar_subquery()
            session.execute(
                update(EscalationDue)
                .where(EscalationDue.id.in_(chosen))
                .values(claimed)
                .execution_options(synchronize_session=False)
            )
        session.commit()
        return list(
            session.scalars(
                select(EscalationDue.id)
                .where(EscalationDue.claimed_by == token)
                .order_by(EscalationDue.fire_at)
                .limit(2 * batch)
            )
        )
    # PostgreSQL: one UPDATE ... RETURNING per kind, of the rows a SKIP LOCKED select picks (rows another
    # sweeper holds are passed over). The select is a MATERIALIZED CTE: as a plain IN subquery the
    # planner may run it again per row and take more than the LIMIT.
    ids: list[int] = []
    for condition, order in ((pending, EscalationDue.fire_at), (expired, EscalationDue.claim_expires)):
        if len(ids) >= batch:
            break
        picked = (
            select(EscalationDue.id)
            .where(condition)
            .order_by(order)
            .limit(batch - len(ids))
            .with_for_update(skip_locked=True)
            .cte("picked")
            .prefix_with("MATERIALIZED")
        )
        ids += session.scalars(
            update(EscalationDue)
            .where(EscalationDue.id.in_(select(picked.c.id)), condition)
            .values(claimed)
            .returning(EscalationDue.id)
            .execution_options(synchronize_session=False)
        ).all()
    session.commit()
    return ids


def notify_staff(session: Session, staff: StaffUser | None, ticket: Ticket, kind: str, message: str | Text) -> None:
    """A notification in the staff member's list and an email (no commit); nobody inactive is told.

    A ``Text`` message is kept translatable (the list shows it in the reader's language); the
    email is in English."""
    if staff is None or not staff.active:
        return
    notification, email = _notice(staff, ticket, kind, message)
    session.add(StaffNotification(**notification))
    enqueue(session, "email", email["template"], email)


def _notice(staff: StaffUser, ticket: Ticket, kind: str, message: str | Text) -> tuple[dict[str, Any], dict[str, Any]]:
    """The notification row and the email payload that tell ``staff`` ``message`` about the ticket."""
    english = message.render() if isinstance(message, Text) else message
    words = message.to_dict() if isinstance(message, Text) else None
    notification = {"staff_id": staff.id, "ticket_id": ticket.id, "kind": kind, "message": english, "words": words}
    return notification, email_payload(
        staff.email, "staff_escalation", "en", {"message": english, "rma": ticket.request.rma}
    )


@dataclass
class _Writes:
    """What fired steps write, with one statement per table (``write``) rather than an ORM object
    or a flushed change each: the new rows (notifications, their emails, timeline events) and the
    changed ones (step states, clock breaches). The steps and clocks in the session take their new
    values at once, without history, so later steps of the batch see them."""

    notifications: list[dict[str, Any]] = field(default_factory=list)
    emails: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    breaches: list[dict[str, Any]] = field(default_factory=list)
    requests: set[int] = field(default_factory=set)  # whose escalation figures the step states change

    def notify(self, staff: StaffUser, ticket: Ticket, kind: str, message: Text) -> None:
        """What ``notify_staff`` writes, for ``write`` to insert."""
        notification, email = _notice(staff, ticket, kind, message)
        self.notifications.append(notification)
        self.emails.append(email)

    def event(self, ticket: Ticket, kind: str, note: str, data: dict[str, Any]) -> None:
        self.events.append(
            {
                "ticket_id": ticket.id,
                "actor_kind": SLA.kind.value,
                "actor_id": SLA.id,
                "kind": kind,
                "note": note,
                "data": data,
            }
        )

    def step(self, step: EscalationDue, ticket: Ticket, status: StepStatus, at: datetime, outcome: str) -> None:
        """The step is done or cancelled (a checked transition)."""
        values = {"status": check_step(step.status, status).value, "done_at": at, "outcome": outcome[:255]}
        for name, value in values.items():
            set_committed_value(step, name, value)
        self.steps.append({"id": step.id, **values})
        self.requests.add(ticket.request_id)

    def breach(self, clock: TicketClock, at: datetime | None) -> None:
        """The breach the sweep saw on the clock, recorded once with its time."""
        if at is None or (clock.breached_at is not None and _aware(clock.breached_at) == at):
            return
        set_committed_value(clock, "breached_at", at)
        self.breaches.append({"id": clock.id, "breached_at": at})

    def write(self, session: Session) -> None:
        """Once, when the batch (or the one step) has been decided."""
        session.flush()  # the ORM's own changes (tickets moved to a lead) first
        if self.steps:
            changing(session, "escalation", self.requests)  # the insights' rollups follow the states
            update_rows(session, EscalationDue, self.steps)
        update_rows(session, TicketClock, self.breaches)
        insert_rows(session, StaffNotification, self.notifications)
        insert_rows(session, TicketEvent, self.events)
        enqueue_emails(session, self.emails)


# Steps with the same action on a ticket's two clocks that fall due within this long of each other
# fire together: one notification per person and one timeline event that name both clocks.
MERGE_WINDOW = timedelta(minutes=15)
_CLOCK_WORDS = {
    ("first_response",): N_("first response"),
    ("resolution",): N_("resolution"),
    ("first_response", "resolution"): N_("first response and resolution"),
}


@dataclass
class _Told:
    """Who one step told; each person at most once."""

    writes: _Writes
    ticket: Ticket
    ids: list[int] = field(default_factory=list)

    def __call__(self, staff: StaffUser | None, kind: str, message: Text) -> None:
        if staff is None or not staff.active or staff.id in self.ids:
            return
        self.ids.append(staff.id)
        self.writes.notify(staff, self.ticket, kind, message)


def _clock_words(clocks: list[TicketClock]) -> Text:
    return Text(_CLOCK_WORDS.get(tuple(c.metric for c in clocks), N_("resolution")))


def _utc(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC" if at else "—"


def _subject(ticket: Ticket) -> str | Text:
    """What a message about the ticket names: the return's RMA, or the shopper's data request on it."""
    if ticket.kind == "data_request" and ticket.data_request is not None:
        return Text(N_("data request %(id)s on %(rma)s"), {"id": ticket.data_request.id, "rma": ticket.request.rma})
    return ticket.request.rma


def _act(writes: _Writes, cache: _PolicyCache, action: str, key: str, ticket: Ticket, clocks: list[TicketClock]) -> str:
    """Do one escalation step for one or more of the ticket's clocks (merged): notify each person
    once and write one timeline event (into ``writes``)."""
    team, rma = ticket.team, _subject(ticket)
    tell = _Told(writes, ticket)
    metrics = [c.metric for c in clocks]
    data: dict[str, Any] = {"step": key, "action": action, "metrics": metrics}
    which = _clock_words(clocks)
    if action == sla.LadderAction.REMIND:
        target = ticket.assignee or team.lead
        if len(clocks) == 2:
            due = Text(
                N_("%(rma)s: first response due at %(first)s; resolution due at %(resolution)s"),
                {"rma": rma, "first": _utc(clocks[0].deadline), "resolution": _utc(clocks[1].deadline)},
            )
        else:
            due = Text(
                N_("%(rma)s: %(clock)s due at %(due)s"), {"rma": rma, "clock": which, "due": _utc(clocks[0].deadline)}
            )
        tell(target, "reminder", due)
        outcome = f"reminded {target.name if target else 'nobody'} ({which.render()})"
        kind = "step"
    elif action == sla.LadderAction.MOVE_TO_LEAD:
        ticket.escalation_level = max(ticket.escalation_level, 1)
        lead, before = team.lead, ticket.assignee
        data.update(level=1, from_staff=before.id if before else None, to_staff=lead.id if lead else None)
        said = {"rma": rma, "clocks": which}
        if lead is None:
            tell(
                before,
                "escalation",
                Text(N_("%(rma)s: %(clocks)s breached; no team lead is set, the ticket stays with you"), said),
            )
            outcome = "no lead set"
        elif before is not None and before.id == lead.id:
            tell(lead, "escalation", Text(N_("%(rma)s: %(clocks)s breached; you already have the ticket"), said))
            outcome = f"{lead.name} already had it"
        else:
            ticket.assignee = lead
            tell(lead, "escalation", Text(N_("%(rma)s: %(clocks)s breached; the ticket is now yours"), said))
            moved = Text(N_("%(rma)s: %(clocks)s breached; the ticket moved to %(name)s"), {**said, "name": lead.name})
            tell(before, "moved", moved)
            outcome = f"moved to {lead.name}" + (f" from {before.name}" if before else "")
        kind = "escalated"
    elif action == sla.LadderAction.NOTIFY_MANAGER:
        ticket.escalation_level = max(ticket.escalation_level, 2)
        managers = [team.manager] if team.manager else cache.managers()
        for manager in managers:
            tell(
                manager,
                "escalation",
                Text(N_("%(rma)s: %(clocks)s still unresolved after the breach"), {"rma": rma, "clocks": which}),
            )
        data.update(level=2)
        outcome = f"notified {len(tell.ids)} manager(s)"
        kind = "escalated"
    else:
        return f"unknown action {action}"
    data["notified"] = tell.ids
    level = f"level {data['level']}: " if "level" in data else ""
    writes.event(ticket, kind, f"{key}: {level}{outcome}", data)
    return outcome


def _still_due(
    row: EscalationDue, clock: TicketClock, cache: _PolicyCache, by: datetime, value: sla.Clock | None = None
) -> bool:
    """Whether the step is still the clock's current one and falls due by ``by`` (``value``: the
    clock's ``to_clock``, when the caller has it)."""
    if row.generation != clock.generation:
        return False
    cal, steps = cache.context(clock)
    # Each step's time stands on its own: only this one's is worked out.
    mine = [step for step in steps if step.key == row.step_key]
    return any(at <= by for _, at in sla.step_fire_times(cal, value if value is not None else to_clock(clock), mine))


def _open_steps(
    session: Session, ticket_ids: set[int], by: datetime, known: list[EscalationDue] | None = None
) -> dict[int, list[tuple[EscalationDue, TicketClock]]]:
    """The open steps (falling due by ``by``) of the batch's tickets, with their clocks, in one query
    each; ``known`` are open steps of theirs already loaded (the batch's own rows), not read again."""
    known = known or []
    stmt = select(EscalationDue).where(
        among(session, EscalationDue.ticket_id, ticket_ids),
        EscalationDue.status.in_([s.value for s in STEP_OPEN]),
        EscalationDue.fire_at <= by,
    )
    if known:
        stmt = stmt.where(~among(session, EscalationDue.id, [step.id for step in known]))
    steps = sorted([*known, *session.scalars(stmt)], key=lambda step: (_aware(step.fire_at), step.id))
    clocks = {
        clock.id: clock
        for clock in session.scalars(
            select(TicketClock).where(among(session, TicketClock.id, {step.clock_id for step in steps}))
        )
    }
    found: dict[int, list[tuple[EscalationDue, TicketClock]]] = {}
    for step in steps:
        found.setdefault(step.ticket_id, []).append((step, clocks[step.clock_id]))
    return found


def _merge_siblings(
    session: Session,
    row: EscalationDue,
    cache: _PolicyCache,
    now: datetime,
    open_steps: dict[int, list[tuple[EscalationDue, TicketClock]]] | None = None,
) -> list[tuple[EscalationDue, TicketClock]]:
    """The same action's open steps on the ticket's other clocks that fall due within ``MERGE_WINDOW``
    (one per clock, earliest first): claimed for this firing so they do not fire on their own.

    ``open_steps`` are the batch's open steps read up front (``_open_steps``); without them the
    ticket's are read here."""
    if open_steps is None:
        open_steps = _open_steps(session, {row.ticket_id}, now + MERGE_WINDOW)
    candidates = [
        (other, clock)
        for other, clock in open_steps.get(row.ticket_id, [])
        if other.action == row.action
        and other.clock_id != row.clock_id
        and other.status in OPEN_STEP_VALUES
        and _aware(other.fire_at) <= now + MERGE_WINDOW
    ]
    found: dict[int, tuple[EscalationDue, TicketClock]] = {}
    for other, clock in candidates:
        if other.clock_id not in found and _still_due(other, clock, cache, now + MERGE_WINDOW):
            if other.status == StepStatus.PENDING.value:
                other.status = check_step(other.status, StepStatus.CLAIMED).value
            found[other.clock_id] = (other, clock)
    return list(found.values())


def _aware(at: datetime) -> datetime:
    """SQLite hands back naive UTC datetimes."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _fire_one(
    session: Session,
    row: EscalationDue,
    cache: _PolicyCache,
    writes: _Writes,
    now: datetime,
    open_steps: dict[int, list[tuple[EscalationDue, TicketClock]]] | None = None,
) -> list[str] | None:
    """Fire one claimed step (with the steps it merges); None when it is no longer due, [] when an
    earlier step of this batch already fired it."""
    if row.status != StepStatus.CLAIMED.value:
        return []
    clock = session.get_one(TicketClock, row.clock_id)
    ticket = session.get_one(Ticket, row.ticket_id)
    value = to_clock(clock)  # the clock as it stands, for the re-check and the breach
    # Re-check inside the transaction: the clock may have been paused, stopped or re-targeted since.
    if not _still_due(row, clock, cache, now, value):
        writes.step(row, ticket, StepStatus.CANCELLED, now, "no longer due")
        return None
    group = [(row, clock), *_merge_siblings(session, row, cache, now, open_steps)]
    group.sort(key=lambda item: sla.METRICS.index(item[1].metric) if item[1].metric in sla.METRICS else 9)
    for _, c in group:  # a breach the sweep sees is recorded with its time and stays
        writes.breach(c, sla.breach_seen(value if c is clock else to_clock(c), now))
    outcome = _act(writes, cache, row.action, row.step_key, ticket, [c for _, c in group])
    fired = []
    for step, c in group:
        note = outcome if step is row else f"{outcome} (with {clock.metric}/{row.step_key})"
        writes.step(step, ticket, StepStatus.DONE, now, note)
        fired.append(f"{ticket.request.rma} {c.metric}/{step.step_key}: {note}")
    return fired


def _lock_and_read(session: Session, ids: list[int], token: str) -> list[EscalationDue]:
    """Our claimed rows of ``ids``, locked (with their tickets) for this transaction."""
    stmt = select(EscalationDue).where(
        among(session, EscalationDue.id, ids),
        EscalationDue.status == StepStatus.CLAIMED.value,
        EscalationDue.claimed_by == token,
    )
    if on_postgresql(session):
        # Tickets first, in id order: two sweepers merging steps of one ticket wait for each other
        # instead of each holding a step the other wants.
        ticket_ids = select(EscalationDue.ticket_id).where(among(session, EscalationDue.id, ids))
        session.execute(select(Ticket.id).where(Ticket.id.in_(ticket_ids)).order_by(Ticket.id).with_for_update())
        stmt = stmt.with_for_update()
    else:
        # SQLite: take the write lock before reading (see _claim).
        session.execute(
            update(EscalationDue)
            .where(among(session, EscalationDue.id, ids), EscalationDue.claimed_by == token)
            .values(attempts=EscalationDue.attempts)
            .execution_options(synchronize_session=False)
        )
    return list(session.scalars(stmt.order_by(EscalationDue.fire_at, EscalationDue.id)))


def _load_batch(
    session: Session, rows: list[EscalationDue], now: datetime
) -> tuple[list[Ticket], dict[int, list[tuple[EscalationDue, TicketClock]]]]:
    """The batch's tickets with their team, people and request, and every open step of those
    tickets (the batch's rows among them) with its clock: a handful of queries per batch."""
    ticket_ids = {row.ticket_id for row in rows}
    tickets = list(
        session.scalars(
            select(Ticket)
            .where(among(session, Ticket.id, ticket_ids))
            .options(
                selectinload(Ticket.team).selectinload(Team.lead),
                selectinload(Ticket.team).selectinload(Team.manager),
                selectinload(Ticket.assignee),
                # Only the RMA is named: the request's sealed personal data stays undecrypted.
                selectinload(Ticket.request).load_only(ReturnRequest.id, ReturnRequest.rma),
            )
            # The steps' tickets may already be in the session without their relations.
            .execution_options(populate_existing=True)
        )
    )
    return tickets, _open_steps(session, ticket_ids, now + MERGE_WINDOW, known=rows)


def _fire_together(
    session: Session, rows: list[EscalationDue], now: datetime, seconds: dict[str, float] | None = None
) -> tuple[list[str], int]:
    """Fire the batch with everything it reads loaded up front (``_load_batch``) and nothing
    written while deciding; then the step and clock changes are flushed and the notifications,
    outbox rows and events inserted with one statement per table, and the batch commits. Raises if
    any step fails; the caller rolls back."""
    cache = _PolicyCache(session)
    with session.no_autoflush:
        # Held here for the batch: the session keeps loaded objects only while something refers to them.
        with _timed(seconds, "read"):
            tickets, open_steps = _load_batch(session, rows, now)
        writes = _Writes()
        fired: list[str] = []
        dropped = 0
        with _timed(seconds, "decide"):
            for row in rows:
                result = _fire_one(session, row, cache, writes, now, open_steps)
                if result is None:
                    dropped += 1
                else:
                    fired += result
        with _timed(seconds, "write"):
            writes.write(session)
    # Commit while the batch's objects are still held: the commit's own bookkeeping reads them too.
    with _timed(seconds, "commit"):
        session.commit()
    del open_steps, tickets
    return fired, dropped


def _fire_one_by_one(session: Session, rows: list[EscalationDue], now: datetime) -> tuple[list[str], int]:
    """A savepoint per step: a broken step is skipped (its claim expires and it is retried)."""
    cache = _PolicyCache(session)
    fired: list[str] = []
    dropped = 0
    for row in rows:
        try:
            with session.begin_nested():
                writes = _Writes()
                result = _fire_one(session, row, cache, writes, now)
                writes.write(session)
        except Exception:  # one broken step must not block the others; its claim expires and it is retried
            log.exception("escalation step %s failed", row.id)
            dropped += 1
            continue
        if result is None:
            dropped += 1
        else:
            fired += result
    return fired, dropped


def _fire_batch(
    session: Session, ids: list[int], token: str, now: datetime, seconds: dict[str, float] | None = None
) -> tuple[list[str], int]:
    """Act on our claimed rows and mark them done, in one transaction.

    The whole batch is fired together first; if any step fails, that transaction is rolled back
    and the batch is fired again one step at a time with a savepoint each, so one broken step
    cannot hold up the rest. A crash before the commit leaves nothing done and the claims expire;
    a row whose claim passed to another sweeper meanwhile, or that another sweeper merged into a
    step of the same ticket, is skipped. Either way no step acts twice.
    """
    with _timed(seconds, "read"):
        rows = _lock_and_read(session, ids, token)
    try:
        fired, dropped = _fire_together(session, rows, now, seconds)
    except Exception:
        log.warning("escalation batch of %d steps failed together; firing them one by one", len(rows), exc_info=True)
        session.rollback()
        rows = _lock_and_read(session, ids, token)
        fired, dropped = _fire_one_by_one(session, rows, now)
        session.commit()
    return fired, dropped + len(ids) - len(rows)


# Steps claimed and fired per transaction: larger batches share the per-batch statements among more
# steps (compare ``python -m bench.sweep --batch 200`` with the default) while a batch's locks on its
# tickets are still held for about a second at most on a slow machine.
SWEEP_BATCH = 500


def sweep(
    factory: sessionmaker[Session], now: datetime | None = None, batch: int = SWEEP_BATCH, worker: str = "sweeper"
) -> SweepResult:
    """Fire every due escalation step once. Costs in proportion to the due work (partial index on pending fire times)."""
    now = now or datetime.now(UTC)
    result = SweepResult()
    while True:
        token = f"{worker}:{uuid.uuid4().hex[:12]}"
        with factory() as session, _timed(result.seconds, "claim"):
            ids = _claim(session, now, token, batch)
        if not ids:
            return result
        result.claimed += len(ids)
        with factory() as session, _collector_paused():
            fired, dropped = _fire_batch(session, ids, token, now, result.seconds)
        result.fired += fired
        result.dropped += dropped
        if len(ids) < batch:
            return result


def seed_holidays(session: Session, calendar: BusinessCalendarRow, country: str, years: list[int]) -> int:
    """Add the country's public holidays as closed days (rows stay editable; existing days are kept)."""
    existing = {e.day for e in calendar.exceptions}
    added = 0
    for day, name in sorted(holidays_lib.country_holidays(country, years=years).items()):
        if day not in existing:
            calendar.exceptions.append(CalendarException(day=day, hours=[], note=str(name)[:128]))
            added += 1
    session.flush()
    return added


def queue_clocks(
    session: Session, tickets: list[Ticket], now: datetime, soon: timedelta = timedelta(hours=4)
) -> dict[int, dict[str, dict[str, Any]]]:
    """Both SLA clocks of each ticket, for queue rows and ticket badges (the clock's calendar counts).

    Returns ``{ticket_id: {metric: clock}}`` with ``metric`` in ``"first_response"``, ``"resolution"``
    (a ticket without a policy has no entry) and each clock a dict of: ``metric``; ``state``
    (running, paused, stopped); ``deadline`` (UTC, None while paused); ``remaining``, business
    minutes left at ``now`` (negative once overdue, None once stopped); ``breached``, as
    ``sla.is_breached`` (a recorded breach stays breached whatever a policy change did to the
    deadline; a stopped clock that missed its target stays breached); ``breached_at``, when the
    breach was recorded (None if not yet recorded); ``soon``, running, not breached and due within
    ``soon``. The Breached and Breaching-soon queue views select tickets by the same rules
    (``portal.db.queries.clock_breached``, ``clock_breaching_soon``) for either clock.
    """
    if not tickets:
        return {}
    rows = session.scalars(select(TicketClock).where(TicketClock.ticket_id.in_([t.id for t in tickets])))
    calendars: dict[int, sla.BusinessCalendar] = {}
    out: dict[int, dict[str, dict[str, Any]]] = {}
    for row in rows:
        if row.calendar_id not in calendars:
            calendars[row.calendar_id] = calendar_of(session.get_one(BusinessCalendarRow, row.calendar_id))
        clock = to_clock(row)
        running = row.state == sla.ClockState.RUNNING and row.deadline is not None
        deadline = row.deadline.replace(tzinfo=UTC) if row.deadline and row.deadline.tzinfo is None else row.deadline
        breached = sla.is_breached(clock, now)
        out.setdefault(row.ticket_id, {})[row.metric] = {
            "metric": row.metric,
            "state": row.state,
            "remaining": sla.remaining(calendars[row.calendar_id], clock, now)
            if row.state != sla.ClockState.STOPPED
            else None,
            "breached": breached,
            "soon": running and not breached and deadline is not None and deadline <= now + soon,
            "deadline": deadline,
            "breached_at": clock.breached_at,
        }
    return out


def recalendar_clocks(
    session: Session,
    calendar: BusinessCalendarRow,
    old: sla.BusinessCalendar,
    at: datetime,
    actor: Actor,
    batch: int = 500,
) -> int:
    """After a calendar's hours or holidays change: running clocks keep the time used so far
    (measured in the old calendar) and count the rest in the new one; batch by batch, one commit each."""
    new = calendar_of(calendar)
    total = 0
    cache = _PolicyCache(session)
    for rows in _live_clocks_in_batches(session, TicketClock.calendar_id == calendar.id, batch):
        for row in rows:
            clock, change = sla.recalendar(old, new, to_clock(row), at)
            _store(row, clock)
            _audit(row.ticket, change, actor, f"calendar {calendar.code} changed")
            _, steps = cache.context(row)
            _schedule(session, row, new, steps)
        total += len(rows)
    return total


def update_calendar(
    session: Session,
    calendar: BusinessCalendarRow,
    weekly: dict[Any, Any],
    exceptions: dict[str, list[str]],
    notes: dict[str, str],
    at: datetime,
    actor: Actor,
) -> int:
    """Replace a calendar's weekly hours and exception days (validated by the domain first); re-targets its clocks."""
    old = calendar_of(calendar)
    candidate = sla.BusinessCalendar.from_spec(
        {"timezone": calendar.timezone, "weekly": weekly, "exceptions": exceptions}
    )
    calendar.weekly = candidate.to_spec()["weekly"]
    by_day = {e.day.isoformat(): e for e in calendar.exceptions}
    for day, hours in exceptions.items():
        row = by_day.pop(day, None)
        if row is None:
            row = CalendarException(day=datetime.fromisoformat(day).date(), hours=list(hours), note=notes.get(day, ""))
            calendar.exceptions.append(row)
        else:
            row.hours, row.note = list(hours), notes.get(day, row.note)
    for row in by_day.values():
        calendar.exceptions.remove(row)
        session.delete(row)
    session.flush()
    session.expire(calendar, ["exceptions"])
    return recalendar_clocks(session, calendar, old, at, actor) if old != calendar_of(calendar) else 0
