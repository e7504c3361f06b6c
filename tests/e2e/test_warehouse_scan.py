"""The warehouse scan page in a real browser: a tone for every result, and the phone camera both with
the browser's BarcodeDetector and, where there is none, with the vendored ZXing decoder."""

from __future__ import annotations

import io
import json
import re
import tomllib
from pathlib import Path

import segno
from PIL import Image
from sqlalchemy import select

from portal.db.models import ReceiptLine, ReturnRequest
from portal.services.staff import create_staff
from tests.helpers import PASSWORD, form_for, login_shopper

DECODER = tomllib.loads((Path(__file__).parents[2] / "static" / "vendor" / "VENDORED.toml").read_text())[
    "zxing-browser"
]["file"]

# Count the tones the page plays: every oscillator started, with its pitch.
COUNT_TONES = """
window.__tones = [];
const start = OscillatorNode.prototype.start;
OscillatorNode.prototype.start = function (...args) {
  window.__tones.push(this.frequency.value);
  return start.apply(this, args);
};
"""
NO_DETECTOR = "delete window.BarcodeDetector;"


def labelled_return(app, session) -> ReturnRequest:
    """A shopper's approved return with its pickup code, and a warehouse worker."""
    shopper = app.test_client()
    login_shopper(shopper)
    shopper.post(
        "/order/request", data=form_for(shopper, **{"0": {"quantity": "2", "reason": "size_fit", "outcome": "refund"}})
    )
    create_staff(session, "wh@example.com", "Wen", "warehouse", PASSWORD)
    req = session.scalars(select(ReturnRequest)).one()
    assert req.status == "label_issued" and req.pickup_code
    return req


def sign_in(page, live_server) -> None:
    page.goto(live_server + "/staff/login")
    page.get_by_label("Email").fill("wh@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    page.wait_for_url(re.compile(r".*/staff/"))


def scan_by_keyboard(page, code: str) -> None:
    """What a handheld scanner does: type the code into the focused field and press Enter."""
    page.keyboard.type(code)
    with page.expect_navigation():
        page.keyboard.press("Enter")


def tones(page) -> list[float]:
    page.wait_for_function("window.__tones.length > 0", timeout=5000)
    return page.evaluate("window.__tones")


def test_every_scan_result_sounds_and_a_clean_parcel_takes_one_key(app, order, session, live_server, page):
    req = labelled_return(app, session)
    page.add_init_script(COUNT_TONES)
    sign_in(page, live_server)
    page.goto(live_server + "/warehouse/")
    assert page.evaluate("window.__tones") == []  # an empty scan page is silent

    scan_by_keyboard(page, "hello")
    page.get_by_role("alert").filter(has_text="No parcel with that code").wait_for()
    assert tones(page) == [196]  # the low "stop" buzz

    scan_by_keyboard(page, req.pickup_code)
    page.wait_for_url(re.compile(rf".*/warehouse/parcels/{req.rma}$"))  # the scan marker is dropped
    assert tones(page) == [880, 1320]  # the bright "found it"
    page.reload()
    page.wait_for_timeout(300)
    assert page.evaluate("window.__tones") == []  # a reload is not a new scan

    # Everything arrived as new: the page expects exactly that, so one key press records it.
    assert page.get_by_label("Grade").input_value() == "A"
    assert page.get_by_label("Disposition").input_value() == "restock"
    page.get_by_role("button", name="Record receipt").focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.get_by_text(f"Parcel {req.rma} received.").wait_for()
    receipt = session.scalars(select(ReceiptLine)).one()
    assert (receipt.quantity, receipt.grade, receipt.disposition) == (2, "A", "restock")

    page.get_by_label("Pickup code or RMA number").focus()
    scan_by_keyboard(page, req.pickup_code)
    page.get_by_role("alert").filter(has_text=f"Already received: {req.rma}").wait_for()
    assert tones(page) == [440, 440]  # two flat beeps: found, but nothing to receive


def qr_video(tmp_path: Path, text: str) -> Path:
    """A few frames of a camera looking at a QR code, as a .y4m file Chromium can play as its camera."""
    buffer = io.BytesIO()
    segno.make(text, error="m").save(buffer, kind="png", scale=8, border=4)
    code = Image.open(buffer).convert("L")
    frame = Image.new("L", (640, 480), 255)
    frame.paste(code, ((640 - code.width) // 2, (480 - code.height) // 2))
    luma = frame.tobytes()
    chroma = bytes([128]) * (320 * 240)
    path = tmp_path / "camera.y4m"
    with path.open("wb") as out:
        out.write(b"YUV4MPEG2 W640 H480 F10:1 Ip A1:1 C420jpeg\n")
        for _ in range(5):
            out.write(b"FRAME\n" + luma + chroma + chroma)
    return path


def test_without_barcode_detector_the_camera_uses_the_vendored_decoder(
    app, order, session, live_server, camera_page, tmp_path
):
    req = labelled_return(app, session)
    page = camera_page(qr_video(tmp_path, req.pickup_code))
    page.add_init_script(NO_DETECTOR)
    page.add_init_script(COUNT_TONES)
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    sign_in(page, live_server)
    page.goto(live_server + "/warehouse/")
    page.wait_for_load_state("load")
    assert not any(DECODER in url for url in requested)  # loaded only when the camera is used
    camera = page.get_by_role("button", name="Use the camera")
    camera.focus()
    with page.expect_navigation(url=re.compile(rf".*/warehouse/parcels/{req.rma}"), timeout=20000):
        page.keyboard.press("Enter")
    assert [url for url in requested if DECODER in url] == [f"{live_server}/static/vendor/{DECODER}"]
    assert tones(page) == [880, 1320]
    page.get_by_role("button", name="Record receipt").wait_for()


def test_with_barcode_detector_the_vendored_decoder_is_not_loaded(
    app, order, session, live_server, camera_page, tmp_path
):
    req = labelled_return(app, session)
    page = camera_page(qr_video(tmp_path, "unused"))
    # A stand-in for the browser's own detector that sees the pickup code on the first frame.
    found = json.dumps([{"rawValue": req.pickup_code}])
    page.add_init_script("window.BarcodeDetector = class { async detect() { return " + found + "; } };")
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    sign_in(page, live_server)
    page.goto(live_server + "/warehouse/")
    with page.expect_navigation(url=re.compile(rf".*/warehouse/parcels/{req.rma}"), timeout=20000):
        page.get_by_role("button", name="Use the camera").click()
    assert not any(DECODER in url for url in requested)
