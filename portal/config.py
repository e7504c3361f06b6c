"""Settings from ``PORTAL_*`` environment variables, with embedded-mode defaults.

Tests and embedders pass a mapping to ``create_app`` instead; keys there use
the Flask names below (``SQLALCHEMY_DATABASE_URI`` is ``DATABASE_URL`` here).
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from portal.crypto import new_key
from portal.domain.wear import DEFAULT_MODEL, parse_thresholds

PREFIX = "PORTAL_"


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(PREFIX + name)
    return value if value not in (None, "") else default


def _int(name: str, default: int) -> int:
    raw = _env(name)
    return int(raw) if raw is not None else default


def _bool(name: str, default: bool) -> bool:
    raw = _env(name)
    if raw is None:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _keep_secret(instance: Path, filename: str, make: Callable[[], str] | None = None) -> str:
    """Read a generated secret from the instance folder, creating it once.

    It is written aside and then linked into place, so processes starting at the same moment (the
    workers of one server) see the whole secret or none, and all keep the one linked first."""
    path = instance / filename
    if path.exists():
        return path.read_text().strip()
    instance.mkdir(parents=True, exist_ok=True)
    value = make() if make is not None else secrets.token_urlsafe(48)
    fd, aside = tempfile.mkstemp(dir=instance, prefix=f".{filename}.")  # readable by the owner only
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(value)
        try:
            os.link(aside, path)
        except FileExistsError:
            return path.read_text().strip()
    finally:
        os.unlink(aside)
    return value


class ConfigError(RuntimeError):
    """The settings cannot work: the portal refuses to start and says why."""


REDIS_SCHEMES = ("redis://", "rediss://", "redis+sentinel://", "redis+cluster://")


def check_scaled_mode(cfg: Mapping[str, Any]) -> None:
    """Scaled mode (jobs on Celery) runs on several machines: nothing may rest on one machine's disk
    or memory. Refuse to start, naming every missing setting, unless secrets come from the
    environment, mail goes by SMTP, photos go to S3 and rate limits are kept in Redis."""
    if str(cfg.get("JOBS_MODE") or "").strip().lower() != "celery":
        return
    missing = []
    if not str(cfg.get("BROKER_URL") or "").startswith(REDIS_SCHEMES):
        missing.append("PORTAL_BROKER_URL (the Redis the workers take jobs from, redis://host:6379/0)")
    if not cfg.get("SECRET_KEY"):
        missing.append("PORTAL_SECRET_KEY (every web host and worker must sign with the same key)")
    if not cfg.get("API_SECRET"):
        missing.append("PORTAL_API_SECRET (every web host must check the shop's signatures with the same secret)")
    if not cfg.get("DATA_KEY"):
        missing.append("PORTAL_DATA_KEY (the key ring personal data is encrypted with; `returns-portal keys new`)")
    if not cfg.get("SMTP_HOST"):
        missing.append("PORTAL_SMTP_HOST (emails go by SMTP; outbox files would stay on one machine)")
    if not cfg.get("S3_BUCKET"):
        missing.append("PORTAL_S3_BUCKET (photos go to S3; a local folder is one machine's disk)")
    if not str(cfg.get("RATELIMIT_STORAGE_URI") or "").startswith(REDIS_SCHEMES):
        missing.append("PORTAL_RATELIMIT_STORAGE_URI (rate limits shared in Redis; memory is per process)")
    if missing:
        raise ConfigError("PORTAL_JOBS_MODE=celery (scaled mode) needs these settings:\n  " + "\n  ".join(missing))


def load(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Build the configuration: environment first, then ``overrides`` win."""
    overrides = dict(overrides or {})
    instance = Path(overrides.get("INSTANCE_PATH") or _env("INSTANCE_PATH") or "instance").resolve()
    instance.mkdir(parents=True, exist_ok=True)
    cfg: dict[str, Any] = {
        "INSTANCE_PATH": str(instance),
        "DATABASE_URL": _env("DATABASE_URL") or f"sqlite:///{instance / 'portal.sqlite3'}",
        "API_SECRET": _env("API_SECRET"),
        "SECRET_KEY": _env("SECRET_KEY"),
        # Encrypts personal data in the database: "id:base64key,..." with the current key first.
        "DATA_KEY": _env("DATA_KEY"),
        "PUBLIC_URL": _env("PUBLIC_URL", "http://127.0.0.1:8000"),
        "RETURN_LINK_MAX_AGE_DAYS": _int("RETURN_LINK_MAX_AGE_DAYS", 180),
        "POLICY_PATH": _env("POLICY_PATH") or str(instance / "policy.toml"),
        # Policy versions live in the database; "file" mirrors the published one in POLICY_PATH (and
        # takes hand edits in), "database" never touches a disk. Unset: "database" in scaled mode
        # (JOBS_MODE=celery), "file" otherwise. See services/policies.py.
        "POLICY_SOURCE": _env("POLICY_SOURCE"),
        "POLICY_REFRESH_SECONDS": float(_env("POLICY_REFRESH_SECONDS") or "0"),
        "PHOTO_PATH": _env("PHOTO_PATH") or str(instance / "photos"),
        "S3_BUCKET": _env("S3_BUCKET"),
        "S3_ENDPOINT_URL": _env("S3_ENDPOINT_URL"),
        "S3_REGION": _env("S3_REGION", "us-east-1"),
        "S3_PREFIX": _env("S3_PREFIX", ""),
        "OUTBOX_PATH": _env("OUTBOX_PATH") or str(instance / "outbox"),
        "MODELS_PATH": _env("MODELS_PATH"),
        "WEAR_MODEL": _env("WEAR_MODEL", DEFAULT_MODEL),
        # Per-category decision thresholds of the wear classifier ("shoes=0.45, knitwear=0.62"), chosen from
        # the wear report; other categories keep the model's own (portal/domain/wear.py).
        "WEAR_THRESHOLDS": parse_thresholds(_env("WEAR_THRESHOLDS")),
        "SMTP_HOST": _env("SMTP_HOST"),
        "SMTP_PORT": _int("SMTP_PORT", 25),
        "SMTP_USER": _env("SMTP_USER"),
        "SMTP_PASSWORD": _env("SMTP_PASSWORD"),
        "SMTP_STARTTLS": _bool("SMTP_STARTTLS", False),
        "MAIL_FROM": _env("MAIL_FROM", "Returns <returns@localhost>"),
        # Product pictures are fetched from public addresses only, unless the shop is on our network.
        "PRODUCT_IMAGES_ALLOW_PRIVATE": _bool("PRODUCT_IMAGES_ALLOW_PRIVATE", False),
        # The merchant's brand on shopper pages and emails (see portal/brand.py).
        "SHOP_NAME": _env("SHOP_NAME"),
        "BRAND_COLOUR": _env("BRAND_COLOUR"),
        "BRAND_LOGO": _env("BRAND_LOGO"),
        "SUPPORT_EMAIL": _env("SUPPORT_EMAIL"),
        "SUPPORT_PHONE": _env("SUPPORT_PHONE"),
        "POLICY_URL": _env("POLICY_URL"),
        "WEBHOOK_URL": _env("WEBHOOK_URL"),
        "WEBHOOK_SECRET": _env("WEBHOOK_SECRET"),  # default: the API secret, below
        "WEBHOOK_TIMEOUT": float(_env("WEBHOOK_TIMEOUT") or "10"),  # seconds
        "CARRIER": _env("CARRIER", "in-house"),
        "SECOND_APPROVAL_ABOVE": _env("SECOND_APPROVAL_ABOVE", "2000"),
        "SANDBOX_MODE": _env("SANDBOX_MODE", "ok"),
        "RETURN_ADDRESS": (_env("RETURN_ADDRESS") or "Returns warehouse|88 Example Road|Shanghai 200000").split("|"),
        "CUSTOMER_RETURN_FEE": _env("CUSTOMER_RETURN_FEE"),
        "STORE_CREDIT_BONUS_PERCENT": _env("STORE_CREDIT_BONUS_PERCENT"),
        "PASSWORD_RESET_MINUTES": _int("PASSWORD_RESET_MINUTES", 60),
        # The insights dashboard marks (and tells the leads once a period about) figures past these lines.
        "RETURN_RATE_ALERT_PERCENT": _env("RETURN_RATE_ALERT_PERCENT", "8"),
        "RETURN_RATE_ALERT_MIN_ORDERS": _int("RETURN_RATE_ALERT_MIN_ORDERS", 20),
        "FIRST_RESPONSE_ALERT_MINUTES": _int("FIRST_RESPONSE_ALERT_MINUTES", 30),
        # The satisfaction survey emailed once a request is finished (see portal/services/survey.py).
        "SURVEY_ENABLED": _bool("SURVEY_ENABLED", True),
        "SURVEY_DELAY_HOURS": _int("SURVEY_DELAY_HOURS", 24),
        "SURVEY_QUIET_DAYS": _int("SURVEY_QUIET_DAYS", 30),
        "SURVEY_ANSWER_DAYS": _int("SURVEY_ANSWER_DAYS", 7),
        "SURVEY_LINK_DAYS": _int("SURVEY_LINK_DAYS", 30),
        # Personal data of requests finished this many days ago is removed (0 or "off": kept; see
        # portal/services/privacy.py). Amounts, reasons, grades and dates stay for the dashboard.
        "RETENTION_DAYS": _env("RETENTION_DAYS", "0"),
        "RATELIMIT_STORAGE_URI": _env("RATELIMIT_STORAGE_URI", "memory://"),
        "LOOKUP_LIMIT": _env("LOOKUP_LIMIT", "20 per 15 minutes"),
        # Large enough for every photo the limits below allow, plus the form itself: a shopper within
        # the limits never meets a bare 413 that loses what they typed.
        "MAX_CONTENT_LENGTH": _int(
            "MAX_CONTENT_LENGTH",
            _int("MAX_PHOTOS_PER_REQUEST", 12) * _int("MAX_PHOTO_BYTES", 12 * 1024 * 1024) + 2 * 1024 * 1024,
        ),
        "API_MAX_BYTES": _int("API_MAX_BYTES", 1024 * 1024),
        "MAX_PHOTO_BYTES": _int("MAX_PHOTO_BYTES", 12 * 1024 * 1024),
        "MAX_PHOTOS_PER_LINE": _int("MAX_PHOTOS_PER_LINE", 5),
        "MAX_PHOTOS_PER_REQUEST": _int("MAX_PHOTOS_PER_REQUEST", 12),
        "BABEL_DEFAULT_TIMEZONE": _env("TIMEZONE", "Asia/Shanghai"),
        # Operations: /readyz pings the broker only when one is set; who may read /metrics; log lines.
        "BROKER_URL": _env("BROKER_URL"),
        # Background jobs: eager | thread (in this process) | celery (workers on BROKER_URL) | off.
        "JOBS_MODE": _env("JOBS_MODE", "eager"),
        "JOBS_MAX_RETRIES": _int("JOBS_MAX_RETRIES", 5),
        "JOBS_RETRY_BACKOFF": _int("JOBS_RETRY_BACKOFF", 10),  # seconds before the first retry, doubling
        "JOBS_VISIBILITY_TIMEOUT": _int("JOBS_VISIBILITY_TIMEOUT", 3600),  # a task a dead worker held comes back
        "METRICS_TOKEN": _env("METRICS_TOKEN"),
        "METRICS_ALLOW": _env("METRICS_ALLOW"),  # unset: loopback only (or anyone with the token, when one is set)
        "LOG_FORMAT": _env("LOG_FORMAT", "plain"),
        "DEVELOPMENT": _bool("DEVELOPMENT", False),
        "TESTING": False,
    }
    cfg.update(overrides)
    check_scaled_mode(cfg)
    if not cfg.get("SECRET_KEY"):
        cfg["SECRET_KEY"] = _keep_secret(instance, "secret_key")
    if not cfg.get("API_SECRET"):
        cfg["API_SECRET"] = _keep_secret(instance, "api_secret")
    if not cfg.get("DATA_KEY"):
        cfg["DATA_KEY"] = _keep_secret(instance, "data_key", new_key)
    if not cfg.get("WEBHOOK_SECRET"):
        cfg["WEBHOOK_SECRET"] = cfg["API_SECRET"]
    cfg.setdefault("SESSION_COOKIE_HTTPONLY", True)
    cfg.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    cfg.setdefault(
        "SESSION_COOKIE_SECURE", not (cfg["DEVELOPMENT"] or cfg["TESTING"]) and cfg["PUBLIC_URL"].startswith("https")
    )
    cfg.setdefault("PERMANENT_SESSION_LIFETIME", timedelta(hours=12))
    cfg.setdefault("WTF_CSRF_TIME_LIMIT", None)
    return cfg
