"""Outbound webhooks: outbox rows of channel ``webhook`` POSTed as signed JSON.

Each event goes to the one configured URL (``WEBHOOK_URL``), signed like the
inbound API (``X-Portal-Timestamp`` and ``X-Portal-Signature``). Anything but
a 2xx answer raises, so the outbox records the error and retries with backoff.
Delivery is at least once: the same event (same ``id``) may arrive more than
once, and receivers drop duplicates by that id.

Redirects are never followed: a 3xx is a failed delivery like any other, so an
event is never sent (or re-sent without its body) to another host.

A ``410 Gone`` is not special: the URL is a single endpoint chosen by the
operator, so a 410 most likely means a misconfiguration that will be fixed; the
event is retried like any other failure until the outbox gives up on it.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from portal.signing import sign

if TYPE_CHECKING:
    from portal.db.models import OutboxMessage

CHANNEL = "webhook"
USER_AGENT = "returns-portal"

# Event types (the ``type`` of the body, the outbox row's ``topic``).
RETURN_APPROVED = "return.approved"
RETURN_REJECTED = "return.rejected"
RETURN_CANCELLED = "return.cancelled"
RETURN_IN_TRANSIT = "return.in_transit"
RETURN_RECEIVED = "return.received"
REFUND_SUCCEEDED = "refund.succeeded"
REFUND_FAILED = "refund.failed"
EXCHANGE_READY = "exchange.ready"

EVENTS = frozenset(
    {
        RETURN_APPROVED,
        RETURN_REJECTED,
        RETURN_CANCELLED,
        RETURN_IN_TRANSIT,
        RETURN_RECEIVED,
        REFUND_SUCCEEDED,
        REFUND_FAILED,
        EXCHANGE_READY,
    }
)


class WebhookError(Exception):
    """A delivery that did not get a 2xx answer; the outbox retries it."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Refuse every redirect; the 3xx then surfaces as an ``HTTPError``."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def _iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def event_body(message: OutboxMessage) -> bytes:
    """The request body: compact UTF-8 JSON, the same bytes on every attempt."""
    payload = message.payload or {}
    event = {
        "id": message.event_id,
        "type": message.topic,
        "created_at": _iso_utc(message.created_at),
        "data": payload.get("data") or {},
    }
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class WebhookSender:
    def __init__(self, url: str, secret: str, timeout: float = 10):
        self.url, self.secret, self.timeout = url, secret, float(timeout)
        self._opener = urllib.request.build_opener(_NoRedirects())

    def _check_url(self) -> None:
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise WebhookError("webhook URL must be an absolute http:// or https:// URL")

    def headers(self, message: OutboxMessage, body: bytes, timestamp: str) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Portal-Event-Id": message.event_id,
            "X-Portal-Timestamp": timestamp,
            "X-Portal-Signature": sign(self.secret, timestamp, body),
        }

    def send(self, message: OutboxMessage) -> None:
        """POST one event; returns on 2xx, raises ``WebhookError`` otherwise."""
        self._check_url()
        body = event_body(message)
        timestamp = str(int(time.time()))
        request = urllib.request.Request(
            self.url, data=body, method="POST", headers=self.headers(message, body, timestamp)
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status = response.status
                response.read(64 * 1024)  # drain a little so the connection closes cleanly
        except urllib.error.HTTPError as exc:
            with exc:
                if 300 <= exc.code < 400:
                    raise WebhookError(f"redirect not followed (HTTP {exc.code})") from None
                raise WebhookError(f"receiver answered HTTP {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:
            raise WebhookError(f"request failed: {exc.reason}") from None
        except TimeoutError:
            raise WebhookError(f"no answer within {self.timeout:g} s") from None
        except (OSError, http.client.HTTPException) as exc:
            raise WebhookError(f"request failed: {type(exc).__name__}: {exc}") from None
        if not 200 <= status < 300:  # 1xx or anything else urllib lets through
            raise WebhookError(f"receiver answered HTTP {status}")


def webhook_sender_from_config(config: Mapping[str, Any]) -> WebhookSender | None:
    """The sender for the configured URL, or None when webhooks are off."""
    url = config.get("WEBHOOK_URL")
    if not url:
        return None
    secret = config.get("WEBHOOK_SECRET") or config["API_SECRET"]
    return WebhookSender(url, secret, config.get("WEBHOOK_TIMEOUT") or 10)
