"""Staff accounts: argon2 passwords, rehash on login, sessions that end on logout or disable."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import available_timezones

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer
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


# --- passwords: changed by their owner, or reset through a one-time link -----------------------

RESET_SALT = "portal.staff-password-reset.v1"


class ResetLinkError(StaffError):
    """A password reset link that cannot be used; ``reason`` is expired, used or invalid."""

    def __init__(self, reason: str, message: str, /, **params: Any) -> None:
        super().__init__(message, **params)
        self.reason = reason


def _fingerprint(user: StaffUser) -> str:
    """Changes whenever the password does, so a link stops working once it has been used."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:20]


def _reset_serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=RESET_SALT)


def make_reset_token(secret: str, user: StaffUser) -> str:
    """A signed token for one password reset of ``user``: it ends when the password changes."""
    return str(_reset_serializer(secret).dumps({"u": user.id, "p": _fingerprint(user)}))


def account_for_reset(session: Session, secret: str, token: str, max_age_minutes: int) -> StaffUser:
    """The active account a reset token is for; ``ResetLinkError`` says why not (expired, used, invalid)."""
    try:
        data = _reset_serializer(secret).loads(token, max_age=max_age_minutes * 60)
    except SignatureExpired:
        raise ResetLinkError(
            "expired", N_("This password link has expired. Ask for a new one."), field="password"
        ) from None
    except BadData:
        raise ResetLinkError("invalid", N_("This password link is not valid."), field="password") from None
    user = session.get(StaffUser, data.get("u")) if isinstance(data, dict) and isinstance(data.get("u"), int) else None
    if user is None or not user.active:
        raise ResetLinkError("invalid", N_("This password link is not valid."), field="password")
    if data.get("p") != _fingerprint(user):
        raise ResetLinkError(
            "used", N_("This password link has already been used. Ask for a new one."), field="password"
        )
    return user


def _set_password(user: StaffUser, password: str) -> None:
    if len(password or "") < MIN_PASSWORD:
        raise StaffError(N_("The password must have at least %(n)d characters."), field="password", n=MIN_PASSWORD)
    user.password_hash = hasher.hash(password)
    user.session_version += 1  # every session of the account ends


@dataclass(frozen=True)
class ResetLink:
    url: str
    minutes: int
    emailed: bool


def issue_password_reset(
    session: Session,
    actor: StaffUser,
    user: StaffUser,
    secret: str,
    public_url: str,
    minutes: int,
    *,
    email: bool,
) -> ResetLink:
    """An admin makes a one-time reset link for ``user`` (audited, the link itself is not written
    down) and shows it to pass on; with ``email`` it also goes to the account's address."""
    if not user.active:
        raise StaffError(N_("Enable the account before resetting its password."))
    url = f"{public_url.rstrip('/')}/staff/password/reset/{make_reset_token(secret, user)}"
    if email:
        enqueue_email(
            session,
            user.email,
            "staff_password_reset",
            "en",
            {"name": user.name, "link": url, "minutes": minutes, "by_admin": True},
        )
    record_change(
        session,
        actor,
        "password_reset_link",
        f"staff:{user.id}",
        None,
        None,
        detail=f"valid {minutes} minutes" + (", emailed" if email else ", shown to the admin"),
    )
    session.commit()
    log.info("staff %s made a password reset link for %s", actor.id, mask_email(user.email))
    return ResetLink(url, minutes, email)


def request_password_reset(session: Session, email: str, secret: str, public_url: str, minutes: int) -> bool:
    """Someone asks for a reset link for ``email``: it is emailed when an active account has that
    address; the caller answers the same either way (True only says whether a mail was queued)."""
    email = (email or "").strip().lower()
    user = session.scalars(select(StaffUser).where(StaffUser.email == email)).one_or_none()
    if user is None or not user.active:
        log.info("password link asked for %s: no active account", mask_email(safe(email)))
        return False
    url = f"{public_url.rstrip('/')}/staff/password/reset/{make_reset_token(secret, user)}"
    enqueue_email(
        session,
        user.email,
        "staff_password_reset",
        "en",
        {"name": user.name, "link": url, "minutes": minutes, "by_admin": False},
    )
    session.add(AuditLog(actor_id=None, action="password_reset_asked", target=f"staff:{user.id}", detail="emailed"))
    session.commit()
    log.info("password link emailed to %s", mask_email(user.email))
    return True


def reset_password(session: Session, user: StaffUser, password: str) -> None:
    """Set a new password through a reset link (checked by ``account_for_reset``); every session ends
    and the link cannot be used again."""
    _set_password(user, password)
    session.add(AuditLog(actor_id=user.id, action="password_reset", target=f"staff:{user.id}", detail="through a link"))
    session.commit()
    log.info("password reset through a link for %s", mask_email(user.email))


def set_timezone(session: Session, user: StaffUser, timezone: str | None) -> None:
    """The time zone ``user`` reads times in (None or "": the portal's own); commits."""
    if timezone and timezone not in available_timezones():
        raise InvalidInput(N_("Choose a time zone from the list."))
    user.timezone = timezone or None
    session.commit()


def change_password(session: Session, user: StaffUser, current: str, new: str) -> None:
    """The signed-in owner changes their password, giving the current one; their other sessions end."""
    try:
        hasher.verify(user.password_hash, current or "")
    except (VerificationError, InvalidHashError):
        raise StaffError(N_("The current password is not right."), field="current_password") from None
    _set_password(user, new)
    session.add(AuditLog(actor_id=user.id, action="change_password", target=f"staff:{user.id}"))
    session.commit()
    log.info("staff %s changed their password", user.id)
