"""Photo intake: content decides, bombs refused, metadata stripped, orientation applied."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from portal.vision.intake import MAX_SIDE, PhotoRejected, clean_photo
from tests.helpers import encode, png_header_only, rgb

LIMIT = 5 * 1024 * 1024


def with_exif(orientation: int | None = None, gps: bool = False) -> bytes:
    img = rgb((300, 100))
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    if gps:
        exif[0x8825] = {1: "N", 2: (31.0, 14.0, 0.0), 3: "E", 4: (121.0, 28.0, 0.0)}
    exif[0x010F] = "PhoneMaker"
    return encode(img, "JPEG", exif=exif)


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"", "empty"),
        (b"<html><body>hi</body></html>", "not_a_photo"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "not_a_photo"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n", "not_a_photo"),
        (png_header_only(30000, 30000), "dimensions"),
        (png_header_only(1, 1), "dimensions"),
    ],
    ids=["empty", "html", "svg", "eps", "30000x30000", "1x1"],
)
def test_refused(data, reason):
    with pytest.raises(PhotoRejected) as caught:
        clean_photo(data, "photo.jpg", LIMIT)
    assert caught.value.reason == reason
    assert "photo.jpg" in caught.value.message.render()


def test_truncated_jpeg():
    data = encode(rgb((800, 600)), "JPEG")[:1000]
    with pytest.raises(PhotoRejected) as caught:
        clean_photo(data, "cut.jpg", LIMIT)
    assert caught.value.reason == "damaged"


def test_png_named_jpg_is_accepted_by_content():
    out = clean_photo(encode(rgb(), "PNG"), "really-a-png.jpg", LIMIT)
    assert out.data[:3] == b"\xff\xd8\xff"


def test_html_polyglot_after_jpeg_is_reencoded_clean():
    data = encode(rgb(), "JPEG") + b"<html><script>alert(1)</script></html>"
    out = clean_photo(data, "poly.jpg", LIMIT)
    assert b"<script>" not in out.data


def test_over_size_limit():
    with pytest.raises(PhotoRejected) as caught:
        clean_photo(b"\xff" * 200, "big.jpg", 100)
    assert caught.value.reason == "too_large"


def test_animated_gif_refused():
    frames = [rgb(color=(i * 40, 0, 0)) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(PhotoRejected):
        clean_photo(buf.getvalue(), "anim.gif", LIMIT)


def test_cmyk_and_16_bit_become_rgb_jpeg():
    cmyk = clean_photo(encode(Image.new("CMYK", (200, 200), (0, 100, 100, 0)), "JPEG"), "cmyk.jpg", LIMIT)
    deep = clean_photo(encode(Image.new("I;16", (200, 200), 40000), "PNG"), "deep.png", LIMIT)
    for out in (cmyk, deep):
        with Image.open(io.BytesIO(out.data)) as img:
            assert img.format == "JPEG" and img.mode in ("RGB", "L")


def test_exif_orientation_applied_and_gps_dropped():
    out = clean_photo(with_exif(orientation=6, gps=True), "rotated.jpg", LIMIT)
    with Image.open(io.BytesIO(out.data)) as img:
        assert img.size == (100, 300)  # rotated upright
        exif = img.getexif()
        assert 0x8825 not in exif and 0x0112 not in exif and 0x010F not in exif
        assert "exif" not in img.info


def test_large_photo_is_resized():
    out = clean_photo(encode(rgb((4000, 3000)), "JPEG"), "big.jpg", 50 * 1024 * 1024)
    assert max(out.width, out.height) <= MAX_SIDE


def test_same_content_same_hash():
    data = encode(rgb(), "JPEG")
    assert clean_photo(data, "a.jpg", LIMIT).sha256 == clean_photo(data, "b.jpg", LIMIT).sha256


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_comments_text_and_profiles_are_not_carried_into_the_stored_bytes(fmt):
    img = Image.new("RGB", (64, 64), (200, 30, 30))
    secret = b"home address: 1 Secret Road"
    extra: dict = {"icc_profile": b"\0" * 128 + secret}
    if fmt == "JPEG":
        extra["comment"] = secret
    elif fmt == "PNG":
        info = PngInfo()
        info.add_text("Comment", secret.decode())
        extra["pnginfo"] = info
    else:
        extra["xmp"] = b"<x:xmpmeta>" + secret + b"</x:xmpmeta>"
    data = encode(img, fmt, **extra)
    assert secret in data  # the upload really carries it
    out = clean_photo(data, f"photo.{fmt.lower()}", LIMIT)
    for stored in (out.data, out.thumbnail):
        assert secret not in stored
        with Image.open(io.BytesIO(stored)) as reopened:
            assert not {"comment", "icc_profile", "xmp", "exif", "Comment"} & set(reopened.info)
