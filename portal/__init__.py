"""Returns portal: the app factory."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from portal import config as settings
from portal import crypto, db, i18n, jobs
from portal.extensions import babel, csrf, limiter
from portal.i18n import choose_locale, choose_timezone
from portal.logs import configure_logging
from portal.services.refunds import refund_settings
from portal.web import init_web

PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """``templates``/``static``/``models``: bundled in a wheel, or at the project root in a checkout."""
    bundled = PACKAGE / "_bundled" / name
    return bundled if bundled.is_dir() else PACKAGE.parent / name


def check_refund_settings(config: Mapping[str, Any]) -> None:
    """A return fee or store-credit bonus that is not a valid amount stops the start, not a shopper's page."""
    try:
        refund_settings(config)
    except (ArithmeticError, ValueError) as exc:
        raise RuntimeError(f"refund settings: {exc}") from exc


def install_data_key(config: Mapping[str, Any]) -> crypto.Keyring:
    """Parse the data key ring (a bad one stops the start, naming the problem but never the key) and
    make it the one the encrypted columns use."""
    try:
        keyring = crypto.parse_keyring(str(config["DATA_KEY"]))
    except crypto.KeyringError as exc:
        raise RuntimeError(f"PORTAL_DATA_KEY: {exc}") from None
    crypto.install(keyring)
    return keyring


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    cfg = settings.load(config)
    app = Flask(
        __name__,
        instance_path=cfg["INSTANCE_PATH"],
        template_folder=str(resource_dir("templates")),
        static_folder=str(resource_dir("static")),
    )
    app.config.update(cfg)
    if not app.config.get("MODELS_PATH"):
        app.config["MODELS_PATH"] = str(resource_dir("models"))
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(PACKAGE / "translations"))
    app.config.setdefault("RATELIMIT_ENABLED", True)
    check_refund_settings(app.config)
    app.extensions["portal.keyring"] = install_data_key(app.config)

    db.init_app(app)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=choose_locale, timezone_selector=choose_timezone)
    i18n.init_app(app)
    limiter.init_app(app)

    jobs.init_app(app)
    init_web(app)
    logging.getLogger("portal").setLevel(logging.INFO)
    configure_logging(app.config.get("LOG_FORMAT"))
    return app
