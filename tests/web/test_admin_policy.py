"""Admin policy pages: list, draft with the check's errors (422, text kept), diff, publish, rollback,
both languages, audit log."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.db.models import AuditLog, PolicyVersion
from portal.services.policies import default_policy_text
from portal.services.staff import create_staff
from tests.helpers import PASSWORD, csrf_token, field_errors, sign_in, soup

CHINESE = {"Accept-Language": "zh-CN,zh;q=0.9"}


@pytest.fixture
def admin(client, session):
    create_staff(session, "admin@example.com", "Ada Admin", "admin", PASSWORD)
    sign_in(client, "admin@example.com")
    return client


def stricter() -> str:
    return (
        default_policy_text()
        .replace('version = "default-1"', 'version = "strict-2"')
        .replace('auto_approve_max = "200.00"', 'auto_approve_max = "50.00"')
    )


def save_draft(admin, text: str, note: str = ""):
    page = admin.get("/admin/policy/new").get_data(as_text=True)
    return admin.post("/admin/policy/new", data={"csrf_token": csrf_token(page), "source": text, "note": note})


def test_list_shows_version_1_published(admin):
    page = admin.get("/admin/policy").get_data(as_text=True)
    rows = soup(page).select("#policy-versions tbody tr")
    assert len(rows) == 1 and "published" in rows[0]["class"]
    assert "Version 1" in rows[0].text and "default-1" in rows[0].text and "Active now" in rows[0].text


def test_new_draft_starts_from_the_published_text(admin):
    page = admin.get("/admin/policy/new").get_data(as_text=True)
    assert soup(page).select_one("textarea#source").text.strip() == default_policy_text().strip()


def test_bad_toml_gets_422_with_the_line_and_keeps_the_text(admin, session):
    broken = stricter().replace("days = 7", 'days = "seven"', 1)
    response = save_draft(admin, broken, "typo")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    line = next(i for i, row in enumerate(broken.splitlines(), 1) if row.startswith('days = "seven"'))
    errors = field_errors(page, "source")
    assert errors and f"Line {line}" in errors[0] and "window.days must be a whole number" in errors[0]
    assert soup(page).select_one("textarea#source").text.strip() == broken.strip()
    assert soup(page).select_one("input#note")["value"] == "typo"
    syntax = save_draft(admin, 'version = "x"\n[window\n')
    assert syntax.status_code == 422 and "Line 2" in " ".join(field_errors(syntax.get_data(as_text=True), "source"))
    assert session.scalars(select(PolicyVersion.number)).all() == [1]


def test_draft_diff_publish_and_rollback(admin, session, app):
    response = save_draft(admin, stricter(), "stricter auto-approval")
    assert response.status_code == 303 and response.headers["Location"].endswith("/admin/policy/2")
    page = admin.get("/admin/policy/2").get_data(as_text=True)
    diff = soup(page).select_one("#policy-diff")
    assert '-version = "default-1"' in diff.text and '+version = "strict-2"' in diff.text
    assert '+auto_approve_max = "50.00"' in diff.text
    assert "Draft, never published" in page

    published = admin.post("/admin/policy/2/publish", data={"csrf_token": csrf_token(page)})
    assert published.status_code == 303
    page = admin.get("/admin/policy/2").get_data(as_text=True)
    assert "Active now" in soup(page).select_one("#policy-state").text
    assert soup(page).select_one("#policy-diff") is None  # it is the published one

    # Publishing the active one again is refused with a message, not an error page.
    again = admin.post("/admin/policy/2/publish", data={"csrf_token": csrf_token(page)})
    assert again.status_code == 422 and "already the published one" in again.get_data(as_text=True)

    back = admin.post("/admin/policy/rollback", data={"csrf_token": csrf_token(page)})
    assert back.status_code == 303
    session.expire_all()
    assert session.scalars(select(PolicyVersion.number).where(PolicyVersion.published)).all() == [1]
    # Version 2 was active once: its button now rolls back to it.
    page = admin.get("/admin/policy/2").get_data(as_text=True)
    assert "Roll back to this version" in page
    assert admin.post("/admin/policy/2/publish", data={"csrf_token": csrf_token(page)}).status_code == 303

    actions = [a.action for a in session.scalars(select(AuditLog).order_by(AuditLog.id))]
    assert actions[-4:] == ["create_policy_version", "publish_policy", "rollback_policy", "rollback_policy"]
    audit = admin.get("/admin/audit").get_data(as_text=True)
    assert "Rolled the return policy back" in audit and "Published a return policy version" in audit


def test_rollback_with_nothing_before_is_a_clear_422(admin):
    page = admin.get("/admin/policy").get_data(as_text=True)
    response = admin.post("/admin/policy/rollback", data={"csrf_token": csrf_token(page)})
    assert response.status_code == 422 and "nothing to roll back to" in response.get_data(as_text=True)


def test_unknown_version_is_404(admin):
    assert admin.get("/admin/policy/42").status_code == 404
    assert admin.get("/admin/policy/new?from=42").status_code == 404


def test_pages_in_chinese(admin):
    save_draft(admin, stricter())
    for path in ("/admin/policy", "/admin/policy/2", "/admin/policy/new"):
        response = admin.get(path, headers=CHINESE)
        assert response.status_code == 200
        assert '<html lang="zh' in response.get_data(as_text=True)
