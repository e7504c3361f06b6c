"""Admin: the rejection reasons staff pick from, and how often each was used."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import flash, redirect, render_template, url_for
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, StringField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from portal.db import get_session
from portal.db.models import RejectionReason
from portal.domain.errors import InvalidInput
from portal.domain.roles import CAN_ADMIN
from portal.services.rejections import all_reasons, rejections_by_reason, save_reason
from portal.web.admin.routes import _row, bp
from portal.web.auth import staff_required

REPORT_DAYS = 30


class ReasonForm(FlaskForm):
    label = StringField(_l("Reason"), validators=[DataRequired(_l("Write the reason.")), Length(max=200)])
    position = IntegerField(
        _l("Position in the list"),
        default=0,
        validators=[Optional(), NumberRange(min=0, max=999, message=_l("Position: a number from 0 to 999."))],
    )
    active = BooleanField(_l("Offered to staff"), default=True)


@bp.route("/rejection-reasons", methods=["GET", "POST"])
@bp.route("/rejection-reasons/<int:reason_id>", methods=["GET", "POST"])
@staff_required(CAN_ADMIN)
def rejection_reasons(reason_id: int | None = None):
    row = _row(RejectionReason, reason_id) if reason_id is not None else None
    form = ReasonForm(obj=row) if row is not None and not ReasonForm().is_submitted() else ReasonForm()
    status = 200
    if form.validate_on_submit():
        try:
            save_reason(
                get_session(),
                current_user._get_current_object(),
                row,
                form.label.data or "",
                form.position.data or 0,
                bool(form.active.data),
            )
        except InvalidInput as exc:
            form.label.errors = [*form.label.errors, exc.render(gettext)]
        else:
            flash(gettext("Rejection reason saved."), "success")
            return redirect(url_for("admin.rejection_reasons"), code=303)
    if form.is_submitted():
        status = 422
    since = datetime.now(UTC) - timedelta(days=REPORT_DAYS)
    return render_template(
        "admin/rejection_reasons.html",
        rows=all_reasons(get_session()),
        form=form,
        editing=row,
        report=rejections_by_reason(get_session(), since),
        days=REPORT_DAYS,
    ), status
