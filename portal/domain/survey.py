"""The satisfaction survey a shopper gets once a request is finished: its states, what counts as an
answer, who needs a follow-up, and when an answer can still change. Pure values, no I/O."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from portal.domain.errors import InvalidInput
from portal.domain.lifecycle import Status
from portal.domain.states import check
from portal.domain.text import N_

# A request that reaches one of these is finished for the shopper: the survey is due after the delay.
FINISHED = frozenset({Status.REFUNDED, Status.EXCHANGED, Status.REJECTED})

NPS_SCALE = range(0, 11)
SATISFACTION_SCALE = range(1, 6)
COMMENT_MAX = 2000
# Recover the detractor: these answers (or any comment) reopen the request's ticket.
NPS_DETRACTOR_MAX = 6
SATISFACTION_LOW_MAX = 2


class SurveyStatus(StrEnum):
    """One request's survey email: waits for its time, is claimed by one sweeper, is sent or skipped once."""

    PENDING = "pending"
    CLAIMED = "claimed"
    SENT = "sent"
    SKIPPED = "skipped"  # no address, opted out, surveyed recently, or left too long unsent


SURVEY_TRANSITIONS: dict[SurveyStatus, frozenset[SurveyStatus]] = {
    SurveyStatus.PENDING: frozenset({SurveyStatus.CLAIMED}),
    # A claim that expired (sweeper killed) is claimed again by another sweeper.
    SurveyStatus.CLAIMED: frozenset({SurveyStatus.CLAIMED, SurveyStatus.SENT, SurveyStatus.SKIPPED}),
    SurveyStatus.SENT: frozenset(),
    SurveyStatus.SKIPPED: frozenset(),
}


def check_survey(current: str, target: str) -> SurveyStatus:
    return check(SURVEY_TRANSITIONS, SurveyStatus, current, target)


@dataclass(frozen=True)
class SurveyAnswerValues:
    """A valid answer: likelihood to recommend 0-10, satisfaction 1-5, an optional comment."""

    nps: int
    satisfaction: int
    comment: str = ""

    @classmethod
    def parse(cls, nps: object, satisfaction: object, comment: object = "") -> SurveyAnswerValues:
        """The answer from raw form values, or InvalidInput with a sentence for the shopper."""
        nps_value = _whole(nps)
        if nps_value is None or nps_value not in NPS_SCALE:
            raise InvalidInput(N_("Choose how likely you are to recommend us, from 0 to 10."))
        sat_value = _whole(satisfaction)
        if sat_value is None or sat_value not in SATISFACTION_SCALE:
            raise InvalidInput(N_("Choose how satisfied you are with your return, from 1 to 5."))
        text = str(comment or "").strip()
        if len(text) > COMMENT_MAX:
            raise InvalidInput(N_("Please keep your comment under %(max)d characters."), max=COMMENT_MAX)
        return cls(nps_value, sat_value, text)

    @property
    def needs_follow_up(self) -> bool:
        """A detractor, an unhappy return, or anything written: someone on the team should look."""
        return self.nps <= NPS_DETRACTOR_MAX or self.satisfaction <= SATISFACTION_LOW_MAX or bool(self.comment)


def _whole(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def change_deadline(first_answered_at: datetime, answer_days: int) -> datetime:
    """Until when an answer given at ``first_answered_at`` may still be changed."""
    return first_answered_at + timedelta(days=answer_days)


def can_change(first_answered_at: datetime | None, now: datetime, answer_days: int) -> bool:
    """No answer yet, or the first one is recent enough to be changed."""
    return first_answered_at is None or now <= change_deadline(first_answered_at, answer_days)


def normalise_email(address: str) -> str:
    """The address as mailboxes compare it here: trimmed and lower-cased."""
    return address.strip().lower()


def email_key(secret: str, address: str) -> str:
    """A keyed hash of the normalised address: enough to recognise it again, not to read it back."""
    return hmac.new(secret.encode(), b"survey:" + normalise_email(address).encode(), hashlib.sha256).hexdigest()


def in_quiet_period(last_sent_at: datetime | None, now: datetime, quiet_days: int) -> bool:
    """The same address got a survey within ``quiet_days``: do not send another."""
    return last_sent_at is not None and quiet_days > 0 and now - last_sent_at < timedelta(days=quiet_days)


__all__ = [
    "FINISHED",
    "SurveyStatus",
    "SURVEY_TRANSITIONS",
    "check_survey",
    "SurveyAnswerValues",
    "can_change",
    "change_deadline",
    "normalise_email",
    "email_key",
    "in_quiet_period",
]
