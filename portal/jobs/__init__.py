"""Background work. Jobs only call services.

Embedded mode runs them in-process: ``eager`` (inline, after the commit: tests
and the CLI) or ``thread`` (a small worker thread: ``serve``). Scaled mode
(``celery``) sends each one to Celery workers on Redis (``portal.jobs.celery_app``).
Services never know which: they ``defer`` a job by its registered name.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from functools import partial
from typing import Any

from flask import Flask, render_template
from flask_babel import force_locale, gettext
from markupsafe import Markup, escape
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from portal.adapters.images import fetcher_from_config
from portal.adapters.mail import mailer_from_config
from portal.adapters.payments import gateway_for
from portal.adapters.webhooks import webhook_sender_from_config
from portal.brand import brand_from_config
from portal.db import session_scope
from portal.db.models import OutboxMessage, Photo
from portal.domain.states import ScoreState
from portal.jobs import registry
from portal.jobs.retention import EVERY_SECONDS as RETENTION_EVERY
from portal.jobs.retention import retention_purge
from portal.links import return_link, survey_links
from portal.logs import bind_request_id, current_request_id, unbind_request_id
from portal.metrics import observe_job
from portal.services.insights import insight_settings, notify_alerts
from portal.services.job_failures import record_failure
from portal.services.outbox import deliver_pending
from portal.services.photos import score_request_photos, thresholds_in_use
from portal.services.product_images import fetch_product_images
from portal.services.refunds import resolve_stuck_refunds
from portal.services.sla import sweep
from portal.services.survey import survey_settings
from portal.services.survey import sweep_surveys as survey_sweep
from portal.services.work import drop_deferred, take_deferred
from portal.storage import store_from_config
from portal.vision.classifier import get_model

log = logging.getLogger("portal.jobs")
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()
_submitted = 0  # jobs handed to the worker thread, so ``drain`` knows when nothing new arrived

SUBJECTS = {
    # Rendered inside force_locale, so these are translated per shopper.
    "return_submitted": lambda ctx: gettext("Your return request %(rma)s", rma=ctx["rma"]),
    "return_cancelled": lambda ctx: gettext("Return %(rma)s cancelled", rma=ctx["rma"]),
    "return_items_refused": lambda ctx: gettext("Items of return %(rma)s not accepted", rma=ctx["rma"]),
    "return_approved": lambda ctx: gettext("Return %(rma)s approved", rma=ctx["rma"]),
    "return_rejected": lambda ctx: gettext("Return %(rma)s not accepted", rma=ctx["rma"]),
    "return_question": lambda ctx: gettext("A question about your return %(rma)s", rma=ctx["rma"]),
    "return_received": lambda ctx: gettext("Return %(rma)s received", rma=ctx["rma"]),
    "return_refunded": lambda ctx: gettext("Return %(rma)s refunded", rma=ctx["rma"]),
    "staff_message": lambda ctx: gettext("About your return %(rma)s", rma=ctx["rma"]),
    "survey_invite": lambda ctx: gettext("How was your return %(rma)s?", rma=ctx["rma"]),
    "privacy_copy_ready": lambda ctx: gettext("A copy of your data for order %(order)s", order=ctx["order_number"]),
    "privacy_erased": lambda ctx: gettext("Your data for order %(order)s has been erased", order=ctx["order_number"]),
    "staff_escalation": lambda ctx: f"[returns] {ctx['message']}",
    "staff_login_throttled": lambda ctx: gettext("Sign-in to your returns portal account is paused"),
    "staff_password_reset": lambda ctx: gettext("Set a new password for the returns portal"),
}


# Emails to staff carry no shop signature.
STAFF_TEMPLATES = frozenset({"staff_escalation", "staff_login_throttled", "staff_password_reset"})


def build_email(app: Flask, message: OutboxMessage) -> EmailMessage:
    payload = message.payload
    ctx = dict(payload.get("context") or {})
    if ctx.get("order_number"):
        # A signed link that opens the shopper's order without typing anything (the label is one click away).
        ctx["order_link"] = return_link(app.config["PUBLIC_URL"], app.config["SECRET_KEY"], ctx["order_number"])
        if ctx.get("rma"):
            ctx["label_link"] = f"{ctx['order_link']}/label/{ctx['rma']}"
    if isinstance(ctx.get("survey"), int):
        # Signed when sent, so the link's age counts from the email.
        ctx.update(survey_links(app.config["PUBLIC_URL"], app.config["SECRET_KEY"], ctx["survey"]))
    locale = payload.get("locale") or "en"
    with app.test_request_context(base_url=app.config["PUBLIC_URL"]), force_locale(locale):
        subject = SUBJECTS[payload["template"]](ctx)
        body = render_template(f"email/{payload['template']}.txt", **ctx)
        html = render_template("email/layout.html", subject=subject, blocks=html_blocks(body), locale=locale)
        if payload["template"] not in STAFF_TEMPLATES:  # the HTML layout carries the same signature
            brand = app.extensions.get("portal.brand") or brand_from_config(app.config)
            body = body.rstrip("\n") + "\n\n-- \n" + brand.text_footer(gettext("Returns & exchanges")) + "\n"
    email = EmailMessage()
    email["From"] = app.config["MAIL_FROM"]
    email["To"] = payload["to"]
    email["Subject"] = subject
    email["Date"] = format_datetime(message.created_at or datetime.now(UTC))
    email["Message-ID"] = make_msgid(idstring=message.event_id.replace("-", ""))
    email["X-Portal-Event-Id"] = message.event_id
    if ctx.get("unsubscribe_link"):
        email["List-Unsubscribe"] = f"<{ctx['unsubscribe_link']}>"
    email.set_content(body)
    email.add_alternative(html, subtype="html")
    return email


_URL = re.compile(r"https?://[^\s<>\"']+")


def html_blocks(text: str) -> list[dict[str, Any]]:
    """The plain-text email as blocks for its HTML twin: paragraphs, and lists where lines start
    with "- ". Text is escaped and web addresses become links; nothing else is interpreted."""

    def inline(line: str) -> Markup:
        out, last = Markup(""), 0
        for match in _URL.finditer(line):
            out += escape(line[last : match.start()])
            out += Markup('<a href="{0}">{0}</a>').format(match.group(0))
            last = match.end()
        return out + escape(line[last:])

    blocks: list[dict[str, Any]] = []
    for chunk in re.split(r"\n\s*\n", text.strip()):
        lines = [line for line in chunk.splitlines() if line.strip()]
        items = [line[2:] for line in lines if line.startswith("- ")]
        rest = [line for line in lines if not line.startswith("- ")]
        if rest:
            blocks.append({"kind": "p", "lines": [inline(line) for line in rest]})
        if items:
            blocks.append({"kind": "ul", "lines": [inline(item) for item in items]})
    return blocks


def deliver_outbox(app: Flask) -> tuple[int, int]:
    mailer = mailer_from_config(app.config)
    webhooks = webhook_sender_from_config(app.config)

    def send(message: OutboxMessage) -> None:
        if message.channel == "email":
            mailer.send(build_email(app, message), message.event_id)
        elif message.channel == "webhook" and webhooks is not None:
            webhooks.send(message)
        else:
            raise RuntimeError(f"no transport for channel {message.channel}")

    # Without a webhook URL, webhook events wait (untouched) until one is configured.
    skip = () if webhooks is not None else ("webhook",)
    with app.app_context(), session_scope(app) as session:
        return deliver_pending(session, send, skip_channels=skip)


def wear_model(app: Flask):
    """The process's wear classifier, or None when it is missing or broken (photos stay unscored)."""

    return get_model(app.config["MODELS_PATH"], app.config["WEAR_MODEL"])


def score_photos(app: Flask, request_id: int) -> int:
    model = wear_model(app)
    with session_scope(app) as session:
        thresholds = thresholds_in_use(session, model, app.config.get("WEAR_THRESHOLDS"))
        return score_request_photos(session, request_id, store_from_config(app.config), model, thresholds=thresholds)


def score_pending_photos(app: Flask) -> int:
    """Catch up on photos left pending (a crash or restart between submit and scoring)."""

    with session_scope(app) as session:
        ids = list(
            session.scalars(
                select(Photo.request_id).where(Photo.score_state == ScoreState.PENDING).distinct().limit(50)
            )
        )
    return sum(score_photos(app, request_id) for request_id in ids)


def sweep_escalations(app: Flask):
    # Notifications the steps queue are delivered by the after-commit hook.
    return sweep(app.extensions["portal.sessionmaker"], worker=f"app-{id(app):x}")


def sweep_surveys(app: Flask):
    """Send the satisfaction surveys that fell due (nothing while ``SURVEY_ENABLED`` is off)."""
    return survey_sweep(
        app.extensions["portal.sessionmaker"],
        survey_settings(app.config),
        app.config["SECRET_KEY"],
        worker=f"app-{id(app):x}",
    )


def insight_alerts(app: Flask):
    """Tell the leads about figures of this shop month past their alert lines (once a month each)."""
    with session_scope(app) as session:
        return notify_alerts(session, insight_settings(app.config), datetime.now(UTC))


def resolve_refunds(app: Flask):
    """Settle refunds left "processing" by an interrupted process, by asking their gateways."""
    factory = app.extensions["portal.sessionmaker"]
    mode = app.config.get("SANDBOX_MODE", "ok")
    return resolve_stuck_refunds(factory, lambda provider: gateway_for(provider, factory, mode))


def product_images(app: Flask) -> int:
    """Copy the shop's product pictures into our photo store."""
    with session_scope(app) as session:
        return fetch_product_images(
            session, store_from_config(app.config), fetcher_from_config(app.config), app.config["MAX_PHOTO_BYTES"]
        )


# Every job by name, once: what services may ask for with ``portal.services.work.defer``, and what
# runs on a timer (the in-process ticker of ``serve``, or Celery beat). Periodic jobs run in this order.
registry.register("sweep_escalations", sweep_escalations, every=registry.TICK_SECONDS)
registry.register("sweep_surveys", sweep_surveys, every=registry.TICK_SECONDS)
# The alert lines are month-long aggregates: every 15 minutes is plenty, and keeps their queries
# off the 30-second tick that escalations need.
registry.register("insight_alerts", insight_alerts, every=15 * 60.0)
registry.register("deliver_outbox", deliver_outbox, every=registry.TICK_SECONDS)
registry.register("score_pending_photos", score_pending_photos, every=registry.TICK_SECONDS)
registry.register("resolve_refunds", resolve_refunds, every=registry.TICK_SECONDS)
registry.register("retention_purge", retention_purge, every=RETENTION_EVERY)
registry.register("score_photos", score_photos)
registry.register("fetch_product_images", product_images)

MODES = ("eager", "thread", "off", "celery")


def init_app(app: Flask) -> None:
    """Start deferred work after each commit of the app's sessions (and drop it on rollback); in
    ``celery`` mode, set up the Celery app the jobs are sent to."""
    mode = app.config.get("JOBS_MODE", "eager")
    if mode not in MODES:
        raise RuntimeError(f"PORTAL_JOBS_MODE must be one of {', '.join(MODES)} (got {mode!r})")
    if mode == "celery":
        from portal.jobs.celery_app import celery_init_app  # noqa: PLC0415 - celery is the optional worker extra

        celery_init_app(app)
    factory = app.extensions["portal.sessionmaker"]

    @event.listens_for(factory, "after_commit")
    def _run_deferred(session: Session) -> None:
        if session.in_nested_transaction():
            return  # a savepoint released: the outer transaction (and its locks) still runs
        for name, params in take_deferred(session):
            submit(app, name, **params)

    @event.listens_for(factory, "after_soft_rollback")
    def _drop_deferred(session: Session, previous_transaction: Any) -> None:
        if not previous_transaction.nested:  # a savepoint's rollback keeps the outer work
            drop_deferred(session)


def submit(app: Flask, name: str, **params: Any) -> None:
    """Run the registered job ``name`` with ``params`` in the configured backend; never raises into
    the caller (a job that cannot even be queued is recorded as a failure)."""
    job = registry.get(name)
    if job is None:
        raise KeyError(f"no job called {name}")
    if app.config.get("JOBS_MODE", "eager") == "celery":
        try:
            app.extensions["portal.celery"].send_job(name, params, current_request_id())
        except Exception as exc:
            log.exception("could not queue background job %s", name)
            _record(app, name, params, exc, attempts=1)
        return
    kick(app, partial(job.func, **params) if params else job.func)


def kick(app: Flask, job=deliver_outbox) -> None:
    """Run a job now (eager), on the worker thread, or (a registered job, in ``celery`` mode) as a
    Celery task; never raises into the caller."""
    mode = app.config.get("JOBS_MODE", "eager")
    if mode == "off":
        return
    if mode == "celery":
        named = registry.name_of(job)
        if named is not None:
            submit(app, named[0], **named[1])
            return
        mode = "eager"  # a callable that is no registered job cannot travel: it runs here
    if mode == "thread":
        global _executor, _submitted
        with _executor_lock:
            if _executor is None:
                _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="portal-jobs")
            _submitted += 1
        _executor.submit(_safe, app, job, current_request_id())  # the worker thread logs under the same id
        return
    _safe(app, job)


def drain(timeout: float = 120.0) -> None:
    """Wait until the worker thread has run every job submitted so far, including the jobs those
    jobs queue. Call before a process that used ``thread`` mode lets go of its database."""
    while True:
        with _executor_lock:
            executor, seen = _executor, _submitted
        if executor is None:
            return
        executor.submit(lambda: None).result(timeout=timeout)  # one worker: first in, first out
        with _executor_lock:
            if _submitted == seen:
                return


def job_identity(job: Callable[..., Any]) -> tuple[str, dict[str, Any]]:
    """The name a job is counted and recorded under, and its parameters."""
    named = registry.name_of(job)
    if named is not None:
        return named
    func = getattr(job, "func", job)
    params = dict(getattr(job, "keywords", None) or {})
    return str(getattr(func, "__name__", None) or "job"), params


def run_job(app: Flask, job: Callable[..., Any], request_id: str | None = None) -> Any:
    """Run one job, timed and counted by task, its log records carrying the id of the request that
    started it; an error goes up to the caller (the Celery task retries on it)."""
    task = job_identity(job)[0]
    token = bind_request_id(request_id) if request_id is not None else None
    started, failed = time.perf_counter(), False
    try:
        return job(app)
    except Exception:
        failed = True
        raise
    finally:
        seconds = time.perf_counter() - started
        observe_job(task, seconds, failed)
        log.debug("background job %s %s in %.3f s", task, "failed" if failed else "done", seconds)
        if token is not None:
            unbind_request_id(token)


def _safe(app: Flask, job, request_id: str | None = None) -> None:
    """Run one job in this process (eager jobs run inside the request that started them, thread jobs
    are handed its id). A job that raises is logged and recorded for admins, never dropped silently."""
    token = bind_request_id(request_id) if request_id is not None else None
    try:
        run_job(app, job)
    except Exception as exc:
        name, params = job_identity(job)
        log.exception("background job %s failed", name)
        _record(app, name, params, exc, attempts=1)
    finally:
        if token is not None:
            unbind_request_id(token)


def _record(app: Flask, task: str, params: dict[str, Any], exc: BaseException, attempts: int) -> None:
    """Keep a failed job in the failures table; when even that fails (the database is down), the
    log line above is what remains."""
    try:
        with session_scope(app) as session:
            record_failure(session, task, params, exc, attempts)
    except Exception:
        log.exception("could not record the failure of background job %s", task)
