"""An accessibility pass over the shopper's pages in both languages, on a phone: axe-core (vendored,
pinned) finds no serious or critical violation, a skip link leads to the content, and the
buttons, selects and text fields are touch targets of at least 44 px."""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path

import pytest

from tests.helpers import PRODUCTS, form_for, jpeg, login_shopper, order_payload, post_json

VENDOR = Path(__file__).with_name("vendor")
AXE = tomllib.loads((VENDOR / "VENDORED.toml").read_text())["axe-core"]

VIOLATIONS = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations
    .filter(v => v.impact === "serious" || v.impact === "critical")
    .map(v => v.id + ": " + v.nodes.map(n => n.target.join(" ")).join(", "));
}"""
SMALL_TARGETS = """() => Array.from(document.querySelectorAll(
    'main button, main a.button, main select, main input[type=text], main input[type=email], header button'))
  .filter(e => e.offsetParent !== null)
  .map(e => [e.outerHTML.slice(0, 80), e.getBoundingClientRect().height])
  .filter(([, h]) => h < 44)"""


def test_the_vendored_axe_is_the_pinned_one():
    data = (VENDOR / AXE["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == AXE["sha256"]
    assert (VENDOR / AXE["license"]).is_file()


@pytest.fixture
def a11y_page(browser):
    # axe is injected into the page, which the portal's CSP (scripts from the portal only) forbids.
    context = browser.new_context(viewport={"width": 390, "height": 844}, bypass_csp=True)
    yield context.new_page()
    context.close()


def check(page) -> None:
    page.add_script_tag(path=str(VENDOR / AXE["file"]))
    assert page.evaluate(VIOLATIONS) == [], page.url
    assert page.evaluate(SMALL_TARGETS) == [], page.url
    skip = page.locator("a.skip-link")
    assert skip.get_attribute("href") == "#main" and page.locator("main#main").count() == 1
    assert page.locator("h1").count() == 1


@pytest.mark.parametrize("language", ["English", "简体中文"])
def test_shopper_pages_pass_in_both_languages(app, client, live_server, a11y_page, language):
    post_json(client, "/api/v1/products", PRODUCTS)
    post_json(client, "/api/v1/orders", order_payload())
    filer = app.test_client()
    login_shopper(filer)
    rma = (
        filer.post(
            "/order/request",
            data=form_for(filer, **{"0": {"quantity": "1", "reason": "size_fit", "outcome": "refund"}}),
        )
        .headers["Location"]
        .rsplit("/", 1)[1]
    )

    page = a11y_page
    page.goto(live_server + "/")
    page.get_by_role("button", name=language).click()
    page.wait_for_load_state()
    check(page)
    page.locator("#order_number").fill("SO-1001")
    page.locator("#contact").fill("li.wei@example.com")
    page.locator("main form button.primary").first.click()
    page.wait_for_url(re.compile(r".*/order$"))
    check(page)
    # Every step of the guided return, each as htmx swapped it in.
    page.locator("label.item-card").first.click()
    for step, choice in (("items", None), ("reasons", "damaged"), ("details", None), ("outcome", "refund")):
        page.locator(f'input[name="step"][value="{step}"]').wait_for(state="attached")
        if step != "items":
            check(page)
        if choice:
            page.locator(f'label.choice:has(input[value="{choice}"])').click()
        if step == "details":
            page.locator('input[type="file"]').set_input_files(
                {"name": "torn.jpg", "mimeType": "image/jpeg", "buffer": jpeg()}
            )
            page.locator(".kept").first.wait_for()
            check(page)
        page.locator(".step-nav button.primary").click()
    page.locator('input[name="step"][value="review"]').wait_for(state="attached")
    check(page)
    for path in (f"/requests/{rma}", f"/requests/{rma}/cancel", f"/requests/{rma}/label"):
        page.goto(live_server + path)
        check(page)


def test_the_checks_can_fail(a11y_page):
    """The same checks on a page built to fail them: a nameless button, an image without text."""
    page = a11y_page
    page.set_content(
        '<html lang="en"><body><main id="main"><h1>Bad</h1><img src="x.png"><button></button></main></body></html>'
    )
    page.add_script_tag(path=str(VENDOR / AXE["file"]))
    found = page.evaluate(VIOLATIONS)
    assert any(v.startswith("button-name") for v in found) and any(v.startswith("image-alt") for v in found)
    assert page.evaluate(SMALL_TARGETS)
