"""The satisfaction survey against the real database: one due row when a request is finished, one
email per request through the outbox (two sweepers at once, a sweeper killed mid-send), the quiet
period, the unsubscribe link, answering and changing the answer through the signed link without
signing in, the follow-up ticket for a low score or a comment, Chinese for a Chinese request, and
nothing at all when the survey is switched off.

Time is passed to the sweep as ``now``; nothing waits."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import func, select, update

from portal.adapters.payments import SandboxGateway
from portal.db.models import (
    OutboxMessage,
    ReturnRequest,
    StaffNotification,
    SurveyAnswer,
    SurveyDue,
    SurveyOptOut,
    Team,
    Ticket,
    TicketEvent,
)
from portal.domain.actors import Actor
from portal.jobs import build_email
from portal.jobs import sweep_surveys as sweep_job
from portal.links import SURVEY_LINK_SALT, survey_links
from portal.services.refunds import approve_refund, execute_refund, preview_refund
from portal.services.review import reject_return
from portal.services.survey import (
    CLAIM_TTL,
    _claim,
    _send_batch,
    schedule_survey,
    survey_settings,
    sweep_surveys,
)
from tests.helpers import (
    COAT,
    email_text,
    finance_user,
    form_for,
    get_csrf,
    inspected,
    login_shopper,
    order_payload,
    post_json,
    soup,
)

SECRET = "test-secret-key"  # the app fixture's SECRET_KEY
EMAIL = "li.wei@example.com"


def factory(app):
    return app.extensions["portal.sessionmaker"]


def settings(app, **changes):
    return replace(survey_settings(app.config), **changes)


def rejected(app, session, number: str, email: str = EMAIL, lang: str | None = None) -> ReturnRequest:
    """A shopper returns the coat (reviewed, being high value) and staff reject it: finished."""
    shopper = app.test_client()
    post_json(shopper, "/api/v1/orders", order_payload(number, lines=COAT, email=email))
    if lang:
        shopper.post("/lang", data={"csrf_token": get_csrf(shopper), "lang": lang})
    assert login_shopper(shopper, number=number, contact=email).status_code == 303
    shopper.post(
        "/order/request", data=form_for(shopper, **{"0": {"quantity": "1", "reason": "size_fit", "outcome": "refund"}})
    )
    req = session.scalars(select(ReturnRequest).where(ReturnRequest.order.has(order_number=number))).one()
    assert req.status == "pending_review"
    return reject_return(session, req, Actor.staff(1), "Worn outside")


def invites(session, email: str | None = None) -> list[OutboxMessage]:
    session.expire_all()
    rows = session.scalars(
        select(OutboxMessage).where(OutboxMessage.topic == "survey_invite").order_by(OutboxMessage.id)
    )
    return [m for m in rows if email is None or m.payload["to"] == email]


def due_rows(session) -> list[SurveyDue]:
    session.expire_all()
    return list(session.scalars(select(SurveyDue).order_by(SurveyDue.id)))


def after_delay() -> datetime:
    return datetime.now(UTC) + timedelta(hours=25)


# --- due -------------------------------------------------------------------------------------


def test_a_refunded_request_gets_one_due_row_and_an_open_one_none(app, client, order, session):
    req = inspected(app, client, session)
    assert due_rows(session) == []  # received and inspected, not finished
    fay = finance_user(session, "fay")
    refund = approve_refund(session, req, fay, preview_refund(session, req).basis_hash, "sandbox", 1000)
    execute_refund(factory(app), refund.id, SandboxGateway(factory(app)))
    execute_refund(factory(app), refund.id, SandboxGateway(factory(app)))  # a second try changes nothing
    rows = due_rows(session)
    assert [(r.request_id, r.status) for r in rows] == [(req.id, "pending")]
    session.refresh(req)
    assert req.status == "refunded"
    # Scheduling again (a retried service, a later move) adds nothing.
    assert schedule_survey(session, req) is False
    session.commit()
    assert len(due_rows(session)) == 1


def test_a_rejection_schedules_the_survey_when_it_is_decided(app, session):
    req = rejected(app, session, "SV-1")
    rows = due_rows(session)
    assert [r.request_id for r in rows] == [req.id]
    assert abs((rows[0].finished_at - datetime.now(UTC)).total_seconds()) < 60


# --- sending ---------------------------------------------------------------------------------


def test_the_sweep_waits_for_the_delay_then_sends_once(app, session):
    req = rejected(app, session, "SV-2")
    early = sweep_surveys(factory(app), settings(app), SECRET, now=datetime.now(UTC) + timedelta(hours=23))
    assert early.claimed == 0 and invites(session) == []
    done = sweep_surveys(factory(app), settings(app), SECRET, now=after_delay())
    assert done.sent == [f"{req.rma}: sent"]
    assert sweep_surveys(factory(app), settings(app), SECRET, now=after_delay() + timedelta(hours=1)).claimed == 0
    [message] = invites(session)
    assert message.payload["to"] == EMAIL and message.payload["locale"] == "en"
    assert message.sent_at is not None  # delivered through the outbox
    row = due_rows(session)[0]
    assert row.status == "sent" and row.email_key and EMAIL not in row.email_key


def test_two_sweepers_at_once_send_one_email_per_request(app, session):
    requests = [rejected(app, session, f"SV-T{n}", email=f"shopper{n}@example.com") for n in range(6)]
    now = after_delay()
    results, barrier = [], threading.Barrier(2)

    def run(name):
        barrier.wait()
        results.append(sweep_surveys(factory(app), settings(app), SECRET, now=now, batch=2, worker=name))

    threads = [threading.Thread(target=run, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    sent = [line for r in results for line in r.sent]
    assert sorted(sent) == sorted(f"{r.rma}: sent" for r in requests)
    assert sorted(m.payload["to"] for m in invites(session)) == sorted(f"shopper{n}@example.com" for n in range(6))


def test_a_sweeper_killed_mid_send_leaves_it_to_the_next_one_once(app, session):
    rejected(app, session, "SV-K")
    now = after_delay()
    with factory(app)() as s:
        ids = _claim(s, now, now - timedelta(hours=24), "dead:1", 10)
    assert len(ids) == 1
    with factory(app)() as s:

        def killed() -> None:
            raise RuntimeError("killed before the commit")

        s.commit = killed  # type: ignore[method-assign]
        with pytest.raises(RuntimeError):
            _send_batch(s, ids, "dead:1", now, settings(app), SECRET)
    assert invites(session) == [] and due_rows(session)[0].status == "claimed"
    assert sweep_surveys(factory(app), settings(app), SECRET, now=now).claimed == 0  # claim still held
    later = sweep_surveys(factory(app), settings(app), SECRET, now=now + CLAIM_TTL + timedelta(seconds=1))
    assert len(later.sent) == 1
    assert sweep_surveys(factory(app), settings(app), SECRET, now=now + CLAIM_TTL * 3).claimed == 0
    assert len(invites(session)) == 1


def test_no_second_survey_to_the_same_address_within_the_quiet_period(app, session):
    first, second = rejected(app, session, "SV-Q1"), rejected(app, session, "SV-Q2")
    now = after_delay()
    result = sweep_surveys(factory(app), settings(app), SECRET, now=now)
    assert result.sent == [f"{first.rma}: sent"]
    assert result.skipped == [f"{second.rma}: skipped (surveyed recently)"]
    # A return finished a month later is surveyed again.
    third = rejected(app, session, "SV-Q3")
    session.execute(
        update(SurveyDue).where(SurveyDue.request_id == third.id).values(finished_at=now + timedelta(days=31))
    )
    session.commit()
    later = sweep_surveys(factory(app), settings(app), SECRET, now=now + timedelta(days=32))
    assert later.sent == [f"{third.rma}: sent"]
    assert len(invites(session, EMAIL)) == 2


def test_switched_off_nothing_is_sent(app, session):
    rejected(app, session, "SV-OFF")
    app.config["SURVEY_ENABLED"] = False
    app.config["SURVEY_DELAY_HOURS"] = 0
    assert sweep_job(app).claimed == 0
    assert invites(session) == [] and due_rows(session)[0].status == "pending"
    app.config["SURVEY_ENABLED"] = True
    assert len(sweep_job(app).sent) == 1  # switched on: the waiting survey goes, once
    assert len(invites(session)) == 1


def test_a_survey_left_unsent_for_weeks_is_dropped(app, session):
    req = rejected(app, session, "SV-OLD")
    result = sweep_surveys(factory(app), settings(app), SECRET, now=datetime.now(UTC) + timedelta(days=9))
    assert result.skipped == [f"{req.rma}: skipped (too late)"] and invites(session) == []


# --- the email and the links -----------------------------------------------------------------


def links_in(app, message) -> tuple[str, str, str]:
    """(text, survey path, unsubscribe path) of a survey email; the paths are local to the app."""
    email = build_email(app, message)
    assert email.get_content_type() == "multipart/alternative"
    text = email_text(email)
    found = re.findall(r"http://localhost(/survey/\S+)", text)
    survey = next(p for p in found if "/unsubscribe/" not in p)
    unsubscribe = next(p for p in found if "/unsubscribe/" in p)
    assert email["List-Unsubscribe"] == f"<http://localhost{unsubscribe}>"
    return text, survey, unsubscribe


def test_the_email_links_to_the_survey_and_to_unsubscribing(app, session):
    req = rejected(app, session, "SV-E")
    sweep_surveys(factory(app), settings(app), SECRET, now=after_delay())
    text, survey, unsubscribe = links_in(app, invites(session)[0])
    assert req.rma in text and "no sign-in needed" in text
    html = build_email(app, invites(session)[0]).get_body(("html",)).get_content()
    assert f'href="http://localhost{survey}"' in html


def test_opting_out_works_without_signing_in_and_is_honoured(app, session):
    rejected(app, session, "SV-O1")
    sweep_surveys(factory(app), settings(app), SECRET, now=after_delay())
    _, _, unsubscribe = links_in(app, invites(session)[0])
    stranger = app.test_client()  # no session at all
    page = stranger.get(unsubscribe)
    assert page.status_code == 200
    form = soup(page).select_one("main form[method=post]")
    assert form["action"] == unsubscribe
    done = stranger.post(unsubscribe, data={"csrf_token": get_csrf(stranger, unsubscribe)})
    assert done.status_code == 200 and "will not send you any more" in done.get_data(as_text=True)
    stranger.post(unsubscribe, data={"csrf_token": get_csrf(stranger, unsubscribe)})  # twice is fine
    [optout] = session.scalars(select(SurveyOptOut)).all()
    assert EMAIL not in optout.email_key and len(optout.email_key) == 64  # a keyed hash, not the address
    assert "will not send you any more" in stranger.get(unsubscribe).get_data(as_text=True)
    # The next finished return of that address gets no survey, even with no quiet period.
    later = rejected(app, session, "SV-O2")
    result = sweep_surveys(factory(app), settings(app, quiet_days=0), SECRET, now=after_delay())
    assert result.skipped == [f"{later.rma}: skipped (opted out)"]
    assert len(invites(session)) == 1


def test_bad_and_expired_links_get_a_clear_4xx(app, session):
    req = rejected(app, session, "SV-X")
    client = app.test_client()
    for path in ("/survey/nonsense", "/survey/unsubscribe/nonsense", "/survey/" + "x" * 400):
        response = client.get(path)
        assert response.status_code == 404 and "could not find" in response.get_data(as_text=True)
    # The unsubscribe token does not open the survey, nor the other way round.
    links = survey_links("http://localhost", SECRET, req.id)
    optout_token = links["unsubscribe_link"].rsplit("/", 1)[1]
    survey_token = links["survey_link"].rsplit("/", 1)[1]
    assert client.get(f"/survey/{optout_token}").status_code == 404
    assert client.get(f"/survey/unsubscribe/{survey_token}").status_code == 404
    assert client.post("/survey/nonsense", data={"csrf_token": get_csrf(client)}).status_code == 404

    class MonthOld(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 31 * 86400

    old = URLSafeTimedSerializer(SECRET, salt=SURVEY_LINK_SALT, signer=MonthOld).dumps({"r": req.id})
    expired = client.get(f"/survey/{old}")
    assert expired.status_code == 410 and "This survey link has expired." in expired.get_data(as_text=True)


# --- answering -------------------------------------------------------------------------------


def answer(client, path: str, nps: str | None, satisfaction: str | None, comment: str = ""):
    data = {"csrf_token": get_csrf(client, path), "comment": comment}
    if nps is not None:
        data["nps"] = nps
    if satisfaction is not None:
        data["satisfaction"] = satisfaction
    return client.post(path, data=data)


def test_the_link_answers_and_can_change_the_answer_within_the_window_then_not(app, session):
    req = rejected(app, session, "SV-A")
    sweep_surveys(factory(app), settings(app), SECRET, now=after_delay())
    _, path, _ = links_in(app, invites(session)[0])
    client = app.test_client()  # never signed in
    page = soup(client.get(path))
    legends = [legend.get_text(strip=True) for legend in page.select("fieldset legend")]
    assert legends == ["How likely are you to recommend us to a friend?", "How satisfied are you with this return?"]
    assert len(page.select('input[type=radio][name="nps"]')) == 11
    for radio in page.select("input[type=radio]"):
        assert page.select_one(f'label[for="{radio["id"]}"]') is not None

    assert answer(client, path, "9", "5").status_code == 303
    kept = session.scalars(select(SurveyAnswer)).one()
    assert (kept.request_id, kept.nps, kept.satisfaction, kept.comment) == (req.id, 9, 5, "")
    again = client.get(path).get_data(as_text=True)
    assert "Thank you for your answer." in again and "You can change it until" in again

    assert answer(client, path, "10", "4").status_code == 303
    session.expire_all()
    kept = session.scalars(select(SurveyAnswer)).one()
    assert (kept.nps, kept.satisfaction) == (10, 4)
    assert session.scalar(select(func.count(SurveyAnswer.id))) == 1

    # A week and a day after the first answer it can no longer change.
    session.execute(update(SurveyAnswer).values(answered_at=datetime.now(UTC) - timedelta(days=8)))
    session.commit()
    late = answer(client, path, "0", "1", "changed my mind")
    assert late.status_code == 409 and "can no longer be changed" in late.get_data(as_text=True)
    session.expire_all()
    kept = session.scalars(select(SurveyAnswer)).one()
    assert (kept.nps, kept.satisfaction, kept.comment) == (10, 4, "")
    shown = soup(client.get(path))
    assert shown.select("form.survey") == [] and "10 / 10" in shown.get_text()


def test_an_incomplete_or_forged_answer_is_refused_with_a_message(app, session):
    req = rejected(app, session, "SV-B")
    path = "/survey/" + survey_links("http://localhost", SECRET, req.id)["survey_link"].rsplit("/", 1)[1]
    client = app.test_client()
    missing = answer(client, path, None, "3")
    assert missing.status_code == 422 and "Choose a number from 0 to 10." in missing.get_data(as_text=True)
    assert answer(client, path, "11", "3").status_code == 422
    assert answer(client, path, "5", "0").status_code == 422
    assert answer(client, path, "5", "3", "x" * 2001).status_code == 422
    assert session.scalar(select(func.count(SurveyAnswer.id))) == 0


# --- following up ----------------------------------------------------------------------------


def survey_path(req) -> str:
    return "/survey/" + survey_links("http://localhost", SECRET, req.id)["survey_link"].rsplit("/", 1)[1]


def test_a_low_score_reopens_the_ticket_for_the_team_that_handled_it_once(app, session, desk):
    req = rejected(app, session, "HV-1")
    ticket = session.scalars(select(Ticket).where(Ticket.request_id == req.id)).one()
    assert ticket.status == "closed" and ticket.assignee_id == desk["agent"]
    finance = session.scalars(select(Team).where(Team.code == "finance")).one()
    assert ticket.team_id == finance.id
    client = app.test_client()
    assert answer(client, survey_path(req), "3", "4").status_code == 303
    session.expire_all()
    ticket = session.get(Ticket, ticket.id)
    assert (ticket.status, ticket.priority, ticket.team_id, ticket.assignee_id) == (
        "open",
        "high",
        finance.id,
        desk["agent"],
    )
    events = session.scalars(
        select(TicketEvent).where(TicketEvent.ticket_id == ticket.id, TicketEvent.kind == "survey")
    )
    assert [(e.data["nps"], e.data["satisfaction"], e.data["follow_up"]) for e in events] == [(3, 4, True)]
    told = session.scalars(select(StaffNotification).where(StaffNotification.kind == "survey")).all()
    assert [n.staff_id for n in told] == [desk["agent"]] and req.rma in told[0].message
    # Changing the answer is added to the ticket; the team is not told a second time.
    assert answer(client, survey_path(req), "2", "1", "Nobody called me back").status_code == 303
    session.expire_all()
    assert session.scalar(select(func.count(StaffNotification.id)).where(StaffNotification.kind == "survey")) == 1
    notes = session.scalars(
        select(TicketEvent.note).where(TicketEvent.ticket_id == ticket.id, TicketEvent.kind == "survey")
    ).all()
    assert notes == ["", "Nobody called me back"]
    assert session.scalars(select(SurveyAnswer)).one().followed_up_at is not None


def test_a_happy_answer_leaves_the_ticket_closed_and_a_comment_opens_it(app, session, desk):
    happy, commented = rejected(app, session, "HV-2"), rejected(app, session, "HV-3")
    client = app.test_client()
    assert answer(client, survey_path(happy), "9", "5").status_code == 303
    assert answer(client, survey_path(commented), "10", "5", "The courier was late").status_code == 303
    session.expire_all()
    tickets = {t.request_id: t for t in session.scalars(select(Ticket))}
    assert tickets[happy.id].status == "closed"
    assert tickets[commented.id].status == "open" and tickets[commented.id].priority == "high"
    [event] = session.scalars(select(TicketEvent).where(TicketEvent.kind == "survey")).all()
    assert event.ticket_id == tickets[commented.id].id and event.note == "The courier was late"


def test_the_staff_timeline_reads_the_survey_answer(app, session, desk):
    from tests.helpers import sign_in

    req = rejected(app, session, "HV-4")
    answer(app.test_client(), survey_path(req), "1", "2", "Too slow")
    staff = app.test_client()
    sign_in(staff, "agent@example.com")
    page = staff.get(f"/staff/requests/{req.rma}").get_data(as_text=True)
    assert "Answered the satisfaction survey: recommend 1/10, satisfaction 2/5" in page and "Too slow" in page


# --- Chinese ---------------------------------------------------------------------------------


def test_a_chinese_request_gets_the_survey_in_chinese(app, session):
    req = rejected(app, session, "SV-ZH", lang="zh_Hans")
    assert req.locale == "zh_Hans"
    sweep_surveys(factory(app), settings(app), SECRET, now=after_delay())
    [message] = invites(session)
    assert message.payload["locale"] == "zh_Hans"
    email = build_email(app, message)
    assert email["Subject"] == f"您的退货 {req.rma} 体验如何？"
    assert "回答问卷：" in email_text(email)
    path = survey_path(req)
    page = app.test_client().get(path)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and '<html lang="zh-Hans">' in html
    assert "您向朋友推荐我们的可能性有多大？" in html


# --- the command -----------------------------------------------------------------------------


def test_the_survey_sweep_command_sends_once(app, session, monkeypatch, database_url):
    from click.testing import CliRunner

    from portal.cli import main

    req = rejected(app, session, "SV-CLI")
    for name, value in {
        "INSTANCE_PATH": app.config["INSTANCE_PATH"],
        "DATABASE_URL": database_url,
        "SECRET_KEY": app.config["SECRET_KEY"],
        "API_SECRET": app.config["API_SECRET"],
        "SURVEY_DELAY_HOURS": "0",
    }.items():
        monkeypatch.setenv(f"PORTAL_{name}", value)
    first = CliRunner().invoke(main, ["survey-sweep", "--once"], catch_exceptions=False)
    assert first.exit_code == 0 and f"{req.rma}: sent" in first.output
    assert "claimed 1, sent 1, skipped 0" in first.output
    again = CliRunner().invoke(main, ["survey-sweep", "--once"], catch_exceptions=False)
    assert "claimed 0, sent 0, skipped 0" in again.output
    assert len(invites(session)) == 1
