"""Domain errors no view handles answer with the rule's words, in the user's language, and a 4xx."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from portal.db import session_scope
from portal.db.models import StaffUser
from portal.domain.errors import Conflict, InvalidInput, NotFound, NotPermitted
from portal.domain.text import N_

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def raising_app(app):
    """The app with one extra route that raises the error named in the query string."""
    errors = {
        "invalid": InvalidInput(N_("Write the note first.")),
        "not_found": NotFound(N_("Write the note first.")),
        "conflict": Conflict(N_("Someone else took this ticket first.")),
        "forbidden": NotPermitted(N_("Choose an active staff member.")),
    }

    @app.get("/_raise/<kind>")
    @app.get("/api/_raise/<kind>", endpoint="api_raise")
    def _raise(kind: str):
        raise errors[kind]

    return app


@pytest.mark.parametrize(
    ("kind", "status"), [("invalid", 422), ("not_found", 404), ("conflict", 409), ("forbidden", 403)]
)
def test_each_kind_has_its_status(raising_app, kind, status):
    response = raising_app.test_client().get(f"/_raise/{kind}")
    assert response.status_code == status
    assert "Something went wrong on our side" not in response.get_data(as_text=True)


def test_message_is_in_chinese_for_a_chinese_browser(raising_app):
    response = raising_app.test_client().get("/_raise/invalid", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert response.status_code == 422
    assert "请先填写备注。" in response.get_data(as_text=True)
    english = raising_app.test_client().get("/_raise/invalid", headers={"Accept-Language": "en"})
    assert "Write the note first." in english.get_data(as_text=True)


def test_api_callers_get_kind_and_message_as_json(raising_app):
    response = raising_app.test_client().get("/api/_raise/conflict")
    assert response.status_code == 409
    assert response.get_json() == {"error": "conflict", "message": "Someone else took this ticket first."}


def test_the_half_done_change_is_rolled_back(app):
    @app.post("/_half_done")
    def _half_done():
        from portal.db import get_session

        get_session().add(StaffUser(email="half@example.com", name="Half", role="agent", password_hash="x"))
        get_session().flush()
        raise InvalidInput(N_("Write the note first."))

    app.config["WTF_CSRF_ENABLED"] = False
    assert app.test_client().post("/_half_done").status_code == 422
    with session_scope(app) as session:
        assert session.query(StaffUser).filter_by(email="half@example.com").count() == 0


def test_wsgi_module_builds_the_app(tmp_path, database_url):
    env = {**os.environ, "PORTAL_INSTANCE_PATH": str(tmp_path / "instance"), "PORTAL_DATABASE_URL": database_url}
    code = "import wsgi; print(type(wsgi.app).__name__, wsgi.app.name)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["Flask", "portal"]
