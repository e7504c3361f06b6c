"""Policy versions in the database: first start, publish, rollback, hand edits of the instance
file, two apps on one database, decisions keeping their version id, replay between versions."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal import create_app
from portal.db import get_engine, session_scope, upgrade
from portal.db.models import AuditLog, PolicyVersion, ReturnRequest
from portal.domain.errors import InvalidInput, NotFound
from portal.domain.policy_text import check_policy_text
from portal.services.policies import (
    InvalidPolicy,
    create_version,
    default_policy_text,
    publish_version,
    published_policy,
    rollback_policy,
    version_by_number,
)
from portal.services.replay import replay_requests
from portal.services.staff import create_staff
from tests.helpers import API_SECRET, PASSWORD, app_config, form_for, login_shopper


def stricter(label: str = "strict-2", limit: str = "50.00") -> str:
    return (
        default_policy_text()
        .replace('version = "default-1"', f'version = "{label}"')
        .replace('auto_approve_max = "200.00"', f'auto_approve_max = "{limit}"')
    )


def submit(client):
    assert login_shopper(client).status_code == 303
    data = form_for(client, **{"0": {"quantity": "1", "reason": "size_fit", "outcome": "refund"}})
    return client.post("/order/request", data=data)


def test_first_start_imports_the_instance_file_as_version_1(app, session):
    Path(app.config["POLICY_PATH"]).write_text(stricter("from-file-1"))
    active = published_policy(session, app.config)
    assert (active.number, active.policy.version) == (1, "from-file-1")
    row = session.scalars(select(PolicyVersion)).one()
    assert row.published and row.origin == "file" and row.published_at is not None
    assert [a.action for a in session.scalars(select(AuditLog).order_by(AuditLog.id))] == [
        "create_policy_version",
        "publish_policy",
    ]
    # Asking again costs one query and hands back the same parsed policy.
    assert published_policy(session, app.config) is not None
    assert published_policy(session, app.config).policy is active.policy


def test_first_start_without_a_file_uses_the_default_and_writes_the_file(app, session):
    path = Path(app.config["POLICY_PATH"])
    assert not path.exists()
    active = published_policy(session, app.config)
    assert active.policy.version == "default-1"
    assert path.read_text() == default_policy_text()


def test_database_mode_never_touches_the_instance_file(app, session):
    config = {**app.config, "POLICY_SOURCE": "database"}
    path = Path(app.config["POLICY_PATH"])
    active = published_policy(session, config)
    assert active.policy.version == "default-1" and not path.exists()
    path.write_text(stricter("ignored-9"))
    assert published_policy(session, config).policy.version == "default-1"
    assert session.scalars(select(PolicyVersion.number)).all() == [1]
    # Scaled mode (jobs on Celery) means the database unless told otherwise.
    from portal.services.policies import PolicySettings

    assert PolicySettings.from_config({**app.config, "JOBS_MODE": "celery"}).mirror is None
    assert PolicySettings.from_config(app.config).mirror == path


def test_publish_and_rollback_move_the_active_policy_and_are_audited(app, session):
    admin = create_staff(session, "ada@example.com", "Ada", "admin", PASSWORD)
    first = published_policy(session, app.config)
    draft = create_version(session, stricter(), admin, "stricter auto-approval")
    assert (draft.number, draft.published, draft.created_by_id) == (2, False, admin.id)
    assert published_policy(session, app.config).id == first.id  # a draft changes nothing

    publish_version(session, draft, admin, app.config)
    assert published_policy(session, app.config).policy.version == "strict-2"
    assert Path(app.config["POLICY_PATH"]).read_text() == stricter()  # the file mirrors it
    with pytest.raises(InvalidInput):
        publish_version(session, draft, admin, app.config)

    back = rollback_policy(session, admin, app.config)
    assert back.number == 1 and published_policy(session, app.config).policy.version == "default-1"
    assert Path(app.config["POLICY_PATH"]).read_text() == default_policy_text()
    assert session.scalars(select(PolicyVersion.number).where(PolicyVersion.published)).all() == [1]

    again = rollback_policy(session, admin, app.config, 2)  # forward again to a named version
    assert again.number == 2
    with pytest.raises(NotFound):
        rollback_policy(session, admin, app.config, 99)
    entries = session.scalars(select(AuditLog).where(AuditLog.actor_id == admin.id).order_by(AuditLog.id)).all()
    assert [(e.action, e.target) for e in entries] == [
        ("create_policy_version", "policy_version:2"),
        ("publish_policy", "policy_version:2"),
        ("rollback_policy", "policy_version:1"),
        ("rollback_policy", "policy_version:2"),
    ]
    assert entries[2].before["number"] == 2 and entries[2].after["number"] == 1


def test_only_one_version_can_be_published(app, session):
    published_policy(session, app.config)
    draft = create_version(session, stricter(), None)
    draft.published = True
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()


def test_bad_text_is_refused_with_its_line_and_nothing_saved(app, session):
    published_policy(session, app.config)
    text = default_policy_text().replace("days = 7", "days = -7", 1)
    with pytest.raises(InvalidPolicy) as caught:
        create_version(session, text, None)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if row.startswith("days = -7"))
    assert caught.value.problem.line == line
    assert "window.days must not be negative" in caught.value.render()
    assert f"Line {line}" in caught.value.render()
    assert session.scalars(select(PolicyVersion.number)).all() == [1]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ('version = "x"\n[window]\ndays = 7\nquality_days 15\n', 4, "invalid TOML"),
        ('version = "x"\n\n[approval]\nauto_approve_max = 200.0\n', 4, "approval.auto_approve_max"),
        ('version = "x"\n[window.categories]\nshoes = { days = 9, quality_days = 3 }\n', 3, "window.categories.shoes"),
        ('version = "x"\n[photos]\nrequired_reasons = ["bogus"]\n', 3, "unknown code"),
        ('version = "x"\n[refunds]\nfast = true\n', 2, "unknown key 'refunds'"),
        ('timezone = "Asia/Shanghai"\n', None, "version is required"),
    ],
)
def test_the_check_names_the_line(text, line, words):
    policy, problem = check_policy_text(text)
    assert policy is None and problem is not None
    assert problem.line == line and words in problem.message


def test_hand_edits_of_the_instance_file(app, session, caplog):
    path = Path(app.config["POLICY_PATH"])
    published_policy(session, app.config)
    path.write_text(stricter("hand-2"))
    assert published_policy(session, app.config).policy.version == "hand-2"
    edited = version_by_number(session, 2)
    assert edited.origin == "file" and edited.published

    path.write_text("version = \n")  # broken: ignored, version 2 stays active
    assert published_policy(session, app.config).policy.version == "hand-2"
    assert "not used" in caplog.text
    assert session.scalars(select(PolicyVersion.number).order_by(PolicyVersion.number)).all() == [1, 2]

    path.write_text(default_policy_text())  # an older version's text: the published one is put back
    assert published_policy(session, app.config).policy.version == "hand-2"
    assert path.read_text() == stricter("hand-2")


def test_two_apps_on_one_database_see_a_publish(app, session, tmp_path, database_url):
    other = create_app(app_config(tmp_path / "other-host", database_url, POLICY_SOURCE="database"))
    try:
        with session_scope(other) as theirs:
            assert published_policy(theirs, other.config).policy.version == "default-1"
            draft = create_version(session, stricter(), None)
            publish_version(session, draft, None, app.config)
            assert published_policy(theirs, other.config).policy.version == "strict-2"
            rollback_policy(session, None, app.config)
            assert published_policy(theirs, other.config).policy.version == "default-1"
    finally:
        get_engine(other).dispose()


def test_a_publish_from_another_process_is_seen(app, session, database_url, tmp_path):
    if database_url.startswith("sqlite"):
        # A database file of its own: after the demo data of another test, the next connection to the
        # shared session file once failed with "disk I/O error" after this subprocess (not understood
        # yet; see the notes). PostgreSQL runs it on the shared database.
        database_url = f"sqlite:///{tmp_path / 'own.sqlite3'}"
        app = create_app({**app.config, "DATABASE_URL": database_url, "INSTANCE_PATH": str(tmp_path / "own")})
        upgrade(get_engine(app))
        session = app.extensions["portal.sessionmaker"]()
    published_policy(session, app.config)
    draft = create_version(session, stricter(), None)
    env = {
        **os.environ,
        "PORTAL_DATABASE_URL": database_url,
        "PORTAL_INSTANCE_PATH": app.config["INSTANCE_PATH"],
        "PORTAL_SECRET_KEY": "test-secret-key",
        "PORTAL_API_SECRET": API_SECRET,
        "PORTAL_DATA_KEY": app.config["DATA_KEY"],
    }
    done = subprocess.run(
        [str(Path(sys.executable).with_name("returns-portal")), "policy", "publish", str(draft.number)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert published_policy(session, app.config).policy.version == "strict-2"


def test_a_refresh_interval_spaces_the_checks_out(app, session):
    config = {**app.config, "POLICY_REFRESH_SECONDS": 3600}
    published_policy(session, config)
    publish_version(session, create_version(session, stricter(), None), None, app.config)
    assert published_policy(session, config).policy.version == "default-1"  # cached for the hour
    assert published_policy(session, app.config).policy.version == "strict-2"


def test_requests_keep_the_version_they_were_decided_under(app, client, order, session):
    assert submit(client).status_code == 303
    first = published_policy(session, app.config)
    publish_version(session, create_version(session, stricter(), None), None, app.config)
    assert submit(client).status_code == 303
    session.expire_all()
    requests = session.scalars(select(ReturnRequest).order_by(ReturnRequest.id)).all()
    assert [(r.policy_version_id, r.policy_version) for r in requests] == [
        (first.id, "default-1"),
        (version_by_number(session, 2).id, "strict-2"),
    ]
    assert requests[0].decision["policy_version"] == "default-1"  # what decisions stored before stays


def test_replay_between_two_versions(app, client, order, session):
    assert submit(client).status_code == 303
    published_policy(session, app.config)
    strict = create_version(session, stricter(), None)
    since = datetime.now(UTC) - timedelta(days=1)
    from portal.domain.policy import load_policy

    candidate = load_policy(strict.source)
    baseline = load_policy(version_by_number(session, 1).source)
    against_published = replay_requests(session, candidate, since, baseline)
    against_stored = replay_requests(session, candidate, since)
    assert len(against_published) == 1 and against_published[0].changes
    assert against_published[0].changes == against_stored[0].changes
    assert not replay_requests(session, baseline, since, baseline)[0].changes
