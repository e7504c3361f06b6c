"""The hostile photo corpus through the shopper's form: what the shopper sees, and what is stored."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from sqlalchemy import func, select

from portal.db.models import Photo, ReturnRequest
from portal.storage import LocalPhotoStore
from tests.helpers import encode, form_for, login_shopper, png_header_only, rgb


def jpeg_with_exif(orientation: int | None = None, gps: bool = False) -> bytes:
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    if gps:
        exif[0x8825] = {1: "N", 2: (31.0, 14.0, 0.0), 3: "E", 4: (121.0, 28.0, 0.0)}
    exif[0x010F] = "PhoneMaker"
    return encode(rgb((300, 100)), "JPEG", exif=exif)


def animated_gif() -> bytes:
    frames = [rgb(color=(i * 60, 0, 0)) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    return buf.getvalue()


def heic() -> bytes:
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    return encode(rgb((400, 300)), "HEIF")


REFUSED = [
    ("truncated.jpg", lambda: encode(rgb((800, 600)), "JPEG")[:900], "damaged or incomplete"),
    ("page.jpg", lambda: b"<!doctype html><html><script>alert(1)</script></html>", "not a JPEG, PNG, WebP or HEIC"),
    (
        "drawing.jpg",
        lambda: b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        "not a JPEG, PNG, WebP or HEIC",
    ),
    ("tiny.png", lambda: encode(rgb((1, 1)), "PNG"), "not a usable photo size"),
    ("bomb.png", lambda: png_header_only(30000, 30000), "not a usable photo size"),
    ("moving.gif", animated_gif, "not a JPEG, PNG, WebP or HEIC"),
    ("empty.jpg", lambda: b"", "is empty"),
    ("huge.jpg", lambda: b"\xff\xd8\xff" + b"\0" * (300 * 1024), "is larger than 200 KB"),
]


@pytest.fixture
def shopper(client, order):
    assert login_shopper(client).status_code == 303
    return client


def post_photo(shopper, name: str, data: bytes):
    form = form_for(
        shopper, **{"0": {"quantity": "1", "reason": "damaged", "comment": "what I typed", "outcome": "refund"}}
    )
    form["lines-0-photos"] = [(io.BytesIO(data), name)]
    return shopper.post("/order/request", data=form, content_type="multipart/form-data")


@pytest.mark.parametrize("name,make,message", REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_with_clear_message_and_form_kept(shopper, app, session, name, make, message):
    app.config["MAX_PHOTO_BYTES"] = 200 * 1024  # a smaller cap keeps the test upload in memory
    response = post_photo(shopper, name, make())
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert name in body and message in body
    assert "what I typed" in body
    assert session.scalar(select(func.count(ReturnRequest.id))) == 0
    assert session.scalar(select(func.count(Photo.id))) == 0


def test_refused_message_in_chinese(shopper):
    shopper.post("/lang", data={"csrf_token": form_for(shopper)["csrf_token"], "lang": "zh_Hans"})
    body = post_photo(shopper, "page.jpg", b"<html></html>").get_data(as_text=True)
    assert "page.jpg 不是" in body


def stored_image(app, session) -> Image.Image:
    photo = session.scalars(select(Photo)).one()
    data = LocalPhotoStore(app.config["PHOTO_PATH"]).get(photo.storage_key)
    return Image.open(io.BytesIO(data))


ACCEPTED = [
    ("really-a-png.jpg", lambda: encode(rgb(), "PNG")),
    ("polyglot.jpg", lambda: encode(rgb(), "JPEG") + b"<html><script>alert(1)</script></html>"),
    ("cmyk.jpg", lambda: encode(Image.new("CMYK", (200, 200), (0, 100, 100, 0)), "JPEG")),
    ("deep.png", lambda: encode(Image.new("I;16", (200, 200), 40000), "PNG")),
    ("iphone.heic", heic),
]


@pytest.mark.parametrize("name,make", ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_accepted_and_stored_as_clean_jpeg(shopper, app, session, name, make):
    data = make()
    response = post_photo(shopper, name, data)
    assert response.status_code == 303
    with stored_image(app, session) as img:
        assert img.format == "JPEG" and img.mode in ("RGB", "L")
        assert not img.getexif()
    photo = session.scalars(select(Photo)).one()
    assert name not in photo.storage_key and photo.thumb_key
    stored = LocalPhotoStore(app.config["PHOTO_PATH"]).get(photo.storage_key)
    assert b"<script>" not in stored


def test_exif_rotated_photo_is_stored_upright(shopper, app, session):
    assert post_photo(shopper, "rotated.jpg", jpeg_with_exif(orientation=6)).status_code == 303
    with stored_image(app, session) as img:
        assert img.size == (100, 300)
        assert 0x0112 not in img.getexif()


def test_gps_is_gone(shopper, app, session):
    original = jpeg_with_exif(gps=True)
    with Image.open(io.BytesIO(original)) as img:
        assert 0x8825 in img.getexif()  # the upload really carries a location
    assert post_photo(shopper, "where-i-live.jpg", original).status_code == 303
    with stored_image(app, session) as img:
        exif = img.getexif()
        assert 0x8825 not in exif and 0x010F not in exif and "exif" not in img.info


def test_too_many_photos_for_one_line(shopper, session):
    form = form_for(shopper, **{"0": {"quantity": "1", "reason": "damaged", "outcome": "refund"}})
    form["lines-0-photos"] = [(io.BytesIO(encode(rgb(color=(i, i, i)), "JPEG")), f"p{i}.jpg") for i in range(6)]
    response = shopper.post("/order/request", data=form, content_type="multipart/form-data")
    assert response.status_code == 422
    assert "at most 5 photos per item" in response.get_data(as_text=True)


def test_store_down_keeps_the_form_and_writes_nothing(shopper, app, session, tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the photo folder should be")
    app.config["PHOTO_PATH"] = str(blocked)
    response = post_photo(shopper, "fine.jpg", encode(rgb(), "JPEG"))
    body = response.get_data(as_text=True)
    assert response.status_code == 503
    assert "photos could not be saved" in body and "what I typed" in body
    assert session.scalar(select(func.count(ReturnRequest.id))) == 0
    assert session.scalar(select(func.count(Photo.id))) == 0
