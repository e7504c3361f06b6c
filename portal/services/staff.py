"""Staff accounts: argon2 passwords, rehash on login, sessions that end on logout or disable."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.db.models import AuditLog, StaffUser
from portal.domain.errors import InvalidInput
from portal.domain.roles import ROLES
from portal.domain.text import N_
from portal.logs import mask_email, safe
from portal.services.admin import record_change, staff_data
from portal.services.outbox import enqueue_email

log = logging.getLogger("portal.staff")
DEFAULT_HASHER = PasswordHasher()  # argon2id with the library's recommended parameters
hasher = DEFAULT_HASHER
_dummy: dict[int, str] = {}


def _dummy_hash() -> str:
    """Verified against when the email is unknown, so a miss costs what a hit costs."""
    key = id(hasher)
    if key not in _dummy:
        _dummy[key] = hasher.hash("not-a-real-password")
    return _dummy[key]


MIN_PASSWORD = 10


class StaffError(InvalidInput):
    """An account change a rule refuses (unknown role, short password, changing oneself); ``field``
    names the form field it is about (email, role, password), when there is one."""

    def __init__(self, message: str, /, *, field: str = "", **params: Any) -> None:
        super().__init__(message, **params)
        self.field = field


def create_staff(
    session: Session, email: str, name: str, role: str, password: str, actor: StaffUser | None = None
) -> StaffUser:
    """Create an account; the email is unique (case-insensitive) and the role must exist.

    Created by an admin (``actor``), the creation is audited; the demo and the CLI pass no actor.
    """
    email = email.strip().lower()
    if role not in ROLES:
        raise StaffError(
            N_("Unknown role %(role)s; choose one of %(roles)s."), field="role", role=role, roles=", ".join(ROLES)
        )
    if len(password) < MIN_PASSWORD:
        raise StaffError(N_("The password must have at least %(n)d characters."), field="password", n=MIN_PASSWORD)
    if session.scalars(select(StaffUser.id).where(StaffUser.email == email)).first() is not None:
        raise StaffError(N_("%(email)s already has an account."), field="email", email=email)
    user = StaffUser(
        email=email,
        name=name.strip() or email,
        role=role,
        password_hash=hasher.hash(password),
        active=True,
        session_version=1,
    )
    session.add(user)
    if actor is not None:
        session.flush()
        record_change(session, actor, "create_staff", f"staff:{user.id}", None, staff_data(user))
    session.commit()
    log.info("staff account created for %s with role %s", mask_email(email), role)
    return user


def warn_of_login_attempts(session: Session, email: str, count: int, minutes: int) -> bool:
    """Tell an account's owner that sign-ins to it are paused after many wrong passwords.

    Nothing is sent (and nothing reveals it) when no active account has this address.
    """
    email = (email or "").strip().lower()
    user = session.scalars(select(StaffUser).where(StaffUser.email == email)).one_or_none()
    if user is None or not user.active:
        return False
    enqueue_email(
        session, user.email, "staff_login_throttled", "en", {"name": user.name, "count": count, "minutes": minutes}
    )
    session.add(
        AuditLog(
            actor_id=None,
            action="login_throttled",
            target=f"staff:{user.id}",
            detail=f"{count} wrong passwords in {minutes} minutes",
        )
    )
    session.commit()
    log.warning("staff sign-in paused for %s after %d wrong passwords", mask_email(safe(email)), count)
    return True


def authenticate(session: Session, email: str, password: str) -> StaffUser | None:
    """The active account for these credentials, or None. Rehashes when the parameters changed."""
    email = (email or "").strip().lower()
    user = session.scalars(select(StaffUser).where(StaffUser.email == email)).one_or_none()
    try:
        hasher.verify(user.password_hash if user else _dummy_hash(), password or "")
        ok = user is not None
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None or not user.active:
        log.warning("staff login failed for %s", mask_email(safe(email)))
        return None
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    user.last_login_at = datetime.now(UTC)
    session.commit()
    return user


def end_sessions(session: Session, user: StaffUser) -> None:
    """Invalidate every existing session of this account (logout everywhere)."""
    user.session_version += 1
    session.commit()


def set_active(session: Session, user: StaffUser, active: bool) -> None:
    user.active = active
    user.session_version += 1
    session.commit()
    log.info("staff account %s %s", mask_email(user.email), "enabled" if active else "disabled")


def ensure_staff(session: Session, email: str, name: str, role: str, password: str) -> StaffUser:
    """Create the account if missing (used by the demo)."""
    user = session.scalars(select(StaffUser).where(StaffUser.email == email.lower())).one_or_none()
    return user or create_staff(session, email, name, role, password)


def change_role(session: Session, actor: StaffUser, user: StaffUser, role: str) -> None:
    """Change a role (audited); the account's sessions end so the new role applies at once."""
    if role not in ROLES:
        raise StaffError(N_("Unknown role %(role)s; choose one of %(roles)s."), role=role, roles=", ".join(ROLES))
    if user.id == actor.id:
        raise StaffError(N_("You cannot change your own role."))
    old, before = user.role, staff_data(user)
    user.role = role
    user.session_version += 1
    record_change(
        session, actor, "change_role", f"staff:{user.id}", before, staff_data(user), detail=f"{old} -> {role}"
    )
    session.commit()
    log.info("staff %s changed the role of %s from %s to %s", actor.id, mask_email(user.email), old, role)


def set_active_by(session: Session, actor: StaffUser, user: StaffUser, active: bool) -> None:
    """An admin disables or enables an account (audited); disabling ends its sessions."""
    if user.id == actor.id and not active:
        raise StaffError(N_("You cannot disable your own account."))
    record_change(
        session,
        actor,
        "enable" if active else "disable",
        f"staff:{user.id}",
        staff_data(user),
        {**staff_data(user), "active": active},
    )
    set_active(session, user, active)
