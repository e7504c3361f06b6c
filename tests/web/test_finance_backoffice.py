"""Finance back office: the second approver's confirmation step, product names in the preview, the
in-progress and refunded lists, bulk approval under the threshold, the ledger and its CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from portal.adapters.payments import gateway_for
from portal.db.models import Refund, StaffUser, StoreCreditCode
from portal.exports import MOVEMENT_COLUMNS
from portal.services.refunds import approve_refund, execute_refund, preview_refund
from portal.services.staff import create_staff
from tests.helpers import PASSWORD, csrf_token, form_values, inspected, sign_in, soup


@pytest.fixture
def clerk(app, session):
    create_staff(session, "fin@example.com", "Fay Lin", "finance", PASSWORD)
    create_staff(session, "fin2@example.com", "Gus Two", "finance", PASSWORD)
    client = app.test_client()
    sign_in(client, "fin@example.com")
    return client


@pytest.fixture
def second_clerk(app, clerk):
    client = app.test_client()
    sign_in(client, "fin2@example.com")
    return client


def _staff(session, email: str) -> StaffUser:
    return session.scalars(select(StaffUser).where(StaffUser.email == email)).one()


def _pay(app, session, req, provider="sandbox", reference=None) -> Refund:
    """Approve (below any threshold) and execute a refund for ``req`` through the services."""
    preview = preview_refund(session, req)
    refund = approve_refund(session, req, _staff(session, "fin@example.com"), preview.basis_hash, provider, 10**6)
    factory = app.extensions["portal.sessionmaker"]
    done = execute_refund(factory, refund.id, gateway_for(provider, factory), manual_reference=reference)
    assert done.status == "succeeded"
    return done


def _rows(page, selector: str) -> list[list[str]]:
    return [[td.get_text(" ", strip=True) for td in tr.find_all(["td", "th"])] for tr in soup(page).select(selector)]


# --- the second approver ---------------------------------------------------------


def test_second_approver_sees_the_preview_and_who_approved_first_and_must_confirm(
    app, client, order, session, clerk, second_clerk
):
    app.config["SECOND_APPROVAL_ABOVE"] = "100"
    req = inspected(app, client, session)
    approve = form_values(clerk.get("/finance/"), f'form[action="/finance/requests/{req.rma}/approve"]')
    clerk.post(f"/finance/requests/{req.rma}/approve", data=approve)
    refund = session.scalars(select(Refund)).one()
    assert refund.status == "awaiting_second"

    queue = second_clerk.get("/finance/")
    row = soup(queue).find(id=f"open-{refund.id}")
    assert "First approved by Fay Lin" in row.get_text(" ", strip=True)
    link = row.find("a", href=f"/finance/refunds/{refund.id}/second")
    assert link is not None

    page = second_clerk.get(link["href"])
    assert page.status_code == 200
    text = soup(page).get_text(" ", strip=True)
    assert "Approved first by Fay Lin" in text
    # The same itemised preview the first approver approved, item by item.
    items = _rows(page, "table.refund-preview tbody tr")
    assert items[0][0].startswith("T-shirt") and items[0][1] == "Price, 2 units" and items[0][2] == "CN¥198.00"
    assert ["Discount share", "-CN¥10.00"] == items[1][1:]
    assert "CN¥188.00" in text

    # A post that did not come through the confirmation step approves nothing and leads to it.
    bare = second_clerk.post(f"/finance/refunds/{refund.id}/second", data={"csrf_token": csrf_token(page)})
    assert bare.status_code == 303 and bare.headers["Location"] == f"/finance/refunds/{refund.id}/second"
    session.expire_all()
    assert session.get(Refund, refund.id).status == "awaiting_second"

    confirm = form_values(page, f'form[action="/finance/refunds/{refund.id}/second"]')
    assert confirm["confirm"] == "yes"
    assert second_clerk.post(f"/finance/refunds/{refund.id}/second", data=confirm).status_code == 303
    session.expire_all()
    done = session.get(Refund, refund.id)
    assert done.status == "approved" and done.second_by == _staff(session, "fin2@example.com").id

    after = soup(second_clerk.get(f"/finance/refunds/{refund.id}/second"))
    assert after.select_one("form.confirm") is None
    assert "no longer waits for a second approval" in after.get_text(" ", strip=True)
    assert "Second approval by Gus Two" in after.get_text(" ", strip=True)


def test_the_first_approver_gets_no_confirm_button_and_cannot_confirm(app, client, order, session, clerk):
    app.config["SECOND_APPROVAL_ABOVE"] = "100"
    req = inspected(app, client, session)
    approve = form_values(clerk.get("/finance/"), f'form[action="/finance/requests/{req.rma}/approve"]')
    clerk.post(f"/finance/requests/{req.rma}/approve", data=approve)
    refund = session.scalars(select(Refund)).one()
    page = clerk.get(f"/finance/refunds/{refund.id}/second")
    assert soup(page).select_one("form.confirm") is None
    assert "You approved this refund first" in page.get_data(as_text=True)
    forged = clerk.post(
        f"/finance/refunds/{refund.id}/second",
        data={"csrf_token": csrf_token(page), "confirm": "yes"},
        follow_redirects=True,
    )
    assert "must come from another finance user" in forged.get_data(as_text=True)
    session.expire_all()
    assert session.get(Refund, refund.id).status == "awaiting_second"


def test_second_approval_page_of_an_unknown_refund_is_404(clerk):
    assert clerk.get("/finance/refunds/999999/second").status_code == 404


# --- what the lists say ----------------------------------------------------------


def test_preview_lines_name_the_product(app, client, order, session, clerk):
    req = inspected(app, client, session)
    page = clerk.get("/finance/")
    card = soup(page).find(id=f"refund-{req.rma}")
    cells = [[td.get_text(" ", strip=True) for td in tr.find_all("td")] for tr in card.select("tbody tr")]
    assert cells and all(row[0] == "T-shirt · S TEE-S" for row in cells), cells
    summary = _rows(page, f"tr#waiting-{req.rma}")[0]
    assert "T-shirt" in summary and "CN¥188.00" in summary and "RF-1" in summary


def test_in_progress_refunds_show_rma_order_amount_and_provider(app, client, order, session, clerk):
    req = inspected(app, client, session)
    approve = form_values(clerk.get("/finance/"), f'form[action="/finance/requests/{req.rma}/approve"]')
    clerk.post(f"/finance/requests/{req.rma}/approve", data={**approve, "provider": "manual"})
    refund = session.scalars(select(Refund)).one()
    row = _rows(clerk.get("/finance/"), f"tr#open-{refund.id}")[0]
    assert row[0].startswith(req.rma) and row[1] == "RF-1" and row[2] == "manual"
    assert row[3] == "Approved, not paid yet" and row[4] == "CN¥188.00"


def test_store_credit_refund_shows_its_code(app, client, order, session, clerk):
    req = inspected(app, client, session, outcome="store_credit")
    refund = _pay(app, session, req)
    code = session.scalars(select(StoreCreditCode.code).where(StoreCreditCode.refund_id == refund.id)).one()
    row = soup(clerk.get("/finance/")).find(id=f"done-{refund.id}")
    assert row.select_one("td.credit-code").get_text(strip=True) == code
    assert req.rma in row.get_text(" ", strip=True)


# --- bulk approval ---------------------------------------------------------------


def _bulk_form(page, **basis_overrides) -> dict:
    """What the bulk form posts with every offered box ticked."""
    form = soup(page).select_one("form#bulk-approve")
    data = {"csrf_token": csrf_token(page), "provider": "sandbox", "pick": []}
    for box in form.select('input[name="pick"]'):
        data["pick"].append(box["value"])
    for hidden in form.select('input[type="hidden"][name^="basis-"]'):
        data[hidden["name"]] = basis_overrides.get(hidden["name"], hidden["value"])
    return data


def test_bulk_approval_approves_only_refunds_under_the_threshold_and_reports_the_rest(
    app, client, order, session, clerk
):
    app.config["SECOND_APPROVAL_ABOVE"] = "150"
    small = inspected(app, client, session, number="RF-1", quantity="1")  # 94.00
    large = inspected(app, client, session, number="RF-2", quantity="2")  # 188.00
    stale = inspected(app, client, session, number="RF-3", quantity="1")
    page = clerk.get("/finance/")
    form = soup(page).select_one("form#bulk-approve")
    offered = {box["value"] for box in form.select('input[name="pick"]')}
    assert offered == {small.rma, stale.rma}  # the large one is not offered
    assert "Needs a second approver" in _rows(page, f"tr#waiting-{large.rma}")[0][0]
    totals = _rows(page, "form#bulk-approve tfoot tr")
    assert totals == [["Total of 3 refunds in CNY", "CN¥376.00", "CN¥0.00"]]

    data = _bulk_form(page, **{f"basis-{stale.rma}": "0" * 64})
    # A forged form asking for the large one too: the server re-checks the threshold.
    large_basis = form_values(page, f'form[action="/finance/requests/{large.rma}/approve"]')["basis"]
    data["pick"].append(large.rma)
    data[f"basis-{large.rma}"] = large_basis
    response = clerk.post("/finance/bulk-approve", data=data)
    assert response.status_code == 200
    outcomes = {tr["id"].removeprefix("outcome-"): tr["data-outcome"] for tr in soup(response).select("tr[id]")}
    assert outcomes == {small.rma: "approved", stale.rma: "stale", large.rma: "above_threshold"}
    text = soup(response).get_text(" ", strip=True)
    assert "1 of 3 refunds approved." in text and "needs a second approver" in text

    refunds = session.scalars(select(Refund)).all()
    assert [(r.request_id, r.status, r.provider) for r in refunds] == [(small.id, "approved", "sandbox")]

    # The same post again: the approved one is already under way, nothing is recorded twice.
    again = clerk.post("/finance/bulk-approve", data=data)
    outcomes = {tr["id"].removeprefix("outcome-"): tr["data-outcome"] for tr in soup(again).select("tr[id]")}
    assert outcomes[small.rma] == "refused"
    assert "already under way" in soup(again).find(id=f"outcome-{small.rma}").get_text()
    assert len(session.scalars(select(Refund)).all()) == 1


def test_bulk_approval_with_an_unknown_return_or_nothing_chosen_approves_nothing(app, client, order, session, clerk):
    req = inspected(app, client, session)
    page = clerk.get("/finance/")
    data = _bulk_form(page)
    data["pick"].append("R-NOT-THERE")
    unknown = clerk.post("/finance/bulk-approve", data=data)
    assert unknown.status_code == 404
    assert "There is no return R-NOT-THERE. Nothing was approved." in soup(unknown).find(id="bulk-error").get_text()
    assert session.scalars(select(Refund)).all() == []

    nothing = clerk.post("/finance/bulk-approve", data={"csrf_token": csrf_token(page), "provider": "sandbox"})
    assert nothing.status_code == 422
    assert "Choose at least one refund to approve." in nothing.get_data(as_text=True)

    twice = clerk.post(
        "/finance/bulk-approve",
        data={**_bulk_form(page), "pick": [req.rma, req.rma]},
    )
    assert twice.status_code == 422 and session.scalars(select(Refund)).all() == []

    bad_provider = clerk.post("/finance/bulk-approve", data={**_bulk_form(page), "provider": "paypal"})
    assert bad_provider.status_code == 400
    assert session.scalars(select(Refund)).all() == []


# --- the ledger and the reconciliation export -------------------------------------


@pytest.fixture
def paid(app, client, order, session, clerk):
    """Three paid refunds today: sandbox, manual (reference BANK-9) and store credit."""
    sandbox = _pay(app, session, inspected(app, client, session, number="RF-1"))
    manual = _pay(app, session, inspected(app, client, session, number="RF-2"), "manual", "BANK-9")
    credit = _pay(app, session, inspected(app, client, session, number="RF-3", outcome="store_credit"))
    return {"sandbox": sandbox, "manual": manual, "credit": credit}


def _ledger_rows(page) -> list[list[str]]:
    return [row for row in _rows(page, "table.ledger tbody tr") if len(row) > 1]


def test_ledger_lists_the_days_movements_and_filters_them(app, session, clerk, paid):
    page = clerk.get("/finance/ledger")
    assert page.status_code == 200
    rows = _ledger_rows(page)
    assert len(rows) == 3
    by_rma = {row[2]: row for row in rows}
    sandbox, manual, credit = paid["sandbox"], paid["manual"], paid["credit"]
    assert by_rma[sandbox.request.rma][5] == "sandbox" and by_rma[sandbox.request.rma][6].startswith("SBX-")
    assert by_rma[manual.request.rma][5:7] == ["manual", "BANK-9"]
    assert by_rma[credit.request.rma][1] == "Store credit issued" and by_rma[credit.request.rma][5] == ""

    only_manual = _ledger_rows(clerk.get("/finance/ledger?provider=manual"))
    assert [row[2] for row in only_manual] == [manual.request.rma]
    credit_only = _ledger_rows(clerk.get("/finance/ledger?kind=store_credit_issued"))
    assert [row[2] for row in credit_only] == [credit.request.rma]
    assert len(_ledger_rows(clerk.get("/finance/ledger?method=alipay"))) == 2
    assert _ledger_rows(clerk.get("/finance/ledger?method=store_credit"))[0][2] == credit.request.rma
    assert _ledger_rows(clerk.get("/finance/ledger?method=wechat")) == []
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    assert _ledger_rows(clerk.get(f"/finance/ledger?day={yesterday}")) == []
    today = datetime.now(UTC).date().isoformat()
    assert len(_ledger_rows(clerk.get(f"/finance/ledger?day={today}&kind=refund"))) == 2

    # Today's totals beside the list, sandbox and manual refunds apart.
    totals = _rows(page, "table.day-totals tbody tr")
    assert ["Refund", "alipay", "manual", "1", "CN¥188.00"] in totals
    assert ["Refund", "alipay", "sandbox", "1", "CN¥188.00"] in totals
    assert ["Store credit issued", "store_credit", "", "1", "CN¥188.00"] in totals


def test_reconciliation_csv_has_one_row_per_movement(app, session, clerk, paid):
    page = clerk.get("/finance/ledger?provider=manual")
    link = soup(page).select_one("a.ledger-csv")["href"]
    assert "provider=manual" in link
    response = clerk.get("/finance/ledger.csv")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert list(rows[0].keys()) == MOVEMENT_COLUMNS
    assert len(rows) == 3
    manual = next(r for r in rows if r["provider"] == "manual")
    refund = paid["manual"]
    assert manual == {
        "time": manual["time"],
        "kind": "refund",
        "rma": refund.request.rma,
        "order": "RF-2",
        "refund": refund.idempotency_key,
        "provider": "manual",
        "provider_reference": "BANK-9",
        "reference": "BANK-9",
        "method": "alipay",
        "amount": "188.00",
        "currency": "CNY",
    }
    at = datetime.fromisoformat(manual["time"])
    assert at.utcoffset() == timedelta(0) and abs(at - refund.executed_at) < timedelta(seconds=1)
    sandbox = next(r for r in rows if r["provider"] == "sandbox")
    assert sandbox["provider_reference"].startswith("SBX-") and sandbox["order"] == "RF-1"
    issued = next(r for r in rows if r["kind"] == "store_credit_issued")
    code = session.scalars(select(StoreCreditCode.code)).one()
    assert (issued["reference"], issued["method"], issued["provider"]) == (code, "store_credit", "")

    filtered = list(csv.DictReader(io.StringIO(clerk.get(link).get_data(as_text=True))))
    assert [r["rma"] for r in filtered] == [refund.request.rma]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("/finance/ledger?day=2026-13-45", "Enter the day as YYYY-MM-DD"),
        ("/finance/ledger?day=yesterday", "Enter the day as YYYY-MM-DD"),
        ("/finance/ledger?provider=paypal", "Choose a provider from the list."),
        ("/finance/ledger?kind=chargeback", "Choose a kind from the list."),
        ("/finance/ledger?method=" + "x" * 40, "32"),
        ("/finance/ledger.csv?day=31/03/2026", "Enter the day as YYYY-MM-DD"),
        ("/finance/ledger.csv?provider=paypal", "Choose a provider from the list."),
        ("/finance/export.csv?from=2026-02-30", "Enter the days as YYYY-MM-DD"),
        ("/finance/export.csv?to=soon", "Enter the days as YYYY-MM-DD"),
    ],
)
def test_bad_filters_get_a_400_with_a_message(clerk, url, message):
    response = clerk.get(url)
    assert response.status_code == 400
    assert message in soup(response).get_text(" ", strip=True)


def test_finance_pages_in_chinese(app, client, order, session, clerk, second_clerk):
    """Every finance page renders for a Chinese-speaking clerk, with the back office's own words."""
    app.config["SECOND_APPROVAL_ABOVE"] = "100"
    req = inspected(app, client, session)
    approve = form_values(clerk.get("/finance/"), f'form[action="/finance/requests/{req.rma}/approve"]')
    clerk.post(f"/finance/requests/{req.rma}/approve", data=approve)
    refund = session.scalars(select(Refund)).one()
    headers = {"Accept-Language": "zh-CN"}
    queue = second_clerk.get("/finance/", headers=headers)
    assert queue.status_code == 200 and "待复核" in soup(queue).find(id=f"open-{refund.id}").get_text()
    second = second_clerk.get(f"/finance/refunds/{refund.id}/second", headers=headers)
    assert second.status_code == 200 and "确认复核" in second.get_data(as_text=True)
    ledger = second_clerk.get("/finance/ledger?day=bad", headers=headers)
    assert ledger.status_code == 400 and "请按 YYYY-MM-DD 格式输入日期" in ledger.get_data(as_text=True)
    bulk = second_clerk.post(
        "/finance/bulk-approve", data={"csrf_token": csrf_token(queue), "provider": "sandbox"}, headers=headers
    )
    assert bulk.status_code == 422 and "请至少选择一笔要审批的退款。" in bulk.get_data(as_text=True)
