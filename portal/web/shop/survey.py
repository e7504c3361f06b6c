"""The satisfaction survey, opened from the email's signed link: no sign-in, one answer per
request (changeable for a few days), and a way to get no more surveys."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from flask import abort, current_app, flash, make_response, redirect, render_template, request, session, url_for
from flask_babel import force_locale, format_date, gettext
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import RadioField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length

from portal.db import get_session
from portal.db.models import ReturnRequest
from portal.domain.errors import InvalidInput
from portal.domain.survey import COMMENT_MAX, NPS_SCALE, SATISFACTION_SCALE, SurveyAnswerValues
from portal.i18n import LOCALES
from portal.links import SURVEY_OPTOUT_MAX_AGE_DAYS, SURVEY_OPTOUT_SALT, LinkExpired, read_survey_token
from portal.services.survey import SurveyClosed, answer_survey, opt_out, opted_out, survey_settings, survey_view
from portal.web.shop.routes import bp

log = logging.getLogger("portal.shop")

SATISFACTION_WORDS = {
    1: _l("Very unhappy"),
    2: _l("Unhappy"),
    3: _l("Neither"),
    4: _l("Happy"),
    5: _l("Very happy"),
}


class SurveyForm(FlaskForm):
    nps = RadioField(
        _l("How likely are you to recommend us to a friend?"),
        choices=[SelectChoice(str(n), str(n)) for n in NPS_SCALE],
        validators=[InputRequired(_l("Choose a number from 0 to 10."))],
        description=_l("0 is not at all likely, 10 is extremely likely."),
    )
    satisfaction = RadioField(
        _l("How satisfied are you with this return?"),
        choices=[SelectChoice(str(n), SATISFACTION_WORDS[n]) for n in SATISFACTION_SCALE],
        validators=[InputRequired(_l("Choose how satisfied you are."))],
    )
    comment = TextAreaField(
        _l("Anything you would like to tell us? (optional)"),
        validators=[Length(max=COMMENT_MAX)],
    )


def _request_from(token: str, purpose: str | None = None) -> ReturnRequest:
    """The request a survey link is for; 404 for a tampered link, 410 for an expired one."""
    config = current_app.config
    try:
        if purpose is None:
            request_id = read_survey_token(config["SECRET_KEY"], token, survey_settings(config).link_days)
        else:
            request_id = read_survey_token(config["SECRET_KEY"], token, SURVEY_OPTOUT_MAX_AGE_DAYS, purpose)
    except LinkExpired:
        log.info("expired survey link from %s", request.remote_addr)
        message = gettext("This survey link has expired. Thank you all the same.")
        abort(make_response(render_template("errors/error.html", code=410, message=message), 410))
    req = get_session().get(ReturnRequest, request_id) if request_id is not None else None
    if req is None:
        log.info("survey link refused from %s", request.remote_addr)
        abort(404)
    return req


@contextmanager
def _language_of(req: ReturnRequest) -> Iterator[None]:
    """The shopper's chosen language, else the one their return was made in."""
    chosen = session.get("lang")
    locale = chosen if chosen in LOCALES else req.locale if req.locale in LOCALES else "en"
    with force_locale(locale):
        yield


def _page(token: str, req: ReturnRequest, form: SurveyForm | None = None, status: int = 200):
    """The survey page (inside the shopper's language); a new form shows the answer kept so far."""
    view = survey_view(get_session(), req.id, survey_settings(current_app.config))
    if form is None:
        form = SurveyForm()
        if view.answer is not None:
            form.nps.data = str(view.answer.nps)
            form.satisfaction.data = str(view.answer.satisfaction)
            form.comment.data = view.answer.comment
    change_until = format_date(view.change_until, "long") if view.change_until else ""
    body = render_template(
        "shop/survey.html",
        token=token,
        view=view,
        form=form,
        change_until=change_until,
        satisfaction_words=SATISFACTION_WORDS,
    )
    return body, status


@bp.get("/survey/<token>")
def survey(token: str):
    req = _request_from(token)
    with _language_of(req):
        return _page(token, req)


@bp.post("/survey/<token>")
def answer_survey_view(token: str):
    req = _request_from(token)
    with _language_of(req):
        form = SurveyForm()
        if not form.validate_on_submit():
            return _page(token, req, form, 422)
        try:
            values = SurveyAnswerValues.parse(form.nps.data, form.satisfaction.data, form.comment.data)
            answer_survey(get_session(), req.id, values, survey_settings(current_app.config))
        except InvalidInput as exc:
            form.comment.errors = [*form.comment.errors, exc.render(gettext)]
            return _page(token, req, form, 422)
        except SurveyClosed as exc:
            flash(exc.render(gettext), "warning")
            return _page(token, req, status=409)
        flash(gettext("Thank you for your answer."), "success")
    return redirect(url_for("shop.survey", token=token), code=303)


@bp.get("/survey/unsubscribe/<token>")
def survey_unsubscribe(token: str):
    req = _request_from(token, SURVEY_OPTOUT_SALT)
    with _language_of(req):
        done = opted_out(get_session(), req.id, current_app.config["SECRET_KEY"])
        return render_template("shop/survey_unsubscribe.html", token=token, done=done)


@bp.post("/survey/unsubscribe/<token>")
def survey_unsubscribe_confirm(token: str):
    req = _request_from(token, SURVEY_OPTOUT_SALT)
    with _language_of(req):
        if not FlaskForm().validate_on_submit():
            abort(400)
        opt_out(get_session(), req.id, current_app.config["SECRET_KEY"])
        return render_template("shop/survey_unsubscribe.html", token=token, done=True)
