"""Background jobs that kept failing: recorded, shown to admins, retried on request.

A Celery task is recorded once its retries are used up; an in-process job when it raises. Repeats
of the same open failure (same job, same parameters) count on one row instead of piling up.
Nothing here knows which backend runs the jobs: a retry is deferred like any other job.
"""

from __future__ import annotations

import hashlib
import json
import re
import traceback
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.db.models import JobFailure, StaffUser
from portal.domain.errors import Conflict, InvalidInput, NotFound
from portal.domain.text import N_
from portal.logs import mask_email, safe
from portal.services.admin import record_change
from portal.services.work import defer

ERROR_CHARS = 500
EXCERPT_FRAMES = 8
EXCERPT_CHARS = 4000

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Digit runs long enough to be a phone, card or account number; ids and line numbers stay.
_LONG_NUMBER = re.compile(r"\+?\d[\d \-]{7,}\d")
# SQLAlchemy appends the statement and its bound values (addresses, names) to its messages.
_SQL_DETAIL = re.compile(r"\s*\[(?:SQL|parameters):.*", re.DOTALL)


def scrub(text: str) -> str:
    """An error message without personal data: emails masked, long numbers hidden, SQL values cut."""
    text = _SQL_DETAIL.sub("", text)
    text = _EMAIL.sub(lambda m: mask_email(m.group()), text)
    return _LONG_NUMBER.sub("***", text)


def describe(exc: BaseException) -> tuple[str, str]:
    """The error line and a traceback excerpt: where it happened (files, lines, functions) and the
    scrubbed message; no local values and no raw message text."""
    error = safe(scrub(f"{type(exc).__name__}: {exc}"), ERROR_CHARS)
    frames = traceback.extract_tb(exc.__traceback__)[-EXCERPT_FRAMES:]
    lines = [f'File "{frame.filename}", line {frame.lineno}, in {frame.name}' for frame in frames]
    excerpt = "\n".join([*lines, error])
    return error, excerpt[-EXCERPT_CHARS:]


def fingerprint(task: str, args: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps([task, dict(args)], sort_keys=True, default=str).encode()).hexdigest()


def record_failure(
    session: Session, task: str, args: Mapping[str, Any], exc: BaseException, attempts: int = 1
) -> JobFailure:
    """Record that ``task`` with ``args`` failed after ``attempts`` tries. The open record of the same
    job and parameters (there is at most one) counts the attempts and keeps the latest error, also
    when several workers fail at once. Commits."""
    now = datetime.now(UTC)
    error, excerpt = describe(exc)
    key = fingerprint(task, args)
    tries = max(1, attempts)
    for _ in range(3):
        open_id = session.scalar(
            select(JobFailure.id).where(JobFailure.fingerprint == key, JobFailure.resolved_at.is_(None))
        )
        if open_id is not None:
            session.execute(
                update(JobFailure)
                .where(JobFailure.id == open_id)
                .values(attempts=JobFailure.attempts + tries, error=error, traceback=excerpt, last_failed_at=now)
            )
            session.commit()
            return session.get_one(JobFailure, open_id, populate_existing=True)
        row = JobFailure(
            task=task,
            args=json.loads(json.dumps(dict(args), default=str)),
            fingerprint=key,
            error=error,
            traceback=excerpt,
            attempts=tries,
            first_failed_at=now,
            last_failed_at=now,
        )
        session.add(row)
        try:
            session.commit()
        except IntegrityError:  # another worker opened the record first: count on it
            session.rollback()
            continue
        return row
    raise RuntimeError(f"could not record the failure of {task}")


def open_failures(session: Session, limit: int = 200) -> list[JobFailure]:
    """Failures nobody has retried yet, the latest first."""
    stmt = select(JobFailure).where(JobFailure.resolved_at.is_(None)).order_by(JobFailure.last_failed_at.desc())
    return list(session.scalars(stmt.limit(limit)))


def recent_resolved(session: Session, limit: int = 20) -> list[JobFailure]:
    stmt = select(JobFailure).where(JobFailure.resolved_at.is_not(None)).order_by(JobFailure.resolved_at.desc())
    return list(session.scalars(stmt.limit(limit)))


def retry_failure(
    session: Session, failure_id: int, known: Callable[[str], bool], actor: StaffUser | None = None
) -> JobFailure:
    """Run a failed job again with its parameters, once it is committed; the record is closed (a new
    failure opens a new one). ``known`` says whether a job name can still be run. Commits."""
    row = session.get(JobFailure, failure_id)
    if row is None:
        raise NotFound(N_("That failed job does not exist."))
    if row.resolved_at is not None:
        raise Conflict(N_("That job was already retried."))
    if not known(row.task):
        raise InvalidInput(N_("This job no longer exists and cannot be run again."))
    row.resolved_at = datetime.now(UTC)
    row.resolved_by_id = actor.id if actor is not None else None
    defer(session, row.task, **row.args)
    if actor is not None:
        record_change(session, actor, "retry_job", f"job_failure:{row.id}", None, {"task": row.task, "args": row.args})
    session.commit()
    return row
