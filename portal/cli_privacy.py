"""``returns-portal privacy purge``: remove personal data past the retention period (or show what
would go with ``--dry-run``)."""

from __future__ import annotations

import click

from portal.db import session_scope
from portal.services.audit import CLI, bind_client_address, unbind_client_address
from portal.services.privacy import purge, retention_days
from portal.storage import store_from_config


def _app():
    from portal.cli import _app as make_app  # noqa: PLC0415 - portal.cli adds this group at its end

    return make_app()


@click.group()
def privacy() -> None:
    """Personal data: retention."""


@privacy.command("purge")
@click.option("--dry-run", is_flag=True, help="Only list the orders whose personal data would be removed.")
@click.option("--days", type=click.IntRange(min=1), help="Retention in days (default: PORTAL_RETENTION_DAYS).")
@click.option("--batch", default=100, show_default=True, type=click.IntRange(min=1, max=10_000))
def purge_cmd(dry_run: bool, days: int | None, batch: int) -> None:
    """Anonymise orders whose requests all finished more than the retention period ago: names,
    emails, phones, postcodes and free text go, photos leave the store; amounts, reasons, grades
    and dates stay. Running it again changes nothing."""
    app = _app()
    try:
        wanted = days if days is not None else retention_days(app.config)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if wanted <= 0:
        raise click.ClickException("Retention is off: set PORTAL_RETENTION_DAYS or pass --days.")
    token = bind_client_address(CLI)
    try:
        with session_scope(app) as session:
            report = purge(session, store_from_config(app.config), wanted, dry_run=dry_run, batch=batch)
    finally:
        unbind_client_address(token)
    erased = report.erased
    cutoff = f"{report.cutoff:%Y-%m-%d}" if report.cutoff else "-"
    verb = "Would anonymise" if dry_run else "Anonymised"
    click.echo(
        f"{verb} {erased.orders} orders ({erased.requests} requests, {erased.photos} photos"
        + ("" if dry_run else f", {erased.texts} texts, {erased.messages} emails")
        + f") finished before {cutoff}."
    )
    if dry_run:
        for number in report.order_numbers:
            click.echo(f"  {number}")
    if erased.photo_errors:
        click.echo(f"{erased.photo_errors} photos could not be removed from the store; the next run tries again.")
