"""Mail transports: SMTP when configured, else ``.eml`` files in the instance outbox folder."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol


class Mailer(Protocol):
    def send(self, message: EmailMessage, message_id: str) -> None: ...


class FileMailer:
    """Writes each message as an ``.eml`` file (the embedded default)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def send(self, message: EmailMessage, message_id: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{message_id}.eml"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(bytes(message))
        tmp.replace(path)


class SmtpMailer:
    def __init__(
        self,
        host: str,
        port: int = 25,
        user: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 20,
    ):
        self.host, self.port, self.user, self.password = host, port, user, password
        self.starttls, self.timeout = starttls, timeout

    def send(self, message: EmailMessage, message_id: str) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.user:
                smtp.login(self.user, self.password or "")
            smtp.send_message(message)


def mailer_from_config(config) -> Mailer:
    if config.get("SMTP_HOST"):
        return SmtpMailer(
            config["SMTP_HOST"],
            config["SMTP_PORT"],
            config.get("SMTP_USER"),
            config.get("SMTP_PASSWORD"),
            config.get("SMTP_STARTTLS", False),
        )
    return FileMailer(config["OUTBOX_PATH"])
