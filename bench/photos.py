"""Benchmark: photo intake and wear scoring on generated 12-megapixel JPEGs.

Run from the project root::

    python -m bench.photos [--photos N]

Prints, per photo, the median and p95 of (a) plain Pillow open-and-decode of
the same file, (b) our intake (decode with draft mode, orient, strip, resize,
thumbnail, store in a local folder) with each stage's share and (c) the wear
model as the app runs it (read the stored thumbnail, score it); the ratios
intake / plain decode and model / intake are the figures. Then photos per
second for a request of five photos (intake of five, then one batch through
the model).
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.run import cpu_model
from portal import resource_dir
from portal.storage import LocalPhotoStore, new_key
from portal.vision.classifier import DEFAULT_MODEL, get_model
from portal.vision.intake import clean_photo

WIDTH, HEIGHT = 4000, 3000  # 12 MP, as a phone sends


def make_photos(n: int, seed: int = 7) -> list[bytes]:
    """Photo-like JPEGs: smooth gradients plus noise, so they compress like real pictures."""
    rng = np.random.default_rng(seed)
    out = []
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    for i in range(n):
        base = np.stack([(xx * (0.03 + 0.01 * i)) % 255, (yy * 0.05) % 255, ((xx + yy) * 0.02) % 255], axis=-1)
        noisy = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        exif = Image.Exif()
        exif[0x0112] = 6  # rotated, as phones do
        Image.fromarray(noisy).save(buf, "JPEG", quality=90, exif=exif)
        out.append(buf.getvalue())
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def row(name: str, values: list[float], base: float | None = None) -> str:
    med = statistics.median(values) * 1000
    ratio = f"{med / base:8.2f}" if base else "    1.00"
    return f"{name:<38} {med:9.1f} {pct(values, 0.95) * 1000:9.1f} {ratio}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=12)
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"wear model in models/ (default {DEFAULT_MODEL})")
    args = parser.parse_args()
    print(f"command:  python -m bench.photos --photos {args.photos} --model {args.model}")
    print(f"platform: {platform.platform()}")
    print(f"cpu:      {cpu_model()}, {os.cpu_count()} cores")
    print(f"python:   {platform.python_implementation()} {platform.python_version()}")
    print(f"photos:   {args.photos} generated JPEGs of {WIDTH}x{HEIGHT}")

    photos = make_photos(args.photos)
    print(f"          median file size {statistics.median(len(p) for p in photos) / 1e6:.1f} MB")
    model = get_model(str(resource_dir("models")), args.model)
    if model is None:
        sys.exit(f"the wear model {args.model} could not be loaded")
    print(f"model:    {model.version}")

    plain, floor, intake, scoring = [], [], [], []
    stages: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalPhotoStore(Path(tmp))
        model.score([Image.new("RGB", (64, 64))])  # create the session outside the timings
        for data in photos:
            t = time.perf_counter()
            with Image.open(io.BytesIO(data)) as img:
                img.load()
            plain.append(time.perf_counter() - t)

            # The floor under any intake: libjpeg must entropy-decode the whole file at every scale,
            # so decoding at 1/8 (the smallest draft) is as fast as reading a JPEG can be.
            t = time.perf_counter()
            with Image.open(io.BytesIO(data)) as img:
                img.draft("RGB", (img.width // 8, img.height // 8))
                img.load()
            floor.append(time.perf_counter() - t)

            t = time.perf_counter()
            clean = clean_photo(data, "photo.jpg", 50 * 1024 * 1024, stages)
            key = new_key()
            s = time.perf_counter()
            store.put(key, clean.data, clean.content_type)
            store.put(key + ".thumb", clean.thumbnail, clean.content_type)
            stages["store"] = stages.get("store", 0.0) + time.perf_counter() - s
            intake.append(time.perf_counter() - t)

            t = time.perf_counter()
            with Image.open(io.BytesIO(store.get(key + ".thumb"))) as img:
                model.score([img.convert("RGB")])
            scoring.append(time.perf_counter() - t)

        requests = []
        for start in range(0, len(photos) - 4, 5):
            batch = photos[start : start + 5]
            t = time.perf_counter()
            images = []
            for data in batch:
                clean = clean_photo(data, "photo.jpg", 50 * 1024 * 1024)
                store.put(new_key(), clean.data, clean.content_type)
                store.put(new_key(), clean.thumbnail, clean.content_type)
                images.append(Image.open(io.BytesIO(clean.thumbnail)).convert("RGB"))
            model.score(images)
            requests.append(time.perf_counter() - t)

    base = statistics.median(plain) * 1000
    print()
    print(f"{'per photo':<38} {'median ms':>9} {'p95 ms':>9} {'vs decode':>8}")
    print(row("plain Pillow open + decode", plain))
    print(row("decode at 1/8 scale (the floor)", floor, base))
    print(row("intake (orient, strip, resize, store)", intake, base))
    print(row("wear model (thumbnail read + score)", scoring, base))
    print(f"model / intake, medians: {statistics.median(scoring) / statistics.median(intake):.3f}")
    total = sum(stages.values())
    print()
    print("intake stages, share of the intake time (all photos):")
    for stage, seconds in stages.items():
        print(f"  {stage:<10} {seconds / len(photos) * 1000:7.1f} ms  {seconds / total:6.1%}")
    if requests:
        med = statistics.median(requests)
        print()
        print(f"request of 5 photos (intake + one model batch): median {med * 1000:.0f} ms, {5 / med:.1f} photos/s")


if __name__ == "__main__":
    main()
