"""Reasons back to products: the ranked list, the product page, its chart and the product team's CSV.

The data is made as a shop and its shoppers make it (the API, the shopper's return form with
photos and comments, a shopper cancelling), then each order and request is dated in November 2026
around the Shanghai month boundaries. Expected figures are worked out here from the plan below with
plain ``zoneinfo`` arithmetic, not with the code under test.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from portal.db.models import Order, Photo, ReturnRequest
from portal.services.staff import create_staff
from tests.helpers import (
    PASSWORD,
    PRODUCTS,
    csrf_token,
    form_for,
    jpeg,
    login_shopper,
    order_payload,
    post_json,
    sign_in,
    soup,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NAME, PHONE = "Li Wei", "+86 138 0000 0000"  # what order_payload puts on every order


def line(line_id, sku, name, variant, category, quantity, price="99.00"):
    return {
        "line_id": line_id,
        "sku": sku,
        "product_name": name,
        "variant": variant,
        "category": category,
        "quantity": quantity,
        "unit_price": price,
        "discount": "0",
        "tax": "0",
        "final_sale": False,
    }


# One order per entry: its lines, when it was placed (UTC), the email on it, and the return asked
# for its first line: (quantity, reason, sub_reason, comment, with a photo, when (UTC), cancelled).
PLAN = [
    {
        "number": "PI-1001",
        "email": "li.wei@example.com",
        "placed": datetime(2026, 11, 5, 2, 0, tzinfo=UTC),
        "lines": [
            line("1", "TEE-S", "T-shirt", "S", "tops", 2),
            line("2", "SCARF-RED", "Silk scarf", "Red", "accessories", 1),
        ],
        # 23:30 in Shanghai on 30 November: November's.
        "ret": (
            2,
            "size_fit",
            "too_small",
            f"Too small. Call {PHONE} or li.wei@example.com, {NAME} (PI-1001)",
            False,
            datetime(2026, 11, 30, 15, 30, tzinfo=UTC),
            False,
        ),
    },
    {
        "number": "PI-1002",
        "email": "zhang.min@example.com",
        "placed": datetime(2026, 11, 12, 8, 0, tzinfo=UTC),
        "lines": [
            line("1", "TEE-M", "T-shirt", "M", "tops", 1),
            line("2", "SCARF-RED", "Silk scarf", "Red", "accessories", 1),
        ],
        "ret": (
            1,
            "defective",
            "poor_stitching",
            "Seam opened after one wash; reach me at zhang.min@example.com",
            True,
            datetime(2026, 11, 10, 4, 0, tzinfo=UTC),
            False,
        ),
    },
    {
        "number": "PI-1003",
        "email": "wang.fang@example.com",
        # 23:00 in Shanghai on 31 October: October's sale.
        "placed": datetime(2026, 10, 31, 15, 0, tzinfo=UTC),
        "lines": [line("1", "TEE-L", "T-shirt", "L", "tops", 3)],
        # 00:30 in Shanghai on 1 December: December's return, although it is still November in UTC.
        "ret": (1, "size_fit", "too_large", "Far too big", False, datetime(2026, 11, 30, 16, 30, tzinfo=UTC), False),
    },
    {
        "number": "PI-1004",
        "email": "chen.jie@example.com",
        # 00:30 in Shanghai on 1 November: November's sale.
        "placed": datetime(2026, 10, 31, 16, 30, tzinfo=UTC),
        "lines": [line("1", "SCARF-RED", "Silk scarf", "Red", "accessories", 1)],
        # The shopper cancels: nothing comes back.
        "ret": (
            1,
            "changed_mind",
            "no_longer_needed",
            "Changed my mind",
            False,
            datetime(2026, 11, 15, 1, 0, tzinfo=UTC),
            True,
        ),
    },
]
PRODUCT_OF = {"TEE-S": "TEE", "TEE-M": "TEE", "TEE-L": "TEE", "SCARF-RED": "SCARF"}


def month_in_shanghai(at: datetime) -> str:
    return at.astimezone(SHANGHAI).strftime("%Y-%m")


def expected(month: str) -> dict:
    """Sold, returned and requests per product and per SKU, and reasons per product, from the plan."""
    sold, returned, requests = Counter(), Counter(), Counter()
    sku_sold, sku_returned, reasons = Counter(), Counter(), Counter()
    for entry in PLAN:
        if month_in_shanghai(entry["placed"]) == month:
            for item in entry["lines"]:
                sold[PRODUCT_OF[item["sku"]]] += item["quantity"]
                sku_sold[item["sku"]] += item["quantity"]
        qty, reason, sub, _comment, _photo, at, cancelled = entry["ret"]
        if month_in_shanghai(at) == month and not cancelled:
            sku = entry["lines"][0]["sku"]
            returned[PRODUCT_OF[sku]] += qty
            requests[PRODUCT_OF[sku]] += 1
            sku_returned[sku] += qty
            reasons[(PRODUCT_OF[sku], reason, sub)] += qty
    return dict(
        sold=sold, returned=returned, requests=requests, sku_sold=sku_sold, sku_returned=sku_returned, reasons=reasons
    )


@pytest.fixture
def returns(app, client, session):
    """The plan carried out through the API and the shopper's pages, then dated."""
    assert post_json(client, "/api/v1/products", PRODUCTS).status_code == 200
    for entry in PLAN:
        payload = order_payload(entry["number"], email=entry["email"], lines=entry["lines"])
        assert post_json(client, "/api/v1/orders", payload).status_code == 201
        shopper = app.test_client()
        assert login_shopper(shopper, number=entry["number"], contact=entry["email"]).status_code == 303
        qty, reason, sub, comment, photo, at, cancelled = entry["ret"]
        data = form_for(
            shopper,
            **{
                "0": {
                    "quantity": str(qty),
                    "reason": reason,
                    "sub_reason": sub,
                    "comment": comment,
                    "outcome": "refund",
                }
            },
        )
        if photo:
            data["lines-0-photos"] = [(io.BytesIO(jpeg()), "seam.jpg")]
        response = shopper.post("/order/request", data=data, content_type="multipart/form-data")
        assert response.status_code == 303, response.get_data(as_text=True)
        rma = response.headers["Location"].rsplit("/", 1)[1]
        if cancelled:
            page = shopper.get(f"/requests/{rma}")
            status = session.scalars(select(ReturnRequest.status).where(ReturnRequest.rma == rma)).one()
            session.rollback()
            cancel = shopper.post(f"/requests/{rma}/cancel", data={"csrf_token": csrf_token(page), "status": status})
            assert cancel.status_code == 303
        session.execute(update(Order).where(Order.order_number == entry["number"]).values(placed_at=entry["placed"]))
        session.execute(update(ReturnRequest).where(ReturnRequest.rma == rma).values(created_at=at))
        session.commit()
    assert session.scalars(select(ReturnRequest.status).where(ReturnRequest.status == "cancelled")).all()
    return PLAN


@pytest.fixture
def lead(client, session):
    create_staff(session, "lead@example.com", "Lena Lead", "lead", PASSWORD)
    sign_in(client, "lead@example.com")
    return client


PERSONAL = [
    "li.wei@example.com",
    "zhang.min@example.com",
    "wang.fang@example.com",
    "chen.jie@example.com",
    NAME,
    "Li",
    "Wei",
    "138 0000 0000",
    "13800000000",
    "PI-1001",
    "PI-1002",
    "PI-1003",
    "PI-1004",
    "200001",
    "@",
]


def assert_no_personal_data(text: str) -> None:
    for value in PERSONAL:
        assert value not in text, f"{value!r} leaked"


def test_ranked_list_for_november(lead, returns):
    want = expected("2026-11")
    page = lead.get("/staff/products?month=2026-11")
    assert page.status_code == 200
    rows = soup(page).select("#fix-list tbody tr[data-product]")
    assert [r["data-product"] for r in rows] == ["TEE"]  # the scarf sold but nothing came back
    cells = [td.get_text(strip=True) for td in rows[0].find_all("td")]
    assert cells[3:5] == [str(want["sold"]["TEE"]), str(want["returned"]["TEE"])] == ["3", "3"]
    assert cells[6] == str(want["requests"]["TEE"]) == "2"
    assert cells[5] == "100%"
    score = want["returned"]["TEE"] * want["returned"]["TEE"] / want["sold"]["TEE"]
    assert cells[7] == f"{score:.1f}"
    link = rows[0].find("a")["href"]
    assert link == "/staff/products/TEE?month=2026-11"


def test_the_month_picker_is_a_plain_form(lead, returns):
    page = soup(lead.get("/staff/products?month=2026-11"))
    form = page.select_one("form.month-picker")
    assert form["method"] == "get" and form["action"] == "/staff/products"
    assert page.select_one('label[for="month"]') and page.select_one("#month")["value"] == "2026-11"
    assert form.select_one('button[type="submit"]')
    assert page.select_one('a[rel="prev"]')["href"] == "/staff/products?month=2026-10"
    assert page.select_one('a[rel="next"]')["href"] == "/staff/products?month=2026-12"


def test_december_has_the_return_made_after_midnight_in_shanghai(lead, returns):
    want = expected("2026-12")
    assert want["returned"]["TEE"] == 1 and want["sold"]["TEE"] == 0
    rows = soup(lead.get("/staff/products?month=2026-12")).select("#fix-list tbody tr[data-product]")
    cells = [td.get_text(strip=True) for td in rows[0].find_all("td")]
    assert rows[0]["data-product"] == "TEE" and cells[3:5] == ["0", "1"] and cells[5] == "—"


def test_product_page_numbers(lead, returns, session):
    want = expected("2026-11")
    response = lead.get("/staff/products/TEE?month=2026-11")
    assert response.status_code == 200
    page = soup(response)
    figures = {dd["data-figure"]: dd.get_text(strip=True) for dd in page.select("#product-summary dd[data-figure]")}
    assert figures == {
        "sold": str(want["sold"]["TEE"]),
        "returned": str(want["returned"]["TEE"]),
        "rate": "100%",
        "requests": str(want["requests"]["TEE"]),
    }
    reasons = {
        (tr["data-reason"], tr["data-sub-reason"]): int(tr.find_all("td")[2].get_text(strip=True))
        for tr in page.select("#reasons tbody tr[data-reason]")
    }
    assert reasons == {(r, s): n for (p, r, s), n in want["reasons"].items() if p == "TEE"}
    assert "Too small" in page.select_one("#reasons").get_text() and "It doesn't fit" in page.get_text()
    skus = {
        tr["data-sku"]: [td.get_text(strip=True) for td in tr.find_all("td")[2:4]]
        for tr in page.select("#skus tbody tr[data-sku]")
    }
    tee_skus = {s for s in set(want["sku_sold"]) | set(want["sku_returned"]) if PRODUCT_OF[s] == "TEE"}
    assert skus == {s: [str(want["sku_sold"][s]), str(want["sku_returned"][s])] for s in tee_skus}
    trend = {
        tr["data-month"]: [td.get_text(strip=True) for td in tr.find_all("td")[1:3]]
        for tr in page.select("#trend tbody tr[data-month]")
    }
    assert len(trend) == 12 and list(trend)[-1] == "2026-11" and list(trend)[0] == "2025-12"
    for month in ("2026-10", "2026-11"):
        want_m = expected(month)
        assert trend[month] == [str(want_m["sold"]["TEE"]), str(want_m["returned"]["TEE"])]
    assert trend["2026-09"] == ["0", "0"]


def test_product_page_comments_are_scrubbed_and_photos_are_staff_thumbnails(lead, returns, session):
    page = soup(lead.get("/staff/products/TEE?month=2026-11"))
    comments = [li.blockquote.get_text() for li in page.select("#comments li") if li.blockquote]
    assert len(comments) == 2
    assert any(c.startswith("Too small. Call") for c in comments)
    assert any(c.startswith("Seam opened after one wash") for c in comments)
    text = page.get_text(" ")
    assert_no_personal_data(page.select_one("main").get_text(" ") if page.select_one("main") else text)
    for rma in session.scalars(select(ReturnRequest.rma)):
        assert rma not in str(page)
    photo = session.scalars(select(Photo)).one()
    imgs = [img["src"] for img in page.select("#product-photos img")]
    assert imgs == [f"/staff/photos/{photo.id}/thumb"]
    assert lead.get(imgs[0]).headers["Content-Type"] == "image/jpeg"
    # The December return is not November's: no comment of it.
    assert "Far too big" not in text
    assert "Far too big" in lead.get("/staff/products/TEE?month=2026-12").get_data(as_text=True)


def test_the_trend_chart_is_an_svg_image_without_scripts(lead, returns):
    page = soup(lead.get("/staff/products/TEE?month=2026-11"))
    src = page.select_one("img.chart")["src"]
    assert src == "/staff/products/TEE/trend.svg?month=2026-11"
    chart = lead.get(src)
    assert chart.status_code == 200
    assert chart.headers["Content-Type"].startswith("image/svg+xml")
    assert "script-src" not in chart.headers["Content-Security-Policy"]
    assert "default-src 'none'" in chart.headers["Content-Security-Policy"]
    body = chart.get_data(as_text=True)
    assert "<svg" in body and "<script" not in body and "2026-11" in body
    assert lead.get("/staff/products/NOPE/trend.svg").status_code == 404


def test_csv_rows_equal_the_plan_and_carry_no_personal_data(lead, returns):
    response = lead.get("/staff/products/export.csv?month=2026-11")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert 'filename="product-returns-2026-11.csv"' in response.headers["Content-Disposition"]
    body = response.get_data(as_text=True)
    assert_no_personal_data(body)
    rows = list(csv.DictReader(io.StringIO(body)))
    assert list(rows[0]) == [
        "product_code",
        "product_name",
        "sku",
        "variant",
        "category",
        "units_sold",
        "units_returned",
        "return_rate",
        "requests",
        "top_reasons",
        "sub_reasons",
        "month",
    ]
    want = expected("2026-11")
    skus = set(want["sku_sold"]) | set(want["sku_returned"])
    assert {r["sku"] for r in rows} == skus == {"TEE-S", "TEE-M", "SCARF-RED"}
    by_sku = {r["sku"]: r for r in rows}
    for sku in skus:
        row = by_sku[sku]
        assert row["product_code"] == PRODUCT_OF[sku] and row["month"] == "2026-11"
        assert int(row["units_sold"]) == want["sku_sold"][sku]
        assert int(row["units_returned"]) == want["sku_returned"][sku]
        assert float(row["return_rate"]) == pytest.approx(want["sku_returned"][sku] / want["sku_sold"][sku])
    assert by_sku["TEE-S"]["top_reasons"] == "size_fit 2" and by_sku["TEE-S"]["sub_reasons"] == "size_fit/too_small 2"
    assert by_sku["TEE-M"]["top_reasons"] == "defective 1"
    assert by_sku["TEE-M"]["sub_reasons"] == "defective/poor_stitching 1"
    assert by_sku["TEE-S"]["variant"] == "S" and by_sku["TEE-S"]["product_name"] == "T-shirt"
    assert by_sku["SCARF-RED"]["units_returned"] == "0" and by_sku["SCARF-RED"]["top_reasons"] == ""
    assert by_sku["TEE-S"]["requests"] == "1" and by_sku["TEE-M"]["requests"] == "1"
    page = soup(lead.get("/staff/products?month=2026-11"))
    assert page.select_one('a[href="/staff/products/export.csv?month=2026-11"]')


@pytest.mark.parametrize("month", ["2026-13", "nov", "2026-1", "../../etc", "2026-11-01"])
def test_a_bad_month_is_a_400_with_a_message(lead, returns, month):
    for path in (
        "/staff/products",
        "/staff/products/TEE",
        "/staff/products/export.csv",
        "/staff/products/TEE/trend.svg",
    ):
        response = lead.get(path, query_string={"month": month})
        assert response.status_code == 400
        assert "YYYY-MM" in response.get_data(as_text=True)


def test_an_unknown_product_is_404(lead, returns):
    assert lead.get("/staff/products/NO-SUCH?month=2026-11").status_code == 404
    assert lead.get("/staff/products/TEE-S?month=2026-11").status_code == 404  # a SKU of TEE, not a product


def test_without_a_month_the_shops_current_month_is_shown(lead, returns):
    now = datetime.now(UTC).astimezone(SHANGHAI).strftime("%Y-%m")
    page = soup(lead.get("/staff/products"))
    assert page.select_one("#month")["value"] == now


@pytest.mark.parametrize(
    "role, status",
    [("agent", 403), ("warehouse", 403), ("finance", 403), ("lead", 200), ("manager", 200), ("admin", 200)],
)
def test_who_may_read_it(client, session, returns, role, status):
    create_staff(session, f"{role}@example.com", role.title(), role, PASSWORD)
    sign_in(client, f"{role}@example.com")
    for path in (
        "/staff/products?month=2026-11",
        "/staff/products/TEE?month=2026-11",
        "/staff/products/export.csv?month=2026-11",
        "/staff/products/TEE/trend.svg?month=2026-11",
    ):
        assert client.get(path).status_code == status, path


def test_the_product_page_in_chinese(lead, returns):
    chinese = {"Accept-Language": "zh-CN,zh;q=0.9"}
    page = soup(lead.get("/staff/products/TEE?month=2026-11", headers=chinese))
    text = page.get_text(" ")
    assert "按商品看退货" in text
    assert "退货原因" in text and "售出件数" in text and "退回件数" in text
    assert "尺码不合适" in text or "不合身" in text
    ranked = soup(lead.get("/staff/products?month=2026-11", headers=chinese)).get_text(" ")
    assert "本月该改进什么" in ranked or "2026-11 该改进什么" in ranked


def test_the_staff_menu_links_the_products_page_for_those_who_may_read_it(client, session):
    create_staff(session, "lead@example.com", "Lena Lead", "lead", PASSWORD)
    create_staff(session, "agent@example.com", "Al Agent", "agent", PASSWORD)
    sign_in(client, "lead@example.com")
    assert soup(client.get("/staff/")).select_one('nav.staff-nav a[href="/staff/products"]')
    other = client.application.test_client()
    sign_in(other, "agent@example.com")
    assert not soup(other.get("/staff/")).select_one('nav.staff-nav a[href="/staff/products"]')


def test_the_product_page_offers_the_months_csv(lead, returns):
    page = soup(lead.get("/staff/products/TEE?month=2026-11"))
    link = page.select_one('a[href="/staff/products/export.csv?month=2026-11"]')
    assert link is not None and link.has_attr("download")


def test_a_sku_the_shop_never_described_is_its_own_product(app, lead, session):
    from tests.helpers import submit_coat

    submit_coat(app, number="HV-7")  # the coat's SKU was never sent as a product
    session.execute(update(Order).values(placed_at=datetime(2026, 11, 3, tzinfo=UTC)))
    session.execute(update(ReturnRequest).values(created_at=datetime(2026, 11, 4, tzinfo=UTC)))
    session.commit()
    rows = soup(lead.get("/staff/products?month=2026-11")).select("#fix-list tbody tr[data-product]")
    assert [r["data-product"] for r in rows] == ["COAT-M"]
    assert "Coat" in rows[0].get_text()
    page = soup(lead.get("/staff/products/COAT-M?month=2026-11"))
    figures = {dd["data-figure"]: dd.get_text(strip=True) for dd in page.select("#product-summary dd[data-figure]")}
    assert figures["sold"] == "1" and figures["returned"] == "1" and figures["requests"] == "1"
