"""``returns-portal policy``: check, import, export, publish and roll back policy versions, explain an
order under a policy, and replay past requests under another version."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click
from sqlalchemy import select

from portal.db import session_scope
from portal.db.models import Order, PolicyVersion
from portal.domain.errors import DomainError
from portal.domain.orders import normalise_order_number
from portal.domain.policy import Decision, Policy, PolicyError, load_policy
from portal.domain.policy_text import check_policy_text
from portal.domain.text import Text
from portal.services.filing import precheck_order
from portal.services.policies import (
    active_policy,
    import_policy,
    list_versions,
    policy_from_file,
    publish_version,
    published_policy,
    published_version,
    rollback_policy,
    version_by_number,
)
from portal.services.replay import replay_requests


def _app():
    from portal.cli import _app as make_app  # noqa: PLC0415 - portal.cli adds this group at its end

    return make_app()


def _fail(exc: DomainError) -> click.ClickException:
    return click.ClickException(exc.render())


@click.group()
def policy() -> None:
    """Return policy versions: check, import, export, publish, roll back, explain and replay."""


def _print_trace(trace, indent: str = "    ") -> None:
    for r in trace:
        mark = "ok " if r.passed else r.effect.value
        staff = r.staff.render() if isinstance(r.staff, Text) else str(r.staff)
        click.echo(f"{indent}[{mark}] {r.rule}: {staff}")


def _is_policy_file(target: str) -> bool:
    return target.endswith(".toml") or Path(target).is_file()


@policy.command("check")
@click.argument("target")
@click.option(
    "--policy-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="For an order: decide under this file instead of the published version.",
)
@click.option("--version", "number", type=int, help="For an order: decide under this stored version.")
def policy_check(target: str, policy_file: Path | None, number: int | None) -> None:
    """Check a policy FILE (the same check the admin editor runs; exit status 1 with the line of the
    problem), or, given an ORDER NUMBER, print what the policy allows for each of its lines and
    the stored decisions of its requests."""

    if _is_policy_file(target):
        path = Path(target)
        if not path.is_file():
            raise click.ClickException(f"no file {target}")
        pol, problem = check_policy_text(path.read_text(encoding="utf-8"))
        if problem is not None:
            raise click.ClickException(f"{path}: {problem}")
        assert pol is not None
        click.echo(f"{path}: ok, policy {pol.version}")
        return
    app = _app()
    now = datetime.now(UTC)
    with app.app_context(), session_scope(app) as session:
        try:
            if policy_file:
                pol = policy_from_file(policy_file)
            elif number is not None:
                pol = load_policy(version_by_number(session, number).source)
            else:
                pol = active_policy(session, app.config)
        except PolicyError as exc:
            raise click.ClickException(f"policy: {exc}") from None
        except DomainError as exc:
            raise _fail(exc) from None
        order = session.scalars(select(Order).where(Order.order_number == normalise_order_number(target))).one_or_none()
        if order is None:
            raise click.ClickException(f"no order {target}")
        click.echo(f"Order {order.order_number} under policy {pol.version} at {now:%Y-%m-%d %H:%M} UTC")
        decisions = precheck_order(session, order, pol, now)
        for line in order.lines:
            d = decisions[line.line_id]
            click.echo(
                f"  line {line.line_id} {line.sku} {line.product_name}: {d.verdict.value}, {d.remaining} of {line.quantity} returnable"
            )
            _print_trace(d.trace)
        numbers = {row.id: row.number for row in session.execute(select(PolicyVersion.id, PolicyVersion.number))}
        for req in order.requests:
            stored = Decision.from_dict(req.decision)
            under = stored.policy_version
            if req.policy_version_id in numbers:
                under += f" (version {numbers[req.policy_version_id]})"
            click.echo(
                f"  request {req.rma} ({req.status}): {stored.verdict.value} under {under}, value {stored.value}"
            )
            _print_trace(stored.trace)
            for ld in stored.lines:
                click.echo(f"    line {ld.line_id}: {ld.verdict.value}")
                _print_trace(ld.trace, indent="      ")


@policy.command("versions")
def policy_versions() -> None:
    """List the stored versions, newest first; * marks the published one."""

    app = _app()
    with session_scope(app) as session:
        active_policy(session, app.config)  # the first start imports version 1
        for v in list_versions(session):
            mark = "*" if v.published else " "
            by = v.created_by.email if v.created_by else v.origin
            published = f", last published {v.published_at:%Y-%m-%d %H:%M} UTC" if v.published_at else ""
            note = f" - {v.note}" if v.note else ""
            click.echo(f"{mark} {v.number:>3}  {v.label}  {v.created_at:%Y-%m-%d %H:%M} UTC by {by}{published}{note}")


@policy.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--publish", is_flag=True, help="Publish it at once (otherwise it is kept as a draft).")
@click.option("--note", default="", help="Why this version (shown in the list).")
def policy_import(file: Path, publish: bool, note: str) -> None:
    """Take a TOML policy FILE in as the next version."""

    app = _app()
    with session_scope(app) as session:
        try:
            active_policy(session, app.config)  # on first start the instance's policy is version 1
            version = import_policy(
                session,
                file.read_text(encoding="utf-8"),
                None,
                app.config,
                publish=publish,
                note=note or f"imported from {file.name}",
            )
        except DomainError as exc:
            raise click.ClickException(f"{file}: {exc.render()}") from None
        state = "published" if publish else "saved as a draft; publish it with `policy publish`"
        click.echo(f"version {version.number} ({version.label}) {state}")


@policy.command("export")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--version", "number", type=int, help="Default: the published version.")
def policy_export(file: Path | None, number: int | None) -> None:
    """Write a version's TOML text to FILE (default: standard output)."""

    app = _app()
    with session_scope(app) as session:
        try:
            if number is None:
                active_policy(session, app.config)
                version = published_version(session)
                assert version is not None
            else:
                version = version_by_number(session, number)
        except DomainError as exc:
            raise _fail(exc) from None
        text = version.source
        label = f"version {version.number} ({version.label})"
    if file is None:
        click.echo(text, nl=False)
    else:
        file.write_text(text, encoding="utf-8")
        click.echo(f"wrote {label} to {file}")


@policy.command("publish")
@click.argument("number", type=int)
def policy_publish(number: int) -> None:
    """Make version NUMBER the active policy of every web host and worker."""

    app = _app()
    with session_scope(app) as session:
        try:
            active_policy(session, app.config)
            version = publish_version(session, version_by_number(session, number), None, app.config)
        except DomainError as exc:
            raise _fail(exc) from None
        click.echo(f"version {version.number} ({version.label}) published")


@policy.command("rollback")
@click.argument("number", type=int, required=False)
def policy_rollback(number: int | None) -> None:
    """Publish an older version again: NUMBER, or the one published before the current one."""

    app = _app()
    with session_scope(app) as session:
        try:
            active_policy(session, app.config)
            version = rollback_policy(session, None, app.config, number)
        except DomainError as exc:
            raise _fail(exc) from None
        click.echo(f"rolled back: version {version.number} ({version.label}) published")


def _version_policy(session, number: int) -> tuple[Policy, str]:
    version = version_by_number(session, number)
    return load_policy(version.source), f"version {version.number}"


@policy.command("replay")
@click.option(
    "--policy", "policy_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="A candidate file."
)
@click.option("--version", "number", type=int, help="A stored candidate version.")
@click.option("--since", required=True, type=click.DateTime(formats=["%Y-%m-%d"]))
@click.option(
    "--against",
    default="published",
    show_default=True,
    help='Compare with: "published" (the published version, decided again), "stored" (each request\'s '
    "stored decision) or a version number.",
)
def policy_replay(policy_file: Path | None, number: int | None, since: datetime, against: str) -> None:
    """Re-decide past requests under a candidate (a file or a stored version) and print what would
    change compared with the published version (or the stored decisions, or another version)."""

    if (policy_file is None) == (number is None):
        raise click.UsageError("give the candidate as --policy FILE or --version N (one of them)")
    app = _app()
    with app.app_context(), session_scope(app) as session:
        try:
            if policy_file is not None:
                candidate, name = policy_from_file(policy_file), str(policy_file)
            else:
                candidate, name = _version_policy(session, number or 0)
            baseline: Policy | None
            if against == "stored":
                baseline, base_name = None, "the stored decisions"
            elif against == "published":
                current = published_policy(session, app.config)
                baseline, base_name = current.policy, f"version {current.number} (published)"
            elif against.isdigit():
                baseline, base_name = _version_policy(session, int(against))
            else:
                raise click.BadParameter('"published", "stored" or a version number', param_hint="--against")
        except PolicyError as exc:
            raise click.ClickException(f"policy: {exc}") from None
        except DomainError as exc:
            raise _fail(exc) from None
        results = replay_requests(session, candidate, since.replace(tzinfo=UTC), baseline)
    changed = [r for r in results if r.changes]
    click.echo(f"{name} ({candidate.version}) compared with {base_name}")
    for r in changed:
        click.echo(f"{r.rma} (order {r.order_number}, {r.created_at:%Y-%m-%d}):")
        for change in r.changes:
            click.echo(f"  - {change}")
    click.echo(f"{len(results)} requests re-decided under {candidate.version}; {len(changed)} would change")
