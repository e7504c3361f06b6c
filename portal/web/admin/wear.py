"""Admin: the wear classifier against the warehouse's grades, and a threshold per product category."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, flash, redirect, render_template, url_for
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import FloatField, HiddenField, StringField
from wtforms.validators import DataRequired, Length, Optional

from portal.db import get_session
from portal.db.models import WearThreshold
from portal.domain.errors import InvalidInput
from portal.domain.roles import CAN_ADMIN
from portal.domain.wear import HIGHEST, LOWEST, category_key
from portal.jobs import wear_model
from portal.services.photos import (
    CategoryAgreement,
    clear_wear_threshold,
    known_categories,
    page_thresholds,
    set_wear_threshold,
    thresholds_in_use,
    wear_agreement,
    wear_agreement_by_category,
)
from portal.web.admin.routes import bp
from portal.web.auth import staff_required

CANDIDATES = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


class ThresholdForm(FlaskForm):
    category = StringField(
        _l("Product category"), validators=[DataRequired(_l("Name the product category.")), Length(max=64)]
    )
    threshold = FloatField(
        _l("Threshold"), validators=[Optional()], render_kw={"step": "0.01", "min": LOWEST, "max": HIGHEST}
    )
    action = HiddenField(default="set")


@dataclass
class CategoryRow:
    category: str
    threshold: float | None  # in use for the loaded model
    source: str  # page | setting | model
    set_here: WearThreshold | None
    agreement: CategoryAgreement | None


@bp.get("/wear")
@staff_required(CAN_ADMIN)
def wear():
    return _page(ThresholdForm(formdata=None))


@bp.post("/wear/thresholds")
@staff_required(CAN_ADMIN)
def wear_threshold():
    form = ThresholdForm()
    model = wear_model(current_app)
    if not form.validate_on_submit():
        return _page(form), 422
    if model is None:
        form.category.errors = [gettext("No wear model is loaded: a threshold belongs to one model.")]
        return _page(form), 409
    clearing = form.action.data == "clear"
    actor = current_user._get_current_object()
    try:
        if clearing:
            clear_wear_threshold(get_session(), actor, model.version, form.category.data or "")
        else:
            set_wear_threshold(get_session(), actor, model.version, form.category.data or "", form.threshold.data)
    except InvalidInput as exc:
        form.threshold.errors = [*form.threshold.errors, exc.render(gettext)]
        return _page(form), 422
    category = category_key(form.category.data)
    if clearing:
        flash(gettext("%(category)s is labelled at the default threshold again.", category=category), "success")
    else:
        flash(
            gettext("Photos of %(category)s scored from now on are labelled at this threshold.", category=category),
            "success",
        )
    return redirect(url_for("admin.wear"), code=303)


def _page(form: ThresholdForm):
    session = get_session()
    model = wear_model(current_app)
    configured = current_app.config.get("WEAR_THRESHOLDS") or {}
    here = page_thresholds(session, model.version) if model is not None else {}
    in_use = thresholds_in_use(session, model, configured, page=here)
    groups = wear_agreement_by_category(session, model, in_use)
    current = {g.category: g for g in groups if model is not None and g.model_version == model.version}
    rows = []
    for category in sorted({*known_categories(session), *current, *here, *configured} - {"?"}):
        threshold: float | None
        if category in here:
            threshold, source = here[category].threshold, "page"
        elif category in configured:
            threshold, source = configured[category], "setting"
        else:
            threshold, source = (model.threshold if model is not None else None), "model"
        rows.append(CategoryRow(category, threshold, source, here.get(category), current.get(category)))
    return render_template(
        "admin/wear.html",
        form=form,
        model=model,
        rows=rows,
        versions=wear_agreement(session),
        earlier=[g for g in groups if model is None or g.model_version != model.version],
        candidates=CANDIDATES,
        lowest=LOWEST,
        highest=HIGHEST,
    )
