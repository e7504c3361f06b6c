"""Signed packing-slip links: ``/r/<token>`` carries the order number, a purpose salt and an age."""

from __future__ import annotations

from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer

RETURN_LINK_SALT = "portal.return-link.v1"


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=RETURN_LINK_SALT)


def make_return_token(secret: str, order_number: str) -> str:
    return _serializer(secret).dumps({"o": order_number})


def read_return_token(secret: str, token: str, max_age_days: int) -> str | None:
    """The order number, or None for a tampered, expired or wrong-purpose token."""
    try:
        data = _serializer(secret).loads(token, max_age=max_age_days * 86400)
    except BadData:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("o"), str):
        return None
    return data["o"]


def return_link(public_url: str, secret: str, order_number: str) -> str:
    return f"{public_url.rstrip('/')}/r/{make_return_token(secret, order_number)}"


# --- the satisfaction survey ---------------------------------------------------------

SURVEY_LINK_SALT = "portal.survey-link.v1"
SURVEY_OPTOUT_SALT = "portal.survey-optout.v1"
# The unsubscribe link keeps working long after the survey closed.
SURVEY_OPTOUT_MAX_AGE_DAYS = 365


class LinkExpired(Exception):
    """A genuine link, too old to use."""


def _survey_serializer(secret: str, salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=salt)


def make_survey_token(secret: str, request_id: int, purpose: str = SURVEY_LINK_SALT) -> str:
    return _survey_serializer(secret, purpose).dumps({"r": request_id})


def read_survey_token(secret: str, token: str, max_age_days: int, purpose: str = SURVEY_LINK_SALT) -> int | None:
    """The request id, None for a tampered or wrong-purpose token; LinkExpired for an old one."""
    try:
        data = _survey_serializer(secret, purpose).loads(token, max_age=max_age_days * 86400)
    except SignatureExpired as exc:
        raise LinkExpired() from exc
    except BadData:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("r"), int) or isinstance(data.get("r"), bool):
        return None
    return data["r"]


def survey_links(public_url: str, secret: str, request_id: int) -> dict[str, str]:
    """The survey page and the unsubscribe page of one request, for its invitation email."""
    base = public_url.rstrip("/")
    return {
        "survey_link": f"{base}/survey/{make_survey_token(secret, request_id)}",
        "unsubscribe_link": f"{base}/survey/unsubscribe/{make_survey_token(secret, request_id, SURVEY_OPTOUT_SALT)}",
    }
