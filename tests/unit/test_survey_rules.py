"""The survey's rules as plain values: what counts as an answer, who needs a follow-up, how long an
answer can change, the quiet period, the keyed address hash and the send states."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from portal.domain.errors import InvalidInput
from portal.domain.lifecycle import Status
from portal.domain.states import IllegalTransition
from portal.domain.survey import (
    FINISHED,
    SurveyAnswerValues,
    SurveyStatus,
    can_change,
    check_survey,
    email_key,
    in_quiet_period,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("nps", "satisfaction", "comment", "expected"),
    [
        ("0", "1", "", (0, 1, "")),
        ("10", "5", "  great  ", (10, 5, "great")),
        (7, 3, None, (7, 3, "")),
        (" 6 ", "2", "", (6, 2, "")),
    ],
)
def test_answers_within_the_scales_are_read(nps, satisfaction, comment, expected):
    answer = SurveyAnswerValues.parse(nps, satisfaction, comment)
    assert (answer.nps, answer.satisfaction, answer.comment) == expected


@pytest.mark.parametrize(
    ("nps", "satisfaction", "comment", "says"),
    [
        ("11", "3", "", "from 0 to 10"),
        ("-1", "3", "", "from 0 to 10"),
        ("", "3", "", "from 0 to 10"),
        ("7.5", "3", "", "from 0 to 10"),
        (True, "3", "", "from 0 to 10"),
        ("7", "0", "", "from 1 to 5"),
        ("7", "6", "", "from 1 to 5"),
        ("7", None, "", "from 1 to 5"),
        ("7", "3", "x" * 2001, "under 2000 characters"),
    ],
)
def test_answers_outside_the_scales_are_refused_with_a_sentence(nps, satisfaction, comment, says):
    with pytest.raises(InvalidInput) as refused:
        SurveyAnswerValues.parse(nps, satisfaction, comment)
    assert says in refused.value.render()


@pytest.mark.parametrize(
    ("nps", "satisfaction", "comment", "follow_up"),
    [
        (6, 5, "", True),  # a detractor
        (0, 4, "", True),
        (7, 5, "", False),  # passive, happy
        (10, 3, "", False),
        (9, 2, "", True),  # an unhappy return
        (10, 1, "", True),
        (10, 5, "Thanks!", True),  # anything written is read by someone
    ],
)
def test_who_needs_a_follow_up(nps, satisfaction, comment, follow_up):
    assert SurveyAnswerValues(nps, satisfaction, comment).needs_follow_up is follow_up


@pytest.mark.parametrize(
    ("first_answered", "days", "changeable"),
    [
        (None, 7, True),
        (NOW - timedelta(days=6, hours=23), 7, True),
        (NOW - timedelta(days=7), 7, True),
        (NOW - timedelta(days=7, seconds=1), 7, False),
        (NOW - timedelta(hours=1), 0, False),
    ],
)
def test_an_answer_changes_only_for_a_few_days(first_answered, days, changeable):
    assert can_change(first_answered, NOW, days) is changeable


@pytest.mark.parametrize(
    ("last_sent", "quiet_days", "quiet"),
    [
        (None, 30, False),
        (NOW - timedelta(days=29), 30, True),
        (NOW - timedelta(days=30), 30, False),
        (NOW - timedelta(hours=1), 0, False),  # no quiet period
    ],
)
def test_quiet_period(last_sent, quiet_days, quiet):
    assert in_quiet_period(last_sent, NOW, quiet_days) is quiet


def test_the_address_hash_is_keyed_and_ignores_case_and_spaces():
    key = email_key("secret", "Li.Wei@Example.com ")
    assert key == email_key("secret", "li.wei@example.com")
    assert key != email_key("other secret", "li.wei@example.com")
    assert "li.wei" not in key and len(key) == 64


def test_finished_means_refunded_exchanged_or_rejected():
    assert FINISHED == {Status.REFUNDED, Status.EXCHANGED, Status.REJECTED}


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        (SurveyStatus.PENDING, SurveyStatus.CLAIMED, True),
        (SurveyStatus.CLAIMED, SurveyStatus.CLAIMED, True),  # an expired claim taken again
        (SurveyStatus.CLAIMED, SurveyStatus.SENT, True),
        (SurveyStatus.CLAIMED, SurveyStatus.SKIPPED, True),
        (SurveyStatus.PENDING, SurveyStatus.SENT, False),  # never sent without a claim
        (SurveyStatus.SENT, SurveyStatus.CLAIMED, False),  # sent once, never again
        (SurveyStatus.SKIPPED, SurveyStatus.SENT, False),
    ],
)
def test_send_states(current, target, allowed):
    if allowed:
        assert check_survey(current, target) is target
    else:
        with pytest.raises(IllegalTransition):
            check_survey(current, target)
