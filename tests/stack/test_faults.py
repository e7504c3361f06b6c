"""Faults of the scaled stack: a worker killed mid-task, Redis restarted with work queued, and two
beats started by mistake. Nothing may be lost or done twice."""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import func, select

from tests.stack.harness import pid_with_local_port, wait_for
from tests.stack.shopper import photo_states, push_order, request_with_photos, scored_events

QUIET_SECONDS = 3
QUEUE = "portal"  # the Celery queue: a Redis list of that name


def log_text(service) -> str:
    return service.log_path.read_text(errors="replace")


def all_scored(db, rma: str, photos: int = 3):
    states = photo_states(db, rma)
    return len(states) == photos and all(s != "pending" for s in states) and states


def queue_length(stack) -> int:
    import redis

    with redis.Redis.from_url(stack.broker_url) as broker:
        return broker.llen(QUEUE)


def held_reads(stack) -> list[tuple[int, object]]:
    """The worker processes stuck reading a photo through the held proxy, with their services."""
    owners = {pid: worker for worker in stack.workers for pid in worker.group_pids()}
    found = []
    for _, port in list(stack.s3_proxy.waiting):
        pid = pid_with_local_port(list(owners), port)
        if pid is not None:
            found.append((pid, owners[pid]))
    return found


def test_worker_killed_holding_a_task_runs_it_again_and_its_effect_happens_once(celery_stack, db):
    stack = celery_stack
    number, address = push_order(stack.base_url)
    stack.s3_proxy.hold()
    try:
        rma = request_with_photos(stack.base_url, number, address, photos=3)
        pid, worker = wait_for(lambda: held_reads(stack), "a worker reading a photo", 30, stack.services)[0]
        assert pid != worker.pid, "the prefork child runs the task, not the worker's main process"
        received = re.findall(r"score_photos\[([0-9a-f-]+)\] received", log_text(worker))
        assert received, log_text(worker)
        task_id = received[-1]
        os.kill(pid, signal.SIGKILL)  # the process holding the task dies mid-read
    finally:
        stack.s3_proxy.release()

    wait_for(
        lambda: any(f"score_photos[{task_id}] succeeded" in log_text(w) for w in stack.workers),
        "the killed task run again",
        60,
        stack.services,
    )
    assert all_scored(db, rma) == ["scored"] * 3
    assert scored_events(db, rma) == 1
    wait_for(lambda: stack.inbox.to(address), "confirmation email", 60, stack.services)
    time.sleep(QUIET_SECONDS)
    assert len(stack.inbox.to(address)) == 1
    assert all(w.running() for w in stack.workers)  # the worker replaced its lost process


def test_worker_killed_with_its_host_hands_the_task_to_another_worker(celery_stack, db):
    """The whole worker (main process and pool) dies at once, as with its machine: the task it held
    stays unacknowledged in Redis, and a worker still alive takes it once its visibility timeout
    has passed."""
    stack = celery_stack
    number, address = push_order(stack.base_url)
    stack.s3_proxy.hold()
    try:
        rma = request_with_photos(stack.base_url, number, address, photos=3)
        _, dead = wait_for(lambda: held_reads(stack), "a worker reading a photo", 30, stack.services)[0]
        task_id = re.findall(r"score_photos\[([0-9a-f-]+)\] received", log_text(dead))[-1]
        dead.kill()
        stack.workers.remove(dead)
    finally:
        stack.s3_proxy.release()
    # The stack's workers wait an hour (the default) before taking over a dead worker's task; this
    # one looks after 5 s, on its first check for such tasks (10 s after it starts).
    (rescuer,) = stack.start_workers(f"rescuer-{dead.name}", PORTAL_JOBS_VISIBILITY_TIMEOUT="5")
    wait_for(
        lambda: any(f"score_photos[{task_id}] succeeded" in log_text(w) for w in stack.workers),
        "the dead worker's task run by another",
        60,
        stack.services,
    )
    assert f"score_photos[{task_id}] succeeded" not in log_text(dead)
    assert all_scored(db, rma) == ["scored"] * 3
    assert scored_events(db, rma) == 1
    wait_for(lambda: stack.inbox.to(address), "confirmation email", 60, stack.services)
    time.sleep(QUIET_SECONDS)
    assert len(stack.inbox.to(address)) == 1
    # Back to two ordinary workers: a 5 s timeout would also hand over tasks that are merely slow.
    rescuer.stop(signal.SIGTERM, grace=10)
    stack.workers.remove(rescuer)
    stack.start_workers(f"{dead.name}-again")


def test_redis_restart_with_work_queued_loses_nothing(celery_stack, db):
    """Work queued in Redis survives its restart; a request made while Redis is down is answered,
    and its work is done once Redis is back (by the periodic catch-up of pending photos and mail)."""
    stack = celery_stack
    orders = [push_order(stack.base_url) for _ in range(4)]
    stack.s3_proxy.hold()  # both workers get stuck on a photo: the rest of the work waits in Redis
    try:
        rmas = [request_with_photos(stack.base_url, number, address, photos=1) for number, address in orders[:3]]

        def both_busy_and_work_queued():
            holders = {holder.name for _, holder in held_reads(stack)}
            return len(holders) == 2 and queue_length(stack)

        queued = wait_for(both_busy_and_work_queued, "both workers busy, work queued", 30, stack.services)
        stack.stop_redis()
        number, address = orders[3]
        rmas.append(request_with_photos(stack.base_url, number, address, photos=1))  # the shopper is not let down
        stack.start_redis()
        assert queue_length(stack) >= queued  # the append-only file kept it
    finally:
        stack.s3_proxy.release()

    for rma in rmas:
        wait_for(lambda rma=rma: all_scored(db, rma, 1), f"photos of {rma} scored", 90, stack.services)
    for _, address in orders:
        wait_for(lambda a=address: stack.inbox.to(a), f"email to {address}", 60, stack.services)
    time.sleep(QUIET_SECONDS)
    for (_, address), rma in zip(orders, rmas, strict=True):
        assert all_scored(db, rma, 1) == ["scored"]
        assert scored_events(db, rma) == 1
        assert len(stack.inbox.to(address)) == 1


def test_two_schedulers_fire_each_escalation_step_once(celery_stack, db):
    from portal import create_app
    from portal.db import get_engine, session_scope
    from portal.db.models import EscalationDue, StaffNotification, Ticket, TicketEvent
    from tests.helpers import open_coat_ticket, shanghai_desk_with_policy

    stack = celery_stack
    overrides = {
        "INSTANCE_PATH": str(stack.workdir / "test-instance"),
        "DATABASE_URL": stack.database_url,
        "SECRET_KEY": stack.app_env["PORTAL_SECRET_KEY"],
        "API_SECRET": stack.app_env["PORTAL_API_SECRET"],
        "JOBS_MODE": "off",  # this process only writes the rows; the stack does the work
    }
    if "PORTAL_DATA_KEY" in stack.app_env:
        overrides["DATA_KEY"] = stack.app_env["PORTAL_DATA_KEY"]
    app = create_app(overrides)
    try:
        second = stack.start_scheduler("beat-2")
        with session_scope(app) as session:
            desk = shanghai_desk_with_policy(session)
            manager = desk["manager"].id
        # Opened on Monday 23 November 2026 at 10:00 Shanghai: every step of its ladder is long due.
        ticket_id = open_coat_ticket(app, "ESC-1", datetime(2026, 11, 23, 2, 0, tzinfo=UTC))
    finally:
        get_engine(app).dispose()

    def sweeps_sent(beat) -> int:
        return log_text(beat).count("Sending due task sweep_escalations")

    def sweeps_run() -> int:
        return sum(len(re.findall(r"sweep_escalations\[[0-9a-f-]+\] succeeded", log_text(w))) for w in stack.workers)

    sent, ran = {beat.name: sweeps_sent(beat) for beat in stack.schedulers}, sweeps_run()
    # Each beat queues a sweep after the ticket exists (every 30 s), and the workers run both.
    wait_for(
        lambda: all(sweeps_sent(b) > sent[b.name] for b in stack.schedulers) and sweeps_run() >= ran + 2,
        "a sweep from each beat run",
        75,
        stack.services,
    )
    assert second in stack.schedulers

    db.expire_all()
    steps = db.execute(
        select(EscalationDue.step_key, EscalationDue.status).where(EscalationDue.ticket_id == ticket_id)
    ).all()
    assert steps and all(status == "done" for _, status in steps), steps
    notes = db.scalars(
        select(TicketEvent.note).where(
            TicketEvent.ticket_id == ticket_id, TicketEvent.actor_kind == "sla", TicketEvent.kind != "deadline"
        )
    ).all()
    # Every step fired, none twice (steps of both clocks due together fire as one).
    assert Counter(note.split(":", 1)[0] for note in notes) == Counter({key for key, _ in steps}), notes
    assert db.get(Ticket, ticket_id).escalation_level == 2
    assert db.scalar(select(func.count(StaffNotification.id)).where(StaffNotification.staff_id == manager)) == 1
