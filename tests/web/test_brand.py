"""The merchant's brand on shopper pages and emails, from settings; bad settings fall back safely."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal import create_app
from portal.brand import DEFAULT_COLOUR, brand_from_config
from portal.db.models import OutboxMessage
from portal.jobs import build_email
from tests.helpers import API_SECRET, email_text, form_for, login_shopper, order_payload, post_json, soup

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32


@pytest.fixture
def branded(app, tmp_path):
    logo = tmp_path / "logo.png"
    logo.write_bytes(PNG)
    config = {
        **{k: v for k, v in app.config.items() if k.isupper()},
        "SHOP_NAME": "Lotus Tea House",
        "BRAND_COLOUR": "#8a2be2",
        "BRAND_LOGO": str(logo),
        "SUPPORT_EMAIL": "help@lotus.example",
        "SUPPORT_PHONE": "+86 21 5555 0100",
        "POLICY_URL": "https://lotus.example/returns",
        "API_SECRET": API_SECRET,
    }
    return create_app(config)


def test_every_shopper_page_and_email_carries_the_brand(branded, session):
    client = branded.test_client()
    page = soup(client.get("/"))
    assert page.select_one("a.brand").get_text(strip=True) == "Lotus Tea House"
    assert page.select_one("a.brand img")["src"] == "/brand/logo"
    footer = page.select_one("footer.shop-footer")
    assert "help@lotus.example" in footer.get_text() and footer.select_one('a[href="https://lotus.example/returns"]')
    assert client.get("/brand.css").get_data(as_text=True).strip() == ":root { --accent: #8a2be2; }"
    logo = client.get("/brand/logo")
    assert logo.status_code == 200 and logo.mimetype == "image/png"

    post_json(client, "/api/v1/orders", order_payload("BR-1"))
    login_shopper(client, number="BR-1")
    client.post(
        "/order/request", data=form_for(client, **{"0": {"quantity": "1", "reason": "size_fit", "outcome": "refund"}})
    )
    message = session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "email")).first()
    email = build_email(branded, message)
    assert (
        email_text(email)
        .rstrip()
        .endswith("Lotus Tea House\nhelp@lotus.example\n+86 21 5555 0100\nhttps://lotus.example/returns")
    )
    html = email.get_body(("html",)).get_content()
    assert "Lotus Tea House" in html and "https://lotus.example/returns" in html


@pytest.mark.parametrize(
    "setting, value",
    [
        ("BRAND_COLOUR", "red; } body { display:none"),
        ("POLICY_URL", "javascript:alert(1)"),
        ("BRAND_LOGO", "/nope.png"),
    ],
)
def test_bad_brand_settings_fall_back(setting, value):
    brand = brand_from_config({setting: value})
    assert brand.colour == DEFAULT_COLOUR and brand.policy_url is None and brand.logo_path is None


def test_without_a_shop_name_the_header_is_the_portal_title_in_the_shoppers_language(client):
    from tests.helpers import csrf_token

    page = client.get("/")
    assert soup(page).select_one("a.brand").get_text(strip=True) == "Returns & exchanges"
    client.post("/lang", data={"lang": "zh_Hans", "csrf_token": csrf_token(page.get_data(as_text=True))})
    assert soup(client.get("/")).select_one("a.brand").get_text(strip=True) == "退换货服务"
