"""The satisfaction survey in a real browser on a 390 px phone: answered from the email's link
without JavaScript and without signing in, every choice a 44 px target, nothing wider than the
screen; and axe finds no serious problem on the page."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

from sqlalchemy import select

from portal.db.models import ReturnRequest, SurveyAnswer, Ticket
from portal.domain.actors import Actor
from portal.links import survey_links
from portal.services.review import reject_return
from tests.helpers import submit_coat

VENDOR = Path(__file__).with_name("vendor")
AXE = tomllib.loads((VENDOR / "VENDORED.toml").read_text())["axe-core"]
PHONE = {"width": 390, "height": 844}


def survey_path(app, session, number: str) -> tuple[ReturnRequest, str]:
    """A returned coat that staff rejected, and the path of its survey link."""
    rma = submit_coat(app, number=number)
    req = session.scalars(select(ReturnRequest).where(ReturnRequest.rma == rma)).one()
    reject_return(session, req, Actor.staff(1), "Worn outside")
    link = survey_links(app.config["PUBLIC_URL"], app.config["SECRET_KEY"], req.id)["survey_link"]
    return req, "/survey/" + link.rsplit("/", 1)[1]


def test_a_shopper_answers_the_survey_on_a_phone_without_javascript(app, session, live_server, browser):
    req, path = survey_path(app, session, "E2E-SV1")
    context = browser.new_context(viewport=PHONE, java_script_enabled=False, locale="en-GB")
    page = context.new_page()
    try:
        page.goto(live_server + path)
        page.get_by_role("group", name="How likely are you to recommend us to a friend?").wait_for()
        for option in page.locator("label.scale-option").all():
            box = option.bounding_box()
            assert box is not None and box["width"] >= 44 and box["height"] >= 44
            assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
        form = page.locator("form.survey").bounding_box()
        assert form is not None and form["x"] + form["width"] <= PHONE["width"]

        page.locator("fieldset").first.get_by_text("3", exact=True).click()
        page.get_by_text("Unhappy", exact=True).click()
        assert page.get_by_label("3", exact=True).is_checked()
        page.get_by_label("Anything you would like to tell us? (optional)").fill("The pickup came late")
        page.get_by_role("button", name="Send my answer").click()
        page.get_by_text("Thank you for your answer.").wait_for()
        # The page shows the answer kept, ready to be changed.
        assert page.get_by_label("3", exact=True).is_checked()
        assert page.get_by_role("button", name="Change my answer").is_visible()
    finally:
        context.close()
    session.expire_all()
    answer = session.scalars(select(SurveyAnswer)).one()
    assert (answer.request_id, answer.nps, answer.satisfaction, answer.comment) == (
        req.id,
        3,
        2,
        "The pickup came late",
    )
    ticket = session.scalars(select(Ticket).where(Ticket.request_id == req.id)).one()
    assert ticket.status == "open" and ticket.priority == "high"


def test_the_survey_page_passes_axe_on_a_phone(app, session, live_server, browser):
    data = (VENDOR / AXE["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == AXE["sha256"]
    _, path = survey_path(app, session, "E2E-SV2")
    # axe is injected into the page, which the portal's CSP (scripts from the portal only) forbids.
    context = browser.new_context(viewport=PHONE, bypass_csp=True)
    page = context.new_page()
    try:
        page.goto(live_server + path)
        page.add_script_tag(path=str(VENDOR / AXE["file"]))
        violations = page.evaluate(
            """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations
                .filter(v => v.impact === "serious" || v.impact === "critical").map(v => v.id)"""
        )
        assert violations == []
        assert page.locator("h1").count() == 1
    finally:
        context.close()
