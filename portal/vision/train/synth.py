"""Synthetic photos of garment and shoe surfaces, with and without wear marks.

Everything is procedural (numpy + Pillow) and deterministic: sample ``i`` of a
set is drawn from its own random generator seeded by ``(seed, i)``, so a set is
the same whatever the number of worker processes, and ``generate(n, seed)`` is
a prefix of ``generate(n + k, seed)``.

Surfaces (``TEXTURES``): knit, denim twill, leather, suede, canvas, each with
random colour, lighting gradient, white balance, viewpoint (rotation, scale,
perspective), blur, sensor noise and JPEG quality.

Wear marks (``MARKS``, label 1): scuffs, stains, pilling, creases, fading,
fraying. Hard negatives (``NEGATIVES``) appear on worn and clean images alike
and with the same frequency, so that "has a pattern" says nothing about wear:
prints (stripes, dots, checks, camouflage blobs), logos (printed or
embroidered), seams and hems with stitching, and the surface's own natural
irregularity (leather pebble grain, heathered yarn, denim slubs, suede nap).

Training-only damage (``AUX_MARKS``, label 1, never in an evaluation set):
tears, holes, snags and worn-through edges, drawn by their own code (nothing
shared with fraying), so that a model learns broken edges, loose threads and
irregular damage in general. ``generate(..., negative_rate=, negative_weights=)``
changes how often, and which, hard negatives appear; the defaults keep every
existing set as it was.

Each image comes with a coarse mask (``mask_size`` x ``mask_size``, fraction of
each cell covered by a mark), empty for clean images.

Textures and mark types can be held out: ``generate(textures=TRAIN_TEXTURES,
marks=TRAIN_MARKS)`` never draws suede or fraying, and ``generate_heldout``
draws only images that involve a held-out texture or mark type.
"""

from __future__ import annotations

import colorsys
import io
import math
import multiprocessing
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

GENERATOR_VERSION = "wear-synth-1.0"

TEXTURES: tuple[str, ...] = ("knit", "denim", "leather", "suede", "canvas")
MARKS: tuple[str, ...] = ("scuffs", "stains", "pilling", "creases", "fading", "fraying")
NEGATIVES: tuple[str, ...] = ("print", "logo", "seam", "grain")

HELDOUT_TEXTURES: tuple[str, ...] = ("suede",)
HELDOUT_MARKS: tuple[str, ...] = ("fraying",)
TRAIN_TEXTURES: tuple[str, ...] = tuple(t for t in TEXTURES if t not in HELDOUT_TEXTURES)
TRAIN_MARKS: tuple[str, ...] = tuple(m for m in MARKS if m not in HELDOUT_MARKS)
# Extra damage drawn only for training (never evaluated, no code shared with fraying): what broken
# edges, loose threads and irregular damage look like in general, so that an unseen kind is still
# recognised as wear.
AUX_MARKS: tuple[str, ...] = ("tears", "holes", "snags", "worn_edge")

CANVAS_FACTOR = 1.35  # the surface is drawn larger than the photo, then viewed through a warped window
HARD_NEGATIVE_RATE = 0.6  # chance of one or more hard negatives, the same for worn and clean images
_SALT = 0x57EA  # keeps this generator's streams apart from other users of the same seeds


@dataclass(frozen=True)
class Spec:
    """What one synthetic image shows."""

    texture: str
    marks: tuple[str, ...]
    negatives: tuple[str, ...]

    @property
    def label(self) -> int:
        return int(bool(self.marks))


# --- sampling what to draw -------------------------------------------------------------


def _check(names: Iterable[str], known: Sequence[str], what: str) -> tuple[str, ...]:
    names = tuple(names)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return names


def _rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([_SALT, int(seed), int(index)])


def _pick_marks(rng: np.random.Generator, marks: Sequence[str]) -> tuple[str, ...]:
    k = 1 + int(rng.random() < 0.25) + int(rng.random() < 0.08)
    k = min(k, len(marks))
    return tuple(sorted(str(m) for m in rng.choice(list(marks), size=k, replace=False)))


def _pick_negatives(
    rng: np.random.Generator, rate: float = HARD_NEGATIVE_RATE, weights: Sequence[float] | None = None
) -> tuple[str, ...]:
    if rng.random() >= rate:
        return ()
    k = 1 + int(rng.random() < 0.35)
    p = None if weights is None else np.asarray(weights, np.float64) / float(np.sum(weights))
    return tuple(sorted(str(m) for m in rng.choice(list(NEGATIVES), size=k, replace=False, p=p)))


def sample_spec(
    seed: int,
    index: int,
    textures: Sequence[str] = TEXTURES,
    marks: Sequence[str] = MARKS,
    positive_fraction: float = 0.5,
    negative_rate: float = HARD_NEGATIVE_RATE,
    negative_weights: Sequence[float] | None = None,
) -> Spec:
    """The spec of image ``index`` of ``generate(..., seed, textures, marks)``.

    ``negative_rate`` and ``negative_weights`` (one per ``NEGATIVES``) change how
    often and which hard negatives appear; the defaults keep the evaluation sets as
    they were.
    """
    rng = _rng(seed, index)
    texture = str(rng.choice(list(textures)))
    positive = bool(marks) and rng.random() < positive_fraction
    chosen = _pick_marks(rng, marks) if positive else ()
    return Spec(texture, chosen, _pick_negatives(rng, negative_rate, negative_weights))


def sample_heldout_spec(
    seed: int,
    index: int,
    textures: Sequence[str] = HELDOUT_TEXTURES,
    marks: Sequence[str] = HELDOUT_MARKS,
    positive_fraction: float = 0.5,
) -> Spec:
    """A spec that involves a held-out texture or mark type, and no combination seen in training.

    Clean images are held-out textures; worn images are either a held-out texture
    with any marks, or any texture with held-out marks only.
    """
    rng = _rng(seed, index)
    if not textures and not marks:
        raise ValueError("nothing is held out")
    if rng.random() < positive_fraction:
        if textures and (not marks or rng.random() < 0.5):
            return Spec(str(rng.choice(list(textures))), _pick_marks(rng, MARKS), _pick_negatives(rng))
        return Spec(str(rng.choice(list(TEXTURES))), _pick_marks(rng, marks), _pick_negatives(rng))
    return Spec(str(rng.choice(list(textures or TEXTURES))), (), _pick_negatives(rng))


# --- procedural helpers ----------------------------------------------------------------


@lru_cache(maxsize=8)
def _grid(c: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:c, 0:c].astype(np.float32)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def _noise(rng: np.random.Generator, c: int, cells_x: float, cells_y: float | None = None) -> np.ndarray:
    """Smooth noise, roughly N(0, 1) per cell, upsampled bicubically to c x c."""
    gx = max(2, int(round(cells_x)))
    gy = max(2, int(round(cells_y if cells_y is not None else cells_x)))
    small = rng.standard_normal((gy, gx)).astype(np.float32)
    return np.asarray(Image.fromarray(small, "F").resize((c, c), Image.Resampling.BICUBIC))


def _fbm(rng: np.random.Generator, c: int, base: float, octaves: int = 3) -> np.ndarray:
    out = np.zeros((c, c), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        out += amp * _noise(rng, c, base * 2**o)
        total += amp
        amp *= 0.5
    return out / total


@lru_cache(maxsize=64)
def _kernel(radius: float) -> np.ndarray:
    half = max(1, int(math.ceil(3 * radius)))
    k = np.exp(-0.5 * (np.arange(-half, half + 1) / radius) ** 2)
    return (k / k.sum()).astype(np.float32)


def _blur(a: np.ndarray, radius: float) -> np.ndarray:
    """Separable Gaussian blur of a 2-D float array (edges repeated)."""
    if radius <= 0:
        return a
    k = _kernel(round(float(radius), 2))
    half = len(k) // 2
    h, w = a.shape
    p = np.pad(a.astype(np.float32), ((0, 0), (half, half)), mode="edge")
    rows = sum(k[i] * p[:, i : i + w] for i in range(len(k)))
    p = np.pad(rows, ((half, half), (0, 0)), mode="edge")
    return sum(k[i] * p[i : i + h, :] for i in range(len(k)))


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1))), np.float32)


def _lum(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _layer(c: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    img = Image.new("L", (c, c), 0)
    return img, ImageDraw.Draw(img)


def _as_float(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.float32) / 255.0


def _centre(rng: np.random.Generator, c: int, spread: float = 0.28) -> tuple[float, float]:
    """A point that stays inside the photo whatever the viewpoint."""
    s = c / CANVAS_FACTOR
    return (c / 2 + rng.uniform(-spread, spread) * s, c / 2 + rng.uniform(-spread, spread) * s)


def _blob(
    rng: np.random.Generator,
    c: int,
    cx: float,
    cy: float,
    r: float,
    aspect: float = 1.0,
    irregular: float = 0.35,
    soft: float = 0.15,
) -> np.ndarray:
    """Irregular soft blob in [0, 1]."""
    x, y = _grid(c)
    th = rng.uniform(0, math.pi)
    dx, dy = x - cx, y - cy
    u = (dx * math.cos(th) + dy * math.sin(th)) / r
    v = (-dx * math.sin(th) + dy * math.cos(th)) / (r * aspect)
    d = np.sqrt(u * u + v * v)
    field = 1.0 - d + irregular * _noise(rng, c, c / max(r * 0.6, 3.0))
    return np.clip(field / soft + 0.5, 0.0, 1.0)


def _bezier(p0, p1, p2, n: int = 24) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * np.array(p0) + 2 * (1 - t) * t * np.array(p1) + t**2 * np.array(p2)


def _line_field(rng: np.random.Generator, c: int, curvature: float = 0.0):
    """Signed distance-like field to a (slightly curved) line through the central area, and position along it."""
    x, y = _grid(c)
    x0, y0 = _centre(rng, c, 0.22)
    a = rng.uniform(0, math.pi)
    tx, ty = math.cos(a), math.sin(a)
    along = (x - x0) * tx + (y - y0) * ty
    d = -(x - x0) * ty + (y - y0) * tx + curvature * along * along / c
    return d, along


# --- surfaces -------------------------------------------------------------------------


@dataclass
class Surface:
    colour: np.ndarray  # c x c x 3 base colour (prints change it)
    shade: np.ndarray  # c x c multiplicative texture modulation
    base: np.ndarray  # the surface's main colour (3,)
    texture: str


def _knit(rng, c):
    x, y = _grid(c)
    h = rng.uniform(0, 1)
    base = _hsv(h, rng.uniform(0.15, 0.8), rng.uniform(0.25, 0.9))
    w = rng.uniform(4.5, 8.5)
    rh = w * rng.uniform(0.55, 0.8)
    a = rng.normal(0, 0.03)
    xr, yr = x * math.cos(a) + y * math.sin(a), -x * math.sin(a) + y * math.cos(a)
    u = xr / w
    fu = u - np.floor(u)
    leg = np.where(fu < 0.5, 1.0, -1.0)
    t = yr / rh + leg * (fu - 0.5) * 0.9
    ft = t - np.floor(t)
    loop = np.sin(np.pi * ft) ** 1.5
    gap = 0.55 + 0.45 * np.abs(np.sin(2 * np.pi * fu)) ** 0.5
    shade = 0.62 + 0.45 * loop * gap + 0.04 * _noise(rng, c, c / 3)
    return Surface(np.broadcast_to(base, (c, c, 3)).copy(), shade.astype(np.float32), base, "knit")


def _denim(rng, c):
    x, y = _grid(c)
    if rng.random() < 0.8:
        base = _hsv(rng.uniform(0.58, 0.66), rng.uniform(0.45, 0.85), rng.uniform(0.22, 0.6))
    else:  # black or grey denim
        base = _hsv(rng.uniform(0, 1), rng.uniform(0.0, 0.1), rng.uniform(0.12, 0.5))
    weft = np.array([0.86, 0.85, 0.8], np.float32)
    p = rng.uniform(2.8, 4.5)
    a = math.radians(rng.choice([-1, 1]) * rng.uniform(60, 72))
    d = x * math.cos(a) + y * math.sin(a)
    twill = 0.5 + 0.5 * np.sin(2 * np.pi * d / p)
    slub = _noise(rng, c, 3, 40) * 0.5 + _noise(rng, c, 30, 3) * 0.3
    speck = _noise(rng, c, c / 1.5)
    indigo = np.clip(0.7 + 0.22 * twill + 0.07 * slub + 0.05 * speck, 0, 1)
    colour = indigo[..., None] * base + (1 - indigo[..., None]) * weft
    shade = 0.9 + 0.12 * twill
    return Surface(colour.astype(np.float32), shade.astype(np.float32), base, "denim")


def _leather(rng, c):
    r = rng.random()
    if r < 0.6:
        base = _hsv(rng.uniform(0.0, 0.1), rng.uniform(0.35, 0.85), rng.uniform(0.15, 0.7))
    elif r < 0.8:
        base = _hsv(rng.uniform(0, 1), rng.uniform(0.0, 0.15), rng.uniform(0.06, 0.2))  # black
    elif r < 0.9:
        base = _hsv(rng.uniform(0.05, 0.15), rng.uniform(0.02, 0.12), rng.uniform(0.8, 0.95))  # white / cream
    else:
        base = _hsv(rng.uniform(0, 1), rng.uniform(0.4, 0.8), rng.uniform(0.25, 0.6))  # dyed
    shade = 1.0 + 0.05 * _fbm(rng, c, 3) + 0.03 * _noise(rng, c, c / 2.5)
    if rng.random() < 0.5:  # broad specular sheen of polished leather
        x, y = _grid(c)
        cx, cy = _centre(rng, c, 0.5)
        r2 = ((x - cx) ** 2 + (y - cy) ** 2) / (rng.uniform(0.2, 0.5) * c) ** 2
        shade = shade + rng.uniform(0.05, 0.2) * np.exp(-r2)
    return Surface(np.broadcast_to(base, (c, c, 3)).copy(), shade.astype(np.float32), base, "leather")


def _suede(rng, c):
    base = _hsv(
        rng.uniform(0.0, 1.0) if rng.random() < 0.3 else rng.uniform(0.03, 0.12),
        rng.uniform(0.15, 0.6),
        rng.uniform(0.25, 0.75),
    )
    fine = _blur(rng.standard_normal((c, c)).astype(np.float32), 0.6)
    nap = _fbm(rng, c, rng.uniform(2.5, 5))
    shade = 1.0 + 0.08 * fine + 0.07 * nap
    colour = np.broadcast_to(base, (c, c, 3)) * (1 + 0.03 * _noise(rng, c, 6)[..., None])
    return Surface(colour.astype(np.float32), shade.astype(np.float32), base, "suede")


def _canvas(rng, c):
    x, y = _grid(c)
    if rng.random() < 0.3:
        base = _hsv(rng.uniform(0.08, 0.15), rng.uniform(0.0, 0.12), rng.uniform(0.82, 0.97))  # white / ecru
    else:
        base = _hsv(rng.uniform(0, 1), rng.uniform(0.1, 0.75), rng.uniform(0.3, 0.9))
    p = rng.uniform(2.4, 4.0)
    a = rng.normal(0, 0.04)
    xr, yr = x * math.cos(a) + y * math.sin(a), -x * math.sin(a) + y * math.cos(a)
    weave = np.sin(2 * np.pi * xr / p) * np.sin(2 * np.pi * yr / p)
    slub = _noise(rng, c, 4, 50) * 0.5 + _noise(rng, c, 50, 4) * 0.5
    shade = 0.92 + 0.1 * weave + 0.04 * slub + 0.02 * _noise(rng, c, c / 2)
    return Surface(np.broadcast_to(base, (c, c, 3)).copy(), shade.astype(np.float32), base, "canvas")


_SURFACES = {"knit": _knit, "denim": _denim, "leather": _leather, "suede": _suede, "canvas": _canvas}


# --- hard negatives (label 0 on their own) --------------------------------------------------


def _random_colour(rng):
    return _hsv(rng.uniform(0, 1), rng.uniform(0.3, 1.0), rng.uniform(0.3, 1.0))


def _print(rng, s: Surface, c: int) -> None:
    x, y = _grid(c)
    kind = rng.choice(["stripes", "dots", "check", "camo"])
    alpha = np.zeros((c, c), np.float32)
    col = _random_colour(rng)
    if kind == "stripes":
        a = rng.choice([0.0, math.pi / 2, rng.uniform(0, math.pi)])
        p = rng.uniform(6, 28)
        d = x * math.cos(a) + y * math.sin(a)
        alpha = ((d / p) % 1.0 < rng.uniform(0.25, 0.6)).astype(np.float32)
    elif kind == "dots":
        p = rng.uniform(9, 22)
        r = p * rng.uniform(0.15, 0.35)
        a = rng.uniform(0, math.pi)
        u = x * math.cos(a) + y * math.sin(a)
        v = -x * math.sin(a) + y * math.cos(a)
        row = np.floor(v / p)
        u = u + (row % 2) * p / 2 * (rng.random() < 0.5)
        du = (u / p) % 1.0 - 0.5
        dv = (v / p) % 1.0 - 0.5
        alpha = ((du * du + dv * dv) * p * p < r * r).astype(np.float32)
    elif kind == "check":
        p = rng.uniform(8, 30)
        a = ((x / p) % 1.0 < 0.5).astype(np.float32)
        b = ((y / p) % 1.0 < 0.5).astype(np.float32)
        alpha = 0.5 * a + 0.5 * b
    else:  # camouflage / floral blobs: many irregular crisp-edged patches
        n = _fbm(rng, c, rng.uniform(4, 9), 2)
        alpha = (n > rng.uniform(-0.2, 0.3)).astype(np.float32)
        if rng.random() < 0.5:
            col2 = _random_colour(rng)
            extra = (n < rng.uniform(-0.8, -0.4)).astype(np.float32)
            s.colour[:] = s.colour * (1 - extra[..., None]) + col2 * extra[..., None]
    alpha = _blur(alpha, 0.4)[..., None] * rng.uniform(0.75, 1.0)
    s.colour[:] = s.colour * (1 - alpha) + col * alpha


def _logo(rng, s: Surface, c: int) -> None:
    cx, cy = _centre(rng, c, 0.22)
    size = rng.uniform(9, 24)
    img, draw = _layer(c)
    kind = rng.choice(["circle", "box", "triangle", "star", "word"])
    if kind == "circle":
        draw.ellipse([cx - size, cy - size, cx + size, cy + size], fill=255)
        if rng.random() < 0.5:
            draw.ellipse([cx - size * 0.6, cy - size * 0.6, cx + size * 0.6, cy + size * 0.6], fill=0)
    elif kind == "box":
        draw.rounded_rectangle(
            [cx - size * 1.3, cy - size * 0.7, cx + size * 1.3, cy + size * 0.7], radius=size * 0.2, fill=255
        )
    elif kind == "triangle":
        draw.polygon([(cx, cy - size), (cx + size, cy + size * 0.8), (cx - size, cy + size * 0.8)], fill=255)
    elif kind == "star":
        pts = []
        for i in range(10):
            r = size if i % 2 == 0 else size * 0.45
            a = -math.pi / 2 + i * math.pi / 5
            pts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
        draw.polygon(pts, fill=255)
    else:  # a word mark: a row of letter-like bars
        n = int(rng.integers(3, 8))
        h = size * 0.6
        w = h * 0.6
        x0 = cx - n * w * 0.75
        for i in range(n):
            lx = x0 + i * w * 1.5
            draw.rectangle([lx, cy - h / 2, lx + w, cy + h / 2], fill=255)
            if rng.random() < 0.6:
                draw.rectangle([lx + w * 0.3, cy - h * 0.2 * rng.integers(-1, 2), lx + w * 0.7, cy + h * 0.25], fill=0)
    alpha = _as_float(img)
    if rng.random() < 0.5:  # rotate the logo a little with the garment
        alpha = np.asarray(
            Image.fromarray(alpha, "F").rotate(
                rng.uniform(-30, 30), center=(cx, cy), resample=Image.Resampling.BILINEAR
            )
        )
    col = _random_colour(rng) if rng.random() < 0.7 else _hsv(0, 0, rng.choice([0.05, 0.95]))
    if rng.random() < 0.5:  # embroidered: satin stitches and a raised edge
        x, y = _grid(c)
        a = rng.uniform(0, math.pi)
        sat = 0.85 + 0.15 * np.sin(2 * np.pi * (x * math.cos(a) + y * math.sin(a)) / 2.2)
        edge = np.clip(alpha - _blur(alpha, 1.2), 0, 1)
        s.shade[:] = s.shade * (1 - alpha) + (sat * (1 - 0.5 * edge)) * alpha
    alpha = _blur(alpha, 0.4)[..., None]
    s.colour[:] = s.colour * (1 - alpha) + col * alpha


def _background(rng, c: int) -> np.ndarray:
    tone = _hsv(rng.uniform(0, 1), rng.uniform(0, 0.25), rng.uniform(0.1, 0.95))
    return (tone * (1 + 0.05 * _fbm(rng, c, 3)[..., None])).astype(np.float32)


def _seam(rng, s: Surface, c: int) -> None:
    d, along = _line_field(rng, c, rng.uniform(-0.6, 0.6) if rng.random() < 0.4 else 0.0)
    depth = rng.uniform(0.1, 0.3)
    w = rng.uniform(1.2, 2.5)
    ridge = rng.uniform(0.04, 0.12)
    s.shade[:] = (
        s.shade * (1 - depth * np.exp(-((d / w) ** 2))) * (1 + ridge * np.exp(-(((np.abs(d) - 3 * w) / (2 * w)) ** 2)))
    )
    thread = _random_colour(rng) if rng.random() < 0.5 else np.clip(s.base * rng.uniform(0.5, 1.6), 0, 1)
    period = rng.uniform(3.5, 6.5)
    duty = rng.uniform(0.55, 0.8)
    rows = [rng.uniform(3, 7) * rng.choice([-1, 1])]
    if rng.random() < 0.5:
        rows.append(rows[0] + np.sign(rows[0]) * rng.uniform(3, 6))
    for off in rows:
        st = (np.abs(d - off) < 0.8).astype(np.float32) * ((along / period) % 1.0 < duty)
        st = _blur(st, 0.35)[..., None]
        s.colour[:] = s.colour * (1 - st) + thread * st
    if rng.random() < 0.3:  # a hem: the fabric ends beyond the seam, neat edge, table showing
        edge = abs(rows[-1]) + rng.uniform(3, 8)
        side = np.sign(rows[-1])
        beyond = _blur(((d * side) > edge).astype(np.float32), 0.5)
        bg = _background(rng, c)
        s.colour[:] = s.colour * (1 - beyond[..., None]) + bg * beyond[..., None]
        s.shade[:] = s.shade * (1 - beyond) + beyond * (1 - 0.25 * np.exp(-(((d * side - edge) / 2.0) ** 2)))


def _grain(rng, s: Surface, c: int) -> None:
    """The surface's own natural irregularity, strong and even over the whole surface."""
    if s.texture == "leather":
        n = _noise(rng, c, c / rng.uniform(4, 7))
        lines = np.exp(-((n / rng.uniform(0.15, 0.3)) ** 2))
        s.shade[:] = s.shade * (1 - rng.uniform(0.15, 0.35) * lines) * (1 + 0.06 * np.clip(n, 0, 2))
    elif s.texture == "knit":  # heathered yarn: fibres of another tone
        fib = _blur(rng.standard_normal((c, c)).astype(np.float32), 0.7)
        other = _hsv(rng.uniform(0, 1), rng.uniform(0, 0.2), rng.uniform(0.3, 0.95))
        m = np.clip(fib * 0.6 - 0.2, 0, 0.6)[..., None]
        s.colour[:] = s.colour * (1 - m) + other * m
    elif s.texture == "denim":  # strong slubs: uneven dye in long streaks
        streak = _noise(rng, c, 2, 60)
        s.shade[:] = s.shade * (1 + 0.12 * streak)
    elif s.texture == "canvas":  # thick slub threads
        a = _noise(rng, c, 3, 70) if rng.random() < 0.5 else _noise(rng, c, 70, 3)
        s.shade[:] = s.shade * (1 + 0.1 * np.clip(a, -1.5, 1.5))
    else:  # suede: brushed nap, darker and lighter patches going different ways
        nap = _fbm(rng, c, rng.uniform(3, 6), 2)
        s.shade[:] = s.shade * (1 + 0.12 * np.tanh(2 * nap))


_NEGATIVES = {"print": _print, "logo": _logo, "seam": _seam, "grain": _grain}


# --- wear marks (label 1); each returns its full-resolution mask ----------------------------


def _scuffs(rng, img: np.ndarray, s: Surface, c: int) -> np.ndarray:
    cx, cy = _centre(rng, c)
    r = rng.uniform(9, 26)
    th = rng.uniform(0, math.pi)
    squash = rng.uniform(0.3, 0.8)
    layer, draw = _layer(c)
    for _ in range(int(rng.integers(8, 36))):
        rr = r * math.sqrt(rng.random())
        ph = rng.uniform(0, 2 * math.pi)
        ux, uy = rr * math.cos(ph), rr * math.sin(ph) * squash
        px = cx + ux * math.cos(th) - uy * math.sin(th)
        py = cy + ux * math.sin(th) + uy * math.cos(th)
        a = th + rng.normal(0, 0.2)
        ln = rng.uniform(0.3, 1.1) * r
        draw.line(
            [
                (px - ln / 2 * math.cos(a), py - ln / 2 * math.sin(a)),
                (px + ln / 2 * math.cos(a), py + ln / 2 * math.sin(a)),
            ],
            fill=int(rng.uniform(80, 255)),
            width=int(rng.integers(1, 3)),
        )
    strokes = _blur(_as_float(layer), rng.uniform(0.4, 1.0))
    patch = _blur(strokes, 2.5)
    patch = np.clip(patch / max(float(patch.max()), 1e-6), 0, 1)
    lum = float(_lum(s.base))
    if lum < 0.45 or rng.random() < 0.4:  # abrasion: dye rubbed off, lighter and greyer
        col = np.clip(0.55 * s.base + 0.45 * np.array([0.78, 0.75, 0.7]), 0, 1)
    else:  # rubber or dirt mark
        col = np.array([0.2, 0.19, 0.18]) * rng.uniform(0.6, 1.4)
    a = np.clip(strokes * rng.uniform(0.5, 0.95) + patch * rng.uniform(0.0, 0.3), 0, 1)[..., None]
    img[:] = img * (1 - a) + col * a
    return (patch > 0.08).astype(np.float32)


def _stains(rng, img: np.ndarray, s: Surface, c: int) -> np.ndarray:
    cx, cy = _centre(rng, c)
    r = rng.uniform(7, 28)
    alpha = _blob(rng, c, cx, cy, r, rng.uniform(0.5, 1.0), rng.uniform(0.2, 0.5), rng.uniform(0.08, 0.3))
    ring = np.clip(4 * alpha * (1 - alpha), 0, 1)
    strength = rng.uniform(0.3, 0.8)
    if float(_lum(s.base)) < 0.25 or rng.random() < 0.1:  # salt / water mark: a pale ring
        col = np.array([0.82, 0.8, 0.76], np.float32)
        a = (0.35 * alpha + 0.65 * ring)[..., None] * strength
        img[:] = img * (1 - a) + col * a
    else:
        tint = np.array(
            [[0.55, 0.35, 0.15], [0.3, 0.3, 0.28], [0.5, 0.1, 0.2], [0.15, 0.2, 0.45], [0.45, 0.45, 0.2]][
                int(rng.integers(0, 5))
            ],
            np.float32,
        )
        a = (alpha + 0.4 * ring)[..., None] * strength
        img[:] = img * (1 - a * (1 - tint))
    return (alpha > 0.25).astype(np.float32)


def _pilling(rng, img: np.ndarray, s: Surface, c: int) -> np.ndarray:
    cx, cy = _centre(rng, c)
    r = rng.uniform(14, 38)
    region = _blob(rng, c, cx, cy, r, rng.uniform(0.5, 1.0), 0.3, 0.3)
    balls, bd = _layer(c)
    n = int(min(220, rng.uniform(0.02, 0.06) * math.pi * r * r))
    for _ in range(n):
        rr = r * math.sqrt(rng.random()) * 1.1
        ph = rng.uniform(0, 2 * math.pi)
        px, py = cx + rr * math.cos(ph), cy + rr * math.sin(ph)
        br = rng.uniform(0.7, 2.0)
        bd.ellipse([px - br, py - br, px + br, py + br], fill=int(rng.uniform(150, 255)))
    b = _blur(_as_float(balls), 0.6) * (region > 0.2)
    shadow = np.roll(b, (1, 1), axis=(0, 1))
    fuzz = np.stack([_blur(img[..., k], 1.2) for k in range(3)], -1)
    m = (0.6 * region)[..., None]
    img[:] = img * (1 - m) + fuzz * m
    lint = (
        np.clip(s.base * rng.uniform(1.1, 1.5) + rng.uniform(0.03, 0.15), 0, 1)
        if rng.random() < 0.6
        else _hsv(0, 0, rng.uniform(0.6, 0.9))
    )
    img[:] = img * (1 - 0.35 * shadow[..., None])
    bb = b[..., None]
    img[:] = img * (1 - bb) + lint * bb
    return (region > 0.3).astype(np.float32)


def _creases(rng, img: np.ndarray, s: Surface, c: int) -> np.ndarray:
    layer, draw = _layer(c)
    cx, cy = _centre(rng, c)
    base_a = rng.uniform(0, math.pi)
    for _ in range(int(rng.integers(1, 5))):
        a = base_a + rng.normal(0, 0.35)
        ln = rng.uniform(25, 80)
        ox, oy = cx + rng.normal(0, 8), cy + rng.normal(0, 8)
        p0 = (ox - ln / 2 * math.cos(a), oy - ln / 2 * math.sin(a))
        p2 = (ox + ln / 2 * math.cos(a), oy + ln / 2 * math.sin(a))
        bend = rng.normal(0, ln * 0.2)
        p1 = (ox - bend * math.sin(a), oy + bend * math.cos(a))
        pts = _bezier(p0, p1, p2)
        wmax = rng.uniform(1.5, 3.5)
        for i in range(len(pts) - 1):
            t = (i + 0.5) / (len(pts) - 1)
            prof = math.sin(math.pi * t) ** 0.7
            draw.line([tuple(pts[i]), tuple(pts[i + 1])], fill=int(255 * prof), width=max(1, int(round(wmax * prof))))
    p = _blur(_as_float(layer), rng.uniform(0.8, 1.6))
    la = rng.uniform(0, 2 * math.pi)
    dx, dy = int(round(1.5 * math.cos(la))), int(round(1.5 * math.sin(la)))
    relief = np.roll(p, (dy, dx), axis=(0, 1)) - np.roll(p, (-dy, -dx), axis=(0, 1))
    gain = rng.uniform(0.5, 1.2)
    img[:] = np.clip(img * (1 + gain * relief[..., None] - rng.uniform(0.1, 0.35) * p[..., None]), 0, 1)
    return (_blur(p, 2.5) > 0.05).astype(np.float32)


def _fading(rng, img: np.ndarray, s: Surface, c: int) -> np.ndarray:
    cx, cy = _centre(rng, c)
    r = rng.uniform(20, 50)
    f = _blob(rng, c, cx, cy, r, rng.uniform(0.3, 1.0), 0.3, rng.uniform(0.4, 0.8))
    strength = rng.uniform(0.35, 0.75)
    lum = _lum(img)[..., None]
    mean = img.reshape(-1, 3).mean(0)
    flat = mean + (img - mean) * 0.5  # texture contrast washed out
    faded = np.clip(0.5 * flat + 0.5 * (lum * 0.9 + 0.18), 0, 1)  # lighter, greyer
    a = (f * strength)[..., None]
    img[:] = img * (1 - a) + faded * a
    return (f > 0.4).astype(np.float32)


def _fraying(rng, img: np.ndarray, s: Surface, c: int) -> np.ndarray:
    bg = _background(rng, c)
    threads, td = _layer(c)
    if rng.random() < 0.6:  # a frayed edge: ragged border and loose threads, the table beyond
        d, along = _line_field(rng, c, rng.uniform(-0.4, 0.4))
        side = rng.choice([-1.0, 1.0])
        off = rng.uniform(4, 14)
        ragged = d * side - off + 3 * _noise(rng, c, c / 6) + 1.5 * _noise(rng, c, c / 2)
        beyond = (ragged > 0).astype(np.float32)
        pts = np.argwhere(np.abs(ragged) < 1.0)
        grad_y, grad_x = np.gradient(d)
        for _ in range(int(rng.integers(15, 60))):
            if not len(pts):
                break
            py, px = pts[int(rng.integers(0, len(pts)))]
            nx, ny = float(grad_x[py, px]) * side, float(grad_y[py, px]) * side  # outward
            norm = math.hypot(nx, ny) or 1.0
            a = math.atan2(ny / norm, nx / norm) + rng.normal(0, 0.6)
            ln = rng.uniform(3, 18)
            mid = (px + ln / 2 * math.cos(a) + rng.normal(0, 2), py + ln / 2 * math.sin(a) + rng.normal(0, 2))
            end = (px + ln * math.cos(a), py + ln * math.sin(a))
            for q0, q1 in zip(_bezier((px, py), mid, end, 6)[:-1], _bezier((px, py), mid, end, 6)[1:], strict=True):
                td.line([tuple(q0), tuple(q1)], fill=int(rng.uniform(150, 255)), width=1)
        loose = np.exp(-(((ragged + 3) / 2.5) ** 2))  # exposed weft just inside the edge
        mask = (np.abs(ragged) < 10).astype(np.float32)
    else:  # a small hole with threads across and around it
        cx, cy = _centre(rng, c)
        r = rng.uniform(5, 13)
        hole = _blob(rng, c, cx, cy, r, rng.uniform(0.5, 1.0), 0.5, 0.15)
        beyond = (hole > 0.5).astype(np.float32)
        for _ in range(int(rng.integers(8, 30))):
            a = rng.uniform(0, 2 * math.pi)
            rr = r * rng.uniform(0.6, 1.3)
            p0 = (cx + rr * math.cos(a), cy + rr * math.sin(a))
            b = a + math.pi + rng.normal(0, 0.8)
            ln = rng.uniform(r * 0.5, r * 2)
            p2 = (p0[0] + ln * math.cos(b), p0[1] + ln * math.sin(b))
            td.line([p0, p2], fill=int(rng.uniform(150, 255)), width=1)
        loose = np.exp(-(((hole - 0.5) / 0.25) ** 2))
        mask = (_blur(hole, 4) > 0.05).astype(np.float32)
        if rng.random() < 0.5:
            bg = np.broadcast_to(_hsv(rng.uniform(0, 1), rng.uniform(0, 0.5), rng.uniform(0.05, 0.3)), (c, c, 3))
    th = _blur(_as_float(threads), 0.4)[..., None]
    b = _blur(beyond, 0.4)[..., None]
    img[:] = img * (1 - b) + bg * b
    lighter = np.clip(s.base * 1.25 + 0.12, 0, 1)
    lo = (0.5 * loose * (1 - beyond))[..., None]
    img[:] = img * (1 - lo) + lighter * lo
    yarn = np.clip(s.base * rng.uniform(0.9, 1.4) + 0.05, 0, 1)
    img[:] = img * (1 - th * 0.9) + yarn * th * 0.9
    return mask


# --- training-only damage (AUX_MARKS): broken edges, loose threads, irregular damage ---------


def _shadow_colour(rng, c: int) -> np.ndarray:
    """What shows through an opening: the table, or the dark inside of the garment."""
    if rng.random() < 0.5:
        return _background(rng, c)
    return np.broadcast_to(_hsv(rng.uniform(0, 1), rng.uniform(0, 0.4), rng.uniform(0.03, 0.2)), (c, c, 3))


def _tears(rng, img: np.ndarray, s: Surface, c: int) -> np.ndarray:
    """A rip: a jagged slit (straight, kinked or L-shaped), pale cut fibres along its lips."""
    layer, draw = _layer(c)
    lips, ld = _layer(c)
    x, y = _centre(rng, c, 0.2)
    a = rng.uniform(0, 2 * math.pi)
    total = rng.uniform(18, 60)
    turn_at = total * rng.uniform(0.3, 0.7) if rng.random() < 0.35 else None
    step, walked = 2.0, 0.0
    width = rng.uniform(1.0, 3.5)
    while walked < total:
        if turn_at is not None and walked >= turn_at:
            a += rng.choice([-1.0, 1.0]) * rng.uniform(1.2, 1.8)
            turn_at = None
        a += rng.normal(0, 0.35)
        nx, ny = x + step * math.cos(a), y + step * math.sin(a)
        prof = math.sin(math.pi * min(1.0, walked / total + 0.05)) ** 0.6
        w = max(1, int(round(width * prof * rng.uniform(0.6, 1.3))))
        draw.line([(x, y), (nx, ny)], fill=255, width=w)
        ld.line([(x, y), (nx, ny)], fill=255, width=w + 3)
        if rng.random() < 0.5:  # a cut fibre across the opening
            b = a + math.pi / 2 + rng.normal(0, 0.5)
            ln = rng.uniform(1.5, 5.0)
            ld.line([(x, y), (x + ln * math.cos(b), y + ln * math.sin(b))], fill=int(rng.uniform(120, 255)), width=1)
        x, y, walked = nx, ny, walked + step
    hole = _blur(_as_float(layer), 0.5)[..., None]
    rim = np.clip(_blur(_as_float(lips), 0.6) - _blur(_as_float(layer), 0.5), 0, 1)[..., None]
    pale = np.clip(s.base * rng.uniform(1.1, 1.5) + rng.uniform(0.05, 0.2), 0, 1)
    img[:] = img * (1 - rim * rng.uniform(0.4, 0.8)) + pale * rim * rng.uniform(0.4, 0.8)
    img[:] = img * (1 - hole) + _shadow_colour(rng, c) * hole
    return (_blur(_as_float(lips), 2.0) > 0.05).astype(np.float32)


def _holes(rng, img: np.ndarray, s: Surface, c: int) -> np.ndarray:
    """Moth or wear holes: a few small irregular openings with thinned, uneven rims."""
    cx, cy = _centre(rng, c)
    spread = rng.uniform(2, 20)
    holes = np.zeros((c, c), np.float32)
    for _ in range(int(rng.integers(1, 7))):
        hx, hy = cx + rng.normal(0, spread), cy + rng.normal(0, spread)
        r = rng.uniform(1.5, 6.5)
        holes = np.maximum(holes, _blob(rng, c, hx, hy, r, rng.uniform(0.4, 1.0), rng.uniform(0.3, 0.7), 0.2))
    thin = np.clip(_blur(holes, rng.uniform(1.5, 3.0)) * 1.8 - holes, 0, 1)[..., None]
    worn = np.clip(0.6 * img + 0.4 * (_lum(img)[..., None] * 0.8 + 0.2), 0, 1)
    img[:] = img * (1 - thin) + worn * thin
    h = holes[..., None]
    img[:] = img * (1 - h) + _shadow_colour(rng, c) * h
    return (_blur(holes, 3.0) > 0.05).astype(np.float32)


def _snags(rng, img: np.ndarray, s: Surface, c: int) -> np.ndarray:
    """A pulled thread: a puckered line in the fabric and a loop of yarn standing out of it."""
    d, along = _line_field(rng, c, rng.uniform(-0.3, 0.3))
    length = rng.uniform(12, 45)
    inside = np.exp(-((along / length) ** 4))
    pucker = np.sin(d / rng.uniform(1.2, 2.2)) * np.exp(-((d / rng.uniform(3, 7)) ** 2)) * inside
    tight = np.exp(-((d / 0.9) ** 2)) * inside
    img[:] = np.clip(img * (1 + rng.uniform(0.12, 0.3) * pucker[..., None] - 0.25 * tight[..., None]), 0, 1)
    loops, draw = _layer(c)
    shade, sd = _layer(c)
    pts = np.argwhere((np.abs(d) < 1.0) & (inside > 0.5))
    yarn = np.clip(s.base * rng.uniform(0.8, 1.5) + 0.04, 0, 1)
    for _ in range(int(rng.integers(1, 4))):
        if not len(pts):
            break
        py, px = pts[int(rng.integers(0, len(pts)))]
        a = rng.uniform(0, 2 * math.pi)
        ln = rng.uniform(4, 14)
        tip = (px + ln * math.cos(a), py + ln * math.sin(a))
        side = rng.uniform(1.5, 4)
        left = (tip[0] - side * math.sin(a), tip[1] + side * math.cos(a))
        right = (tip[0] + side * math.sin(a), tip[1] - side * math.cos(a))
        for curve in (_bezier((px, py), left, tip, 8), _bezier(tip, right, (px + 1, py + 1), 8)):
            for q0, q1 in zip(curve[:-1], curve[1:], strict=True):
                draw.line([tuple(q0), tuple(q1)], fill=255, width=int(rng.integers(1, 3)))
                sd.line([tuple(q0 + 1.5), tuple(q1 + 1.5)], fill=255, width=2)
    sh = _blur(_as_float(shade), 1.0)[..., None]
    img[:] = img * (1 - 0.35 * sh)
    lp = _blur(_as_float(loops), 0.4)[..., None]
    img[:] = img * (1 - lp) + yarn * lp
    return (_blur(np.maximum(tight, _as_float(loops)), 3.0) > 0.05).astype(np.float32)


def _worn_edge(rng, img: np.ndarray, s: Surface, c: int) -> np.ndarray:
    """A cuff or hem worn through: an eaten, irregular edge, thinned band and fuzz along it."""
    d, _along = _line_field(rng, c, rng.uniform(-0.5, 0.5))
    side = rng.choice([-1.0, 1.0])
    off = rng.uniform(3, 12)
    bite = rng.uniform(2, 6) * np.abs(_noise(rng, c, c / rng.uniform(4, 12))) + 1.2 * _noise(rng, c, c / 2)
    edge = d * side - off + bite
    beyond = _blur((edge > 0).astype(np.float32), 0.5)[..., None]
    band = np.exp(-((np.minimum(edge, 0) / rng.uniform(3, 8)) ** 2))[..., None] * (1 - beyond)
    mean = img.reshape(-1, 3).mean(0)
    thin = np.clip(mean + (img - mean) * 0.4 + rng.uniform(0.05, 0.2), 0, 1)
    img[:] = img * (1 - 0.7 * band) + thin * 0.7 * band
    fuzz = np.clip(_blur(rng.standard_normal((c, c)).astype(np.float32), 0.5), 0, None)
    fz = (fuzz * np.exp(-((edge / 1.8) ** 2)) * 0.8).clip(0, 1)[..., None]
    img[:] = img * (1 - beyond) + _background(rng, c) * beyond
    lighter = np.clip(s.base * 1.3 + 0.1, 0, 1)
    img[:] = img * (1 - fz) + lighter * fz
    return (np.abs(edge) < 8).astype(np.float32)


_MARKS = {
    "scuffs": _scuffs,
    "stains": _stains,
    "pilling": _pilling,
    "creases": _creases,
    "fading": _fading,
    "fraying": _fraying,
    "tears": _tears,
    "holes": _holes,
    "snags": _snags,
    "worn_edge": _worn_edge,
}


# --- the camera --------------------------------------------------------------------------


def _perspective_coeffs(src: np.ndarray, dst: np.ndarray) -> list[float]:
    """PIL PERSPECTIVE coefficients mapping output points ``dst`` to input points ``src``."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    return np.linalg.solve(np.array(rows, np.float64), np.array(rhs, np.float64)).tolist()


def _camera(rng: np.random.Generator, c: int, size: int) -> list[float]:
    rot = math.radians(rng.uniform(-12, 12))
    scale = rng.uniform(0.8, 1.05) * c / CANVAS_FACTOR / size
    half = size / 2
    dst = np.array([[0, 0], [size, 0], [size, size], [0, size]], np.float64)
    src = []
    for px, py in dst:
        ux, uy = (px - half) * scale, (py - half) * scale
        jx, jy = rng.uniform(-0.03, 0.03) * size, rng.uniform(-0.03, 0.03) * size
        src.append(
            (c / 2 + ux * math.cos(rot) - uy * math.sin(rot) + jx, c / 2 + ux * math.sin(rot) + uy * math.cos(rot) + jy)
        )
    return _perspective_coeffs(np.array(src), dst)


def _photo(rng: np.random.Generator, img: np.ndarray, size: int) -> np.ndarray:
    """Lighting, white balance, blur, noise and JPEG on a size x size float image."""
    x, y = _grid(size)
    a = rng.uniform(0, 2 * math.pi)
    g = (x / size - 0.5) * math.cos(a) + (y / size - 0.5) * math.sin(a)
    light = rng.uniform(0.75, 1.15) * (1 + rng.uniform(0, 0.5) * g)
    if rng.random() < 0.4:
        r2 = (x / size - 0.5) ** 2 + (y / size - 0.5) ** 2
        light = light * (1 - rng.uniform(0.1, 0.4) * r2)
    wb = 1 + rng.normal(0, 0.04, 3)
    out = img * light[..., None] * wb
    out = np.clip(out * 255 + rng.normal(0, rng.uniform(0.5, 4.0), out.shape), 0, 255).astype(np.uint8)
    pil = Image.fromarray(out, "RGB")
    if rng.random() < 0.6:
        pil = pil.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 1.1)))
    buf = io.BytesIO()
    pil.save(buf, "JPEG", quality=int(rng.integers(35, 96)))
    buf.seek(0)
    with Image.open(buf) as jpg:
        return np.asarray(jpg.convert("RGB"))


def render(
    spec: Spec, seed: int, index: int, size: int = 128, mask_size: int = 16, marks_drawn: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """One image (size x size x 3 uint8) and its coarse mask (mask_size x mask_size float32) for ``spec``.

    With ``marks_drawn=False`` the marks are drawn on a scratch copy and left out: the same photo
    (surface, light, viewpoint, noise) without its marks, to measure how much the marks change it."""
    rng = np.random.default_rng([_SALT, int(seed), int(index), 1])
    c = int(round(size * CANVAS_FACTOR))
    s = _SURFACES[spec.texture](rng, c)
    for neg in spec.negatives:
        _NEGATIVES[neg](rng, s, c)
    img = np.clip(s.colour * s.shade[..., None], 0, 1).astype(np.float32)
    mask = np.zeros((c, c), np.float32)
    for mark in spec.marks:
        # Drawn either way, so that the random stream after the marks stays the same.
        mask = np.maximum(mask, _MARKS[mark](rng, img if marks_drawn else img.copy(), s, c))
    img = np.clip(img, 0, 1)
    k = int(rng.integers(0, 4))  # any way up
    img, mask = np.rot90(img, k), np.rot90(mask, k)
    coeffs = _camera(rng, c, size)
    warped = Image.fromarray((img * 255 + 0.5).astype(np.uint8), "RGB").transform(
        (size, size), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR
    )
    wmask = Image.fromarray(np.ascontiguousarray(mask), "F").transform(
        (size, size), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR
    )
    photo = _photo(rng, np.asarray(warped, np.float32) / 255.0, size)
    coarse = np.asarray(wmask.resize((mask_size, mask_size), Image.Resampling.BOX), np.float32)
    return photo, np.clip(coarse, 0, 1)


def _render_range(args) -> tuple[np.ndarray, np.ndarray]:
    specs, seed, start, size, mask_size, marks_drawn = args
    images = np.empty((len(specs), size, size, 3), np.uint8)
    masks = np.empty((len(specs), mask_size, mask_size), np.float32)
    for j, spec in enumerate(specs):
        images[j], masks[j] = render(spec, seed, start + j, size, mask_size, marks_drawn)
    return images, masks


def render_all(
    specs: Sequence[Spec],
    seed: int,
    size: int = 128,
    mask_size: int = 16,
    workers: int = 1,
    marks_drawn: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images, labels and masks for ``specs`` (sample ``i`` seeded by ``(seed, i)``); with
    ``marks_drawn=False``, the same images without their marks (see ``render``)."""
    if size % mask_size:
        raise ValueError("size must be a multiple of mask_size")
    specs = list(specs)
    labels = np.array([s.label for s in specs], np.int64)
    if workers <= 1 or len(specs) < 64:
        images, masks = _render_range((specs, seed, 0, size, mask_size, marks_drawn))
        return images, labels, masks

    chunk = max(32, len(specs) // (workers * 8))
    jobs = [(specs[i : i + chunk], seed, i, size, mask_size, marks_drawn) for i in range(0, len(specs), chunk)]
    try:
        # "spawn": a fresh interpreter per worker, safe whatever threads the parent (torch, onnxruntime) runs.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            parts = list(pool.map(_render_range, jobs))
    except BrokenProcessPool:
        # Workers could not start (e.g. a main script they cannot re-import): same result, one process.
        parts = [_render_range(job) for job in jobs]
    return (np.concatenate([p[0] for p in parts]), labels, np.concatenate([p[1] for p in parts]))


def generate(
    n: int,
    seed: int,
    *,
    textures: Sequence[str] = TEXTURES,
    marks: Sequence[str] = MARKS,
    size: int = 128,
    mask_size: int = 16,
    positive_fraction: float = 0.5,
    workers: int = 1,
    with_specs: bool = False,
    negative_rate: float = HARD_NEGATIVE_RATE,
    negative_weights: Sequence[float] | None = None,
):
    """``n`` images drawn from ``textures`` and ``marks`` only (``marks`` may include ``AUX_MARKS``).

    Returns ``(images uint8 [n, size, size, 3], labels int64 [n], masks float32
    [n, mask_size, mask_size])``, plus the list of ``Spec`` when ``with_specs``.
    About ``positive_fraction`` of the images carry one or more marks.
    """
    textures = _check(textures, TEXTURES, "textures")
    marks = _check(marks, MARKS + AUX_MARKS, "marks")
    if not textures:
        raise ValueError("no textures to draw from")
    if negative_weights is not None and (
        len(negative_weights) != len(NEGATIVES) or any(w < 0 for w in negative_weights) or not sum(negative_weights)
    ):
        raise ValueError(f"negative_weights: one non-negative weight per {', '.join(NEGATIVES)}")
    specs = [
        sample_spec(seed, i, textures, marks, positive_fraction, negative_rate, negative_weights) for i in range(n)
    ]
    images, labels, masks = render_all(specs, seed, size, mask_size, workers)
    return (images, labels, masks, specs) if with_specs else (images, labels, masks)


def generate_heldout(
    n: int,
    seed: int,
    *,
    textures: Sequence[str] = HELDOUT_TEXTURES,
    marks: Sequence[str] = HELDOUT_MARKS,
    size: int = 128,
    mask_size: int = 16,
    positive_fraction: float = 0.5,
    workers: int = 1,
    with_specs: bool = False,
):
    """``n`` images made only of held-out texture / mark combinations (see ``sample_heldout_spec``)."""
    textures = _check(textures, TEXTURES, "textures")
    marks = _check(marks, MARKS, "marks")
    specs = [sample_heldout_spec(seed, i, textures, marks, positive_fraction) for i in range(n)]
    images, labels, masks = render_all(specs, seed, size, mask_size, workers)
    return (images, labels, masks, specs) if with_specs else (images, labels, masks)
