"""Photo intake: decide by content, refuse bombs, re-encode without metadata.

Only formats a phone sends are opened (``Image.open(..., formats=...)``), a
pixel ceiling of our own sits below Pillow's, and a decompression-bomb warning
is an error. Accepted photos are oriented by their EXIF tag, stripped of all
metadata (GPS included) and re-encoded as JPEG, longest side at most 2048 px.
"""

from __future__ import annotations

import hashlib
import io
import time
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from portal.domain.text import N_, Text

ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP")
try:  # HEIC from iPhones, when the optional extra is installed
    from pillow_heif import register_heif_opener

    register_heif_opener()
    ALLOWED_FORMATS += ("HEIF",)
except ImportError:  # pragma: no cover - depends on the extra
    pass
MAX_PIXELS = 40_000_000  # a 40 MP phone photo; Pillow's own ceiling is ~89 MP
MAX_SIDE = 2048
THUMB_SIDE = 320
DRAFT_MIN_SIDE = 1600  # never decode below this long side when the photo is larger
JPEG_QUALITY = 85


class PhotoRejected(Exception):
    def __init__(self, reason: str, message: Text):
        super().__init__(reason)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class CleanPhoto:
    data: bytes
    width: int
    height: int
    sha256: str  # of the bytes the shopper sent: duplicates within a request are stored once
    thumbnail: bytes = b""
    content_type: str = "image/jpeg"


def human_size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.0f} MB"
    return f"{max(n // 1024, 1)} KB"


def _reject(reason: str, msgid: str, name: str, **params) -> PhotoRejected:
    return PhotoRejected(reason, Text(msgid, {"name": name, **params}))


def clean_photo(data: bytes, filename: str, max_bytes: int, stages: dict[str, float] | None = None) -> CleanPhoto:
    """Check and re-encode one photo. ``stages``, when given, receives the seconds each stage took
    (the photo benchmark reports their shares)."""
    name = (filename or "photo")[-80:]
    clock = [time.perf_counter()]

    def lap(stage: str) -> None:
        if stages is not None:
            now = time.perf_counter()
            stages[stage] = stages.get(stage, 0.0) + now - clock[0]
            clock[0] = now

    if not data:
        raise _reject("empty", N_("%(name)s is empty."), name)
    if len(data) > max_bytes:
        raise _reject("too_large", N_("%(name)s is larger than %(limit)s."), name, limit=human_size(max_bytes))
    digest = hashlib.sha256(data).hexdigest()
    lap("checksum")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img: Image.Image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
            if img.width * img.height > MAX_PIXELS or img.width < 16 or img.height < 16:
                raise _reject("dimensions", N_("%(name)s is not a usable photo size."), name)
            if getattr(img, "n_frames", 1) > 1:
                raise _reject("animated", N_("%(name)s is animated; please send a still photo."), name)
            if img.format == "JPEG":
                # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when the photo is much larger than we keep:
                # the largest reduction whose long side still reaches DRAFT_MIN_SIDE (a 4000 px photo
                # decodes at 2000 px, four times fewer pixels to decode, rotate and resize).
                factor = next((k for k in (8, 4, 2) if max(img.size) // k >= DRAFT_MIN_SIDE), 1)
                if factor > 1:
                    img.draft("RGB", (img.width // factor, img.height // factor))
            img.load()
            lap("decode")
            img = ImageOps.exif_transpose(img)
            lap("orient")
            if img.mode not in ("RGB", "L"):
                img = _to_rgb(img)
            if max(img.size) > 2 * MAX_SIDE:
                img = img.reduce(max(img.size) // MAX_SIDE)  # cheap integer downscale first
            img.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
            rgb = img if img.mode == "RGB" else img.convert("RGB")  # no copy when it already is
            lap("resize")
            # Only pixels are kept: Pillow would write a JPEG comment (and other text) carried in ``info``.
            rgb.info.clear()
            out = io.BytesIO()
            rgb.save(out, "JPEG", quality=JPEG_QUALITY)
            lap("encode")
            thumb = rgb.reduce(max(1, max(rgb.size) // (2 * THUMB_SIDE)))
            thumb.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BILINEAR)
            thumb.info.clear()
            thumb_out = io.BytesIO()
            thumb.save(thumb_out, "JPEG", quality=80)
            lap("thumbnail")
        except PhotoRejected:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _reject("dimensions", N_("%(name)s is not a usable photo size."), name) from None
        except UnidentifiedImageError:
            raise _reject("not_a_photo", N_("%(name)s is not a JPEG, PNG, WebP or HEIC photo."), name) from None
        except (OSError, SyntaxError, ValueError, EOFError):
            raise _reject("damaged", N_("%(name)s is damaged or incomplete."), name) from None
    return CleanPhoto(out.getvalue(), rgb.width, rgb.height, digest, thumb_out.getvalue())


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        return img.point(lambda v: v / 257).convert("L")
    if img.mode in ("RGBA", "LA", "P", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")
