"""The ``returns-portal`` command."""

from __future__ import annotations

import csv
import json
import logging
import os
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import segno
import waitress
from sqlalchemy import select

from portal import create_app
from portal.config import ConfigError
from portal.crypto import KeyringError, new_key
from portal.db import current_revision, get_engine, session_scope, upgrade
from portal.db.models import Order
from portal.demo import seed, seed_requests, seed_staff
from portal.domain.errors import DomainError, InvalidInput
from portal.domain.importing import detect_format, iter_order_records
from portal.domain.orders import PayloadError, normalise_order_number, parse_order
from portal.domain.product_insights import parse_month
from portal.domain.roles import ROLES
from portal.exports import reconciliation_csv, spreadsheet_safe
from portal.jobs import (
    _safe,
    deliver_outbox,
    drain,
    insight_alerts,
    registry,
    resolve_refunds,
    sweep_escalations,
    sweep_surveys,
    wear_model,
)
from portal.links import return_link
from portal.services.audit import CLI, record_export
from portal.services.insights import rebuild_rollups
from portal.services.job_failures import open_failures, recent_resolved, retry_failure
from portal.services.keys import rotate_data_key
from portal.services.orders import StaleUpdate, stage_order
from portal.services.photos import labelled_photos, thresholds_in_use, wear_agreement, wear_agreement_by_category
from portal.services.product_insights import insights_export
from portal.services.refunds import ledger_rows
from portal.services.staff import StaffError, create_staff
from portal.storage import StorageError, store_from_config


def _app(**overrides):
    """The app for one command; when the command ends, background work it started finishes
    first, then its connections are closed."""
    try:
        app = create_app(overrides or None)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    ctx = click.get_current_context(silent=True)
    if ctx is not None:

        def close() -> None:
            drain()
            get_engine(app).dispose()

        ctx.call_on_close(close)
    return app


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Returns portal: self-service returns and exchanges."""
    if (os.environ.get("PORTAL_LOG_FORMAT") or "plain").strip().lower() == "json":
        logging.getLogger().setLevel(logging.INFO)  # the app adds the JSON handler; a plain one would repeat each line
    else:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


# --- database -----------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Bring the schema up to date (Alembic migrations)."""

    app = _app()
    engine = get_engine(app)
    upgrade(engine)
    click.echo(f"schema at revision {current_revision(engine)} ({engine.url.render_as_string(hide_password=True)})")


# --- serving --------------------------------------------------------------------


def _ticker(app, interval: float, stop: threading.Event) -> None:
    """The periodic jobs of the registry in this process (Celery beat does this in scaled mode)."""
    ticks = 0
    while not stop.wait(interval):
        ticks += 1
        for job in registry.periodic_jobs():
            if registry.due_on_tick(job, ticks, interval):
                _safe(app, job.func)


def _serve(app, host: str, port: int, threads: int) -> None:
    stop = threading.Event()
    if app.config["JOBS_MODE"] != "celery":
        threading.Thread(
            target=_ticker, args=(app, registry.TICK_SECONDS, stop), daemon=True, name="portal-ticker"
        ).start()
    try:
        waitress.serve(app, host=host, port=port, threads=threads, ident="returns-portal")
    finally:
        stop.set()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
def serve(host: str, port: int, threads: int) -> None:
    """Serve the portal with waitress (schema upgraded first)."""

    scaled = (os.environ.get("PORTAL_JOBS_MODE") or "").strip().lower() == "celery"
    app = _app() if scaled else _app(JOBS_MODE="thread")  # scaled: jobs go to the workers, beat ticks
    upgrade(get_engine(app))
    click.echo(f"Serving on http://{host}:{port}/")
    _serve(app, host, port, threads)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--no-serve", is_flag=True, help="Load the demo data and exit.")
def demo(host: str, port: int, no_serve: bool) -> None:
    """Load the demo catalogue, orders and staff, then serve on 127.0.0.1."""

    public = f"http://{host}:{port}"
    app = _app(JOBS_MODE="thread", PUBLIC_URL=public)
    upgrade(get_engine(app))
    with app.app_context(), session_scope(app) as session:
        firsts = seed(session)
        staff = seed_staff(session)
        seed_requests(app, session)
    cfg = app.config
    click.echo("")
    click.echo("Returns portal demo")
    click.echo(f"  Shopper start page:  {public}/")
    click.echo("  Demo orders (order number, email):")
    for name, number in firsts:
        idx = int(number.split("-")[1]) - 1000
        email = "frequent@example.com" if name == "frequent returner" else f"shopper{idx}@example.com"
        click.echo(f"    {number}  {email:<24} {name}")
    click.echo(f"  QR link for {firsts[0][1]}:  {return_link(public, cfg['SECRET_KEY'], firsts[0][1])}")
    click.echo(f"  Staff sign-in:  {public}/staff/login")
    for role, email, password in staff:
        click.echo(f"    {role:<10} {email:<26} password {password}")
    click.echo(f"  API secret (X-Portal-Signature): {cfg['API_SECRET']}")
    click.echo(f"  Instance folder: {cfg['INSTANCE_PATH']}")
    if no_serve:
        return
    click.echo(f"Serving on {public}/ (Ctrl+C to stop)")
    _serve(app, host, port, 8)


# --- orders -----------------------------------------------------------------------


@main.command("import-orders")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), help="Default: from the file extension.")
def import_orders(file: Path, fmt: str | None) -> None:
    """Import orders from JSON Lines or CSV; bad rows are reported, good rows are kept."""

    try:
        fmt = fmt or detect_format(file.name)
        text = file.read_text(encoding="utf-8-sig")
        records = list(iter_order_records(text, fmt))
    except (ValueError, UnicodeDecodeError) as exc:
        raise click.ClickException(str(exc)) from None
    app = _app()
    created = updated = 0
    rejected: list[tuple[int, str]] = []
    with app.app_context(), session_scope(app) as session:
        with click.progressbar(records, label="Importing orders", file=sys.stderr) as bar:
            for record in bar:
                if record.error:
                    rejected.append((record.row, record.error))
                    continue
                try:
                    data = parse_order(record.payload)
                    _, was_created = stage_order(session, data)
                    session.commit()
                except PayloadError as exc:
                    session.rollback()
                    rejected.append((record.row, "; ".join(f"{e.field}: {e.message}" for e in exc.errors)))
                    continue
                except StaleUpdate as exc:
                    session.rollback()
                    rejected.append((record.row, exc.render()))
                    continue
                created += was_created
                updated += not was_created
    click.echo(f"created {created}, updated {updated}, rejected {len(rejected)}")
    for row, reason in rejected:
        click.echo(f"  row {row}: {reason}")
    if rejected and not (created or updated):
        sys.exit(1)


@main.command()
@click.argument("order_number")
@click.option("--svg", "kind", flag_value="svg", default=True, help="SVG (default).")
@click.option("--png", "kind", flag_value="png", help="PNG.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Default: qr-ORDER.svg/png")
@click.option("--scale", default=6, show_default=True, type=int)
def qr(order_number: str, kind: str, output: Path | None, scale: int) -> None:
    """Write the packing-slip QR code for an order (its signed return link)."""

    app = _app()
    number = normalise_order_number(order_number)
    with app.app_context(), session_scope(app) as session:
        if session.scalars(select(Order.id).where(Order.order_number == number)).first() is None:
            raise click.ClickException(f"no order {number}")
    link = return_link(app.config["PUBLIC_URL"], app.config["SECRET_KEY"], number)
    output = output or Path(f"qr-{number}.{kind}")
    segno.make(link, error="m").save(str(output), kind=kind, scale=scale, border=4)
    click.echo(link)
    click.echo(f"wrote {output}")


# --- policy -----------------------------------------------------------------------

from portal.cli_policy import policy  # noqa: E402 - its commands build their app with _app above

main.add_command(policy)


# --- privacy ----------------------------------------------------------------------

from portal.cli_privacy import privacy  # noqa: E402 - its commands build their app with _app above

main.add_command(privacy)


# --- staff -------------------------------------------------------------------------


@main.group()
def staff() -> None:
    """Staff accounts."""


@staff.command("create")
@click.argument("email")
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--name", default="")
@click.password_option(prompt="Password", help="Prompted for when not given.")
def staff_create(email: str, role: str, name: str, password: str) -> None:
    """Create a staff account."""

    app = _app()
    with session_scope(app) as session:
        try:
            user = create_staff(session, email, name or email, role, password)
        except StaffError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"created {user.email} ({user.role})")


# --- the wear classifier ------------------------------------------------------------


@main.group()
def wear() -> None:
    """The photo wear classifier: agreement with the warehouse, data for retraining."""


@wear.command("report")
def wear_report() -> None:
    """Confusion matrix of photo opinion against warehouse grade, per model version."""

    app = _app()
    with session_scope(app) as session:
        results = wear_agreement(session)
    if not results:
        click.echo("no graded photos yet: the warehouse grade is the ground truth, so nothing to compare")
        return
    for a in results:
        m = a.matrix
        click.echo(f"model {a.model_version}: {a.total} graded photos, agreement {a.agreement:.1%}")
        click.echo("                      warehouse worn   warehouse not worn")
        click.echo(f"  model says worn     {m[(True, True)]:>14}   {m[(True, False)]:>18}")
        click.echo(f"  model says not worn {m[(False, True)]:>14}   {m[(False, False)]:>18}")
    _wear_report_by_category(app)


WEAR_REPORT_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def _wear_report_by_category(app) -> None:
    """Agreement per product category at several thresholds: what PORTAL_WEAR_THRESHOLDS may be set to."""
    model = wear_model(app)
    with session_scope(app) as session:
        groups = wear_agreement_by_category(
            session, model, thresholds_in_use(session, model, app.config.get("WEAR_THRESHOLDS"))
        )
    if not groups:
        return
    click.echo("")
    click.echo("agreement by product category (set a threshold on the admin wear page, or PORTAL_WEAR_THRESHOLDS):")
    head = "".join(f"{'at ' + format(t, '.1f'):>8}" for t in WEAR_REPORT_THRESHOLDS)
    for g in groups:
        if g.threshold_in_use is None:
            in_use = "model not loaded"
        else:
            in_use = f"threshold in use {g.threshold_in_use:.2f}"
        best, best_agreement = g.best()
        click.echo(
            f"model {g.model_version}, {g.category}: {g.total} graded photos ({g.worn} worn), {in_use}; "
            f"agreement as labelled {g.labelled_agreement:.1%}"
        )
        click.echo(f"  {head}   best")
        cells = "".join(f"{g.agreement_at(t) or 0.0:>8.1%}" for t in WEAR_REPORT_THRESHOLDS)
        click.echo(f"  {cells}   {best:.2f} ({best_agreement or 0.0:.1%})")


@wear.command("export-dataset")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def wear_export(directory: Path) -> None:
    """Write graded photos as DIR/wear/*.jpg and DIR/no_wear/*.jpg plus labels.csv, for retraining."""

    app = _app()
    store = store_from_config(app.config)
    (directory / "wear").mkdir(parents=True, exist_ok=True)
    (directory / "no_wear").mkdir(parents=True, exist_ok=True)
    written = skipped = 0
    with session_scope(app) as session, open(directory / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "label", "grade", "wear_confirmed", "model_version", "wear_probability", "category"])
        # The category comes from the shop: kept from running as a formula when the file is opened.
        for photo, line, worn in labelled_photos(session):
            label = "wear" if worn else "no_wear"
            name = f"{label}/photo-{photo.id}.jpg"
            try:
                (directory / name).write_bytes(store.get(photo.storage_key))
            except StorageError:
                skipped += 1
                continue
            writer.writerow(
                [
                    name,
                    label,
                    line.grade or "",
                    "" if line.wear_confirmed is None else int(line.wear_confirmed),
                    photo.model_version or "",
                    "" if photo.wear_probability is None else f"{photo.wear_probability:.4f}",
                    spreadsheet_safe(line.order_line.category),
                ]
            )
            written += 1
        record_export(session, None, "wear_dataset", f"{written} photos", address=CLI)
    click.echo(f"wrote {written} labelled photos to {directory} ({skipped} unreadable)")


# --- finance -------------------------------------------------------------------------


@main.group()
def finance() -> None:
    """Refunds and reconciliation."""


@finance.command("export")
@click.option("--from", "start", required=True, type=click.DateTime(formats=["%Y-%m-%d"]))
@click.option("--to", "end", required=True, type=click.DateTime(formats=["%Y-%m-%d"]))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Default: standard output.")
def finance_export(start: datetime, end: datetime, output: Path | None) -> None:
    """Reconciliation CSV: money movements per day and payment method."""

    app = _app()
    with session_scope(app) as session:
        body = reconciliation_csv(
            ledger_rows(session, start.replace(tzinfo=UTC), end.replace(tzinfo=UTC) + timedelta(days=1))
        )
        record_export(session, None, "reconciliation", f"{start:%Y-%m-%d}..{end:%Y-%m-%d}", address=CLI)
    if output:
        output.write_text(body, encoding="utf-8")
        click.echo(f"wrote {output}")
    else:
        click.echo(body, nl=False)


@finance.command("resolve")
def finance_resolve() -> None:
    """Settle refunds left "processing" by an interrupted process (the server does this every 30 s)."""

    results = resolve_refunds(_app())
    for result in results:
        click.echo(f"refund {result.refund_id}: {result.outcome}")
    click.echo(f"checked {len(results)}")


# --- background work ----------------------------------------------------------------


@main.group()
def outbox() -> None:
    """Notifications waiting to be sent."""


@main.command("sweep")
@click.option("--once", is_flag=True, required=True, help="Run one pass and exit.")
def sweep_cmd(once: bool) -> None:
    """Fire due SLA escalation steps once and print what was done."""

    result = sweep_escalations(_app())
    for line in result.fired:
        click.echo(line)
    click.echo(f"claimed {result.claimed}, fired {len(result.fired)}, dropped {result.dropped}")
    if result.claimed:
        click.echo(f"time: {result.phases()}")


@main.command("survey-sweep")
@click.option("--once", is_flag=True, required=True, help="Run one pass and exit.")
def survey_sweep_cmd(once: bool) -> None:
    """Send the satisfaction surveys that fell due, once each, and print what was done."""

    result = sweep_surveys(_app())
    for line in result.sent + result.skipped:
        click.echo(line)
    click.echo(f"claimed {result.claimed}, sent {len(result.sent)}, skipped {len(result.skipped)}")


@main.command("insight-alerts")
@click.option("--once", is_flag=True, required=True, help="Run one pass and exit.")
def insight_alerts_cmd(once: bool) -> None:
    """Tell the leads about figures of this month past their alert lines (each once a month)."""

    for alert in insight_alerts(_app()):
        click.echo(f"{alert.kind} {alert.subject}: {alert.value}")


@outbox.command("send")
def outbox_send() -> None:
    """Deliver due outbox messages once."""

    sent, failed = deliver_outbox(_app())
    click.echo(f"sent {sent}, failed {failed}")


def _celery(app):
    celery = app.extensions.get("portal.celery")
    if celery is None:
        raise click.ClickException("Jobs run in this process: set PORTAL_JOBS_MODE=celery and PORTAL_BROKER_URL.")
    return celery


@main.command(context_settings={"ignore_unknown_options": True})
@click.option("--concurrency", type=int, help="Worker processes (default: one per CPU).")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(concurrency: int | None, celery_args: tuple[str, ...]) -> None:
    """Start a Celery worker for the background jobs (scaled mode); other options go to Celery."""

    celery = _celery(_app())
    argv = ["worker", "--loglevel=INFO"]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    celery.worker_main([*argv, *celery_args])


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def scheduler(celery_args: tuple[str, ...]) -> None:
    """Start Celery beat: it queues the periodic jobs (SLA sweep every 30 s, outbox, refunds, ...)."""

    app = _app()
    celery = _celery(app)
    for name, entry in sorted(celery.conf.beat_schedule.items()):
        click.echo(f"every {entry['schedule']:>6.0f} s  {name}")
    celery.start(["beat", "--loglevel=INFO", *celery_args])


@main.group()
def jobs() -> None:
    """Background jobs that kept failing."""


@jobs.command("failed")
@click.option("--all", "show_all", is_flag=True, help="Also list the failures already retried.")
def jobs_failed(show_all: bool) -> None:
    """List failed jobs: id, job, parameters, attempts, last failure and the error."""

    app = _app()
    with session_scope(app) as session:
        rows = open_failures(session) + (recent_resolved(session) if show_all else [])
        for row in rows:
            state = f"retried {row.resolved_at:%Y-%m-%d %H:%M}" if row.resolved_at else "open"
            args = json.dumps(row.args, sort_keys=True)
            click.echo(
                f"{row.id}  {row.task} {args}  attempts {row.attempts}  last {row.last_failed_at:%Y-%m-%d %H:%M:%S} UTC"
                f"  {state}\n    {row.error}"
            )
        click.echo(f"{sum(1 for row in rows if row.resolved_at is None)} open")


@jobs.command("retry")
@click.argument("failure_id", type=int)
def jobs_retry(failure_id: int) -> None:
    """Run a failed job again with its parameters (a new failure is recorded anew)."""

    app = _app()
    with session_scope(app) as session:
        try:
            row = retry_failure(session, failure_id, lambda name: registry.get(name) is not None)
        except DomainError as exc:
            raise click.ClickException(exc.render()) from None
        click.echo(f"queued {row.task} again (failure {row.id} closed)")


# --- insights ------------------------------------------------------------------------


@main.group()
def insights() -> None:
    """Figures for the product team."""


@insights.command("export")
@click.option("--month", required=True, help="The shop's month, YYYY-MM.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Default: standard output.")
def insights_export_cmd(month: str, output: Path | None) -> None:
    """Returns by product for a month as CSV, one row per SKU (no personal data): units sold and
    returned, return rate, requests, top reasons and sub-reasons."""

    try:
        first = parse_month(month)
    except InvalidInput as exc:
        raise click.ClickException(exc.render()) from None
    app = _app()
    with session_scope(app) as session:
        body = insights_export(session, first, app.config["BABEL_DEFAULT_TIMEZONE"])
        record_export(session, None, "product_returns", month, address=CLI)
    if output:
        output.write_text(body, encoding="utf-8", newline="")  # the rows already end in CRLF
        click.echo(f"wrote {output}")
    else:
        click.echo(body, nl=False)


@insights.command("rebuild")
@click.option("--from", "first", type=click.DateTime(["%Y-%m-%d"]), help="First shop day, YYYY-MM-DD.")
@click.option("--to", "last", type=click.DateTime(["%Y-%m-%d"]), help="Last shop day, YYYY-MM-DD.")
def insights_rebuild_cmd(first: datetime | None, last: datetime | None) -> None:
    """Recompute the dashboard's daily rollups from the raw tables (all days, or --from/--to), in
    the shop's time zone. Safe to run again; needed after the upgrade that adds them, a backfill or
    a change of PORTAL_TIMEZONE (which needs every day)."""
    if first and last and first > last:
        raise click.ClickException("--from is after --to.")
    app = _app()
    with session_scope(app) as session:
        try:
            written = rebuild_rollups(
                session,
                app.config["BABEL_DEFAULT_TIMEZONE"],
                first.date() if first else None,
                last.date() if last else None,
            )
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"rebuilt insights rollups: {written} rows")


# --- data keys -----------------------------------------------------------------------


@main.group()
def keys() -> None:
    """The key ring personal data is encrypted with (PORTAL_DATA_KEY)."""


@keys.command("new")
@click.option("--id", "key_id", help="The key's id (letters, digits, - or _; default: a random one).")
def keys_new(key_id: str | None) -> None:
    """Print a fresh key as ID:BASE64KEY. Put it first in PORTAL_DATA_KEY on every host (keep the old
    keys after it), restart, then run `keys rotate`."""
    try:
        click.echo(new_key(key_id))
    except KeyringError as exc:
        raise click.ClickException(str(exc)) from None


@keys.command("rotate")
@click.option("--batch", default=500, show_default=True, type=click.IntRange(min=1), help="Rows per transaction.")
def keys_rotate(batch: int) -> None:
    """Re-encrypt every stored personal value under the current (first) key, and encrypt any plaintext
    left from before encryption, committing every BATCH rows. Safe while the portal runs; run it again
    to finish an interrupted run. Afterwards the old keys can leave PORTAL_DATA_KEY."""
    app = _app()
    keyring = app.extensions["portal.keyring"]
    click.echo(f"current key: {keyring.current.id}")
    reports = rotate_data_key(get_engine(app), keyring, batch)
    for table, report in reports.items():
        click.echo(
            f"{table}: {report.rows} rows, {report.rewritten} re-encrypted "
            f"({report.plaintext} plaintext values), {report.skipped} changed meanwhile"
        )
    left = sum(report.skipped for report in reports.values())
    if left:
        click.echo(f"{left} rows changed while being rotated: run `keys rotate` again to check them")
