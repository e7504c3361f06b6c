"""``returns-portal policy``: check a file, import, versions, export, publish, rollback, replay by version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from portal.cli import main
from portal.db.models import AuditLog, PolicyVersion
from portal.services.policies import default_policy_text
from tests.helpers import form_for, login_shopper


@pytest.fixture
def cli(app, monkeypatch, database_url):
    monkeypatch.setenv("PORTAL_INSTANCE_PATH", app.config["INSTANCE_PATH"])
    monkeypatch.setenv("PORTAL_DATABASE_URL", database_url)
    monkeypatch.setenv("PORTAL_SECRET_KEY", app.config["SECRET_KEY"])
    monkeypatch.setenv("PORTAL_API_SECRET", app.config["API_SECRET"])
    runner = CliRunner()
    return lambda *args: runner.invoke(main, list(args), catch_exceptions=False)


def stricter() -> str:
    return (
        default_policy_text()
        .replace('version = "default-1"', 'version = "strict-2"')
        .replace('auto_approve_max = "200.00"', 'auto_approve_max = "50.00"')
    )


def test_check_a_file(cli, tmp_path):
    good = tmp_path / "good.toml"
    good.write_text(stricter())
    result = cli("policy", "check", str(good))
    assert result.exit_code == 0 and "ok, policy strict-2" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text('version = "x"\n\n[window]\ndays = -1\n')
    result = cli("policy", "check", str(bad))
    assert result.exit_code == 1 and "line 4: window.days must not be negative" in result.output
    missing = cli("policy", "check", str(tmp_path / "nope.toml"))
    assert missing.exit_code == 1 and "no file" in missing.output


def test_import_versions_export_publish_rollback(cli, tmp_path, session):
    path = tmp_path / "strict.toml"
    path.write_text(stricter())
    result = cli("policy", "import", str(path))
    assert result.exit_code == 0, result.output
    assert "version 2 (strict-2) saved as a draft" in result.output  # version 1 came from the first start
    listing = cli("policy", "versions").output.splitlines()
    assert listing[0].startswith("    2  strict-2") and listing[1].startswith("*   1  default-1")

    out = tmp_path / "out.toml"
    assert cli("policy", "export", "--version", "2", str(out)).exit_code == 0
    assert out.read_text() == stricter()
    assert cli("policy", "export").output == default_policy_text()

    assert "version 2 (strict-2) published" in cli("policy", "publish", "2").output
    assert cli("policy", "export").output == stricter()
    again = cli("policy", "publish", "2")
    assert again.exit_code == 1 and "already the published one" in again.output
    assert "version 1 (default-1) published" in cli("policy", "rollback").output
    assert cli("policy", "publish", "9").exit_code == 1

    imported = cli("policy", "import", str(path), "--publish", "--note", "same again")
    assert "version 3 (strict-2) published" in imported.output
    assert session.scalars(select(PolicyVersion.number).where(PolicyVersion.published)).all() == [3]
    assert "rolled back: version 1" in cli("policy", "rollback", "1").output
    actions = [a.action for a in session.scalars(select(AuditLog).order_by(AuditLog.id))]
    assert actions.count("rollback_policy") == 2 and actions.count("create_policy_version") == 3


def test_import_refuses_a_broken_file(cli, tmp_path, session):
    path = tmp_path / "bad.toml"
    path.write_text('version = "x"\n[window]\ndays = "7"\n')
    result = cli("policy", "import", str(path), "--publish")
    assert result.exit_code == 1 and "Line 3" in result.output
    assert session.scalars(select(PolicyVersion.number)).all() == [1]


def test_replay_a_version_against_the_published_one(cli, client, order, tmp_path, session):
    assert login_shopper(client).status_code == 303
    data = form_for(client, **{"0": {"quantity": "1", "reason": "size_fit", "outcome": "refund"}})
    assert client.post("/order/request", data=data).status_code == 303
    path = tmp_path / "strict.toml"
    path.write_text(stricter())
    cli("policy", "import", str(path))
    since = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
    result = cli("policy", "replay", "--version", "2", "--since", since)
    assert result.exit_code == 0, result.output
    assert "version 2 (strict-2) compared with version 1 (published)" in result.output
    assert "1 requests re-decided under strict-2; 1 would change" in result.output
    same = cli("policy", "replay", "--version", "1", "--since", since, "--against", "stored")
    assert "1 requests re-decided under default-1; 0 would change" in same.output
    back = cli("policy", "replay", "--version", "1", "--since", since, "--against", "2")
    assert "1 would change" in back.output
    assert cli("policy", "replay", "--since", since).exit_code == 2  # no candidate
    assert cli("policy", "replay", "--version", "7", "--since", since).exit_code == 1
