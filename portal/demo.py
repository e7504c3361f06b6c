"""Demo data: a small catalogue and about 50 orders, one or more for every policy case.

Dates are relative to now, so re-running ``returns-portal demo`` refreshes the
cases (orders are upserted by number).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.adapters.carriers import carrier_from_config
from portal.db.models import (
    BusinessCalendarRow,
    CannedReplyRow,
    Order,
    ReturnRequest,
    RoutingRuleRow,
    SlaPolicy,
    TeamMember,
)
from portal.domain.actors import Actor, ActorKind
from portal.domain.lifecycle import Status
from portal.domain.orders import parse_order, parse_products
from portal.domain.roles import AGENT, LEAD, MANAGER, ROLES
from portal.domain.sla import LadderAction
from portal.services.filing import LineRequest, open_return
from portal.services.orders import stage_order, upsert_products
from portal.services.policies import published_policy
from portal.services.shipping import issue_label
from portal.services.sla import seed_holidays
from portal.services.staff import ensure_staff
from portal.services.tickets import ensure_team
from portal.storage import store_from_config

CATALOGUE = [
    ("TEE", "Organic cotton T-shirt", "tops", [("TEE-S", "S", 20), ("TEE-M", "M", 0), ("TEE-L", "L", 15)]),
    ("JEANS", "Slim jeans", "bottoms", [("JEANS-30", "30", 8), ("JEANS-32", "32", 5), ("JEANS-34", "34", 0)]),
    ("SNEAKER", "Canvas sneakers", "shoes", [("SNK-40", "EU 40", 6), ("SNK-41", "EU 41", 4), ("SNK-42", "EU 42", 3)]),
    ("BAG", "Leather tote bag", "bags", [("BAG-BRN", "Brown", 3), ("BAG-BLK", "Black", 2)]),
    ("SWEATER", "Merino sweater", "tops", [("SWT-M", "M", 4), ("SWT-L", "L", 4)]),
    ("COAT", "Cashmere coat", "outerwear", [("COAT-M", "M", 2), ("COAT-L", "L", 1)]),
    ("SCARF", "Silk scarf", "accessories", [("SCARF-RED", "Red", 10), ("SCARF-BLU", "Blue", 10)]),
    ("SOCKS", "Bamboo socks", "accessories", [("SOCKS-1", "One size", 50)]),
    ("BRIEFS", "Cotton briefs", "underwear", [("BRF-M", "M", 30)]),
    ("LIPSTICK", "Matte lipstick", "cosmetics-opened", [("LIP-01", "Rose", 40)]),
    ("TEA", "Oolong tea tin", "perishables", [("TEA-100", "100 g", 40)]),
    ("MUG", "Engraved mug", "customised", [("MUG-ENG", "Engraved", 99)]),
]

PRICES = {
    "TEE": ("TEE-S", "Organic cotton T-shirt", "S", "tops", "99.00"),
    "JEANS": ("JEANS-30", "Slim jeans", "30", "bottoms", "399.00"),
    "SNEAKER": ("SNK-41", "Canvas sneakers", "EU 41", "shoes", "459.00"),
    "BAG": ("BAG-BRN", "Leather tote bag", "Brown", "bags", "899.00"),
    "SWEATER": ("SWT-M", "Merino sweater", "M", "tops", "599.00"),
    "COAT": ("COAT-M", "Cashmere coat", "M", "outerwear", "2899.00"),
    "SCARF": ("SCARF-RED", "Silk scarf", "Red", "accessories", "259.00"),
    "SOCKS": ("SOCKS-1", "Bamboo socks", "One size", "accessories", "12.00"),
    "BRIEFS": ("BRF-M", "Cotton briefs", "M", "underwear", "79.00"),
    "LIPSTICK": ("LIP-01", "Matte lipstick", "Rose", "cosmetics-opened", "129.00"),
    "TEA": ("TEA-100", "Oolong tea tin", "100 g", "perishables", "68.00"),
    "MUG": ("MUG-ENG", "Engraved mug", "Engraved", "customised", "88.00"),
}


@dataclass(frozen=True)
class Case:
    name: str
    items: tuple[tuple[str, int], ...]  # product code, quantity
    delivered_days_ago: int | None = 2
    gift: bool = False
    final_sale: tuple[str, ...] = ()
    discount: str = "0"
    email: str | None = None


CASES = [
    Case("recently delivered", (("TEE", 2), ("JEANS", 1))),
    Case("recently delivered, shoes", (("SNEAKER", 1),)),
    Case("delivered today", (("SCARF", 1),), delivered_days_ago=0),
    Case("day 7: last day for any reason", (("SWEATER", 1),), delivered_days_ago=7),
    Case("day 8: quality reasons only", (("TEE", 1), ("SCARF", 1)), delivered_days_ago=8),
    Case("day 15: last day for quality reasons", (("JEANS", 1),), delivered_days_ago=15),
    Case("outside every window", (("SWEATER", 1),), delivered_days_ago=30),
    Case("not delivered yet", (("TEE", 1),), delivered_days_ago=None),
    Case("final-sale line", (("SCARF", 1), ("TEE", 1)), final_sale=("SCARF",)),
    Case("excluded categories", (("BRIEFS", 2), ("LIPSTICK", 1), ("TEA", 1), ("MUG", 1), ("TEE", 1))),
    Case("gift order", (("SWEATER", 1),), gift=True),
    Case("high value", (("COAT", 1),)),
    Case("high value, two bags", (("BAG", 2),)),
    Case("already partly returned", (("TEE", 3),)),
    Case("multi-line with discounts", (("TEE", 2), ("JEANS", 1), ("SCARF", 1)), discount="60.00"),
    Case("cheap item (returnless refund)", (("SOCKS", 1),)),
    Case("frequent returner", (("TEE", 4),), email="frequent@example.com"),
]


def _order_payload(number: str, case: Case, idx: int, now: datetime) -> dict:
    delivered = None if case.delivered_days_ago is None else now - timedelta(days=case.delivered_days_ago, hours=1)
    placed = (delivered or now) - timedelta(days=3)
    lines = []
    total_qty_value = sum(Decimal(PRICES[code][4]) * qty for code, qty in case.items)
    discount_left = Decimal(case.discount)
    for n, (code, qty) in enumerate(case.items, start=1):
        sku, name, variant, category, price = PRICES[code]
        share = Decimal(0)
        if discount_left and total_qty_value:
            share = (Decimal(case.discount) * Decimal(price) * qty / total_qty_value).quantize(Decimal("0.01"))
            if n == len(case.items):
                share = discount_left
            discount_left -= share
        lines.append(
            {
                "line_id": str(n),
                "sku": sku,
                "product_name": name,
                "variant": variant,
                "category": category,
                "quantity": qty,
                "unit_price": price,
                "discount": str(share),
                "tax": "0",  # CNY prices include VAT
                "final_sale": code in case.final_sale,
            }
        )
    return {
        "order_number": number,
        "placed_at": placed.isoformat(),
        "delivered_at": delivered.isoformat() if delivered else None,
        "currency": "CNY",
        "channel": ["web", "tmall", "wechat", "jd"][idx % 4],
        "customer": {
            "name": f"Demo Shopper {idx}",
            "email": case.email or f"shopper{idx}@example.com",
            "phone": f"+86 138 0000 {idx:04d}",
            "postcode": f"2000{idx % 10}{idx % 7}",
        },
        "payment": {"method": ["alipay", "wechat_pay", "card"][idx % 3], "reference": f"PAY-{idx:05d}"},
        "shipping_paid": "10.00",
        "gift": case.gift,
        "lines": lines,
    }


def demo_orders(now: datetime | None = None) -> list[tuple[str, dict]]:
    """About 50 orders: each case three times (the first of each is the one to try)."""
    now = now or datetime.now(UTC)
    out = []
    idx = 0
    for _copy in range(3):
        for case in CASES:
            idx += 1
            number = f"DEMO-{1000 + idx}"
            out.append((case.name, _order_payload(number, case, idx, now)))
    return out


def seed(session: Session, now: datetime | None = None) -> list[tuple[str, str]]:
    """Load the catalogue and orders; returns (case name, order number) for the first of each case."""
    products = parse_products(
        {
            "products": [
                {
                    "product_code": code,
                    "name": name,
                    "category": cat,
                    "variants": [{"sku": s, "variant": v, "stock": st} for s, v, st in variants],
                }
                for code, name, cat, variants in CATALOGUE
            ]
        }
    )
    upsert_products(session, products)
    firsts: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name, payload in demo_orders(now):
        stage_order(session, parse_order(payload))
        if name not in seen:
            seen.add(name)
            firsts.append((name, payload["order_number"]))
    session.commit()
    return firsts


def seed_requests(app, session: Session) -> int:
    """Earlier requests that some cases need: a partly returned order and a frequent returner.

    Approved ones get their pickup code as a shopper's would, so the warehouse has parcels to scan;
    approved demo requests left without one by an earlier demo get it now."""

    active = published_policy(session, app.config)
    store = store_from_config(app.config)
    carrier = carrier_from_config(app.config)
    now = datetime.now(UTC)
    made = 0
    targets: list[tuple[str, int]] = []
    for name, payload in demo_orders(now):
        if name == "already partly returned":
            targets.append((payload["order_number"], 1))
        elif name == "frequent returner" and payload["order_number"] != _first_of(name, now):
            targets.append((payload["order_number"], 2))
    for number, count in targets:
        order = session.scalars(select(Order).where(Order.order_number == number)).one()
        if session.scalar(select(ReturnRequest.id).where(ReturnRequest.order_id == order.id).limit(1)):
            continue
        for _ in range(count):
            open_return(
                session,
                order,
                [LineRequest("1", 1, "size_fit", "too_small", outcome="refund")],
                active.policy,
                now,
                "en",
                store,
                actor=Actor(ActorKind.SYSTEM, "demo"),
                carrier=carrier,
                policy_version_id=active.id,
            )
            made += 1
    demo_numbers = [payload["order_number"] for _, payload in demo_orders(now)]
    waiting = session.scalars(
        select(ReturnRequest)
        .join(Order)
        .where(
            Order.order_number.in_(demo_numbers),
            ReturnRequest.status == Status.APPROVED.value,
            ReturnRequest.pickup_code.is_(None),
            ReturnRequest.returnless.is_(False),
        )
    ).all()
    for request in waiting:
        issue_label(session, request, carrier, Actor(ActorKind.SYSTEM, "demo"))
    session.commit()
    return made


def _first_of(case_name: str, now: datetime) -> str:
    return next(p["order_number"] for n, p in demo_orders(now) if n == case_name)


DEMO_STAFF = [(role, f"{role}@demo.example", f"demo-{role}-pass") for role in ROLES]


def seed_staff(session: Session) -> list[tuple[str, str, str]]:
    """One account per role, teams with members, and routing rules; returns (role, email, password)."""

    users = {
        role: ensure_staff(session, email, f"Demo {role.title()}", role, password)
        for role, email, password in DEMO_STAFF
    }
    service = ensure_team(session, "service", "Customer service")
    inspection = ensure_team(session, "inspection", "Inspection desk")
    finance = ensure_team(session, "finance", "Finance desk")
    logistics = ensure_team(session, "logistics", "Carrier claims")
    service.lead_id = inspection.lead_id = logistics.lead_id = users[LEAD].id
    finance.lead_id = users[MANAGER].id
    for team in (service, inspection, finance, logistics):
        for role in (AGENT, LEAD):
            exists = session.scalars(
                select(TeamMember).where(TeamMember.team_id == team.id, TeamMember.staff_id == users[role].id)
            ).first()
            if exists is None:
                session.add(TeamMember(team_id=team.id, staff_id=users[role].id, cap=25))
    if session.scalars(select(RoutingRuleRow.id).limit(1)).first() is None:
        session.add_all(
            [
                RoutingRuleRow(
                    position=10,
                    name="Photos look worn",
                    conditions={"min_wear": 0.7},
                    team=inspection,
                    priority="high",
                    ticket_class="C",
                ),
                RoutingRuleRow(
                    position=20,
                    name="High value",
                    conditions={"min_value": "1000"},
                    team=finance,
                    priority="high",
                    ticket_class="A",
                ),
                RoutingRuleRow(
                    position=30,
                    name="Delivery damage",
                    conditions={"responsibilities": ["logistics"]},
                    team=logistics,
                    priority="normal",
                    ticket_class="C",
                ),
                RoutingRuleRow(
                    position=40,
                    name="Frequent returner",
                    conditions={"frequent_returner": True},
                    team=service,
                    priority="high",
                    ticket_class="B",
                ),
                RoutingRuleRow(
                    position=100,
                    name="Everything else",
                    conditions={},
                    team=service,
                    priority="normal",
                    ticket_class="B",
                ),
            ]
        )
    seed_sla(session, [service, inspection, finance, logistics], users[MANAGER].id)
    seed_replies(session)
    session.commit()
    return DEMO_STAFF


DEMO_LADDER = [
    {"key": "remind", "at_fraction": 0.75, "action": LadderAction.REMIND.value},
    {"key": "lead", "after_breach_minutes": 0, "action": LadderAction.MOVE_TO_LEAD.value},
    {"key": "manager", "after_breach_minutes": 120, "action": LadderAction.NOTIFY_MANAGER.value},
]


def seed_sla(session: Session, teams, manager_id: int) -> None:
    """A Shanghai office calendar with China's public holidays, and targets per priority."""

    calendar = session.scalars(select(BusinessCalendarRow).where(BusinessCalendarRow.code == "cn-office")).one_or_none()
    if calendar is None:
        week = {d: ["09:00-12:00", "13:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
        calendar = BusinessCalendarRow(
            code="cn-office", name="Shanghai office", timezone="Asia/Shanghai", weekly=week, country="CN"
        )
        session.add(calendar)
        session.flush()
        year = datetime.now(UTC).year
        seed_holidays(session, calendar, "CN", [year, year + 1])
    for team in teams:
        team.manager_id = team.manager_id or manager_id
    targets = {"low": (480, 2880), "normal": (240, 1440), "high": (120, 480), "urgent": (60, 240)}
    for priority, (first, resolution) in targets.items():
        exists = session.scalars(
            select(SlaPolicy).where(SlaPolicy.team_id.is_(None), SlaPolicy.priority == priority)
        ).first()
        if exists is None:
            session.add(
                SlaPolicy(
                    team_id=None,
                    priority=priority,
                    first_response_minutes=first,
                    resolution_minutes=resolution,
                    calendar_id=calendar.id,
                    ladder=DEMO_LADDER,
                )
            )


DEMO_REPLIES = [
    (
        "Wrong item: apology and reshipment",
        "en",
        ["wrong_item"],
        ["wrong", "different"],
        "We are sorry we sent the wrong item. Please keep it ready for the courier; we are shipping the right one today and will send you its tracking number.",
    ),
    (
        "发错商品：致歉并补发",
        "zh_Hans",
        ["wrong_item"],
        ["发错", "不一样"],
        "非常抱歉给您发错了商品。请把它准备好交给快递员，我们今天就为您补发正确的商品，并把物流单号发给您。",
    ),
    (
        "Damaged in transit",
        "en",
        ["damaged"],
        ["broken", "crushed"],
        "We are sorry your parcel arrived damaged. The return shipping is on us, and we have opened a claim with the courier.",
    ),
    (
        "运输途中损坏",
        "zh_Hans",
        ["damaged"],
        ["破", "压坏"],
        "很抱歉您的包裹在运输途中受损。退货运费由我们承担，我们已向快递公司提出索赔。",
    ),
    (
        "Size help",
        "en",
        ["size_fit"],
        ["small", "large", "size"],
        "Thank you for telling us about the fit. Our size chart is on every product page; an exchange to another size is free while in stock.",
    ),
]


def seed_replies(session: Session) -> None:
    if session.scalars(select(CannedReplyRow.id).limit(1)).first() is not None:
        return
    for name, locale, reasons, keywords, body in DEMO_REPLIES:
        session.add(
            CannedReplyRow(name=name, locale=locale, reasons=reasons, keywords=keywords, body=body, active=True)
        )
