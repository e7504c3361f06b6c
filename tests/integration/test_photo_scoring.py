"""Photos scored by the shipped wear model in the background; staff see scores and score maps."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from portal.db.models import Photo, ReturnLine, ReturnRequest, Ticket
from portal.domain.wear import DEFAULT_MODEL
from portal.services.staff import create_staff
from portal.vision.classifier import clear_cache
from tests.helpers import PASSWORD, form_for, login_shopper, order_payload, post_json, sign_in


def fabric(worn: bool, seed: int) -> bytes:
    """A knit-like texture, with a dark stain when ``worn``."""
    from portal.vision.train.synth import generate

    images, labels, _ = generate(8, seed=seed, size=256)
    pick = next(i for i, label in enumerate(labels) if bool(label) == worn)
    buf = io.BytesIO()
    Image.fromarray(np.asarray(images[pick])).save(buf, "JPEG", quality=92)
    return buf.getvalue()


@pytest.fixture(autouse=True)
def fresh_model_cache():
    clear_cache()
    yield
    clear_cache()


def submit_with_photos(client, photos):
    assert login_shopper(client).status_code == 303
    data = form_for(client, **{"0": {"quantity": "1", "reason": "damaged", "outcome": "refund"}})
    data["lines-0-photos"] = [(io.BytesIO(p), f"p{i}.jpg") for i, p in enumerate(photos)]
    response = client.post("/order/request", data=data, content_type="multipart/form-data")
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    return response.headers["Location"].rsplit("/", 1)[1]


def test_photos_are_scored_and_shown_to_staff(client, app, order, session):
    rma = submit_with_photos(client, [fabric(True, 1), fabric(False, 2)])
    photos = session.scalars(select(Photo).order_by(Photo.id)).all()
    assert [p.score_state for p in photos] == ["scored", "scored"]
    assert all(0 <= p.wear_probability <= 1 and p.model_version and p.score_map for p in photos)
    assert len(photos[0].score_map) == len(photos[0].score_map[0]) > 1
    req = session.scalars(select(ReturnRequest)).one()
    assert req.max_wear == max(p.wear_probability for p in photos)
    assert any(e.kind == "scored" for e in req.events)
    ticket = session.scalars(select(Ticket)).one()
    # Auto-approved, so the ticket closed before scoring and was not routed again.
    assert ticket.status == "closed" and ticket.routing_inputs["max_wear"] is None

    create_staff(session, "agent@example.com", "Agent", "agent", PASSWORD)
    staff = app.test_client()
    sign_in(staff, "agent@example.com")
    page = staff.get(f"/staff/requests/{rma}").get_data(as_text=True)
    assert re.search(r"wear \d+%", page) and "Where the model looked" in page and "scoring" not in page
    overlay = staff.get(f"/staff/photos/{photos[0].id}/overlay")
    assert overlay.status_code == 200 and overlay.headers["Content-Type"] == "image/jpeg"
    with Image.open(io.BytesIO(overlay.data)) as img:
        assert img.size == (photos[0].width, photos[0].height)
    thumb = staff.get(f"/staff/photos/{photos[0].id}/thumb")
    with Image.open(io.BytesIO(thumb.data)) as img:
        assert max(img.size) <= 320
    # The shopper never sees the score.
    shopper_page = client.get(f"/requests/{rma}").get_data(as_text=True)
    assert "wear" not in shopper_page.lower()  # the model's opinion is for staff only


def test_worn_photos_score_higher_than_clean_ones(client, app, order, session):
    submit_with_photos(client, [fabric(True, s) for s in (11, 12, 13)] + [fabric(False, s) for s in (21, 22)])
    by_name = {p.id: p.wear_probability for p in session.scalars(select(Photo).order_by(Photo.id))}
    scores = list(by_name.values())
    assert np.mean(scores[:3]) > np.mean(scores[3:])


def test_without_a_usable_model_photos_are_not_scored(client, app, order, session, tmp_path):
    broken = tmp_path / "models"
    broken.mkdir()
    (broken / f"{DEFAULT_MODEL}.json").write_text("{not json")
    (broken / f"{DEFAULT_MODEL}.onnx").write_bytes(b"\0" * 10)
    app.config["MODELS_PATH"] = str(broken)
    rma = submit_with_photos(client, [fabric(True, 3)])
    photo = session.scalars(select(Photo)).one()
    assert photo.score_state == "not_scored" and photo.wear_probability is None
    create_staff(session, "agent@example.com", "Agent", "agent", PASSWORD)
    staff = app.test_client()
    sign_in(staff, "agent@example.com")
    page = staff.get(f"/staff/requests/{rma}").get_data(as_text=True)
    assert "not scored" in page and "no usable wear model" in page
    assert (
        session.scalars(select(ReturnRequest.status)).one() == "label_issued"
    )  # the request carries on (auto-approved by value)


def test_photo_panel_polls_while_scoring(client, app, order, session):
    app.config["JOBS_MODE"] = "off"  # nothing scores: the photos stay pending
    rma = submit_with_photos(client, [fabric(True, 4)])
    create_staff(session, "agent@example.com", "Agent", "agent", PASSWORD)
    staff = app.test_client()
    sign_in(staff, "agent@example.com")
    fragment = staff.get(f"/staff/requests/{rma}/photos", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert (
        fragment.lstrip().startswith('<section id="photos"')
        and 'hx-trigger="every 2s"' in fragment
        and "scoring" in fragment
    )
    from portal.jobs import score_pending_photos

    assert score_pending_photos(app) == 1
    fragment = staff.get(f"/staff/requests/{rma}/photos", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "every 2s" not in fragment and re.search(r"wear \d+%", fragment)


@pytest.mark.parametrize("name", ["wear-v1", "wear-v1-int8", "wear-v2"])
def test_the_model_is_chosen_by_setting(client, app, order, session, name):
    """PORTAL_WEAR_MODEL picks the shipped model; each photo records which one scored it."""
    app.config["WEAR_MODEL"] = name
    submit_with_photos(client, [fabric(True, 3)])
    photo = session.scalars(select(Photo)).one()
    assert photo.score_state == "scored" and photo.model_version.startswith(f"{name}@")


def test_wear_report_and_dataset_export(client, app, order, session, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from portal.cli import main

    submit_with_photos(client, [fabric(True, 5), fabric(False, 6)])
    line = session.scalars(select(ReturnLine)).one()
    line.grade = "C"  # the warehouse saw wear
    session.commit()
    for key, value in (
        ("INSTANCE_PATH", app.config["INSTANCE_PATH"]),
        ("DATABASE_URL", app.config["DATABASE_URL"]),
        ("SECRET_KEY", app.config["SECRET_KEY"]),
        ("API_SECRET", app.config["API_SECRET"]),
    ):
        monkeypatch.setenv(f"PORTAL_{key}", value)
    runner = CliRunner()
    report = runner.invoke(main, ["wear", "report"], catch_exceptions=False)
    assert f"model {DEFAULT_MODEL}@" in report.output and "2 graded photos" in report.output
    out = tmp_path / "dataset"
    export = runner.invoke(main, ["wear", "export-dataset", str(out)], catch_exceptions=False)
    assert "wrote 2 labelled photos" in export.output
    assert len(list((out / "wear").glob("*.jpg"))) == 2
    assert (out / "labels.csv").read_text().count("\n") == 3


def test_report_with_nothing_graded(app, monkeypatch):
    from click.testing import CliRunner

    from portal.cli import main

    for key in ("INSTANCE_PATH", "DATABASE_URL", "SECRET_KEY", "API_SECRET"):
        monkeypatch.setenv(f"PORTAL_{key}", app.config[key])
    result = CliRunner().invoke(main, ["wear", "report"], catch_exceptions=False)
    assert "no graded photos yet" in result.output


def test_scores_reach_the_routing_of_a_ticket_under_review(client, app, session):
    """A request waiting for review is routed again with its highest wear score."""

    coat = [
        {
            "line_id": "1",
            "sku": "COAT-M",
            "product_name": "Coat",
            "variant": "M",
            "category": "outerwear",
            "quantity": 1,
            "unit_price": "2899.00",
            "discount": "0",
            "tax": "0",
            "final_sale": False,
        }
    ]
    post_json(client, "/api/v1/orders", order_payload("HV-9", lines=coat))
    assert login_shopper(client, number="HV-9").status_code == 303
    data = form_for(client, **{"0": {"quantity": "1", "reason": "damaged", "outcome": "refund"}})
    data["lines-0-photos"] = [(io.BytesIO(fabric(True, 7)), "coat.jpg")]
    assert client.post("/order/request", data=data, content_type="multipart/form-data").status_code == 303
    req = session.scalars(select(ReturnRequest)).one()
    ticket = session.scalars(select(Ticket)).one()
    assert req.status == "pending_review" and req.max_wear is not None
    assert ticket.status == "open" and ticket.routing_inputs["max_wear"] == req.max_wear


def test_the_thumbnail_the_model_scores_gives_the_kept_photos_answer():
    """The model scores the 320 px thumbnail made at intake, not the kept photo: same answer."""
    from portal import resource_dir
    from portal.vision.classifier import get_model
    from portal.vision.intake import clean_photo
    from portal.vision.train.synth import generate

    model = get_model(str(resource_dir("models")), "wear-v1")
    assert model is not None
    images, labels, _ = generate(16, seed=11, size=768)
    assert 0 < sum(bool(v) for v in labels) < 16  # both kinds in the sample
    kept, thumbs = [], []
    for image in images:
        buf = io.BytesIO()
        Image.fromarray(np.asarray(image)).save(buf, "JPEG", quality=92)
        clean = clean_photo(buf.getvalue(), "photo.jpg", 10 * 1024 * 1024)
        kept.append(Image.open(io.BytesIO(clean.data)).convert("RGB"))
        thumbs.append(Image.open(io.BytesIO(clean.thumbnail)).convert("RGB"))
        assert max(thumbs[-1].size) == 320 < max(kept[-1].size)
    full = [s.probability for s in model.score(kept)]
    small = [s.probability for s in model.score(thumbs)]
    gaps = [abs(a - b) for a, b in zip(full, small, strict=True)]
    assert max(gaps) < 0.1 and sum(gaps) / len(gaps) < 0.03, gaps
    same_side = sum((a >= model.threshold) == (b >= model.threshold) for a, b in zip(full, small, strict=True))
    assert same_side >= 15, (full, small)


def test_a_category_threshold_set_by_the_merchant_decides_the_label(client, app, order, session):
    from portal.domain.wear import parse_thresholds
    from portal.jobs import score_photos, wear_model

    app.config["JOBS_MODE"] = "off"  # scored below, once per setting
    submit_with_photos(client, [fabric(True, 8), fabric(False, 9)])
    category = session.scalars(select(ReturnLine)).one().order_line.category
    request_id = session.scalars(select(ReturnRequest.id)).one()
    model = wear_model(app)
    assert model is not None

    def labels_with(thresholds):
        for photo in session.scalars(select(Photo)):
            photo.score_state, photo.wear_label = "pending", None
        session.commit()
        app.config["WEAR_THRESHOLDS"] = thresholds
        assert score_photos(app, request_id) == 2
        session.expire_all()
        return [(p.wear_probability, p.wear_label) for p in session.scalars(select(Photo).order_by(Photo.id))]

    as_model = labels_with({})
    assert all(label == ("wear" if p >= model.threshold else "no_wear") for p, label in as_model)
    low = min(p for p, _ in as_model)
    high = max(p for p, _ in as_model)
    # Just under the lower score: both worn for this category; just above the higher: neither.
    setting = f" {category.upper()} = {max(low - 0.001, 0):.4f}"  # as a merchant may type it
    assert [label for _, label in labels_with(parse_thresholds(setting))] == ["wear", "wear"]
    assert [label for _, label in labels_with(parse_thresholds(f"{category}={high + 0.001:.4f}"))] == [
        "no_wear",
        "no_wear",
    ]
    # Another category's threshold leaves this one on the model's.
    assert labels_with(parse_thresholds("some-other-category=0")) == as_model


def test_wear_report_shows_agreement_per_category_to_choose_a_threshold(client, app, order, session, monkeypatch):
    from click.testing import CliRunner

    from portal.cli import main

    submit_with_photos(client, [fabric(True, 5), fabric(False, 6)])
    line = session.scalars(select(ReturnLine)).one()
    line.grade = "C"  # the warehouse saw wear: every photo of the line counts as worn
    session.commit()
    category = line.order_line.category
    probabilities = sorted(p.wear_probability for p in session.scalars(select(Photo)))
    for key in ("INSTANCE_PATH", "DATABASE_URL", "SECRET_KEY", "API_SECRET", "MODELS_PATH"):
        if app.config.get(key):
            monkeypatch.setenv(f"PORTAL_{key}", app.config[key])
    monkeypatch.setenv("PORTAL_WEAR_THRESHOLDS", f"{category}=0.05")
    output = CliRunner().invoke(main, ["wear", "report"], catch_exceptions=False).output
    assert "agreement by product category" in output
    row = next(line for line in output.splitlines() if f", {category}: " in line)
    assert "2 graded photos (2 worn)" in row and "threshold in use 0.05" in row
    cells = output.splitlines()[output.splitlines().index(row) + 2].split()
    # Both photos are worn: the agreement at 0.3 counts the photos scoring at least 0.3.
    assert cells[0] == f"{sum(p >= 0.3 for p in probabilities) / 2:.1%}"
    # Every photo is worn: the lowest candidate agrees most often (ties go to the threshold in use, 0.05).
    assert cells[-2:] == ["0.05", f"({sum(p >= 0.05 for p in probabilities) / 2:.1%})"]


def test_a_bad_threshold_setting_is_refused_at_start(monkeypatch):
    from portal import config

    monkeypatch.setenv("PORTAL_WEAR_THRESHOLDS", "shoes=often")
    with pytest.raises(ValueError, match="'often' for 'shoes' is not a number"):
        config.load()


def test_two_runs_of_the_scoring_job_at_once_score_each_photo_once(client, app, order, session):
    """A task handed back to the queue while its first run still works (a worker lost its broker
    connection): the run that writes second finds the photos scored and writes nothing."""
    from portal.db import session_scope
    from portal.db.models import RequestEvent
    from portal.jobs import score_photos, wear_model
    from portal.services.photos import score_request_photos
    from portal.storage import store_from_config

    app.config["JOBS_MODE"] = "off"  # nothing scores at submit: the photos stay pending
    rma = submit_with_photos(client, [fabric(True, 5), fabric(False, 6)])
    request_id = session.scalars(select(ReturnRequest.id).where(ReturnRequest.rma == rma)).one()
    store = store_from_config(app.config)

    class OtherRunFinishesFirst:
        """The store of the first run: while it reads the first photo, the other run scores them all."""

        def __init__(self):
            self.other_runs = 0

        def get(self, key):
            if not self.other_runs:
                self.other_runs += 1
                assert score_photos(app, request_id) == 2  # the other worker, start to commit
            return store.get(key)

    first = OtherRunFinishesFirst()
    with session_scope(app) as s:
        assert score_request_photos(s, request_id, first, wear_model(app)) == 0
    assert first.other_runs == 1
    session.expire_all()
    events = session.scalars(select(RequestEvent).where(RequestEvent.request_id == request_id)).all()
    assert [e.kind for e in events].count("scored") == 1
    photos = session.scalars(select(Photo).where(Photo.request_id == request_id)).all()
    assert [p.score_state for p in photos] == ["scored", "scored"] and all(p.scored_at for p in photos)
