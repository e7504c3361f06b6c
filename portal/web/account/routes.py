"""Staff passwords: change your own (signed in, with the current one), ask for a link by email,
and set a new one through a one-time link (emailed, or made by an admin).

A link carries a signed token that ends when its time is up or when the password changes, so it
works once; setting a password ends every session of the account.
"""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext
from flask_login import current_user, login_user, logout_user

from portal.db import get_session
from portal.domain.text import N_
from portal.services.staff import (
    ResetLinkError,
    StaffError,
    account_for_reset,
    change_password,
    request_password_reset,
    reset_password,
)
from portal.web import throttle
from portal.web.account.forms import ChangePasswordForm, ForgotPasswordForm, NewPasswordForm
from portal.web.admin.forms import named
from portal.web.auth import staff_required
from portal.web.staff.routes import LOGIN_LIMIT

bp = Blueprint("account", __name__, url_prefix="/staff/password")

FORGOT_BY_ADDRESS = "5 per 15 minutes"
FORGOT_BY_ACCOUNT = "3 per 60 minutes"
RESET_SESSION_KEY = "password_reset_token"
LINK_STATUS = {"expired": 410, "used": 410, "invalid": 400}


def reset_minutes() -> int:
    return int(current_app.config.get("PASSWORD_RESET_MINUTES", 60))


@bp.route("", methods=["GET", "POST"])
@staff_required()
def change():
    """Change my password. A wrong current password counts against the sign-in allowance."""
    form = ChangePasswordForm()
    status = 200
    if form.validate_on_submit():
        me = current_user._get_current_object()
        addr, account = request.remote_addr or "-", me.email
        if not throttle.count_attempt("staff-login-ip", addr, LOGIN_LIMIT):
            raise throttle.Throttled(throttle.retry_after("staff-login-ip", addr, LOGIN_LIMIT))
        if not throttle.count_attempt("staff-login-account", account, LOGIN_LIMIT):
            raise throttle.Throttled(throttle.retry_after("staff-login-account", account, LOGIN_LIMIT))
        try:
            change_password(get_session(), me, form.current_password.data, form.password.data)
        except StaffError as exc:
            get_session().rollback()
            field = form[exc.field] if exc.field in ("current_password", "password") else form.current_password
            field.errors = [*field.errors, named(field, exc.render(gettext))]
            status = 422
        else:
            throttle.forgive("staff-login-ip", addr, LOGIN_LIMIT)
            throttle.forgive("staff-login-account", account, LOGIN_LIMIT)
            login_user(me)  # this session carries on with the new session version; the others end
            flash(gettext("Password changed; your other sessions have ended."), "success")
            return redirect(url_for("staff.home"), code=303)
    elif form.is_submitted():
        status = 422
    return render_template("account/change.html", form=form), status


@bp.route("/forgot", methods=["GET", "POST"])
def forgot():
    """Ask for a link by email. The answer is the same whether or not the address has an account."""
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        addr = request.remote_addr or "-"
        account = (form.email.data or "").strip().lower()[:255]
        if not throttle.count_attempt("staff-password-ip", addr, FORGOT_BY_ADDRESS):
            raise throttle.Throttled(throttle.retry_after("staff-password-ip", addr, FORGOT_BY_ADDRESS))
        if not throttle.count_attempt("staff-password-account", account, FORGOT_BY_ACCOUNT):
            raise throttle.Throttled(throttle.retry_after("staff-password-account", account, FORGOT_BY_ACCOUNT))
        request_password_reset(
            get_session(),
            account,
            current_app.config["SECRET_KEY"],
            current_app.config["PUBLIC_URL"],
            reset_minutes(),
        )
        return render_template("account/forgot.html", form=None, minutes=reset_minutes())
    status = 422 if form.is_submitted() else 200
    return render_template("account/forgot.html", form=form, minutes=reset_minutes()), status


def _link_refused(exc: ResetLinkError):
    session.pop(RESET_SESSION_KEY, None)
    return render_template("account/link.html", message=exc.render(gettext)), LINK_STATUS.get(exc.reason, 400)


@bp.get("/reset/<token>")
def reset_link(token: str):
    """Check the link, keep its token in the session and continue at an address without it."""
    try:
        account_for_reset(get_session(), current_app.config["SECRET_KEY"], token, reset_minutes())
    except ResetLinkError as exc:
        return _link_refused(exc)
    session[RESET_SESSION_KEY] = token
    return redirect(url_for("account.reset"), code=303)


@bp.route("/reset", methods=["GET", "POST"])
def reset():
    """Choose a new password for the account the link was for; then sign in with it."""
    token = session.get(RESET_SESSION_KEY)
    try:
        if not isinstance(token, str):
            raise ResetLinkError("invalid", N_("This password link is not valid."))
        user = account_for_reset(get_session(), current_app.config["SECRET_KEY"], token, reset_minutes())
    except ResetLinkError as exc:
        return _link_refused(exc)
    form = NewPasswordForm()
    status = 200
    if form.validate_on_submit():
        try:
            reset_password(get_session(), user, form.password.data)
        except StaffError as exc:
            get_session().rollback()
            form.password.errors = [*form.password.errors, named(form.password, exc.render(gettext))]
            status = 422
        else:
            session.pop(RESET_SESSION_KEY, None)
            if current_user.is_authenticated:
                logout_user()
            flash(gettext("Your new password is set. Sign in with it."), "success")
            return redirect(url_for("staff.login"), code=303)
    elif form.is_submitted():
        status = 422
    return render_template("account/reset.html", form=form, user=user), status
