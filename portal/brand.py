"""The merchant's brand on every shopper page and email: shop name, logo, colour, support contact
and the link to the returns policy, all from settings (``PORTAL_SHOP_NAME``, ``PORTAL_BRAND_COLOUR``,
``PORTAL_BRAND_LOGO``, ``PORTAL_SUPPORT_EMAIL``, ``PORTAL_SUPPORT_PHONE``, ``PORTAL_POLICY_URL``).

Values are checked once: a colour that is not ``#rrggbb`` or a policy link that is not http(s)
falls back to none, so a typo in the settings can never inject markup or styles.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("portal.brand")

DEFAULT_COLOUR = "#0b6bcb"
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


@dataclass(frozen=True)
class Brand:
    name: str | None  # None: the portal's own title, in the reader's language
    colour: str
    logo_path: str | None
    support_email: str | None
    support_phone: str | None
    policy_url: str | None

    @property
    def has_contact(self) -> bool:
        return bool(self.support_email or self.support_phone or self.policy_url)

    def text_footer(self, default_name: str) -> str:
        """The plain-text email signature (``default_name`` when no shop name is set)."""
        lines = [self.name or default_name]
        if self.support_email:
            lines.append(self.support_email)
        if self.support_phone:
            lines.append(self.support_phone)
        if self.policy_url:
            lines.append(self.policy_url)
        return "\n".join(lines)


_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"))


def image_kind(data: bytes) -> str | None:
    """The type of a logo by its first bytes (PNG, JPEG or WebP), else None: never served as sent."""
    for signature, kind in _SIGNATURES:
        if data.startswith(signature):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def brand_from_config(config: Mapping[str, Any]) -> Brand:
    colour = str(config.get("BRAND_COLOUR") or DEFAULT_COLOUR)
    if not _COLOUR.fullmatch(colour):
        log.warning("brand colour %r is not #rrggbb; using the default", colour)
        colour = DEFAULT_COLOUR
    policy_url = config.get("POLICY_URL") or None
    if policy_url and not re.fullmatch(r"https?://[^\s<>\"']+", str(policy_url)):
        log.warning("policy link %r is not an http(s) address; not shown", policy_url)
        policy_url = None
    logo = config.get("BRAND_LOGO") or None
    if logo and not Path(str(logo)).is_file():
        log.warning("brand logo %s not found; not shown", logo)
        logo = None
    return Brand(
        name=str(config["SHOP_NAME"])[:80] if config.get("SHOP_NAME") else None,
        colour=colour.lower(),
        logo_path=str(logo) if logo else None,
        support_email=str(config.get("SUPPORT_EMAIL") or "")[:120] or None,
        support_phone=str(config.get("SUPPORT_PHONE") or "")[:40] or None,
        policy_url=str(policy_url) if policy_url else None,
    )
