"""Admin: return policy versions. List, read, save a new draft (checked like ``policy check``),
compare with the published one, publish, roll back. The services write the audit log."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from portal.db import get_session
from portal.domain.errors import DomainError, InvalidInput, NotFound
from portal.domain.policy_text import diff_text
from portal.domain.roles import CAN_ADMIN
from portal.services.policies import (
    InvalidPolicy,
    create_version,
    list_versions,
    publish_version,
    published_policy,
    published_version,
    rollback_policy,
    version_by_number,
)
from portal.web.admin.routes import bp
from portal.web.auth import staff_required

MAX_POLICY_CHARS = 100_000


class PolicyDraftForm(FlaskForm):
    source = TextAreaField(
        _l("Policy (TOML)"),
        validators=[
            DataRequired(_l("Write the policy.")),
            Length(max=MAX_POLICY_CHARS, message=_l("The policy is longer than %(max)d characters.")),
        ],
    )
    note = StringField(_l("What changed, and why"), validators=[Length(max=500)])


class PublishForm(FlaskForm):
    """Only the CSRF token: the version is in the address."""


def _version(number: int):
    try:
        return version_by_number(get_session(), number)
    except NotFound:
        abort(404)


@bp.get("/policy")
@staff_required(CAN_ADMIN)
def policy_versions():
    published_policy(get_session(), current_app.config)  # the first start imports version 1
    return render_template("admin/policy_versions.html", versions=list_versions(get_session()))


@bp.get("/policy/<int:number>")
@staff_required(CAN_ADMIN)
def policy_version(number: int):
    version = _version(number)
    current = published_version(get_session())
    diff: list[str] = []
    if current is not None and current.id != version.id:
        diff = diff_text(
            current.source,
            version.source,
            gettext("version %(n)d (published)", n=current.number),
            gettext("version %(n)d", n=version.number),
        )
    return render_template("admin/policy_version.html", version=version, current=current, diff=diff, form=PublishForm())


@bp.route("/policy/new", methods=["GET", "POST"])
@staff_required(CAN_ADMIN)
def policy_draft():
    """A new draft, starting from the text of ``?from=N`` (default: the published version)."""
    form = PolicyDraftForm()
    status = 200
    if form.validate_on_submit():
        try:
            version = create_version(
                get_session(), form.source.data or "", current_user._get_current_object(), form.note.data or ""
            )
        except InvalidPolicy as exc:
            form.source.errors = [*form.source.errors, exc.render(gettext)]
        except InvalidInput as exc:
            form.source.errors = [*form.source.errors, exc.render(gettext)]
        else:
            flash(
                gettext("Saved as version %(n)d (a draft). Publish it when it is ready.", n=version.number), "success"
            )
            return redirect(url_for("admin.policy_version", number=version.number), code=303)
    if form.is_submitted():
        status = 422
    else:
        start = request.args.get("from", type=int)
        base = _version(start) if start is not None else published_version(get_session())
        if base is None:
            published_policy(get_session(), current_app.config)
            base = published_version(get_session())
        form.source.data = base.source if base is not None else ""
    return render_template("admin/policy_edit.html", form=form), status


@bp.post("/policy/<int:number>/publish")
@staff_required(CAN_ADMIN)
def policy_publish(number: int):
    version = _version(number)
    if not PublishForm().validate_on_submit():
        abort(400)
    me = current_user._get_current_object()
    try:
        if version.published_at is not None:  # it was active before: going back to it is a rollback
            rollback_policy(get_session(), me, current_app.config, version.number)
            message = gettext("Rolled back: version %(n)d is the active policy again.", n=version.number)
        else:
            publish_version(get_session(), version, me, current_app.config)
            message = gettext("Version %(n)d published: it decides every new return from now on.", n=version.number)
    except DomainError as exc:
        get_session().rollback()
        flash(exc.render(gettext), "warning")
        return render_template(
            "admin/policy_version.html",
            version=_version(number),
            current=published_version(get_session()),
            diff=[],
            form=PublishForm(),
        ), 409 if exc.kind == "conflict" else 422
    flash(message, "success")
    return redirect(url_for("admin.policy_version", number=number), code=303)


@bp.post("/policy/rollback")
@staff_required(CAN_ADMIN)
def policy_rollback():
    """Publish again the version that was active before the current one."""
    if not PublishForm().validate_on_submit():
        abort(400)
    try:
        version = rollback_policy(get_session(), current_user._get_current_object(), current_app.config)
    except DomainError as exc:
        get_session().rollback()
        flash(exc.render(gettext), "warning")
        return render_template("admin/policy_versions.html", versions=list_versions(get_session())), 422
    flash(gettext("Rolled back: version %(n)d is the active policy again.", n=version.number), "success")
    return redirect(url_for("admin.policy_versions"), code=303)
