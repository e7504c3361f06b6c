"""Scoring photos with the wear classifier, and reading its agreement with the warehouse."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.db.models import Photo, RequestEvent, ReturnLine, ReturnRequest
from portal.domain.actors import CLASSIFIER
from portal.domain.receiving import WORN_GRADES
from portal.domain.states import ScoreState, check_score
from portal.services.tickets import reroute_if_untouched
from portal.storage import PhotoStore, StorageError
from portal.vision.classifier import WearModel

log = logging.getLogger("portal.photos")


def score_request_photos(session: Session, request_id: int, store: PhotoStore, model: WearModel | None) -> int:
    """Score the request's unscored photos in one batch. Idempotent: scored photos are left alone.

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
    if model is None:
        for photo in pending:
            photo.score_state, photo.score_note = (
                check_score(photo.score_state, ScoreState.NOT_SCORED).value,
                "no usable wear model",
            )
        session.commit()
        return 0
    readable, images = [], []
    for photo in pending:
        try:
            # The model looks at a 128 px square: the thumbnail made at intake (320 px) carries all it
            # sees, at a sixtieth of the bytes of the kept photo (older rows have none: the photo).
            images.append(Image.open(io.BytesIO(store.get(photo.thumb_key or photo.storage_key))).convert("RGB"))
            readable.append(photo)
        except (StorageError, OSError) as exc:
            photo.score_state = check_score(photo.score_state, ScoreState.NOT_SCORED).value
            photo.score_note = f"photo unreadable: {type(exc).__name__}"
    scores = model.score(images) if images else []
    for photo, result in zip(readable, scores, strict=True):
        photo.score_state = check_score(photo.score_state, ScoreState.SCORED).value
        photo.wear_probability = float(result.probability)
        photo.wear_label = result.label
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


def labelled_photos(session: Session) -> Iterator[tuple[Photo, ReturnLine, bool]]:
    """(photo, worn) for every scored-or-not photo whose line the warehouse graded."""
    rows = session.execute(select(Photo, ReturnLine).join(ReturnLine, Photo.line_id == ReturnLine.id)).all()
    for photo, line in rows:
        truth = warehouse_says_worn(line)
        if truth is not None:
            yield photo, line, truth
