"""Staff sign-in plumbing: the login manager, how a session finds its account, and ``staff_required``."""

from __future__ import annotations

from collections.abc import Iterable
from functools import wraps

from flask import abort, current_app, redirect, request, url_for
from flask_login import LoginManager, current_user

from portal.db import get_session
from portal.db.models import StaffUser

login_manager = LoginManager()
login_manager.login_view = "staff.login"
login_manager.session_protection = "basic"


@login_manager.user_loader
def load_user(user_id: str):
    try:
        raw_id, version = user_id.split(":")
        user = get_session().get(StaffUser, int(raw_id))
    except (ValueError, TypeError):
        return None
    if user is None or not user.active or str(user.session_version) != version:
        return None
    return user


@login_manager.unauthorized_handler
def unauthorized():
    if request.headers.get("HX-Request") == "true":
        return "", 401
    return redirect(url_for("staff.login", next=request.path), code=303)


def _flatten(roles: Iterable[str | Iterable[str]]) -> frozenset[str]:
    allowed: set[str] = set()
    for role in roles:
        allowed.update((role,) if isinstance(role, str) else role)
    return frozenset(allowed)


def staff_required(*roles: str | Iterable[str]):
    """Signed-in staff only; with roles (names or role sets from ``portal.domain.roles``), only those roles."""
    allowed = _flatten(roles)

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if allowed and current_user.role not in allowed:
                current_app.logger.warning("staff %s (%s) denied %s", current_user.id, current_user.role, request.path)
                abort(403)
            return view(*args, **kwargs)

        return wrapper

    return decorate


__all__ = ["login_manager", "load_user", "staff_required"]
