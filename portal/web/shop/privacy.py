"""The shopper's data: ask for a copy or for erasure from a return's status page, and download the
copy once staff made it ready (only in the session of that order, only for a few days)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from flask import abort, flash, redirect, render_template, url_for
from flask_babel import gettext
from flask_wtf import FlaskForm
from wtforms import BooleanField, RadioField
from wtforms.fields.choices import SelectChoice

from portal.db import get_session
from portal.domain.errors import InvalidInput, NotFound
from portal.domain.privacy import SUBJECT_KIND_LABELS, SUBJECT_STATUS_LABELS, SubjectKind
from portal.i18n import current_locale
from portal.services.privacy import ask_about_data, copy_available, open_subject_requests, shopper_copy
from portal.web.shop.routes import _own_request, bp


class DataRequestForm(FlaskForm):
    kind = RadioField(
        "",
        choices=[SelectChoice(k.value, k.value) for k in SubjectKind],
        validate_choice=True,
    )
    confirm = BooleanField("")

    def fill_labels(self) -> None:
        self.kind.label.text = gettext("What would you like us to do?")
        self.kind.choices = [SelectChoice(k.value, gettext(SUBJECT_KIND_LABELS[k])) for k in SubjectKind]
        self.confirm.label.text = gettext(
            "I understand that erasure removes my name, contact details, comments and photos for this order "
            "and cannot be undone."
        )


def _page(order, req, form: DataRequestForm, status: int = 200):
    rows = open_subject_requests(get_session(), order.id)
    now = datetime.now(UTC)
    return render_template(
        "shop/privacy.html",
        order=order,
        req=req,
        form=form,
        rows=rows,
        ready={row.id for row in rows if copy_available(row, now)},
        kind_labels=SUBJECT_KIND_LABELS,
        status_labels=SUBJECT_STATUS_LABELS,
    ), status


@bp.get("/requests/<rma>/privacy")
def privacy_page(rma: str):
    order, req = _own_request(rma)
    form = DataRequestForm(formdata=None)
    form.fill_labels()
    return _page(order, req, form)


@bp.post("/requests/<rma>/privacy")
def ask_privacy(rma: str):
    order, req = _own_request(rma)
    form = DataRequestForm()
    form.fill_labels()
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            abort(400)
        form.kind.errors = [gettext("Choose what you would like us to do with your data.")]
        return _page(order, req, form, 422)
    if form.kind.data == SubjectKind.ERASURE and not form.confirm.data:
        form.confirm.errors = [gettext("Please confirm that you want your data erased.")]
        return _page(order, req, form, 422)
    try:
        ask_about_data(get_session(), order, req, form.kind.data, current_locale())
    except InvalidInput as exc:
        get_session().rollback()
        form.kind.errors = [exc.render(gettext)]
        return _page(order, req, form, 422)
    flash(
        gettext("We have your request and will answer within 30 days. You will get an email when it is done."),
        "success",
    )
    return redirect(url_for("shop.privacy_page", rma=rma), code=303)


@bp.get("/requests/<rma>/privacy/<int:request_id>/copy.json")
def privacy_copy(rma: str, request_id: int):
    """The copy, as JSON, to the shopper signed in to this order only; anything else is 404."""
    order, _req = _own_request(rma)
    rows = {row.id: row for row in open_subject_requests(get_session(), order.id)}
    row = rows.get(request_id)
    if row is None:
        abort(404)
    try:
        data = shopper_copy(get_session(), row)
    except NotFound:
        abort(404)
    body = json.dumps(data, ensure_ascii=False, indent=2)
    return (
        body,
        200,
        {
            "Content-Type": "application/json; charset=utf-8",
            "Content-Disposition": f'attachment; filename="my-data-{order.order_number}.json"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
