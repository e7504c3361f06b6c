"""``wsgi.py`` is served by gunicorn, the server of scaled mode, as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import free_port, http_get

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(sys.platform == "win32", reason="gunicorn runs on POSIX only")
def test_gunicorn_serves_wsgi_app(tmp_path, database_url, engine):
    port = free_port()
    env = {**os.environ, "PORTAL_INSTANCE_PATH": str(tmp_path / "instance"), "PORTAL_DATABASE_URL": database_url}
    cmd = [sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}", "wsgi:app"]
    log = tmp_path / "gunicorn.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        status, body = 0, ""
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"gunicorn exited early: {log.read_text()}")
            try:
                status, body = http_get(f"http://127.0.0.1:{port}/healthz")
                break
            except OSError:  # not listening yet, or the workers are still booting
                time.sleep(0.2)
        assert status == 200, log.read_text()
        status, body = http_get(f"http://127.0.0.1:{port}/")
        assert status == 200
        assert "<html" in body.lower()
        status, _ = http_get(f"http://127.0.0.1:{port}/staff/")
        assert status in (302, 200)  # the login redirect is followed by urllib
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log.read_text()
    assert "Booting worker" in log.read_text()
