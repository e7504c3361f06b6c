"""Log helpers: mask personal data and keep user input from forging log lines."""

from __future__ import annotations

import json
import logging
import re
import uuid
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]")


def safe(value: object, limit: int = 120) -> str:
    """User input for a log line: control characters (CR/LF included) escaped, length capped."""
    text = str(value)[:limit]
    return _CONTROL.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256 else f"\\u{ord(m.group()):04x}", text
    )


def mask_email(email: str | None) -> str:
    """``j***@e***.com`` — enough to recognise, not enough to harvest."""
    if not email or "@" not in email:
        return "***"
    local, _, domain = email.partition("@")
    host, dot, tld = domain.rpartition(".")
    if not dot:
        host, tld = domain, ""
    return f"{local[:1]}***@{host[:1]}***{('.' + tld) if tld else ''}"


def mask_phone(phone: str | None) -> str:
    if not phone:
        return "***"
    digits = [c for c in phone if c.isdigit()]
    return "***" + "".join(digits[-3:]) if len(digits) >= 3 else "***"


# --- request ids and structured logs ---------------------------------------------------------------

_REQUEST_ID_CHARS = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_request_id: ContextVar[str | None] = ContextVar("portal_request_id", default=None)
JSON_HANDLER = "portal.json"  # the name of the handler ``configure_logging`` installs


def accept_request_id(value: str | None) -> str:
    """The caller's ``X-Request-ID`` when it is short and made of safe characters, else a new one."""
    if value and _REQUEST_ID_CHARS.fullmatch(value):
        return value
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    return _request_id.get()


def bind_request_id(value: str | None) -> Token[str | None]:
    """Carry ``value`` in every log record of this thread until ``unbind_request_id``."""
    return _request_id.set(value)


def unbind_request_id(token: Token[str | None]) -> None:
    _request_id.reset(token)


def _install_record_factory() -> None:
    """Every log record gets ``request_id`` (None outside a request or job), whoever logs it."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "portal_request_id", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.request_id = _request_id.get()
        return record

    factory.portal_request_id = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


class JsonFormatter(logging.Formatter):
    """One JSON object per line; user input inside a message cannot start a new line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(log_format: str | None) -> None:
    """``json``: one handler on the root logger writes JSON lines to stderr; ``plain`` (the
    default) leaves the handlers alone. Either way records carry the request id."""
    _install_record_factory()
    root = logging.getLogger()
    ours = [h for h in root.handlers if h.get_name() == JSON_HANDLER]
    if (log_format or "plain").strip().lower() != "json":
        for handler in ours:
            root.removeHandler(handler)
        return
    if not ours:
        handler = logging.StreamHandler()
        handler.set_name(JSON_HANDLER)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
