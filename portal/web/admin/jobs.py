"""Admin: background jobs that kept failing, with their error and a button to run them again."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_babel import gettext
from flask_login import current_user
from flask_wtf import FlaskForm

from portal.db import get_session
from portal.domain.roles import CAN_ADMIN
from portal.jobs import registry
from portal.services.job_failures import open_failures, recent_resolved, retry_failure
from portal.web.admin.routes import bp
from portal.web.auth import staff_required


class RetryForm(FlaskForm):
    """Only the CSRF token: the failure is in the address."""


@bp.get("/jobs")
@staff_required(CAN_ADMIN)
def jobs():
    session = get_session()
    return render_template(
        "admin/jobs.html",
        failures=open_failures(session),
        resolved=recent_resolved(session),
        known={job.name for job in registry.jobs()},
    )


@bp.post("/jobs/<int:failure_id>/retry")
@staff_required(CAN_ADMIN)
def job_retry(failure_id: int):
    if not RetryForm().validate_on_submit():
        abort(400)
    # Unknown, already retried or no longer runnable: the rule's own words with a 4xx.
    row = retry_failure(
        get_session(), failure_id, lambda name: registry.get(name) is not None, current_user._get_current_object()
    )
    flash(gettext("The job %(task)s runs again.", task=row.task), "success")
    return redirect(url_for("admin.jobs"), code=303)
