"""Metrics and logs across real processes: gunicorn workers sharing PROMETHEUS_MULTIPROC_DIR, and
the command line writing JSON log lines."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import free_port, http_get

ROOT = Path(__file__).resolve().parents[2]


def _healthz_count(text: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name == "portal_http_request_duration_seconds_count"
                and labels.get("endpoint") == "ops.healthz"
                and labels.get("status") == "2xx"
            ):
                return sample.value
    return 0.0


def _worker_files(folder: Path) -> set[str]:
    return {m.group(1) for f in folder.iterdir() if (m := re.fullmatch(r"histogram_(\d+)\.db", f.name))}


@pytest.mark.skipif(sys.platform == "win32", reason="gunicorn runs on POSIX only")
def test_metrics_add_up_every_gunicorn_worker(tmp_path, database_url, engine):
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "PORTAL_INSTANCE_PATH": str(tmp_path / "instance"),
        "PORTAL_DATABASE_URL": database_url,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    cmd = [sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}", "wsgi:app"]
    log = tmp_path / "gunicorn.log"
    base = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        served = 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"gunicorn exited early: {log.read_text()}")
            try:
                status, _ = http_get(f"{base}/healthz")
            except OSError:  # not listening yet
                time.sleep(0.2)
                continue
            assert status == 200
            served += 1
            # Until both workers have answered something (each writes its own file), and a few more.
            if len(_worker_files(metrics_dir)) >= 2 and served >= 20:
                break
        assert len(_worker_files(metrics_dir)) == 2, log.read_text()
        # Whichever worker answers the scrape, it reports what both workers served.
        for _ in range(6):
            status, text = http_get(f"{base}/metrics")
            assert status == 200, text
            assert _healthz_count(text) == served
            assert "portal_outbox_backlog 0.0" in text
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log.read_text()


def test_command_line_writes_json_log_lines(tmp_path):
    env = {
        **os.environ,
        "PORTAL_INSTANCE_PATH": str(tmp_path / "instance"),
        "PORTAL_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}",
        "PORTAL_LOG_FORMAT": "json",
    }
    done = subprocess.run(
        [sys.executable, "-c", "from portal.cli import main; main()", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines, "no log lines"
    records = [json.loads(line) for line in lines]  # every line is one JSON object, none printed twice as text
    assert any(r["logger"].startswith("alembic") and "upgrade" in r["message"].lower() for r in records), records
    assert all({"time", "level", "logger", "message", "request_id"} <= set(r) for r in records)
