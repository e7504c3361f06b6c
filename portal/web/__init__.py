"""Blueprints by audience, plus what every page shares: headers, errors, template helpers."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from flask import Flask, abort, jsonify, redirect, render_template, request, session, url_for
from flask_babel import format_percent, gettext
from flask_limiter import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from portal.brand import brand_from_config, image_kind
from portal.db import get_session
from portal.domain.errors import DomainError
from portal.domain.lifecycle import LABELS as STATUS_LABELS
from portal.domain.lifecycle import POLLING as POLLING_STATUSES
from portal.domain.lifecycle import STAFF_LABELS as STAFF_STATUS_LABELS
from portal.domain.lifecycle import Status as RequestStatus
from portal.domain.policy import VERDICT_LABELS
from portal.domain.reasons import OUTCOME_LABELS, RESPONSIBILITY_LABELS
from portal.domain.receiving import DISCREPANCIES, REFUSED_FATES
from portal.domain.refunds import ITEM_LABELS
from portal.domain.roles import (
    CAN_ADMIN,
    CAN_RECEIVE,
    CAN_REFUND,
    CAN_SEE_MONEY_INSIGHTS,
    CAN_WORK_TICKETS,
    ROLE_LABELS,
)
from portal.domain.routing import PRIORITY_LABELS
from portal.domain.sla import ClockState
from portal.domain.states import TICKET_STATUS_LABELS, RefundStatus, ScoreState, TicketStatus
from portal.extensions import csrf, limiter
from portal.i18n import LOCALES, current_locale, money, render_text
from portal.services.history import FLAG_LABELS
from portal.web.account import bp as account_bp
from portal.web.admin import bp as admin_bp
from portal.web.api import bp as api_bp
from portal.web.auth import login_manager
from portal.web.finance import bp as finance_bp
from portal.web.insights import bp as insights_bp
from portal.web.ops import init_ops
from portal.web.pages import safe_next
from portal.web.shop import bp as shop_bp
from portal.web.staff import bp as staff_bp
from portal.web.staff.timeline import CLOCK_LABELS
from portal.web.throttle import Throttled
from portal.web.warehouse import bp as warehouse_bp

log = logging.getLogger("portal.web")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'self'; object-src 'none'"
)


# How each kind of domain error answers over HTTP.
DOMAIN_ERROR_STATUS = {"invalid": 422, "not_found": 404, "conflict": 409, "forbidden": 403}


def init_web(app: Flask) -> None:
    login_manager.init_app(app)
    app.register_blueprint(shop_bp)
    app.register_blueprint(staff_bp)
    app.register_blueprint(finance_bp)
    app.register_blueprint(insights_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(account_bp)
    app.register_blueprint(warehouse_bp)
    app.register_blueprint(api_bp)
    csrf.exempt(api_bp)
    init_ops(app)  # /healthz, /readyz, /metrics and the request id

    app.jinja_env.filters["money"] = money
    app.jinja_env.filters["percent"] = lambda value: format_percent(value) if value is not None else "—"
    brand = brand_from_config(app.config)
    app.extensions["portal.brand"] = brand
    app.jinja_env.globals.update(
        brand=brand,
        render_text=render_text,
        money=money,
        current_locale=current_locale,
        LOCALES=LOCALES,
        STATUS_LABELS=STATUS_LABELS,
        STAFF_STATUS_LABELS=STAFF_STATUS_LABELS,
        VERDICT_LABELS=VERDICT_LABELS,
        ITEM_LABELS=ITEM_LABELS,
        OUTCOME_LABELS=OUTCOME_LABELS,
        RESPONSIBILITY_LABELS=RESPONSIBILITY_LABELS,
        CLOCK_LABELS=CLOCK_LABELS,
        HISTORY_FLAGS=FLAG_LABELS,
        PRIORITY_LABELS=PRIORITY_LABELS,
        TICKET_STATUS_LABELS=TICKET_STATUS_LABELS,
        REFUSED_FATES=REFUSED_FATES,
        DISCREPANCIES=DISCREPANCIES,
        # Templates compare states through the enums, never through bare strings.
        RequestStatus=RequestStatus,
        TicketStatus=TicketStatus,
        RefundStatus=RefundStatus,
        ScoreState=ScoreState,
        ClockState=ClockState,
        POLLING_STATUSES=POLLING_STATUSES,
        ROLE_LABELS=ROLE_LABELS,
        CAN_WORK_TICKETS=CAN_WORK_TICKETS,
        CAN_RECEIVE=CAN_RECEIVE,
        CAN_REFUND=CAN_REFUND,
        CAN_ADMIN=CAN_ADMIN,
        CAN_SEE_MONEY_INSIGHTS=CAN_SEE_MONEY_INSIGHTS,
    )

    @app.post("/lang")
    def set_language():
        lang = request.form.get("lang", "")
        if lang in LOCALES:
            session["lang"] = lang
        return redirect(safe_next(request.form.get("next"), url_for("shop.start")), code=303)

    @app.get("/brand.css")
    def brand_css():
        """The brand colour as a stylesheet (styles come from files only: the CSP allows no inline ones)."""
        body = f":root {{ --accent: {brand.colour}; }}\n"
        return body, 200, {"Content-Type": "text/css; charset=utf-8", "Cache-Control": "public, max-age=300"}

    @app.get("/brand/logo")
    def brand_logo():
        """The shop's logo, checked by content and sent with the type found (no hot-linking)."""
        if brand.logo_path is None:
            abort(404)
        data = Path(brand.logo_path).read_bytes()
        kind = image_kind(data)
        if kind is None:
            abort(404)
        return data, 200, {"Content-Type": kind, "Cache-Control": "public, max-age=300"}

    @app.after_request
    def security_headers(response):
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("X-Frame-Options", "DENY")
        if not (app.config.get("DEVELOPMENT") or app.config.get("TESTING")) and app.config["PUBLIC_URL"].startswith(
            "https"
        ):
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if not request.path.startswith("/static/"):
            headers.setdefault("Cache-Control", "no-store")
        return response

    def wants_json() -> bool:
        return request.path.startswith("/api/")

    def too_many_response(retry: int, hint: str | None = None):
        minutes = max((retry + 59) // 60, 1)
        log.warning("throttled %s %s", request.method, request.path)
        if wants_json():
            return jsonify(error="too many requests", retry_after=retry), 429, {"Retry-After": str(retry)}
        body = render_template("errors/429.html", minutes=minutes, hint=hint)
        return body, 429, {"Retry-After": str(retry)}

    @app.errorhandler(RateLimitExceeded)
    def too_many(exc: RateLimitExceeded):
        current = limiter.current_limit
        return too_many_response(max(int(current.reset_at - time.time()), 1) if current is not None else 60)

    @app.errorhandler(Throttled)
    def throttled(exc: Throttled):
        return too_many_response(exc.retry_after, exc.hint)

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        return render_template(
            "errors/error.html",
            code=400,
            message=gettext("This form has expired. Please go back, reload the page and try again."),
        ), 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = exc.code or 500
        if wants_json():
            return jsonify(error=exc.name.lower(), message=exc.description), code
        messages = {
            400: gettext("Something in the request was not right. Please check and try again."),
            403: gettext("Your role does not allow this. Ask an administrator if you need it."),
            404: gettext("We could not find that page."),
            405: gettext("That action is not available here."),
            413: gettext("The upload is too large. Please send smaller or fewer photos."),
        }
        message = messages.get(code, exc.name)
        return render_template("errors/error.html", code=code, message=message), code

    @app.errorhandler(DomainError)
    def domain_error(exc: DomainError):
        # A rule said no to something no view handled itself: undo the half-done change,
        # answer with the rule's own words in the user's language and a 4xx.
        get_session().rollback()
        code = DOMAIN_ERROR_STATUS[exc.kind]
        message = exc.render(gettext)
        if wants_json():
            return jsonify(error=exc.kind, message=message), code
        return render_template("errors/error.html", code=code, message=message), code

    @app.errorhandler(Exception)
    def server_error(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        if wants_json():
            return jsonify(error="internal error"), 500
        return render_template(
            "errors/error.html",
            code=500,
            message=gettext("Something went wrong on our side. Nothing you saved was lost; please try again."),
        ), 500
