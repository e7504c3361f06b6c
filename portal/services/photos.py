"""Scoring photos with the wear classifier, and reading its agreement with the warehouse."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.db.locks import lock_rows
from portal.db.models import OrderLine, Photo, RequestEvent, ReturnLine, ReturnRequest, StaffUser, WearThreshold
from portal.domain.actors import CLASSIFIER
from portal.domain.receiving import WORN_GRADES
from portal.domain.states import ScoreState, check_score
from portal.domain.wear import (
    agreement_at,
    best_threshold,
    category_key,
    check_threshold,
    label_for,
    threshold_for,
)
from portal.services.admin import record_change
from portal.services.tickets import reroute_if_untouched
from portal.storage import PhotoStore, StorageError
from portal.vision.classifier import WearModel

log = logging.getLogger("portal.photos")


def score_request_photos(
    session: Session,
    request_id: int,
    store: PhotoStore,
    model: WearModel | None,
    thresholds: Mapping[str, float] | None = None,
) -> int:
    """Score the request's unscored photos in one batch. Idempotent: scored photos are left alone.

    The label is decided at the threshold the merchant set for the line's product
    category (``thresholds``: the setting ``PORTAL_WEAR_THRESHOLDS`` with what was set on
    the wear report page for this model on top, see ``thresholds_in_use``), else the model's.

    Without a usable model (or when a photo cannot be read) photos are marked
    ``not_scored`` with the reason; the request carries on without a score.
    Returns the number of photos scored.
    """
    request = session.get(ReturnRequest, request_id)
    if request is None:
        return 0
    pending = [p for p in request.photos if p.score_state == ScoreState.PENDING]
    if not pending:
        return 0
    now = datetime.now(UTC)
    images: dict[int, Image.Image] = {}
    unreadable: dict[int, str] = {}
    if model is not None:
        for photo in pending:
            try:
                # The model looks at a 128 px square: the thumbnail made at intake (320 px) carries all it
                # sees, at a sixtieth of the bytes of the kept photo (older rows have none: the photo).
                key = photo.thumb_key or photo.storage_key
                images[photo.id] = Image.open(io.BytesIO(store.get(key))).convert("RGB")
            except (StorageError, OSError) as exc:
                unreadable[photo.id] = f"photo unreadable: {type(exc).__name__}"
    results = dict(zip(images, model.score(list(images.values())), strict=True)) if model and images else {}
    # Write under the request's lock, and only for photos still pending: a task handed back to the queue
    # while it was still running (a worker's connection to the broker lost) may have scored them meanwhile.
    session.rollback()
    lock_rows(session, ReturnRequest, ReturnRequest.id == request_id)
    request = session.get_one(ReturnRequest, request_id)
    asked = {photo.id for photo in pending}  # a photo added since is left for the next run
    still = [p for p in request.photos if p.score_state == ScoreState.PENDING and p.id in asked]
    readable = []
    for photo in still:
        result = results.get(photo.id)
        if model is None or result is None:
            photo.score_state = check_score(photo.score_state, ScoreState.NOT_SCORED).value
            photo.score_note = "no usable wear model" if model is None else unreadable.get(photo.id, "photo not read")
            continue
        readable.append(photo)
        photo.score_state = check_score(photo.score_state, ScoreState.SCORED).value
        photo.wear_probability = float(result.probability)
        category = photo.line.order_line.category if photo.line is not None else None
        photo.wear_label = label_for(result.probability, category, thresholds, model.threshold, model.contract.labels)
        photo.model_version = result.model_version
        photo.score_map = [[round(float(v), 4) for v in row] for row in result.score_map]
        photo.scored_at = now
    scored = [p.wear_probability for p in request.photos if p.wear_probability is not None]
    request.max_wear = max(scored) if scored else None
    if readable:
        request.events.append(
            RequestEvent(
                actor=CLASSIFIER,
                kind="scored",
                from_status=None,
                to_status=None,
                note=f"{len(readable)} photo(s) scored, highest wear {request.max_wear:.2f} ({readable[0].model_version})",
            )
        )
        reroute_if_untouched(session, request)
    session.commit()
    return len(readable)


def thresholds_in_use(
    session: Session,
    model: WearModel | None,
    configured: Mapping[str, float] | None = None,
    page: Mapping[str, WearThreshold] | None = None,
) -> dict[str, float]:
    """Per category: the setting ``PORTAL_WEAR_THRESHOLDS`` (``configured``), overridden by what
    an admin set on the wear report page for this model version (``page``, as ``page_thresholds``
    returns it, when the caller has read it already)."""
    merged = dict(configured or {})
    if model is not None:
        if page is None:
            page = page_thresholds(session, model.version)
        merged.update({category: row.threshold for category, row in page.items()})
    return merged


def page_thresholds(session: Session, model_version: str) -> dict[str, WearThreshold]:
    """What was set on the page for this model version, by category."""
    rows = session.scalars(select(WearThreshold).where(WearThreshold.model_version == model_version))
    return {row.category: row for row in rows}


def _audit_target(model_version: str, category: str) -> str:
    """How the audit log names a category's threshold for a model version."""
    return f"wear:{model_version}:{category}"[:128]


def set_wear_threshold(
    session: Session, actor: StaffUser, model_version: str, category: str, threshold: float | None
) -> WearThreshold:
    """Set the category's threshold for this model version (``InvalidInput`` when it is not one), audited.

    Photos scored from now on are labelled at it; labels already given stay as they were decided."""
    key, value = check_threshold(category, threshold)
    row = _threshold_row(session, model_version, key)
    before = {"threshold": row.threshold} if row is not None else None
    if row is None:
        row = WearThreshold(model_version=model_version, category=key, threshold=value, set_by_id=actor.id)
        session.add(row)
    else:
        row.threshold, row.set_by_id, row.set_at = value, actor.id, datetime.now(UTC)
    if before != {"threshold": value}:
        record_change(session, actor, "wear_threshold", _audit_target(model_version, key), before, {"threshold": value})
    session.commit()
    return row


def clear_wear_threshold(session: Session, actor: StaffUser, model_version: str, category: str) -> None:
    """Back to the setting's threshold (or the model's) for this category and model version, audited."""
    key = category_key(category)
    row = _threshold_row(session, model_version, key)
    if row is not None:
        record_change(
            session, actor, "wear_threshold", _audit_target(model_version, key), {"threshold": row.threshold}, None
        )
        session.delete(row)
    session.commit()


def _threshold_row(session: Session, model_version: str, key: str) -> WearThreshold | None:
    return session.scalar(
        select(WearThreshold).where(WearThreshold.model_version == model_version, WearThreshold.category == key)
    )


def known_categories(session: Session, limit: int = 200) -> list[str]:
    """Product categories of the shop's order lines (keys), for the page to offer a threshold for."""
    names = session.scalars(select(OrderLine.category).where(OrderLine.category != "").distinct().limit(limit))
    return sorted({key for key in map(category_key, names) if key})


@dataclass
class Agreement:
    """Photo opinion against warehouse grade for one model version."""

    model_version: str
    # rows: model says worn / not worn; columns: warehouse says worn / not worn
    matrix: dict[tuple[bool, bool], int] = field(
        default_factory=lambda: {(a, b): 0 for a in (True, False) for b in (True, False)}
    )

    @property
    def total(self) -> int:
        return sum(self.matrix.values())

    @property
    def agreement(self) -> float | None:
        return (self.matrix[(True, True)] + self.matrix[(False, False)]) / self.total if self.total else None


def warehouse_says_worn(line: ReturnLine) -> bool | None:
    if line.wear_confirmed is not None:
        return line.wear_confirmed
    if line.grade:
        return line.grade in WORN_GRADES
    return None


def wear_agreement(session: Session) -> list[Agreement]:
    """Confusion matrix per model version over photos whose line has a warehouse grade."""
    rows = session.execute(
        select(Photo, ReturnLine)
        .join(ReturnLine, Photo.line_id == ReturnLine.id)
        .where(
            Photo.score_state == ScoreState.SCORED,
            (ReturnLine.grade.is_not(None)) | (ReturnLine.wear_confirmed.is_not(None)),
        )
    ).all()
    by_version: dict[str, Agreement] = {}
    for photo, line in rows:
        truth = warehouse_says_worn(line)
        if truth is None:
            continue
        predicted = photo.wear_label == "wear"
        agreement = by_version.setdefault(photo.model_version or "?", Agreement(photo.model_version or "?"))
        agreement.matrix[(predicted, truth)] += 1
    return sorted(by_version.values(), key=lambda a: a.model_version)


@dataclass
class CategoryAgreement:
    """One model version's photos of one product category against the warehouse, to choose a threshold from."""

    model_version: str
    category: str
    model_threshold: float | None  # the contract's, when that model is the one loaded
    threshold_in_use: float | None
    pairs: list[tuple[float, bool]] = field(default_factory=list)  # (probability, warehouse says worn)
    labelled_agreement: float | None = None  # of the labels as they were decided

    @property
    def total(self) -> int:
        return len(self.pairs)

    @property
    def worn(self) -> int:
        return sum(worn for _, worn in self.pairs)

    def agreement_at(self, threshold: float) -> float | None:
        return agreement_at(self.pairs, threshold)

    def best(self) -> tuple[float, float | None]:
        default = self.threshold_in_use if self.threshold_in_use is not None else 0.5
        return best_threshold(self.pairs, default)


def wear_agreement_by_category(
    session: Session, model: WearModel | None = None, thresholds: Mapping[str, float] | None = None
) -> list[CategoryAgreement]:
    """Per model version and product category: stored probabilities against warehouse grades.

    ``model`` (the one loaded) and ``thresholds`` (the merchant's setting) say
    which threshold is in use for that model's rows.
    """
    rows = session.execute(
        select(Photo, ReturnLine)
        .join(ReturnLine, Photo.line_id == ReturnLine.id)
        .where(
            Photo.score_state == ScoreState.SCORED,
            Photo.wear_probability.is_not(None),
            (ReturnLine.grade.is_not(None)) | (ReturnLine.wear_confirmed.is_not(None)),
        )
    ).all()
    groups: dict[tuple[str, str], CategoryAgreement] = {}
    agreed: dict[tuple[str, str], int] = {}
    for photo, line in rows:
        truth = warehouse_says_worn(line)
        if truth is None:
            continue
        version = photo.model_version or "?"
        category = category_key(line.order_line.category) or "?"
        key = (version, category)
        if key not in groups:
            own = model.threshold if model is not None and version == model.version else None
            in_use = threshold_for(category, thresholds, own) if own is not None else None
            groups[key] = CategoryAgreement(version, category, own, in_use)
        groups[key].pairs.append((float(photo.wear_probability or 0.0), truth))
        agreed[key] = agreed.get(key, 0) + int((photo.wear_label == "wear") == truth)
    for key, group in groups.items():
        group.labelled_agreement = agreed[key] / group.total
    return sorted(groups.values(), key=lambda g: (g.model_version, g.category))


def labelled_photos(session: Session) -> Iterator[tuple[Photo, ReturnLine, bool]]:
    """(photo, worn) for every scored-or-not photo whose line the warehouse graded."""
    rows = session.execute(select(Photo, ReturnLine).join(ReturnLine, Photo.line_id == ReturnLine.id)).all()
    for photo, line in rows:
        truth = warehouse_says_worn(line)
        if truth is not None:
            yield photo, line, truth
