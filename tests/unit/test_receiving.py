import pytest

from portal.domain.lifecycle import Status
from portal.domain.receiving import (
    SCAN_MESSAGES,
    Finding,
    ReceiptError,
    ReceivedLine,
    ScanOutcome,
    check_receipt,
    finding_units,
    scan_outcome,
)


def line(line_id=1, qty=2, grade="A", disposition="restock", wear=False):
    return ReceivedLine(line_id, qty, grade, wear, disposition)


def test_everything_as_expected():
    assert check_receipt({1: 2}, [line()], []) == []


@pytest.mark.parametrize("qty,kind,short", [(1, "short_quantity", 1), (0, "missing", 2)])
def test_short_counts_become_findings(qty, kind, short):
    findings = check_receipt(
        {1: 2}, [line(qty=qty, grade="A" if qty else "", disposition="restock" if qty else "")], []
    )
    assert [(f.kind, f.line_id, f.quantity) for f in findings] == [(kind, 1, short)]


def test_worker_finding_is_not_doubled():
    findings = check_receipt({1: 2}, [line(qty=1)], [Finding("wrong_item", 1, 1, "a blue one instead")])
    assert [f.kind for f in findings] == ["wrong_item"]


def test_damaged_in_transit_is_logistics():
    (finding,) = check_receipt(
        {1: 1}, [line(qty=1, grade="D", disposition="destroy")], [Finding("damaged_in_transit", 1, 1, "crushed box")]
    )
    assert finding.responsibility == "logistics"


@pytest.mark.parametrize(
    "expected,lines,findings",
    [
        ({1: 2}, [line(qty=3)], []),  # more than returned
        ({1: 2}, [line(qty=-1)], []),
        ({1: 2}, [line(grade="Z")], []),
        ({1: 2}, [line(disposition="sell")], []),
        ({1: 2}, [line(line_id=9)], []),
        ({1: 2, 2: 1}, [line()], []),  # a line not counted
        ({1: 2}, [line(), line()], []),
        ({1: 2}, [line()], [Finding("lost_in_space", 1, 1, "")]),
        ({1: 2}, [line()], [Finding("extra", 7, 1, "")]),
    ],
)
def test_refused(expected, lines, findings):
    with pytest.raises(ReceiptError):
        check_receipt(expected, lines, findings)


@pytest.mark.parametrize(
    "lines,findings,line_id,field",
    [
        ([line(qty=3)], [], 1, "quantity"),
        ([line(grade="")], [], 1, "grade"),
        ([line(disposition="sell")], [], 1, "disposition"),
        ([line()], [Finding("lost_in_space", 1, 1, "")], 1, "issue"),
        ([line(), line()], [], 1, None),  # about the line, not one of its fields
    ],
)
def test_a_refusal_names_the_field_it_is_about(lines, findings, line_id, field):
    with pytest.raises(ReceiptError) as caught:
        check_receipt({1: 2}, lines, findings)
    assert (caught.value.line_id, caught.value.field) == (line_id, field)


@pytest.mark.parametrize(
    "kind,expected,received,units",
    [
        ("damaged_in_transit", 3, 2, 2),  # damage concerns what arrived
        ("damaged_in_transit", 3, 0, 1),  # at least one
        ("short_quantity", 3, 1, 2),  # the others what did not
        ("missing", 2, 0, 2),
        ("wrong_item", 2, 2, 1),
        ("missing", 2, -1, 2),  # an unreadable count is no count
    ],
)
def test_finding_units(kind, expected, received, units):
    assert finding_units(kind, expected, received) == units


# What a scan of a known code means, for every status a return can be in.
SCAN_TABLE = [
    # status, returnless, received before, outcome
    ("submitted", False, False, "not_approved"),
    ("pending_review", False, False, "not_approved"),
    ("awaiting_shopper", False, False, "not_approved"),
    ("approved", False, False, "not_shipped"),
    ("approved", True, False, "no_return"),
    ("label_issued", False, False, "receive"),
    ("in_transit", False, False, "receive"),
    ("received", False, True, "already"),
    ("inspected", False, True, "already"),
    ("discrepancy", False, True, "already"),
    # Asked about a discrepancy, the shopper's answer is awaited: the parcel is here already.
    ("awaiting_shopper", False, True, "already"),
    ("refunded", False, True, "already"),
    ("exchanged", False, True, "already"),
    ("closed", False, True, "already"),
    ("refunded", True, False, "no_return"),
    ("closed", True, False, "no_return"),
    ("cancelled", False, False, "cancelled"),
    ("rejected", False, False, "rejected"),
]


@pytest.mark.parametrize("status,returnless,received,outcome", SCAN_TABLE)
def test_scan_outcome_per_status(status, returnless, received, outcome):
    assert scan_outcome(status, returnless, received) == ScanOutcome(outcome)


def test_every_status_has_a_scan_outcome_with_a_message():
    assert {row[0] for row in SCAN_TABLE} == {s.value for s in Status}
    for outcome in ScanOutcome:
        if outcome != ScanOutcome.RECEIVE:
            message, tone = SCAN_MESSAGES[outcome]
            assert "%(rma)s" in message and tone in ("warn", "bad")
    assert ScanOutcome.RECEIVE not in SCAN_MESSAGES
