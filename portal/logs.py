"""Log helpers: mask personal data and keep user input from forging log lines."""

from __future__ import annotations

import re

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
