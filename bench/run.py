"""Benchmark: policy decisions per second, and shopper pages against a bare "hello" route.

Run from the project root::

    python -m bench.run [--requests N] [--threads T] [--server-threads S]

Part 1 times ``portal.domain.policy.decide`` on a five-line order (pure
domain, no database). Part 2 serves the portal with waitress in a child
process on a free loopback port (temporary instance folder, SQLite, demo data)
and drives it with keep-alive ``http.client`` connections from client
threads. Every endpoint is compared with two routes added to the same app
object for this run only:

- "hello" returns a constant, so the ratio says what the portal costs on top of
  Flask and waitress on this machine;
- "floor" does the least any shopper page of ours must do: it reads the
  shopper's signed session cookie, reads the order by primary key through the
  app's database session and renders ``base.html`` with an empty content block
  (translations active). The ratio to it says what a page adds on top of what
  every shopper page pays.
"""

from __future__ import annotations

import _thread
import argparse
import http.client
import json
import math
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import metadata
from importlib.resources import files
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
HELLO_PATH = "/bench-hello"
FLOOR_PATH = "/bench-floor"
LOOKUP_LIMIT = "1000000 per minute"
ORDER_CASE = "multi-line with discounts"  # a demo order whose page shows several returnable lines
WRONG_CONTACT = "nobody@example.com"
READY = "bench-server-ready "
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')

DEFAULT_REQUESTS = 1000
DEFAULT_THREADS = 4
DEFAULT_SERVER_THREADS = 8  # as ``returns-portal serve``
POLICY_REPEATS = 5
POLICY_REPEAT_SECONDS = 0.4


# --- the machine --------------------------------------------------------------


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or "unknown"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware", "cpu model") and value.strip():
            return value.strip()
    return platform.processor() or "unknown"


def core_count() -> str:
    total = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = total
    return f"{usable}" if usable == total else f"{usable} usable of {total}"


STAFF_CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def staff_sign_in(client, email: str, password: str) -> None:
    """Sign a Flask test client in as a staff member (the benchmarks that time staff pages)."""
    page = client.get("/staff/login")
    match = STAFF_CSRF_RE.search(page.get_data(as_text=True))
    if page.status_code != 200 or match is None:
        raise SystemExit(f"bench: GET /staff/login gave {page.status_code} without a CSRF token")
    response = client.post("/staff/login", data={"csrf_token": match.group(1), "email": email, "password": password})
    if response.status_code != 303:
        raise SystemExit(f"bench: POST /staff/login gave {response.status_code}, expected 303")


def version_of(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


# --- part 1: policy decisions ---------------------------------------------------------


def five_line_request():
    """Facts and choices for a five-line order touching most rules (exchange, photos, returnless)."""
    from portal.domain.policy import LineChoice, LineFacts, OrderFacts

    now = datetime(2025, 3, 14, 10, 0, tzinfo=UTC)

    def line(line_id, sku, name, category, quantity, price, discount="0", options=()):
        return LineFacts(
            line_id=line_id,
            sku=sku,
            product_name=name,
            category=category,
            quantity=quantity,
            unit_price=Decimal(price),
            discount=Decimal(discount),
            tax=Decimal("0"),
            final_sale=False,
            already_requested=0,
            exchange_options=frozenset(options),
        )

    order = OrderFacts(
        order_number="BENCH-1",
        currency="CNY",
        delivered_at=now - timedelta(days=3),
        gift=False,
        lines=(
            line("1", "TEE-S", "Organic cotton T-shirt", "tops", 2, "99.00", "10.00", ("TEE-L",)),
            line("2", "JEANS-30", "Slim jeans", "bottoms", 1, "399.00", options=("JEANS-32",)),
            line("3", "SCARF-RED", "Silk scarf", "accessories", 1, "259.00"),
            line("4", "SNK-41", "Canvas sneakers", "shoes", 1, "459.00", options=("SNK-42",)),
            line("5", "SOCKS-1", "Bamboo socks", "accessories", 3, "12.00"),
        ),
        customer_recent_returns=1,
    )
    choices = (
        LineChoice("1", 2, "size_fit", "too_small", "refund"),
        LineChoice("2", 1, "size_fit", "too_large", "exchange", exchange_sku="JEANS-32"),
        LineChoice("3", 1, "defective", "stain_on_arrival", "refund", photo_count=1),
        LineChoice("4", 1, "changed_mind", "no_longer_needed", "store_credit"),
        LineChoice("5", 1, "damaged", "crushed_parcel", "refund", photo_count=2),
    )
    return order, choices, now


def bench_policy() -> dict:
    from portal.domain.policy import decide, load_policy

    policy = load_policy(files("portal").joinpath("default_policy.toml").read_text(encoding="utf-8"))
    order, choices, now = five_line_request()
    decision = decide(policy, order, choices, now)

    def timed(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            decide(policy, order, choices, now)
        return time.perf_counter() - start

    n = 50
    while (elapsed := timed(n)) < 0.1:  # calibrate (and warm up)
        n *= 2
    n = max(1, int(n * POLICY_REPEAT_SECONDS / elapsed))
    rates = [n / timed(n) for _ in range(POLICY_REPEATS)]
    return {
        "policy": policy.version,
        "verdict": decision.verdict.value,
        "lines": len(decision.lines),
        "per_repeat": n,
        "rates": rates,
    }


# --- part 2: the server (child process) --------------------------------------------------


def serve_child(argv: list[str]) -> None:
    """Child process: seed a fresh instance, serve it with waitress, stop when stdin closes."""
    import logging

    import waitress
    from flask import abort, render_template
    from flask import session as cookie_session

    from portal import create_app
    from portal.db import get_engine, get_session, session_scope, upgrade
    from portal.db.models import Order
    from portal.demo import demo_orders, seed
    from portal.web.shop.routes import SESSION_KEY

    instance, server_threads = argv[0], int(argv[1])
    # Queueing beyond the worker threads is part of what is measured, not news.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    instance_path = Path(instance)
    app = create_app(
        {
            "INSTANCE_PATH": str(instance_path),
            "DATABASE_URL": f"sqlite:///{instance_path / 'portal.sqlite3'}",
            "POLICY_PATH": str(instance_path / "policy.toml"),
            "PHOTO_PATH": str(instance_path / "photos"),
            "OUTBOX_PATH": str(instance_path / "outbox"),
            "SECRET_KEY": "bench-secret-key",
            "API_SECRET": "bench-api-secret",
            "PUBLIC_URL": f"http://{HOST}",
            "LOOKUP_LIMIT": LOOKUP_LIMIT,
            "RATELIMIT_STORAGE_URI": "memory://",
            "JOBS_MODE": "off",
            "DEVELOPMENT": False,
        }
    )
    engine = get_engine(app)
    upgrade(engine)
    with app.app_context(), session_scope(app) as session:
        seed(session)
    app.add_url_rule(HELLO_PATH, "bench_hello", lambda: "hello")

    def floor() -> str:
        order_id = cookie_session.get(SESSION_KEY)
        if not isinstance(order_id, int) or get_session().get(Order, order_id) is None:
            abort(400)
        return render_template("base.html")

    app.add_url_rule(FLOOR_PATH, "bench_floor", floor)

    payload = next(p for name, p in demo_orders() if name == ORDER_CASE)
    server = waitress.create_server(app, host=HOST, port=0, threads=server_threads, ident="returns-portal")

    def stop_on_eof() -> None:
        sys.stdin.read()
        _thread.interrupt_main()

    threading.Thread(target=stop_on_eof, daemon=True, name="bench-stop").start()
    ready = {
        "port": int(server.effective_port),
        "order": payload["order_number"],
        "contact": payload["customer"]["email"],
        "lines": len(payload["lines"]),
    }
    print(READY + json.dumps(ready), flush=True)
    try:
        server.run()  # returns after KeyboardInterrupt, with the worker threads shut down
    finally:
        server.close()
        engine.dispose()


class Server:
    """The portal served by a child process; a context manager that always stops it."""

    def __init__(self, server_threads: int) -> None:
        self.server_threads = server_threads
        self.tmp = tempfile.TemporaryDirectory(prefix="portal-bench-")
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}
        self.returncode: int | None = None

    def __enter__(self) -> Server:
        code = "import sys; from bench.run import serve_child; serve_child(sys.argv[1:])"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, str(Path(self.tmp.name) / "instance"), str(self.server_threads)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for line in self.proc.stdout:
            if line.startswith(READY):
                self.info = json.loads(line[len(READY) :])
                return self
            print(line, end="")
        self._stop()
        self.tmp.cleanup()
        raise SystemExit("bench: the portal server did not start (see its output above)")

    def _stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        try:
            if proc.stdin:
                proc.stdin.close()
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        finally:
            if proc.stdout:
                proc.stdout.close()
            self.returncode = proc.returncode
            self.proc = None

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self._stop()
        finally:
            self.tmp.cleanup()
        if exc_type is None and self.returncode != 0:
            raise SystemExit(f"bench: the portal server exited with code {self.returncode}")


# --- part 2: the load generator ------------------------------------------------------------


class Client:
    """One keep-alive connection with a cookie jar."""

    def __init__(self, port: int, cookies: dict[str, str] | None = None) -> None:
        self.conn = http.client.HTTPConnection(HOST, port, timeout=60)
        self.cookies = dict(cookies or {})

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> tuple[int, bytes]:
        headers = {"Accept-Language": "en"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        for header in response.headers.get_all("Set-Cookie") or ():
            name, _, value = header.split(";", 1)[0].partition("=")
            self.cookies[name.strip()] = value.strip()
        return response.status, data

    def csrf_token(self) -> str:
        status, body = self.request("GET", "/")
        match = CSRF_RE.search(body.decode("utf-8", "replace"))
        if status != 200 or match is None:
            raise RuntimeError(f"GET / gave {status} without a CSRF token")
        return match.group(1)

    def close(self) -> None:
        self.conn.close()


@dataclass
class Endpoint:
    label: str
    method: str
    path: str
    expect: int
    form: dict[str, str] | None = None
    needs_csrf: bool = False
    cookies: dict[str, str] = field(default_factory=dict)
    # Every request sends the cookies the client had before the first one (a lookup hit replaces
    # the session, CSRF token included, so the next hit would be refused).
    same_cookies: bool = False


@dataclass
class Result:
    endpoint: Endpoint
    requests: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies) * 1000

    @property
    def p95_ms(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)] * 1000


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def run_endpoint(port: int, endpoint: Endpoint, requests: int, threads: int) -> Result:
    warmups = split(max(threads * 5, requests // 10), threads)
    shares = split(requests, threads)
    barrier = threading.Barrier(threads)
    starts = [0.0] * threads
    ends = [0.0] * threads
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[str] = []

    def worker(i: int) -> None:
        client = Client(port, endpoint.cookies)
        try:
            form = endpoint.form
            if endpoint.needs_csrf:
                form = {**(form or {}), "csrf_token": client.csrf_token()}
            start = dict(client.cookies)

            def one() -> None:
                if endpoint.same_cookies:
                    client.cookies = dict(start)
                status, _ = client.request(endpoint.method, endpoint.path, form)
                if status != endpoint.expect:
                    raise RuntimeError(f"{endpoint.method} {endpoint.path} gave {status}, expected {endpoint.expect}")

            for _ in range(warmups[i]):
                one()
        except Exception as exc:  # reported below; the barrier must still be released
            errors.append(str(exc))
            barrier.abort()
            client.close()
            return
        try:
            barrier.wait()
            own = latencies[i]
            starts[i] = time.perf_counter()
            for _ in range(shares[i]):
                t0 = time.perf_counter()
                one()
                own.append(time.perf_counter() - t0)
            ends[i] = time.perf_counter()
        except threading.BrokenBarrierError:
            pass
        except Exception as exc:
            errors.append(str(exc))
        finally:
            client.close()

    pool = [threading.Thread(target=worker, args=(i,), name=f"bench-client-{i}") for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise SystemExit(f"bench: {endpoint.label}: {errors[0]}")
    return Result(endpoint, requests, max(ends) - min(starts), [x for own in latencies for x in own])


def shopper_cookies(port: int, order: str, contact: str) -> dict[str, str]:
    """A shopper session: the lookup once, then the order page once (which adds its CSRF token)."""
    client = Client(port)
    try:
        token = client.csrf_token()
        status, _ = client.request("POST", "/lookup", {"csrf_token": token, "order_number": order, "contact": contact})
        if status != 303:
            raise SystemExit(f"bench: lookup of {order} gave {status}, expected 303")
        status, _ = client.request("GET", "/order")
        if status != 200:
            raise SystemExit(f"bench: GET /order gave {status}, expected 200")
        return client.cookies
    finally:
        client.close()


# --- output ---------------------------------------------------------------------------------


def reproduce_command(args: argparse.Namespace) -> str:
    parts = ["python", "-m", "bench.run", "--requests", str(args.requests), "--threads", str(args.threads)]
    parts += ["--server-threads", str(args.server_threads)]
    return shlex.join(parts)


def print_table(results: list[Result]) -> None:
    hello = next(r for r in results if r.endpoint.path == HELLO_PATH)
    floor = next(r for r in results if r.endpoint.path == FLOOR_PATH)
    header = (
        "endpoint",
        "requests",
        "req/s",
        "median ms",
        "p95 ms",
        "req/s vs hello",
        "p95 vs hello",
        "req/s vs floor",
        "p95 vs floor",
    )
    rows = [
        (
            r.endpoint.label,
            str(r.requests),
            f"{r.rate:.0f}",
            f"{r.median_ms:.2f}",
            f"{r.p95_ms:.2f}",
            f"{r.rate / hello.rate:.3f}",
            f"{r.p95_ms / hello.p95_ms:.2f}",
            f"{r.rate / floor.rate:.3f}",
            f"{r.p95_ms / floor.p95_ms:.2f}",
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def fmt(row) -> str:
        return "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )

    print(fmt(header))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(fmt(row))
    print()
    print(
        f"floor ({FLOOR_PATH}): what every shopper page does: the signed session cookie read, the order read by "
        "primary key, base.html rendered with an empty content block, translations active"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--requests", type=int, default=DEFAULT_REQUESTS, help="timed requests per endpoint (default %(default)s)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        help="client threads, one keep-alive connection each (default %(default)s)",
    )
    parser.add_argument(
        "--server-threads",
        type=int,
        default=DEFAULT_SERVER_THREADS,
        help="waitress worker threads (default %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.requests < 1 or args.threads < 1 or args.server_threads < 1:
        parser.error("--requests, --threads and --server-threads must be at least 1")

    print(f"command:  {reproduce_command(args)}")
    print(f"platform: {platform.platform()}")
    print(f"cpu:      {cpu_model()}, {core_count()} cores")
    print(f"python:   {platform.python_implementation()} {platform.python_version()}")
    print("database: sqlite (file in a temporary instance folder)")
    print(
        f"versions: returns-portal {version_of('returns-portal')}, flask {version_of('flask')}, waitress {version_of('waitress')}"
    )
    print()

    p = bench_policy()
    rates = p["rates"]
    print(f"1. Policy decisions ({p['lines']}-line order, policy {p['policy']}, verdict {p['verdict']})")
    print(
        f"   {statistics.median(rates):,.0f} decisions/s "
        f"(median of {len(rates)} repeats of {p['per_repeat']:,}; range {min(rates):,.0f} to {max(rates):,.0f})"
    )
    print()

    with Server(args.server_threads) as server:
        info = server.info
        port = info["port"]
        cookies = shopper_cookies(port, info["order"], info["contact"])
        endpoints = [
            Endpoint("GET /bench-hello (hello)", "GET", HELLO_PATH, 200),
            Endpoint("GET /bench-floor (floor)", "GET", FLOOR_PATH, 200, cookies=cookies),
            Endpoint(f"GET /order ({info['lines']}-line order)", "GET", "/order", 200, cookies=cookies),
            Endpoint(
                "POST /lookup (miss)",
                "POST",
                "/lookup",
                422,
                form={"order_number": info["order"], "contact": WRONG_CONTACT},
                needs_csrf=True,
            ),
            Endpoint(
                "POST /lookup (hit)",
                "POST",
                "/lookup",
                303,
                form={"order_number": info["order"], "contact": info["contact"]},
                needs_csrf=True,
                same_cookies=True,
            ),
        ]
        print(
            f"2. HTTP: waitress ({args.server_threads} threads) in a child process on {HOST}, "
            f"{args.threads} keep-alive client threads, demo data, lookup limit {LOOKUP_LIMIT!r}"
        )
        results = [run_endpoint(port, e, args.requests, args.threads) for e in endpoints]
    print()
    print_table(results)


if __name__ == "__main__":
    main()
