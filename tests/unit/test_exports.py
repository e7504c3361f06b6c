"""CSV exports: text a spreadsheet would run as a formula is neutralised, numbers stay numbers."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal

import pytest

from portal.exports import reconciliation_csv, spreadsheet_safe


@pytest.mark.parametrize(
    "cell",
    ['=HYPERLINK("http://evil.example","x")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A2)", "\t=1", "\r=1"],
)
def test_formula_cells_get_an_apostrophe(cell):
    assert spreadsheet_safe(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["alipay", "-12.50", "0", "12", 5, Decimal("-1.5"), None, "a=b", ""])
def test_other_cells_are_unchanged(cell):
    assert spreadsheet_safe(cell) == cell


def test_reconciliation_csv_neutralises_a_hostile_payment_method():
    rows = [(date(2026, 11, 1), '=HYPERLINK("http://evil.example")', "CNY", "refund", 2, Decimal("10.5"))]
    parsed = list(csv.reader(io.StringIO(reconciliation_csv(rows))))
    assert parsed[0] == ["day", "method", "currency", "kind", "count", "total"]
    assert parsed[1] == ["2026-11-01", '\'=HYPERLINK("http://evil.example")', "CNY", "refund", "2", "10.50"]
