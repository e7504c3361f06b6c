"""Extensions live at module level; the app factory calls ``init_app``."""

from flask import g, request
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFProtect

from portal.domain.orders import normalise_order_number

csrf = CSRFProtect()
babel = Babel()
limiter = Limiter(key_func=get_remote_address, default_limits=[], headers_enabled=True)


def lookup_failed(_response) -> bool:
    """Only failed order lookups count against the lookup limits."""
    return bool(g.get("lookup_failed"))


def lookup_order_key() -> str:
    return "order:" + normalise_order_number(request.form.get("order_number", ""))[:64]
