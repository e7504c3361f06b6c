import pytest

from portal.domain.receiving import Finding, ReceiptError, ReceivedLine, check_receipt, finding_units


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
