"""Lookup timing: an unknown order vs a known order with the wrong contact, in process.

    python -m bench.lookup_timing [--n 300]

Prints the median and p90 of each path and their difference, with the machine. The two paths
must cost the same (SECURITY.md: the miss path does the same work as the hit); the test
``tests/web/test_throttling.py`` checks the work itself (same statements, no object loaded),
this measures the time.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta

from bench.run import core_count, cpu_model
from portal import create_app
from portal.db import get_engine, upgrade
from portal.signing import sign


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="lookups per path")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(
            {
                "INSTANCE_PATH": tmp,
                "SECRET_KEY": "bench",
                "API_SECRET": "bench",
                "TESTING": True,
                "RATELIMIT_ENABLED": False,
                "JOBS_MODE": "off",
                "WTF_CSRF_ENABLED": False,
            }
        )
        upgrade(get_engine(app))
        client = app.test_client()
        now = datetime.now(UTC)
        order = {
            "order_number": "BENCH-1",
            "placed_at": (now - timedelta(days=5)).isoformat(),
            "delivered_at": (now - timedelta(days=2)).isoformat(),
            "currency": "CNY",
            "customer": {"name": "Li Wei", "email": "li.wei@example.com"},
            "payment": {"method": "alipay"},
            "lines": [
                {
                    "line_id": "1",
                    "sku": "TEE-S",
                    "product_name": "Tee",
                    "category": "tops",
                    "quantity": 1,
                    "unit_price": "99.00",
                }
            ],
        }
        body = json.dumps(order).encode()
        ts = str(int(time.time()))
        headers = {
            "X-Portal-Timestamp": ts,
            "X-Portal-Signature": sign("bench", ts, body),
            "Content-Type": "application/json",
        }
        pushed = client.post("/api/v1/orders", data=body, headers=headers)
        assert pushed.status_code in (200, 201), pushed.get_data(as_text=True)

        def timed(number: str) -> float:
            start = time.perf_counter()
            response = client.post("/lookup", data={"order_number": number, "contact": "x@example.com"})
            elapsed = time.perf_counter() - start
            assert response.status_code == 422, response.status_code
            return elapsed * 1000

        for i in range(20):  # warm-up
            timed(f"WARM-{i}")
            timed("BENCH-1")
        miss, hit = [], []
        for i in range(args.n):  # interleaved, so drift in the machine hits both alike
            miss.append(timed(f"NOPE-{i}"))
            hit.append(timed("BENCH-1"))
    print(f"platform: {platform.platform()}")
    print(f"cpu:      {cpu_model()}, {core_count()} cores")
    print(f"python:   {platform.python_implementation()} {platform.python_version()}")
    for name, values in (("unknown order", miss), ("known order, wrong contact", hit)):
        p90 = statistics.quantiles(values, n=10)[-1]
        print(f"{name:28s} median {statistics.median(values):6.2f} ms   p90 {p90:6.2f} ms   (n={len(values)})")
    print(f"difference of medians: {statistics.median(hit) - statistics.median(miss):+.3f} ms")


if __name__ == "__main__":
    main()
