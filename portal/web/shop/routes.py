"""The shopper's pages: arrive, choose, learn the decision, submit, follow."""

from __future__ import annotations

import dataclasses
import hmac
import logging
from datetime import UTC, datetime

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext
from markupsafe import Markup
from sqlalchemy import select
from wtforms.fields.choices import SelectChoice

from portal.adapters.carriers import carrier_from_config
from portal.db import get_session
from portal.db.models import Order, Photo, Variant
from portal.db.sealed import candidates
from portal.domain.actors import SHOPPER
from portal.domain.codes import compact_pickup_code
from portal.domain.lifecycle import IllegalTransition, Status
from portal.domain.money import line_paid_per_unit
from portal.domain.orders import normalise_order_number
from portal.domain.policy import Verdict
from portal.domain.reasons import OUTCOME_LABELS, REASONS, Outcome, responsibility_of
from portal.domain.refunds import GRADES
from portal.domain.text import N_
from portal.i18n import current_locale, money
from portal.labels import LabelData, code128_svg, label_pdf, qr_svg
from portal.links import read_return_token
from portal.logs import safe
from portal.services import Conflict, NotFound
from portal.services.filing import (
    LineRequest,
    PickupNotCancelled,
    ReturnNotAllowed,
    answer_question,
    cancel_return,
    check_return,
    exchange_variants,
    lookup_indexes,
    open_return,
    order_facts,
    order_with_lines,
    precheck_order,
    request_list,
)
from portal.services.policies import active_policy, published_policy
from portal.services.product_images import picture_key
from portal.services.refunds import (
    EstimateLine,
    estimate_refund,
    paid_out,
    refund_settings,
    return_fee,
    store_credit_bonus,
)
from portal.services.timeline import get_request_for_order
from portal.storage import StorageError, store_from_config
from portal.vision.intake import PhotoRejected, clean_photo
from portal.web import throttle
from portal.web.pages import image_response, photo_bytes, render_page_or_partial
from portal.web.shop import guided, staging
from portal.web.shop.forms import (
    AnswerForm,
    CancelForm,
    LookupForm,
    ReturnForm,
    outcome_choices,
    reason_choices,
    sub_reason_choices,
)

bp = Blueprint("shop", __name__)
log = logging.getLogger("portal.shop")

SESSION_KEY = "shop_order"
# Compared against on a miss so that a miss costs what a hit costs (no value has this index).
_DUMMY_INDEX = "0" * 64


def _now() -> datetime:
    return datetime.now(UTC)


def _lookup_limit() -> str:
    return current_app.config["LOOKUP_LIMIT"]


# --- arriving ---------------------------------------------------------------


@bp.get("/")
def start():
    return render_template("shop/lookup.html", form=LookupForm(), failed=False)


def _lookup_failed_page(form: LookupForm):
    return render_template("shop/lookup.html", form=form, failed=True), 422


def _contact_matches(email_index: str | None, postcode_index: str | None, contact: str) -> tuple[bool, bool]:
    """(by email, by postcode): the typed contact's blind indexes (one per data key) compared in constant
    time with the order's, or with a dummy on a miss, so a miss does the work of a hit. The order's
    details themselves are never read or decrypted here."""
    by_email = by_postcode = False
    for candidate in candidates("email", contact):
        by_email |= hmac.compare_digest(candidate, email_index or _DUMMY_INDEX)
    for candidate in candidates("postcode", contact):
        by_postcode |= hmac.compare_digest(candidate, postcode_index or _DUMMY_INDEX)
    return by_email, by_postcode


@bp.post("/lookup")
def lookup():
    """Find an order by number plus email or postcode.

    Failed tries are limited per address and per order. When a stranger has used up an order's
    allowance, its owner still gets in with the email address (which cannot be guessed in a few
    tries) or the QR code; the guessable postcode waits for the window to pass.
    """
    form = LookupForm()
    limit = _lookup_limit()
    addr = request.remote_addr or "-"
    if not form.validate_on_submit():
        if not throttle.count_attempt("lookup-ip", addr, limit):
            raise throttle.Throttled(throttle.retry_after("lookup-ip", addr, limit))
        return render_template("shop/lookup.html", form=form, failed=False), 422
    number = normalise_order_number(form.order_number.data)[:64]
    by_address = throttle.count_attempt("lookup-ip", addr, limit)
    by_order = throttle.count_attempt("lookup-order", number, limit)
    if not by_address:
        raise throttle.Throttled(throttle.retry_after("lookup-ip", addr, limit))
    row = lookup_indexes(get_session(), number)
    by_email, by_postcode = _contact_matches(
        row.customer_email_bidx if row else None, row.customer_postcode_bidx if row else None, form.contact.data
    )
    if not by_order and not (by_email and row is not None):
        log.info("order lookup throttled for %s from %s", safe(number), addr)
        raise throttle.Throttled(throttle.retry_after("lookup-order", number, limit), hint="lookup_order")
    if row is None or not (by_email or by_postcode):
        log.info("order lookup failed for %s from %s", safe(number), addr)
        return _lookup_failed_page(form)
    throttle.forgive("lookup-ip", addr, limit)
    throttle.forgive("lookup-order", number, limit)
    _enter(row.id)
    return redirect(url_for("shop.order_page"), code=303)


@bp.get("/r/<token>")
@bp.get("/r/<token>/label/<rma>")
def arrive(token: str, rma: str | None = None):
    """The signed link from the packing slip or an email opens the order; with ``label/<rma>`` (the
    approval email) it goes on to that return's label, so the link works without signing in first."""
    number = read_return_token(current_app.config["SECRET_KEY"], token, current_app.config["RETURN_LINK_MAX_AGE_DAYS"])
    order = None
    if number is not None:
        order = get_session().scalars(select(Order).where(Order.order_number == number)).one_or_none()
    if order is None:
        log.info("return link refused from %s", request.remote_addr)
        return render_template("shop/lookup.html", form=LookupForm(), failed=True), 422
    _enter(order.id)
    # Redirect so the token leaves the address bar, history and Referer.
    if rma is not None and any(r.rma == rma for r in order.requests):
        return redirect(url_for("shop.label", rma=rma), code=303)
    return redirect(url_for("shop.order_page"), code=303)


def _enter(order_id: int) -> None:
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    session[SESSION_KEY] = order_id
    session.permanent = True


@bp.post("/leave")
def leave():
    session.pop(SESSION_KEY, None)
    return redirect(url_for("shop.start"), code=303)


def _current_order(with_lines: bool = False) -> Order:
    """The order this shopper's session opened (else back to the start); ``with_lines`` reads its
    lines in the same statement, for the views that use them."""
    order_id = session.get(SESSION_KEY)
    if not isinstance(order_id, int):
        abort(redirect(url_for("shop.start"), code=303))
    order = order_with_lines(get_session(), order_id) if with_lines else get_session().get(Order, order_id)
    if order is None:
        session.pop(SESSION_KEY, None)
        abort(redirect(url_for("shop.start"), code=303))
    return order


# --- choosing ---------------------------------------------------------------


def _page_context(order: Order, form: ReturnForm, decision=None, photo_errors=None, storage_error=False):
    """Everything the order page shows; also fills the form's per-line choices (needed to validate)."""
    config = current_app.config
    db = get_session()
    policy = active_policy(db, config)
    now = _now()
    # The exchange options with their labels and stock in one read; the facts reuse them.
    offered = exchange_variants(db, [line.sku for line in order.lines])
    order_facts_ = order_facts(
        db, order, policy, now, options={sku: frozenset(v.sku for v in found) for sku, found in offered.items()}
    )
    prechecks = precheck_order(db, order, policy, now, facts=order_facts_)
    variants = {v.sku: (v.label, v.available) for found in offered.values() for v in found}
    options = {
        f.line_id: sorted((sku, variants.get(sku, (sku, 0))[0]) for sku in f.exchange_options)
        for f in order_facts_.lines
    }
    allowed_outcomes = policy.gift_outcomes if order.gift else None
    _fill_choices(order, form, prechecks, options, allowed_outcomes)
    staged = staging.staged(order.id)
    rules = guided.Rules(
        photo_reasons=policy.photo_required_reasons,
        photos_kept={line_id: len(photos) for line_id, photos in staged.items()},
        outcomes=[choice.value for choice in form.lines.entries[0].outcome.choices] if form.lines.entries else [],
        exchange_options={line_id: [sku for sku, _ in found] for line_id, found in options.items()},
    )
    return dict(
        order=order,
        form=form,
        prechecks=prechecks,
        decision=decision,
        photo_errors=photo_errors or {},
        storage_error=storage_error,
        requests=request_list(db, order.id),
        reasons=REASONS,
        now=now,
        staged=staged,
        rules=rules,
        variants=variants,
        bonus=store_credit_bonus(config),
        paid_each={
            ol.line_id: line_paid_per_unit(ol.unit_price, ol.quantity, ol.discount, ol.tax, order.currency)
            for ol in order.lines
        },
        quality_only={
            line_id: any(r.rule == "window" and r.shopper.params.get("quality_only") for r in pre.trace)
            for line_id, pre in prechecks.items()
        },
        OUTCOME_LABELS=OUTCOME_LABELS,
        estimate=None,
        restocking=0,
        step="items",
        steps=guided.STEPS,
        step_labels=guided.STEP_LABELS,
        step_fields=guided.STEP_FIELDS,
        carried=guided.CARRIED,
        problems=[],
        # Nothing to choose: no steps, a sentence instead.
        returnable=any(p.verdict is not Verdict.NOT_ELIGIBLE and p.remaining > 0 for p in prechecks.values()),
    )


def _fill_choices(order: Order, form: ReturnForm, prechecks, options, allowed_outcomes=None) -> None:
    """Per-line choices; a gift order offers (and starts on) only the outcomes its policy allows."""
    lines = {ol.line_id: ol for ol in order.lines}
    # The same translated lists serve every line: build them once per page.
    reasons, sub_reasons, outcomes = reason_choices(gettext), sub_reason_choices(gettext), outcome_choices(gettext)
    if allowed_outcomes is not None:
        outcomes = [choice for choice in outcomes if choice.value in allowed_outcomes] or outcomes
    default_outcome = outcomes[0].value
    if not form.lines.entries:
        for ol in order.lines:
            form.lines.append_entry({"line_id": ol.line_id, "quantity": 0, "outcome": default_outcome})
    no_exchange = SelectChoice("", gettext("Choose a size or colour"))
    for entry in form.lines.entries:
        line = lines.get(entry.line_id.data)
        pre = prechecks.get(entry.line_id.data)
        remaining = pre.remaining if pre is not None else 0
        allowed = pre is not None and pre.verdict is not Verdict.NOT_ELIGIBLE
        top = remaining if allowed else 0
        entry.quantity.choices = [SelectChoice(n, str(n)) for n in range(0, top + 1)]
        entry.reason.choices = reasons
        entry.sub_reason.choices = sub_reasons
        entry.outcome.choices = outcomes
        entry.exchange_sku.choices = [no_exchange] + [
            SelectChoice(sku, label) for sku, label in options.get(entry.line_id.data, [])
        ]
        entry.order_line = line
        entry.precheck = pre


def _line_requests(order: Order, form: ReturnForm, mode: str):
    """Turn the posted form into line requests; photo problems are collected per line.

    Photos sent with the form (the page without JavaScript) are cleaned and kept (staging), and
    removed ones dropped, so a step, Back or a refused submit never loses them. ``mode`` "submit"
    hands every kept photo of a line to the request; "stage" only counts them.
    """
    known = {line.line_id for line in order.lines}
    max_bytes = current_app.config["MAX_PHOTO_BYTES"]
    per_line = current_app.config["MAX_PHOTOS_PER_LINE"]
    per_request = current_app.config["MAX_PHOTOS_PER_REQUEST"]
    store = store_from_config(current_app.config)
    lines: list[LineRequest] = []
    errors: dict[str, list[str]] = {}
    total_photos = sum(len(v) for k, v in staging.staged(order.id).items() if k in known)
    seen_ids: set[str] = set()
    for entry in form.lines.entries:
        line_id = entry.line_id.data or ""
        if line_id not in known or line_id in seen_ids:
            continue
        seen_ids.add(line_id)
        quantity = entry.quantity.data if isinstance(entry.quantity.data, int) else 0
        removed = {v for v in request.form.getlist(f"{entry.name}-remove_photo") if v}
        if removed:
            total_photos -= staging.count(order.id, line_id)
            staging.unstage(store, order.id, line_id, removed)
            total_photos += staging.count(order.id, line_id)
        kept = staging.count(order.id, line_id)
        uploads = [f for f in request.files.getlist(f"{entry.name}-photos") if f and f.filename]
        if uploads:
            room = per_line - kept
            if len(uploads) > room:
                errors.setdefault(line_id, []).append(gettext("Please send at most %(n)d photos per item.", n=per_line))
                uploads = uploads[: max(room, 0)]
            if total_photos + len(uploads) > per_request:
                errors.setdefault(line_id, []).append(
                    gettext("Please send at most %(n)d photos in one request.", n=per_request)
                )
                uploads = uploads[: max(per_request - total_photos, 0)]
            for upload in uploads:
                data = upload.stream.read(max_bytes + 1)
                name = upload.filename or "photo"
                try:
                    photo = clean_photo(data, name, max_bytes)
                except PhotoRejected as exc:
                    errors.setdefault(line_id, []).append(exc.message.render(gettext))
                    continue
                staging.stage(store, order.id, line_id, photo, name)
                total_photos += 1
        line = LineRequest(
            line_id=line_id,
            quantity=max(quantity, 0),
            reason=entry.reason.data or None,
            sub_reason=entry.sub_reason.data or None,
            comment=entry.comment.data or "",
            outcome=entry.outcome.data or None,
            exchange_sku=entry.exchange_sku.data or None,
        )
        if quantity > 0:
            if mode == "submit":
                line.photos = staging.load(store, order.id, line_id)
            else:
                # Counted, not decoded, for a step.
                line.photos = [None] * staging.count(order.id, line_id)  # type: ignore[list-item]
        lines.append(line)
    return lines, errors


@bp.get("/order")
def order_page():
    order = _current_order(with_lines=True)
    form = ReturnForm()
    return render_template("shop/order.html", **_page_context(order, form))


def _posted_form(order: Order) -> tuple[ReturnForm, dict]:
    form = ReturnForm()
    form.lines.max_entries = len(order.lines)
    context = _page_context(order, form)
    return form, context


@bp.get("/images/sku/<sku>")
def product_picture(sku: str):
    """Our copy of a product's picture (the shop's address is never shown), else a neutral placeholder."""
    key = picture_key(get_session(), sku[:64])
    if key is not None:
        try:
            return image_response(store_from_config(current_app.config).get(key))
        except StorageError:
            log.warning("product picture %s missing from the store", key)
    return redirect(url_for("static", filename="img/product-placeholder.svg"), code=302)


@bp.post("/order/photos")
def upload_photo():
    """One photo, sent as soon as it is chosen (the page's script): checked and kept for the line,
    answered with its entry for the page, or a 422 with the reason (nothing kept)."""
    order = _current_order(with_lines=True)
    line_id = (request.form.get("line_id") or "")[:64]
    index = next((i for i, ol in enumerate(order.lines) if ol.line_id == line_id), None)
    upload = request.files.get("photo")
    if index is None or upload is None or not upload.filename:
        abort(400)
    config = current_app.config
    kept = staging.staged(order.id)
    if len(kept.get(line_id, [])) >= config["MAX_PHOTOS_PER_LINE"]:
        message = gettext("Please send at most %(n)d photos per item.", n=config["MAX_PHOTOS_PER_LINE"])
        return render_template("shop/_upload_error.html", message=message), 422
    if sum(len(v) for v in kept.values()) >= config["MAX_PHOTOS_PER_REQUEST"]:
        message = gettext("Please send at most %(n)d photos in one request.", n=config["MAX_PHOTOS_PER_REQUEST"])
        return render_template("shop/_upload_error.html", message=message), 422
    try:
        photo = clean_photo(
            upload.stream.read(config["MAX_PHOTO_BYTES"] + 1), upload.filename, config["MAX_PHOTO_BYTES"]
        )
    except PhotoRejected as exc:
        return render_template("shop/_upload_error.html", message=exc.message.render(gettext)), 422
    try:
        entry = staging.stage(store_from_config(config), order.id, line_id, photo, upload.filename)
    except StorageError:
        log.exception("photo store unavailable")
        message = gettext(
            "Your photos could not be saved just now. Nothing was submitted; please try again in a moment."
        )
        return render_template("shop/_upload_error.html", message=message), 503
    return render_template("shop/_kept_photo.html", p=entry, prefix=f"lines-{index}")


@bp.get("/order/photos/<photo_id>")
def staged_photo(photo_id: str):
    """The thumbnail of a photo kept for this session's order (404 for anyone else's)."""
    order = _current_order()
    found = staging.thumbnail(store_from_config(current_app.config), order.id, photo_id[:32])
    if found is None:
        abort(404)
    return image_response(found[0])


def _review(order: Order, lines: list[LineRequest], context: dict) -> None:
    """The review step: the policy's decision and the refund estimate, by the refund's own arithmetic."""
    decision = check_return(get_session(), order, lines, active_policy(get_session(), current_app.config), _now())
    context["decision"] = decision
    context["estimate"] = None
    context["postage"] = None
    if decision.lines and decision.verdict is not Verdict.NOT_ELIGIBLE:
        settings = refund_settings(current_app.config)
        going = [line for line in lines if line.quantity > 0 and line.reason]
        context["estimate"] = estimate_refund(
            get_session(),
            order,
            [
                EstimateLine(ln.line_id, ln.quantity, ln.reason or "", ln.outcome or Outcome.REFUND, ln.exchange_sku)
                for ln in going
            ],
            settings,
            returned_as_new=not decision.returnless,
        )
        # Postage and restocking concern what is refunded or credited; an exchange pays neither.
        credited = [r for ln in going if ln.outcome != Outcome.EXCHANGE and (r := responsibility_of(ln.reason or ""))]
        context["postage"] = None if decision.returnless else postage_text(credited, order.currency)
        context["restocking"] = max(
            (settings.restocking_percent(r, grade) for r in credited for grade in GRADES), default=0
        )


def _show_step(order: Order, form: ReturnForm, context: dict, lines: list[LineRequest], current: str, go: str):
    """Decide the step to show (never past an incomplete one) and render it."""
    rules = context["rules"]
    guided.clear_marks(form)
    found = {step: guided.problems(step, form, rules) for step in guided.STEPS[:-1]}
    complete_until = next((step for step in guided.STEPS[:-1] if found[step]), "review")
    current_ok = not found.get(current) and not (current == "details" and context["photo_errors"])
    step, show = guided.target_step(current, go, complete_until, current_ok)
    if not show:
        guided.clear_marks(form)
    context["step"] = step
    context["problems"] = found.get(step, []) if show else []
    if step == "review":
        _review(order, lines, context)
    return step, show


@bp.post("/order/step")
def step():
    """One step of the guided return: the next (or previous) step's screen, as an htmx fragment or a
    whole page without JavaScript."""
    order = _current_order(with_lines=True)
    form, context = _posted_form(order)
    form.validate_on_submit()  # field errors are reported by the step that owns the field
    current = request.form.get("step", "")
    current = current if current in guided.STEPS else "items"
    go = request.form.get("go", "next")
    if current == "items":
        guided.apply_picks(form, request.form)
    try:
        lines, photo_errors = _line_requests(order, form, "stage")
    except StorageError:
        log.exception("photo store unavailable")
        context["storage_error"] = True
        context["step"] = current
        return render_template("shop/order.html", **context), 503
    context["photo_errors"] = photo_errors
    context["staged"] = staging.staged(order.id)
    context["rules"] = _rules_with_photos(context)
    _, show = _show_step(order, form, context, lines, current, go)
    status = 422 if show and context["problems"] else 200
    return render_page_or_partial("shop/order.html", "shop/_wizard.html", http_status=status, **context)


def _rules_with_photos(context: dict) -> guided.Rules:
    """The rules again, now counting the photos this request kept."""
    kept = {line_id: len(photos) for line_id, photos in context["staged"].items()}
    return dataclasses.replace(context["rules"], photos_kept=kept)


@bp.post("/order/request")
def submit():
    order = _current_order(with_lines=True)
    form, context = _posted_form(order)
    form.validate_on_submit()
    try:
        lines, photo_errors = _line_requests(order, form, "submit")
    except StorageError:
        log.exception("photo store unavailable")
        context["storage_error"] = True
        context["step"] = "review"
        return render_template("shop/order.html", **context), 503
    context["photo_errors"] = photo_errors
    context["staged"] = staging.staged(order.id)
    context["rules"] = _rules_with_photos(context)
    step, _ = _show_step(order, form, context, lines, "review", "next")
    if step != "review" or photo_errors:
        # Something is missing: the step that asks for it, marked, with what was chosen kept.
        if step == "review":
            context["step"] = "details"
        return render_template("shop/order.html", **context), 422
    active = published_policy(get_session(), current_app.config)
    try:
        created = open_return(
            get_session(),
            order,
            lines,
            active.policy,
            _now(),
            current_locale(),
            store_from_config(current_app.config),
            carrier=carrier_from_config(current_app.config),
            policy_version_id=active.id,
        )
    except ReturnNotAllowed as exc:
        context["decision"] = exc.decision
        return render_template("shop/order.html", **context), 422
    except StorageError:
        log.exception("photo store unavailable")
        context["storage_error"] = True
        return render_template("shop/order.html", **context), 503
    staging.clear(store_from_config(current_app.config), order.id)
    flash(gettext("Thank you. Your return request %(rma)s has been received.", rma=created.rma), "success")
    return redirect(url_for("shop.status", rma=created.rma), code=303)


# --- following --------------------------------------------------------------


def _own_request(rma: str):
    order = _current_order()
    try:
        return order, get_request_for_order(get_session(), order.id, rma)
    except NotFound:
        abort(404)


# The shopper's progress tracker: each status falls in one of these steps.
PROGRESS = (
    (N_("Requested"), {Status.SUBMITTED, Status.PENDING_REVIEW, Status.AWAITING_SHOPPER}),
    (N_("Approved"), {Status.APPROVED, Status.LABEL_ISSUED}),
    (N_("On its way"), {Status.IN_TRANSIT}),
    (N_("Received"), {Status.RECEIVED, Status.INSPECTED, Status.DISCREPANCY}),
    (N_("Refunded or exchange sent"), {Status.REFUNDED, Status.EXCHANGED, Status.CLOSED}),
)


def _status_context(order: Order, req, answer_form: AnswerForm | None = None) -> dict:
    step = next((i for i, (_, states) in enumerate(PROGRESS) if Status(req.status) in states), None)
    labels = {}
    skus = [line.exchange_sku for line in req.lines if line.exchange_sku]
    if skus:
        labels = dict(get_session().execute(select(Variant.sku, Variant.label).where(Variant.sku.in_(skus))).all())
    return dict(
        order=order,
        req=req,
        cancel_form=CancelForm(status=req.status),
        answer_form=answer_form or AnswerForm(),
        question=_open_question(req),
        cancellable=req.cancellable,
        reasons=REASONS,
        progress=[label for label, _ in PROGRESS],
        step=step,
        variant_labels=labels,
        OUTCOME_LABELS=OUTCOME_LABELS,
        paid=paid_out(get_session(), req),
        # The code works until the courier has the parcel (or the return is cancelled).
        pickup_valid=bool(req.pickup_code) and req.status in (Status.APPROVED, Status.LABEL_ISSUED),
    )


@bp.get("/requests/<rma>")
def status(rma: str):
    order, req = _own_request(rma)
    return render_page_or_partial("shop/status.html", "shop/_status.html", **_status_context(order, req))


@bp.get("/requests/<rma>/cancel")
def confirm_cancel(rma: str):
    """Cancelling is one step more: say what it does (pickup called off, nothing refunded) and ask."""
    order, req = _own_request(rma)
    if not req.cancellable:
        flash(gettext("This request can no longer be cancelled because the parcel is already on its way."), "warning")
        return redirect(url_for("shop.status", rma=rma), code=303)
    return render_template("shop/cancel.html", order=order, req=req, cancel_form=CancelForm(status=req.status))


@bp.post("/requests/<rma>/cancel")
def cancel(rma: str):
    order, req = _own_request(rma)
    form = CancelForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        cancel_return(
            get_session(),
            req,
            SHOPPER,
            expected_status=form.status.data or None,
            carrier=carrier_from_config(current_app.config),
        )
    except IllegalTransition:
        flash(gettext("This request can no longer be cancelled because the parcel is already on its way."), "warning")
        return redirect(url_for("shop.status", rma=rma), code=303)
    except PickupNotCancelled as exc:
        flash(exc.render(gettext), "warning")
        return redirect(url_for("shop.status", rma=rma), code=303)
    except Conflict:
        flash(
            gettext("This request changed while you were looking at it. Please check its status and try again."),
            "warning",
        )
        return redirect(url_for("shop.status", rma=rma), code=303)
    flash(gettext("Your return request has been cancelled."), "success")
    return redirect(url_for("shop.status", rma=rma), code=303)


def _open_question(req) -> str | None:
    if req.status != Status.AWAITING_SHOPPER.value:
        return None
    asked = [e for e in req.events if e.to_status == Status.AWAITING_SHOPPER.value]
    return asked[-1].note if asked else None


@bp.post("/requests/<rma>/answer")
def answer(rma: str):
    order, req = _own_request(rma)
    form = AnswerForm()
    if not form.validate_on_submit():
        return render_template("shop/status.html", **_status_context(order, req, form)), 422
    try:
        answer_question(get_session(), req, form.answer.data)
    except Conflict:
        flash(gettext("This request is no longer waiting for an answer."), "warning")
        return redirect(url_for("shop.status", rma=rma), code=303)
    flash(gettext("Thank you. Our team will continue with your request."), "success")
    return redirect(url_for("shop.status", rma=rma), code=303)


def postage_text(responsibilities: list[str], currency: str) -> str:
    """Who pays the postage, for the review page and the label: the same fee the refund deducts."""
    fee = return_fee(current_app.config)
    if fee.charged(responsibilities):
        return gettext(
            "Postage is prepaid. A return shipping fee of %(fee)s will be deducted from your refund.",
            fee=money(fee.amount, currency),
        )
    return gettext("Postage is prepaid by the shop; you pay nothing.")


def label_data(req) -> LabelData:
    """What the printable label shows, in the current language."""
    order = req.order
    postage = postage_text([line.responsibility for line in req.accepted_lines if not line.is_exchange], order.currency)
    return LabelData(
        rma=req.rma,
        pickup_code=req.pickup_code,
        items=tuple(
            (line.quantity, line.order_line.product_name, line.order_line.variant, line.order_line.sku)
            for line in req.accepted_lines  # a line staff did not accept stays with the shopper
        ),
        ship_from=(order.customer_name, order.customer_postcode or ""),
        return_to=tuple(current_app.config["RETURN_ADDRESS"]),
        postage=postage,
        carrier=req.carrier or "",
        created=req.label_issued_at.date().isoformat() if req.label_issued_at else "",
        title=gettext("Return label"),
        labels={
            "pickup_code": gettext("Pickup code"),
            "rma": gettext("Return number"),
            "items": gettext("Items"),
            "return_to": gettext("Return to"),
            "ship_from": gettext("From"),
            "carrier": gettext("Courier"),
        },
    )


def _label_gone(req) -> tuple[str, int]:
    """A cancelled return's label must not be used: 410 with a page that says so."""
    return render_template(
        "errors/error.html",
        code=410,
        message=gettext(
            "Return %(rma)s was cancelled, so its label and pickup code no longer work. Please do not send the parcel.",
            rma=req.rma,
        ),
    ), 410


@bp.get("/requests/<rma>/label")
def label(rma: str):
    order, req = _own_request(rma)
    if not req.pickup_code:
        abort(404)
    if req.status == Status.CANCELLED:
        return _label_gone(req)
    data = label_data(req)
    scan = compact_pickup_code(req.pickup_code)  # the same string the PDF's codes carry
    return render_template(
        "shop/label.html",
        req=req,
        data=data,
        qr=Markup(qr_svg(scan, title=data.caption("pickup_code"))),
        barcode=Markup(code128_svg(scan, title=data.caption("pickup_code"))),
    )


@bp.get("/requests/<rma>/label.pdf")
def label_pdf_view(rma: str):
    order, req = _own_request(rma)
    if not req.pickup_code:
        abort(404)
    if req.status == Status.CANCELLED:
        return _label_gone(req)
    pdf = label_pdf(label_data(req))
    return (
        pdf,
        200,
        {
            "Content-Type": "application/pdf",
            "Content-Disposition": f'inline; filename="return-{req.rma}.pdf"',
            "X-Content-Type-Options": "nosniff",
        },
    )


@bp.get("/requests/<rma>/photos/<int:photo_id>")
def photo(rma: str, photo_id: int):
    _, req = _own_request(rma)
    item = get_session().get(Photo, photo_id)
    if item is None or item.request_id != req.id:
        abort(404)
    return image_response(photo_bytes(item.storage_key))
