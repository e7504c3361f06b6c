"""Signed packing-slip links: ``/r/<token>`` carries the order number, a purpose salt and an age."""

from __future__ import annotations

from itsdangerous import BadData, URLSafeTimedSerializer

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
