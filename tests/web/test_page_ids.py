"""Every id on a staff page is used once and every label names a field that exists: a label that
points at another form's field sends a click, a screen reader and an input to the wrong place."""

from __future__ import annotations

from collections import Counter

from portal.services.staff import create_staff
from tests.helpers import PASSWORD, STAFF_ROUTES, inspected, sign_in, soup


def problems(html) -> list[str]:
    doc = soup(html)
    ids = Counter(tag["id"] for tag in doc.find_all(id=True))
    found = [f"id {name!r} used {n} times" for name, n in ids.items() if n > 1]
    found += [
        f"label for {label['for']!r} names no element"
        for label in doc.find_all("label", attrs={"for": True})
        if label["for"] not in ids
    ]
    return found


def test_staff_pages_with_many_forms_have_unique_ids_and_labels_that_point_home(app, client, session):
    create_staff(session, "agent@example.com", "Ann Agent", "agent", PASSWORD)
    create_staff(session, "admin@example.com", "Ada Admin", "admin", PASSWORD)
    req = inspected(app, client, session, number="SO-1001", quantity="2", missing=1)  # a discrepancy: most forms
    for email in ("agent@example.com", "admin@example.com"):
        staff = app.test_client()
        assert sign_in(staff, email).status_code == 303
        role = email.split("@")[0]
        # Every page the role can open (the route table every staff route is in), and the request page.
        paths = [f"/staff/requests/{req.rma}"] + [
            path
            for method, path, expected in STAFF_ROUTES
            if method == "GET" and expected.get(role) == 200 and "999999" not in path and not path.endswith(".csv")
        ]
        for path in paths:
            page = staff.get(path)
            assert page.status_code == 200, path
            assert problems(page) == [], (email, path)
