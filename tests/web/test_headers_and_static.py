"""Security headers, error pages and the vendored static files."""

from __future__ import annotations

import hashlib
import json
import tomllib

import pytest

from portal import resource_dir
from tests.helpers import csrf_token, get_csrf, login_shopper, soup

STATIC = resource_dir("static")


@pytest.mark.parametrize("path", ["/", "/order", "/definitely-missing"])
def test_security_headers_on_pages(client, path):
    response = client.get(path)
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    script = next(part for part in csp.split(";") if part.strip().startswith("script-src"))
    assert "unsafe-inline" not in script and "unsafe-eval" not in script
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["Cache-Control"] == "no-store"


def test_no_inline_scripts_or_styles_in_templates():
    for template in resource_dir("templates").rglob("*.html"):
        if template.parent.name == "email":
            continue  # email HTML is read by mail clients, which need inline styles; no page serves it
        text = template.read_text()
        assert "<script>" not in text and "style=" not in text and "<style" not in text, template


def test_session_cookie_flags(client, order):
    response = login_shopper(client)
    cookie = response.headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_secure_cookie_and_hsts_outside_development(tmp_path):
    from portal import create_app
    from portal.db import get_engine

    app = create_app({"INSTANCE_PATH": str(tmp_path), "PUBLIC_URL": "https://returns.example.com"})
    try:
        assert app.config["SESSION_COOKIE_SECURE"] is True
        response = app.test_client().get("/healthz")
        assert "max-age" in response.headers["Strict-Transport-Security"]
    finally:
        get_engine(app).dispose()


def test_language_switch_is_a_post_and_sticks(client):
    assert client.get("/lang").status_code == 405
    token = get_csrf(client)
    response = client.post("/lang", data={"csrf_token": token, "lang": "zh_Hans", "next": "//evil.example/"})
    assert response.status_code == 303 and response.headers["Location"] == "/"
    assert 'lang="zh-Hans"' in client.get("/").get_data(as_text=True)


def test_unknown_page_is_a_friendly_404(client):
    response = client.get("/nope")
    assert response.status_code == 404
    assert "could not find that page" in response.get_data(as_text=True)


def test_method_not_allowed_is_405_not_500(client):
    assert client.post("/", data={}).status_code in (400, 405)


def test_vendored_files_match_their_checksums():
    manifest = tomllib.loads((STATIC / "vendor" / "VENDORED.toml").read_text())
    assert manifest, "nothing vendored?"
    for name, entry in manifest.items():
        data = (STATIC / "vendor" / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], name
        assert entry["version"] in entry["file"]


def test_pages_load_the_pinned_htmx(client):
    html = client.get("/").get_data(as_text=True)
    assert "/static/vendor/htmx-2.0.11.min.js" in html
    with client.get("/static/vendor/htmx-2.0.11.min.js") as response:
        assert response.status_code == 200


def test_csrf_token_rides_in_hx_headers_inside_body(client):
    page = client.get("/")
    body = soup(page).body
    carriers = [el for el in [body, *body.find_all(True)] if el.has_attr("hx-headers")]
    assert carriers, "no hx-headers inside <body>"
    assert json.loads(carriers[0]["hx-headers"])["X-CSRFToken"] == csrf_token(page)


def test_form_library_messages_follow_the_language_on_every_request(client):
    """WTForms' own messages come from a catalogue loaded once per language, not per request."""
    from portal.i18n import wtforms_translations

    wtforms_translations.cache_clear()
    for lang, message in [
        ("zh-CN", "该字段是必填字段。"),
        ("en", "This field is required."),
        ("zh-CN", "该字段是必填字段。"),
    ]:
        token = get_csrf(client, "/staff/login")
        response = client.post(
            "/staff/login", data={"csrf_token": token, "email": "", "password": ""}, headers={"Accept-Language": lang}
        )
        assert response.status_code == 422
        assert message in soup(response).get_text()
    assert wtforms_translations.cache_info().misses == 2  # one load per language, three requests
