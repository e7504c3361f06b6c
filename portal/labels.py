"""Return labels: the pickup-code QR and Code 128 symbols and the printable label PDF.

Pure rendering from plain values: no database, no Flask, no files written. The
caller passes every sentence and caption already translated (``LabelData``).

- ``qr_svg(text)`` and ``code128_svg(text)`` return SVG strings for inline use in
  HTML: no XML declaration, no scripts, ``role="img"`` with a ``<title>`` naming
  the content, a white background (so they scan from a dark-mode page) and a
  ``viewBox`` so CSS can resize them.
- ``label_pdf(data)`` returns a one-page 4x6 inch (or A6) label as PDF bytes. The
  QR code and the Code 128 barcode are drawn as vector rectangles, so they stay
  sharp on thermal printers. Both carry the canonical pickup code without dashes
  (``P7KQ2M9XDC3R``); the grouped form (``P-7KQ2-M9XD-C3R``) is printed as text.

Fonts. The PDF core fonts only cover Western European text (Windows-1252), so
Chinese captions and product names need an embedded TrueType/OpenType font. ``label_pdf`` takes a
``font_path``; by default it looks for a CJK font installed on the system
(WenQuanYi, Droid Sans Fallback, Noto Sans CJK / Source Han Sans, common macOS
and Windows Chinese fonts; then whatever fontconfig reports for Chinese) and
embeds a subset of it. On Debian/Ubuntu, ``apt-get install fonts-wqy-microhei``
provides one. When no CJK font is found, the label is still produced with the
Helvetica core font and every character it cannot draw is printed as ``?``
instead of failing; the same ``?`` replacement applies to characters missing
from a configured font.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple, cast
from xml.sax.saxutils import escape, quoteattr

import barcode
import segno
from barcode.errors import BarcodeError
from fontTools.ttLib import TTCollection, TTFont
from fpdf import FPDF
from fpdf.enums import Align, PathPaintRule, TextMode, WrapMode, XPos, YPos

from portal.domain.codes import parse_pickup_code

DEFAULT_CAPTIONS: Mapping[str, str] = {
    "pickup_code": "Pickup code",
    "rma": "Return number",
    "ship_from": "From",
    "return_to": "Return to",
    "items": "Items",
    "sku": "SKU",
    "more_items": "+ {n} more",
    "postage": "Postage",
    "carrier": "Courier",
    "created": "Created",
}
"""English captions; ``LabelData.labels`` overrides any of them. ``{n}`` is a count."""


@dataclass(frozen=True)
class LabelData:
    """Everything printed on a return label, as plain, already translated values.

    ``items`` holds ``(quantity, name, variant, sku)`` tuples; ``ship_from`` the
    shopper's name and city/postcode; ``return_to`` the warehouse address lines;
    ``postage`` the sentence saying who pays; ``created`` a formatted date.
    """

    rma: str
    pickup_code: str
    items: tuple[tuple[int | str, str, str, str], ...]
    ship_from: tuple[str, ...]
    return_to: tuple[str, ...]
    postage: str
    carrier: str
    created: str
    title: str = "Return label"
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Accept lists from callers; keep the instance immutable.
        object.__setattr__(self, "items", tuple(tuple(item) for item in self.items))
        object.__setattr__(self, "ship_from", tuple(self.ship_from))
        object.__setattr__(self, "return_to", tuple(self.return_to))

    def caption(self, key: str) -> str:
        """The caption for ``key``: the caller's translation, else the English default."""
        return self.labels.get(key) or DEFAULT_CAPTIONS[key]


# --------------------------------------------------------------------------- SVG

_QR_BORDER = 4  # quiet zone, in modules (the QR specification's minimum)
_BARCODE_QUIET = 10  # Code 128 quiet zone, in modules (the specification's minimum)


def _make_qr(text: str) -> segno.QRCode:
    return segno.make(text, micro=False, error="m")


def _svg_open(width: float, height: float, view_w: float, view_h: float, css_class: str, title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class={quoteattr(css_class)}'
        f' width="{width:g}" height="{height:g}" viewBox="0 0 {view_w:g} {view_h:g}">'
        f"<title>{escape(title)}</title>"
    )


def qr_svg(text: str, *, scale: int = 4, title: str | None = None, css_class: str = "qr") -> str:
    """An inline SVG QR code of ``text`` (``scale`` px per module, 4-module quiet zone).

    ``title`` (default: ``text``) is the accessible name; it is XML-escaped.
    """
    qr = _make_qr(text)
    size = qr.symbol_size(scale=1, border=_QR_BORDER)[0]
    # One horizontal run of dark modules per path segment, in module units.
    d = "".join(f"M{x} {y}h{length}v1h-{length}z" for x, y, length in _dark_runs(qr.matrix, _QR_BORDER))
    return (
        _svg_open(size * scale, size * scale, size, size, css_class, text if title is None else title)
        + f'<rect width="{size}" height="{size}" fill="#fff"/>'
        + f'<path fill="#000" shape-rendering="crispEdges" d="{d}"/></svg>'
    )


def _dark_runs(rows: Sequence[Sequence[int]], offset: int) -> Iterator[tuple[int, int, int]]:
    """``(x, y, length)`` for each horizontal run of dark modules, shifted by ``offset``."""
    for y, row in enumerate(rows):
        x = 0
        while x < len(row):
            if row[x]:
                start = x
                while x < len(row) and row[x]:
                    x += 1
                yield start + offset, y + offset, x - start
            else:
                x += 1


def code128_modules(text: str) -> str:
    """The Code 128 bar pattern of ``text`` as ``1`` (bar) and ``0`` (space) modules.

    Raises ValueError for characters Code 128 cannot encode.
    """
    try:
        # A fresh object each time: python-barcode keeps charset state while building.
        return barcode.Code128(text).build()[0]
    except BarcodeError as exc:
        raise ValueError(str(exc)) from exc


def _bar_runs(modules: str) -> Iterator[tuple[int, int]]:
    """``(start, width)`` of each bar, in modules."""
    x = 0
    while x < len(modules):
        if modules[x] == "1":
            start = x
            while x < len(modules) and modules[x] == "1":
                x += 1
            yield start, x - start
        else:
            x += 1


def code128_svg(
    text: str, *, module: int = 2, height: int = 50, title: str | None = None, css_class: str = "barcode"
) -> str:
    """An inline SVG Code 128 barcode of ``text``, without human-readable text.

    ``module`` is the narrow bar width in px, ``height`` the bar height in modules;
    a 10-module quiet zone is kept on each side. Raises ValueError for characters
    Code 128 cannot encode.
    """
    modules = code128_modules(text)
    width = len(modules) + 2 * _BARCODE_QUIET
    d = "".join(f"M{start + _BARCODE_QUIET} 0h{w}v{height}h-{w}z" for start, w in _bar_runs(modules))
    return (
        _svg_open(width * module, height * module, width, height, css_class, text if title is None else title)
        + f'<rect width="{width}" height="{height}" fill="#fff"/>'
        + f'<path fill="#000" shape-rendering="crispEdges" d="{d}"/></svg>'
    )


# -------------------------------------------------------------------------- fonts


class FontChoice(NamedTuple):
    path: Path
    face: int  # face number inside a .ttc/.otc collection, else 0


_FONT_SUFFIXES = (".ttf", ".otf", ".ttc", ".otc")
_CJK_SAMPLE = "中文退货标签"

# Preferred files, best first: TrueType outlines subset compactly; then the usual
# Simplified Chinese fonts of Linux distributions, macOS and Windows.
_CJK_FONT_FILES = (
    "wqy-microhei.ttc",
    "wqy-zenhei.ttc",
    "droidsansfallbackfull.ttf",
    "droidsansfallback.ttf",
    "notosanscjksc-regular.otf",
    "notosanssc-regular.otf",
    "notosanssc-regular.ttf",
    "notosanscjk-regular.ttc",
    "sourcehansanssc-regular.otf",
    "sourcehansans-regular.ttc",
    "msyh.ttc",
    "msyh.ttf",
    "simhei.ttf",
    "simsun.ttc",
    "deng.ttf",
    "pingfang.ttc",
    "hiragino sans gb.ttc",
    "stheiti light.ttc",
    "arial unicode.ttf",
    "arialuni.ttf",
)


def _font_dirs() -> list[Path]:
    home = Path.home()
    dirs = [
        Path("/usr/share/fonts"),
        Path("/usr/local/share/fonts"),
        home / ".local/share/fonts",
        home / ".fonts",
        Path("/Library/Fonts"),
        Path("/System/Library/Fonts"),
        home / "Library/Fonts",
    ]
    windir = os.environ.get("WINDIR")
    if windir:
        dirs.append(Path(windir) / "Fonts")
    return [d for d in dirs if d.is_dir()]


def _pick_face(path: Path) -> int | None:
    """The face of ``path`` to use for Simplified Chinese, or None if no face covers it.

    In a collection, prefer a Simplified Chinese face (``... SC``), then a
    proportional one over a monospaced one.
    """

    try:
        if path.suffix.lower() in (".ttc", ".otc"):
            collection = TTCollection(str(path), lazy=True)
            faces = list(collection.fonts)
        else:
            collection = None
            faces = [TTFont(str(path), lazy=True)]
    except Exception:  # unreadable or not a font: skip it
        return None
    try:
        best: tuple[int, int] | None = None
        for index, face in enumerate(faces):
            try:
                cmap = face.getBestCmap() or {}
                name = face["name"].getDebugName(1) or ""
            except Exception:
                continue
            if not all(ord(ch) in cmap for ch in _CJK_SAMPLE):
                continue
            score = 2 * (name.endswith(" SC") or " SC " in name) + ("mono" not in name.lower())
            if best is None or score > best[0]:
                best = (score, index)
        return None if best is None else best[1]
    finally:
        for face in faces:
            face.close()
        if collection is not None:
            collection.close()


def _fontconfig_candidates() -> list[Path]:
    fc_list = shutil.which("fc-list")
    if not fc_list:
        return []
    try:
        out = subprocess.run(
            [fc_list, ":lang=zh", "file"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    paths = {Path(line.strip().rstrip(":")) for line in out.splitlines() if line.strip()}
    return sorted(p for p in paths if p.suffix.lower() in _FONT_SUFFIXES)


@lru_cache(maxsize=1)
def find_cjk_font() -> FontChoice | None:
    """A system font that can draw Simplified Chinese, or None. Cached per process."""
    found: dict[str, Path] = {}
    wanted = set(_CJK_FONT_FILES)
    for folder in _font_dirs():
        for root, _dirs, files in os.walk(folder):
            for name in files:
                key = name.lower()
                if key in wanted and key not in found:
                    found[key] = Path(root) / name
    candidates = [found[name] for name in _CJK_FONT_FILES if name in found]
    candidates += [p for p in _fontconfig_candidates() if p not in candidates]
    for path in candidates:
        index = _pick_face(path)
        if index is not None:
            return FontChoice(path, index)
    return None


def _resolve_font(font_path: str | os.PathLike[str] | None) -> FontChoice | None:
    if font_path is None:
        return find_cjk_font()
    path = Path(font_path)
    if not path.is_file():
        raise FileNotFoundError(f"label font not found: {path}")
    if path.suffix.lower() not in _FONT_SUFFIXES:
        raise ValueError(f"label font must be a TrueType or OpenType file: {path}")
    index = _pick_face(path)
    return FontChoice(path, 0 if index is None else index)


# ---------------------------------------------------------------------------- PDF

PAGE_SIZES: Mapping[str, tuple[float, float]] = {
    "4x6": (101.6, 152.4),  # 4 x 6 inch thermal label, in mm
    "A6": (105.0, 148.0),
}
_MARGIN = 4.0
_MM_PER_PT = 25.4 / 72
_GREY = (90, 90, 90)
_SUBSTITUTES = {"×": "x", "·": "-", "—": "-", "–": "-", "’": "'", "‘": "'", "“": '"', "”": '"'}


def _is_cjk(ch: str) -> bool:
    code = ord(ch)
    return 0x2E80 <= code <= 0x9FFF or 0xF900 <= code <= 0xFAFF or 0xFF00 <= code <= 0xFFEF or code >= 0x20000


class _Label:
    """An FPDF page plus the font bookkeeping (embedded font or core-font fallback)."""

    def __init__(self, size: tuple[float, float], font: FontChoice | None, compress: bool) -> None:
        pdf = FPDF(unit="mm", format=size)
        pdf.set_compression(compress)
        pdf.set_auto_page_break(False)
        pdf.set_margins(_MARGIN, _MARGIN, _MARGIN)
        pdf.c_margin = 0
        pdf.core_fonts_encoding = "cp1252"  # the core fonts' WinAnsi glyphs: adds €, dashes, quotes
        if font is not None:
            pdf.add_font("label", "", str(font.path), collection_font_number=font.face)
            self.family = "label"
        else:
            self.family = "helvetica"
        self.embedded = font is not None
        self._bold = False
        pdf.add_page()
        pdf.set_font(self.family, size=9)
        self.pdf = pdf
        self.width = size[0] - 2 * _MARGIN

    # -- text

    def clean(self, text: str) -> str:
        """Text the current font can draw: newlines become spaces, anything else missing becomes '?'."""
        text = " ".join(str(text).split())
        return "".join(ch if self._can_draw(ch) else _SUBSTITUTES.get(ch, "?") for ch in text)

    def _can_draw(self, ch: str) -> bool:
        if self.embedded:
            return ord(ch) in getattr(self.pdf.current_font, "cmap", {})
        try:
            ch.encode(self.pdf.core_fonts_encoding)
        except UnicodeEncodeError:
            return False
        return True

    def font(self, size: float, bold: bool = False) -> None:
        self.pdf.set_font(self.family, "B" if bold and not self.embedded else "", size)
        self._bold = bold and self.embedded

    def _cell(self, w: float, h: float, text: str, align: Align) -> None:
        if self._bold:
            # The embedded font has a single weight: thicken it with an outline.
            outline = self.pdf.font_size_pt / 60 * _MM_PER_PT
            with self.pdf.local_context(text_mode=TextMode.FILL_STROKE, line_width=outline):
                self.pdf.cell(w, h, text, align=align, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        else:
            self.pdf.cell(w, h, text, align=align, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def line(
        self,
        text: str,
        size: float,
        *,
        bold: bool = False,
        x: float | None = None,
        w: float | None = None,
        align: Align = Align.L,
        grey: bool = False,
        shrink_to: float = 6,
    ) -> None:
        """One line of text at the current y, shrunk (down to ``shrink_to`` pt) to fit ``w``."""
        w = self.width if w is None else w
        self.font(size, bold)
        text = self.clean(text)
        while size > shrink_to and self.pdf.get_string_width(text) > w:
            size -= 0.5
            self.font(size, bold)
        if x is not None:
            self.pdf.set_x(x)
        if grey:
            self.pdf.set_text_color(*_GREY)
        self._cell(w, size * _MM_PER_PT * 1.25, text, align)
        self.pdf.set_text_color(0)

    def wrapped(
        self, text: str, size: float, *, x: float | None = None, w: float | None = None, dry_run: bool = False
    ) -> float:
        """Text wrapped to ``w``; returns its height (and only measures it if ``dry_run``)."""
        w = self.width if w is None else w
        self.font(size)
        text = self.clean(text)
        h = size * _MM_PER_PT * 1.2
        if x is not None:
            self.pdf.set_x(x)
        # Chinese has no spaces to break at: wrap such lines at any character.
        wrapmode = WrapMode.CHAR if any(_is_cjk(ch) for ch in text) else WrapMode.WORD
        lines = self.pdf.multi_cell(
            w,
            h,
            text,
            align=Align.L,
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
            wrapmode=wrapmode,
            dry_run=dry_run,
            output="LINES",
        )
        return len(cast(list[str], lines)) * h

    def rule(self, y: float) -> None:
        self.pdf.set_line_width(0.3)
        self.pdf.line(_MARGIN, y, _MARGIN + self.width, y)

    # -- symbols

    def fill_rects(self, rects: Iterable[tuple[float, float, float, float]]) -> None:
        """Fill ``(x, y, w, h)`` rectangles as one black path.

        One path rather than one fill per rectangle: viewers then show no hairline
        seams between touching modules.
        """
        with self.pdf.new_path(paint_rule=PathPaintRule.FILL_NONZERO) as path:
            path.style.fill_color = "#000000"
            path.style.stroke_color = None
            for x, y, w, h in rects:
                path.rectangle(x, y, w, h)

    def qr(self, text: str, x: float, y: float, size: float) -> None:
        qr = _make_qr(text)
        m = size / qr.symbol_size(scale=1, border=_QR_BORDER)[0]
        self.fill_rects((x + mx * m, y + my * m, n * m, m) for mx, my, n in _dark_runs(qr.matrix, _QR_BORDER))

    def code128(self, text: str, y: float, height: float, max_module: float = 0.5) -> None:
        modules = code128_modules(text)
        total = len(modules) + 2 * _BARCODE_QUIET
        module = min(max_module, self.width / total)
        x0 = _MARGIN + (self.width - len(modules) * module) / 2
        self.fill_rects((x0 + start * module, y, w * module, height) for start, w in _bar_runs(modules))


def label_pdf(
    data: LabelData,
    *,
    font_path: str | os.PathLike[str] | None = None,
    page: str = "4x6",
    compress: bool = True,
) -> bytes:
    """Render the return label as a one-page PDF.

    ``page`` is ``"4x6"`` (4 x 6 inch, 101.6 x 152.4 mm) or ``"A6"`` (105 x 148 mm).
    ``font_path`` selects the TrueType/OpenType font to embed (default: a CJK
    font found on the system, else the core-font fallback described in the
    module docstring). ``compress=False`` leaves the page content readable.
    Raises CodeError if ``data.pickup_code`` is not a valid pickup code, and
    FileNotFoundError for a ``font_path`` that does not exist.
    """
    if page not in PAGE_SIZES:
        raise ValueError(f"unknown label page size {page!r}; expected one of {sorted(PAGE_SIZES)}")
    grouped = parse_pickup_code(data.pickup_code, accept_legacy=True)
    compact = grouped.replace("-", "")
    size = PAGE_SIZES[page]
    label = _Label(size, _resolve_font(font_path), compress)
    pdf = label.pdf
    pdf.set_title(f"{data.title} {data.rma}")
    pdf.set_subject(grouped)

    # Header: title and creation date on the left, the carrier on the right.
    left_w = label.width * 0.62
    pdf.set_y(_MARGIN)
    label.line(data.title, 13, bold=True, w=left_w)
    if data.created:
        label.line(f"{data.caption('created')}: {data.created}", 7, w=left_w, grey=True)
    if data.carrier:
        right_x, right_w = _MARGIN + left_w, label.width - left_w
        pdf.set_y(_MARGIN)
        label.line(data.caption("carrier"), 7, x=right_x, w=right_w, align=Align.R, grey=True)
        label.line(data.carrier, 11, bold=True, x=right_x, w=right_w, align=Align.R)
    y = _MARGIN + 10
    label.rule(y)

    # Pickup code: caption, the grouped code in large type, the barcode.
    pdf.set_y(y + 1.5)
    label.line(data.caption("pickup_code"), 7, grey=True)
    label.line(grouped, 22, bold=True, align=Align.C)
    y = pdf.get_y() + 1
    label.code128(compact, y, 15)
    y += 17

    # QR code on the left; RMA number and sender beside it.
    qr_size = 30.0
    label.qr(compact, _MARGIN - 1, y, qr_size)  # the quiet zone may reach into the margin
    right_x = _MARGIN + qr_size + 1
    right_w = label.width - qr_size - 1
    pdf.set_y(y + 2)
    label.line(data.caption("rma"), 7, x=right_x, w=right_w, grey=True)
    label.line(data.rma, 13, bold=True, x=right_x, w=right_w)
    pdf.set_y(pdf.get_y() + 1.5)
    label.line(data.caption("ship_from"), 7, x=right_x, w=right_w, grey=True)
    for text in filter(None, data.ship_from):
        label.line(text, 9, x=right_x, w=right_w)
    y = max(y + qr_size, pdf.get_y()) + 1
    label.rule(y)

    # Return address.
    pdf.set_y(y + 1.5)
    label.line(data.caption("return_to"), 7, grey=True)
    for text in filter(None, data.return_to):
        label.line(text, 10.5, bold=True)
    y = pdf.get_y() + 1
    label.rule(y)

    # Postage at the foot of the label; items fill the space between.
    postage_text = f"{data.caption('postage')}: {data.postage}"
    bottom = size[1] - _MARGIN
    postage_y = bottom - label.wrapped(postage_text, 8, dry_run=True)
    pdf.set_y(y + 1.5)
    label.line(data.caption("items"), 7, grey=True)
    item_size = 8.5
    for index, (quantity, name, variant, sku) in enumerate(data.items):
        details = [part for part in (variant, f"{data.caption('sku')} {sku}" if sku else "") if part]
        text = f"{quantity} × {name}" + (f" ({', '.join(details)})" if details else "")
        remaining = len(data.items) - index
        needed = label.wrapped(text, item_size, dry_run=True)
        if remaining > 1:
            needed += item_size * _MM_PER_PT * 1.25  # room for a "+ n more" line
        if pdf.get_y() + needed > postage_y - 1.5:
            label.line(data.caption("more_items").replace("{n}", str(remaining)), item_size, grey=True)
            break
        label.wrapped(text, item_size)
    label.rule(postage_y - 1)
    pdf.set_y(postage_y)
    label.wrapped(postage_text, 8)
    return bytes(pdf.output())
