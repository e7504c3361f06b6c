"""Pickup codes, the QR / Code 128 SVGs and the printable return label PDF."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import barcode
import pytest
import segno
from hypothesis import given, settings
from hypothesis import strategies as st

from portal import labels
from portal.domain import codes
from portal.domain.codes import (
    ALPHABET,
    CHECK_ALPHABET,
    CodeError,
    compact_pickup_code,
    looks_like_pickup_code,
    looks_like_rma,
    new_pickup_code,
    new_rma,
    parse_pickup_code,
    parse_rma,
)
from portal.labels import LabelData, code128_modules, code128_svg, find_cjk_font, label_pdf, qr_svg
from tests.helpers import pdf_streams, pdf_text, service_missing

SVG = "{http://www.w3.org/2000/svg}"
# New codes end in a symbol of the code alphabet too: easy to read aloud, plain in URLs.
PICKUP_RE = re.compile(rf"^P-[{ALPHABET}]{{4}}-[{ALPHABET}]{{4}}-[{ALPHABET}]{{3}}$")
PROPERTY = settings(max_examples=150, deadline=None, database=None)


def pickup_from_body(body: str) -> str:
    """The canonical pickup code for ten canonical body symbols."""
    code = body + codes.check_char(body)
    return f"P-{code[:4]}-{code[4:8]}-{code[8:]}"


def legacy_pickup_from_body(body: str) -> str:
    """A pickup code as issued before, with its mod-37 check character."""
    value = 0
    for ch in body:
        value = value * 32 + ALPHABET.index(ch)
    code = body + codes.legacy_check_char(value)
    return f"P-{code[:4]}-{code[4:8]}-{code[8:]}"


def compact(code: str) -> str:
    return code.replace("-", "")


# ------------------------------------------------------------------ pickup codes


def test_new_pickup_codes_are_unique_grouped_and_parse_to_themselves() -> None:
    drawn = [new_pickup_code() for _ in range(20_000)]
    assert len(set(drawn)) == len(drawn)
    for code in drawn[:500]:
        assert PICKUP_RE.match(code), code
        assert parse_pickup_code(code) == code


def test_pickup_code_carries_at_least_40_random_bits() -> None:
    code = compact(new_pickup_code())
    body = code[1:-1]  # without the prefix and the check character
    assert len(body) == 10
    assert len(body) * 5 >= 40
    assert codes.PICKUP_SYMBOLS * 5 == 50


def test_parse_accepts_lowercase_spaces_and_ambiguous_letters() -> None:
    canonical = pickup_from_body("10KQ2M9XD0")
    body_and_check = compact(canonical)[1:]
    typed = [
        canonical.lower(),
        " ".join(compact(canonical)),
        compact(canonical),
        "p " + body_and_check[:5] + " " + body_and_check[5:],
        canonical.replace("1", "I", 1).replace("0", "O"),
        canonical.replace("1", "l").replace("0", "o"),
        "P-" + body_and_check.replace("1", "L"),
        f"  {canonical}  ",
    ]
    for text in typed:
        assert parse_pickup_code(text) == canonical, text


@pytest.mark.parametrize(
    "mangle",
    [
        lambda c: c[:-1],  # one symbol short
        lambda c: c + "7",  # one symbol too many
        lambda c: compact(c)[1:],  # without the prefix: as short as a code missing a symbol
        lambda c: compact(c)[1:-2],
        lambda c: "",
    ],
)
def test_parse_rejects_wrong_lengths(mangle) -> None:
    code = pickup_from_body("7KQ2M9XDC3")
    with pytest.raises(CodeError, match="wrong length"):
        parse_pickup_code(mangle(code))


def test_parse_rejects_unknown_symbols_and_wrong_check_characters() -> None:
    code = compact(pickup_from_body("7KQ2M9XDC3"))
    with pytest.raises(CodeError, match="not a pickup code"):
        parse_pickup_code("R" + code[1:])
    with pytest.raises(CodeError, match="unknown symbol"):
        parse_pickup_code(code[:3] + "U" + code[4:])  # U is only valid as a check character
    with pytest.raises(CodeError, match="unknown symbol"):
        parse_pickup_code(code[:3] + "#" + code[4:])
    wrong_check = next(ch for ch in CHECK_ALPHABET if ch != code[-1])
    with pytest.raises(CodeError, match="check character"):
        parse_pickup_code(code[:-1] + wrong_check)


@PROPERTY
@given(st.integers(min_value=0, max_value=2**50 - 1))
def test_check_character_catches_every_single_substitution(value: int) -> None:
    code = compact(pickup_from_body(codes.encode(value, 10)))
    assert parse_pickup_code(code)
    for position, original in enumerate(code):
        for replacement in CHECK_ALPHABET + "PR":
            if replacement == original:
                continue
            typo = code[:position] + replacement + code[position + 1 :]
            with pytest.raises(CodeError):
                parse_pickup_code(typo)


@PROPERTY
@given(st.integers(min_value=0, max_value=2**50 - 1))
def test_check_character_catches_every_adjacent_transposition(value: int) -> None:
    code = compact(pickup_from_body(codes.encode(value, 10)))
    for position in range(len(code) - 1):
        a, b = code[position], code[position + 1]
        if a == b:
            continue
        typo = code[:position] + b + a + code[position + 2 :]
        with pytest.raises(CodeError):
            parse_pickup_code(typo)


@PROPERTY
@given(st.integers(min_value=0, max_value=2**50 - 1))
def test_a_dropped_or_doubled_symbol_is_always_caught(value: int) -> None:
    code = compact(pickup_from_body(codes.encode(value, 10)))
    for position in range(len(code)):
        for typo in (code[:position] + code[position + 1 :], code[:position] + code[position] + code[position:]):
            with pytest.raises(CodeError, match="wrong length"):
                parse_pickup_code(typo)


def test_codes_issued_before_keep_working_where_stored_codes_are_looked_up() -> None:
    # Found by search: a body whose old check character is one of the symbols the new one avoids.
    body = next(codes.encode(v, 10) for v in range(1000) if codes.legacy_check_char(v) in "*~$=U")
    old = legacy_pickup_from_body(body)
    assert old[-1] in "*~$=U"
    assert parse_pickup_code(old, accept_legacy=True) == old
    assert compact_pickup_code(old) == compact(old)
    with pytest.raises(CodeError, match="check character"):
        parse_pickup_code(old)  # strict parsing knows only the new check


def test_new_codes_of_every_kind_end_in_a_code_symbol() -> None:
    for code in [new_pickup_code() for _ in range(300)] + [new_rma() for _ in range(300)]:
        assert code[-1] in ALPHABET, code
    for code in [codes.new_store_credit_code() for _ in range(300)]:
        assert code[-1] in ALPHABET and codes.parse_store_credit_code(code) == code


def test_scanner_input_is_told_apart() -> None:
    pickup, rma = new_pickup_code(), new_rma()
    for text in (pickup, compact(pickup), pickup.lower(), " ".join(pickup)):
        assert looks_like_pickup_code(text)
        assert not looks_like_rma(text)
    for text in (rma, compact(rma), compact(rma)[1:], rma.lower()):
        assert looks_like_rma(text)
        assert not looks_like_pickup_code(text)
        assert parse_rma(text) == rma
    # A mistyped pickup code still looks like one, so parsing can say what is wrong.
    body = compact(pickup)
    mistyped = body[:-1] + next(ch for ch in CHECK_ALPHABET if ch != body[-1])
    assert looks_like_pickup_code(mistyped)
    with pytest.raises(CodeError):
        parse_pickup_code(mistyped)
    assert not looks_like_pickup_code(compact(pickup)[1:])  # the prefix is part of the code
    for junk in ("", "hello world", "P-1234", "#" * 12, "1234567890123", "P" + "#" * 11):
        assert not looks_like_pickup_code(junk)
        assert not looks_like_rma(junk)


# -------------------------------------------------------------------------- SVG


def svg_root(svg: str) -> ET.Element:
    assert not svg.lstrip().startswith("<?xml")
    assert "<script" not in svg.lower()
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    assert root.get("viewBox")
    assert not [el for el in root.iter() if el.tag.rsplit("}", 1)[-1].lower() == "script"]
    return root


def dark_modules_from_path(d: str) -> set[tuple[int, int]]:
    """Modules covered by ``M{x} {y}h{n}v1h-{n}z`` segments."""
    segments = re.findall(r"M(\d+) (\d+)h(\d+)v1h-\3z", d)
    assert "".join(f"M{x} {y}h{n}v1h-{n}z" for x, y, n in segments) == d
    return {(int(x) + i, int(y)) for x, y, n in segments for i in range(int(n))}


@pytest.mark.parametrize("text", ["P7KQ2M9XDC3R", "P-7KQ2-M9XD-C3R", "https://shop.example/r/退货?a=1&b=<2>"])
def test_qr_svg_is_inline_svg_with_segnos_matrix(text: str) -> None:
    svg = qr_svg(text)
    root = svg_root(svg)
    assert root.find(f"{SVG}title").text == text
    path = root.find(f"{SVG}path")
    drawn = dark_modules_from_path(path.get("d"))

    qr = segno.make(text, micro=False, error="m")
    border = 4
    expected = {(x + border, y + border) for y, row in enumerate(qr.matrix) for x, dark in enumerate(row) if dark}
    assert drawn == expected
    size = qr.symbol_size(scale=1, border=border)[0]
    assert root.get("viewBox") == f"0 0 {size} {size}"


def test_qr_svg_escapes_hostile_text() -> None:
    text = '</title><script>alert("x")</script>'
    root = svg_root(qr_svg(text, title=text))
    assert root.find(f"{SVG}title").text == text


@pytest.mark.parametrize("text", ["P7KQ2M9XDC3R", "P1234567890$", "R7KQ2M9XDC"])
def test_code128_svg_is_valid_svg_with_the_right_bars(text: str) -> None:
    root = svg_root(code128_svg(text))
    assert root.find(f"{SVG}title").text == text
    d = root.find(f"{SVG}path").get("d")
    bars = re.findall(r"M(\d+) 0h(\d+)v(\d+)h-\2z", d)
    modules = code128_modules(text)
    assert modules == barcode.Code128(text).build()[0]
    quiet = 10
    pattern = ["0"] * (len(modules) + 2 * quiet)
    for x, width, _height in bars:
        for i in range(int(width)):
            pattern[int(x) + i] = "1"
    assert "".join(pattern) == "0" * quiet + modules + "0" * quiet


def test_code128_rejects_characters_it_cannot_encode() -> None:
    with pytest.raises(ValueError):
        code128_svg("退货")


# -------------------------------------------------------------------------- PDF


def path_rects(pdf: bytes) -> list[tuple[float, float, float, float]]:
    """``x y w h re`` rectangles of the drawing paths (mm, y down, as the label draws them)."""
    content = b"\n".join(pdf_streams(pdf))
    return [tuple(map(float, m)) for m in re.findall(rb"(-?[\d.]+) (-?[\d.]+) (-?[\d.]+) (-?[\d.]+) re\b", content)]


def media_box(pdf: bytes) -> tuple[float, ...]:
    match = re.search(rb"/MediaBox \[([\d. ]+)\]", pdf)
    assert match
    return tuple(float(v) for v in match.group(1).split())


PICKUP = pickup_from_body("7KQ2M9XDC3")


@pytest.fixture
def chinese_label() -> LabelData:
    return LabelData(
        rma="R-7KQ-2M9-XDC",
        pickup_code=PICKUP.lower().replace("-", " "),  # normalised by the renderer
        items=[
            (1, "羊毛混纺针织开衫", "藏青色 / M", "KN-2231-NV-M"),
            (2, "Organic cotton T-shirt", "White / L", "TS-100-WH-L"),
        ],
        ship_from=["王小明", "上海市 200031"],
        return_to=("Returns Warehouse", "Unit 5, Logistics Park", "Daventry NN11 8QT"),
        postage="退货运费由商店预付",
        carrier="顺丰速运",
        created="2025-06-01",
        title="退货标签",
        labels={"pickup_code": "取件码", "rma": "退货单号", "items": "商品", "return_to": "退回地址"},
    )


def english_label(**changes) -> LabelData:
    values = dict(
        rma="R-7KQ-2M9-XDC",
        pickup_code=PICKUP,
        items=((1, "Linen shirt", "Blue / M", "LS-1-BL-M"),),
        ship_from=("Ada Lovelace", "London N1 9GU"),
        return_to=("Returns Warehouse", "Daventry NN11 8QT"),
        postage="A fee of £4.95 (€5.80) will be deducted from your refund.",
        carrier="Royal Mail",
        created="1 June 2025",
    )
    values.update(changes)
    return LabelData(**values)


def test_label_pdf_is_a_single_4x6_page_with_the_codes() -> None:
    pdf = label_pdf(english_label(), compress=False)
    assert isinstance(pdf, bytes)
    assert pdf.startswith(b"%PDF-")
    assert pdf.rstrip().endswith(b"%%EOF")
    assert media_box(pdf) == (0, 0, 288, 432)  # 4 x 6 inch in points
    assert pdf.count(b"/Type /Page\n") == 1
    text = pdf_text(pdf)
    for expected in (
        "Return label",
        "Pickup code",
        "P-7KQ2-M9XD-C3",
        "R-7KQ-2M9-XDC",
        "Linen shirt",
        "Returns Warehouse",
        "Daventry NN11 8QT",
        "Royal Mail",
        "1 June 2025",
        "£4.95 (€5.80)",
    ):
        assert expected in text, expected
    assert PICKUP in text


def test_label_pdf_compressed_output_has_the_same_text() -> None:
    data = english_label()
    assert pdf_text(label_pdf(data)) == pdf_text(label_pdf(data, compress=False))


def test_label_pdf_a6_page() -> None:
    pdf = label_pdf(english_label(), page="A6")
    assert media_box(pdf) == pytest.approx((0, 0, 297.64, 419.53), abs=0.01)


def test_label_barcode_and_qr_encode_the_compact_pickup_code() -> None:
    pdf = label_pdf(english_label(), compress=False)
    rects = path_rects(pdf)
    code = compact(PICKUP)

    bars = sorted((x, w) for x, _y, w, h in rects if h > 10)
    x0 = bars[0][0]
    total = bars[-1][0] + bars[-1][1] - x0
    count = round(total / min(w for _x, w in bars))
    module = total / count
    pattern = ["0"] * count
    for x, w in bars:
        start = round((x - x0) / module)
        for i in range(round(w / module)):
            pattern[start + i] = "1"
    assert "".join(pattern) == code128_modules(code)

    cells = [(x, y, w, h) for x, y, w, h in rects if h < 10]
    size = cells[0][3]
    left, top = min(c[0] for c in cells), min(c[1] for c in cells)
    drawn = set()
    for x, y, w, _h in cells:
        col, row = round((x - left) / size), round((y - top) / size)
        drawn.update((col + i, row) for i in range(round(w / size)))
    qr = segno.make(code, micro=False, error="m")
    expected = {(x, y) for y, row in enumerate(qr.matrix) for x, dark in enumerate(row) if dark}
    assert drawn == expected


def test_label_pdf_renders_chinese(chinese_label: LabelData) -> None:
    pdf = label_pdf(chinese_label, compress=False)
    text = pdf_text(pdf)
    assert "P-7KQ2-M9XD-C3" in text and "R-7KQ-2M9-XDC" in text
    if find_cjk_font() is not None:
        assert b"/Subtype /Type0" in pdf
        assert b"/FontFile2" in pdf or b"/FontFile3" in pdf
        for expected in (
            "退货标签",
            "取件码",
            "退货单号",
            "羊毛混纺针织开衫",
            "藏青色",
            "王小明",
            "退货运费由商店预付",
            "顺丰速运",
        ):
            assert expected in text, expected
    else:
        assert "????" in text
        assert "Organic cotton T-shirt" in text


def test_label_pdf_without_a_cjk_font_falls_back_to_question_marks(
    monkeypatch: pytest.MonkeyPatch, chinese_label: LabelData
) -> None:
    monkeypatch.setattr(labels, "find_cjk_font", lambda: None)
    pdf = label_pdf(chinese_label, compress=False)
    assert b"/FontFile" not in pdf
    assert b"/BaseFont /Helvetica" in pdf
    text = pdf_text(pdf)
    assert "????" in text  # 退货标签
    assert "? x ?" not in text  # the multiplication sign is in the core font
    assert "1 × ????????" in text
    assert "Organic cotton T-shirt" in text
    assert "P-7KQ2-M9XD-C3" in text


def test_label_pdf_with_an_explicit_font_path(chinese_label: LabelData) -> None:
    font = find_cjk_font()
    if font is None:
        service_missing("no CJK font on this machine (Debian: fonts-wqy-microhei)")
    pdf = label_pdf(chinese_label, font_path=font.path, compress=False)
    assert "羊毛混纺针织开衫" in pdf_text(pdf)


def test_label_pdf_rejects_bad_input(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        label_pdf(english_label(), font_path=tmp_path / "missing.ttf")
    with pytest.raises(ValueError, match="page size"):
        label_pdf(english_label(), page="A4")
    code = compact(PICKUP)
    with pytest.raises(CodeError):
        label_pdf(english_label(pickup_code=code[:-1] + ("0" if code[-1] != "0" else "1")))


def test_long_item_lists_stay_on_one_page() -> None:
    items = tuple((1, f"Item number {i} with a fairly long product name", "Variant", f"SKU-{i}") for i in range(40))
    pdf = label_pdf(english_label(items=items), compress=False)
    assert pdf.count(b"/Type /Page\n") == 1
    text = pdf_text(pdf)
    assert "Item number 0 " in text
    assert "Item number 39" not in text
    assert re.search(r"\+ \d+ more", text)


def test_captions_default_to_english_and_take_overrides() -> None:
    data = english_label(labels={"rma": "Rücksendenummer"})
    assert data.caption("rma") == "Rücksendenummer"
    assert data.caption("pickup_code") == "Pickup code"
    text = pdf_text(label_pdf(data, compress=False))
    assert "Rücksendenummer" in text and "Pickup code" in text


def test_a_lookup_knows_when_only_the_old_check_passed() -> None:
    current = pickup_from_body("7KQ2M9XDC3")
    old = legacy_pickup_from_body("7KQ2M9XDC3")
    assert current != old
    assert codes.parse_for_lookup(parse_pickup_code, current) == (current, True)
    assert codes.parse_for_lookup(parse_pickup_code, old) == (old, False)  # looked up; not found means mistyped
    with pytest.raises(CodeError):
        codes.parse_for_lookup(
            parse_pickup_code, old[:-1] + next(c for c in ALPHABET if c not in (old[-1], current[-1]))
        )
