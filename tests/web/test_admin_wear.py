"""The admin wear page: the model against the warehouse's grades, and a threshold per product category
that decides the labels of photos scored from then on (before the setting, before the model's own)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.db.models import AuditLog, Photo, ReturnLine, ReturnRequest, WearThreshold
from portal.jobs import score_photos, wear_model
from portal.services.staff import create_staff
from portal.vision.classifier import clear_cache
from tests.helpers import PASSWORD, csrf_token, sign_in
from tests.integration.test_photo_scoring import fabric, submit_with_photos


@pytest.fixture(autouse=True)
def fresh_model_cache():
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def admin(app, session):
    create_staff(session, "admin@example.com", "Ada Admin", "admin", PASSWORD)
    staff = app.test_client()
    assert sign_in(staff, "admin@example.com").status_code == 303
    return staff


@pytest.fixture
def graded(client, app, order, session):
    """Four photos of one line the warehouse graded worn; scored once. (category, request id)"""
    app.config["JOBS_MODE"] = "off"  # scored by the test, once per threshold
    submit_with_photos(client, [fabric(True, 8), fabric(False, 9), fabric(True, 5), fabric(False, 6)])
    line = session.scalars(select(ReturnLine)).one()
    line.grade = "C"
    session.commit()
    request_id = session.scalars(select(ReturnRequest.id)).one()
    assert score_photos(app, request_id) == 4
    return line.order_line.category, request_id


def rescore(app, session, request_id) -> list[tuple[float, str]]:
    for photo in session.scalars(select(Photo)):
        photo.score_state, photo.wear_label = "pending", None
    session.commit()
    assert score_photos(app, request_id) == 4
    session.expire_all()
    return [(p.wear_probability, p.wear_label) for p in session.scalars(select(Photo).order_by(Photo.id))]


def labels_at(scored, threshold) -> list[str]:
    return ["wear" if p >= threshold else "no_wear" for p, _ in scored]


def post_threshold(staff, **form):
    token = csrf_token(staff.get("/admin/wear").get_data(as_text=True))
    return staff.post("/admin/wear/thresholds", data={"csrf_token": token, **form})


def test_a_threshold_set_on_the_page_labels_new_scores_before_the_setting(app, session, admin, graded):
    category, request_id = graded
    model = wear_model(app)
    assert model is not None
    page = admin.get("/admin/wear")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and model.version in text
    assert f'data-category="{category}"' in text and "4 <span" in text  # four graded photos in the category

    app.config["WEAR_THRESHOLDS"] = {category: 0.05}  # the setting
    before = rescore(app, session, request_id)
    assert [label for _, label in before] == labels_at(before, 0.05)
    # The test means something only if some photo's label depends on the threshold chosen.
    assert any(0.05 <= p < 0.95 for p, _ in before), before

    done = post_threshold(admin, category=f"  {category.upper()} ", threshold="0.95", action="set")
    assert done.status_code == 303 and done.headers["Location"].endswith("/admin/wear")
    row = session.scalars(select(WearThreshold)).one()
    assert (row.category, row.threshold, row.model_version) == (category, 0.95, model.version)
    entry = session.scalars(select(AuditLog).where(AuditLog.action == "wear_threshold")).one()
    assert entry.before is None and entry.after == {"threshold": 0.95} and category in entry.target
    after = rescore(app, session, request_id)
    assert [label for _, label in after] == labels_at(after, 0.95)  # the page's, not the setting's
    text = admin.get("/admin/wear").get_data(as_text=True)
    assert "set here by Ada Admin" in text and "0.95" in text

    # A threshold kept for another model version means nothing for this one.
    session.add(WearThreshold(model_version="wear-v0@0.1.0+00000000", category=category, threshold=0.5))
    session.commit()
    assert rescore(app, session, request_id) == after

    cleared = post_threshold(admin, category=category, action="clear")
    assert cleared.status_code == 303
    assert session.scalars(select(WearThreshold).where(WearThreshold.model_version == model.version)).all() == []
    again = rescore(app, session, request_id)
    assert [label for _, label in again] == labels_at(again, 0.05)  # back to the setting


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"threshold": "1.5"}, "The threshold is a number from 0.05 to 0.95."),
        ({"threshold": "0"}, "The threshold is a number from 0.05 to 0.95."),
        ({"threshold": ""}, "The threshold is a number from 0.05 to 0.95."),
        ({"threshold": "often"}, "Not a valid float value."),
        ({"threshold": "nan"}, "The threshold is a number from 0.05 to 0.95."),
        ({"category": "", "threshold": "0.5"}, "Name the product category."),
        ({"category": "x" * 65, "threshold": "0.5"}, "Field cannot be longer than 64 characters."),
    ],
)
def test_a_bad_threshold_is_refused_with_a_message_and_nothing_changes(app, session, admin, graded, form, message):
    category, _ = graded
    response = post_threshold(admin, **{"category": category, "action": "set", **form})
    text = response.get_data(as_text=True)
    assert response.status_code == 422 and message in text
    assert session.scalars(select(WearThreshold)).all() == []
    assert session.scalars(select(AuditLog).where(AuditLog.action == "wear_threshold")).all() == []
    if form.get("category", category):
        assert f'value="{form.get("category", category)}"' in text  # what was typed is kept


def test_without_a_model_the_page_says_so_and_takes_no_threshold(app, session, admin, tmp_path):
    empty = tmp_path / "no-models"
    empty.mkdir()
    app.config["MODELS_PATH"] = str(empty)
    page = admin.get("/admin/wear")
    assert page.status_code == 200 and "No wear model is loaded" in page.get_data(as_text=True)
    refused = post_threshold(admin, category="shoes", threshold="0.5", action="set")
    assert refused.status_code == 409 and "a threshold belongs to one model" in refused.get_data(as_text=True)
    assert session.scalars(select(WearThreshold)).all() == []


def test_the_page_is_for_admins(app, session, graded):
    create_staff(session, "lead@example.com", "Lee Lead", "lead", PASSWORD)
    lead = app.test_client()
    assert sign_in(lead, "lead@example.com").status_code == 303
    assert lead.get("/admin/wear").status_code == 403
    token = csrf_token(lead.get("/staff/notifications").get_data(as_text=True))
    refused = lead.post("/admin/wear/thresholds", data={"csrf_token": token, "category": "shoes", "threshold": "0.5"})
    assert refused.status_code == 403
    assert session.scalars(select(WearThreshold)).all() == []
