"""Processes of the real stack on loopback: start with a readiness wait, stop for sure, read their logs.

Every child runs in its own process group (so gunicorn's and Celery's own children go with it)
and, on Linux, gets SIGKILL should the test process die without cleaning up.
"""

from __future__ import annotations

import email
import http.cookiejar
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.integration.s3_server import _die_with_parent

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
REDIS_SERVER = "/usr/bin/redis-server"


class ServiceFailed(RuntimeError):
    pass


class Service:
    """One child process (and its process group) with its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], workdir: Path, cwd: Path = ROOT):
        self.name, self.argv, self.env, self.cwd = name, argv, env, cwd
        self.log_path = workdir / f"{name}.log"
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} is not running"
        return self.process.pid

    def start(self) -> Service:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent(),
            )
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_until(self, check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
        """Poll ``check`` until it returns something truthy; fail with the log when the process
        exits or the time runs out."""
        deadline = time.monotonic() + timeout
        last: BaseException | None = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServiceFailed(
                    f"{self.name} exited with status {self.process.returncode} before {what}\n{self.tail()}"
                )
            try:
                result = check()
            except Exception as exc:  # not ready yet
                last, result = exc, None
            if result:
                return result
            time.sleep(0.1)
        raise ServiceFailed(f"{self.name}: no {what} after {timeout:.0f} s (last error: {last!r})\n{self.tail()}")

    def group_pids(self) -> list[int]:
        """The leader and every process still in its group (gunicorn or Celery children)."""
        return group_members(self.process.pid) if self.process is not None else []

    def send(self, sig: int) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, sig: int = signal.SIGTERM, grace: float = 10.0) -> int | None:
        """Send ``sig`` to the group, SIGKILL it after ``grace`` seconds; always reaped."""
        process = self.process
        if process is None:
            return None
        try:
            if process.poll() is None:
                self.send(sig)
                try:
                    process.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            self.send(signal.SIGKILL)  # stragglers of the group, even when the leader is gone
            process.wait()
            self.process = None
            deadline = time.monotonic() + 10
            while group_members(process.pid) and time.monotonic() < deadline:
                time.sleep(0.05)  # a killed child is gone once the kernel has delivered the signal
        return process.returncode

    def kill(self) -> None:
        """SIGKILL the whole group at once: the host died."""
        self.stop(signal.SIGKILL, grace=0)

    def tail(self, chars: int = 4000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return f"--- {self.name}: no log ---"
        return f"--- {self.name} log (last {chars} chars) ---\n{text[-chars:]}"


def group_members(pgid: int) -> list[int]:
    """Live processes of the process group ``pgid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def redis_service(port: int, workdir: Path) -> Service:
    """A redis-server on loopback that writes every command to its append-only file, so a restart
    on the same folder finds the queued messages again."""
    data = workdir / "redis"
    data.mkdir(exist_ok=True)
    argv = [
        REDIS_SERVER,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data),
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--save",
        "",
        "--protected-mode",
        "yes",
    ]
    return Service("redis", argv, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, workdir, cwd=data)


def redis_ready(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    try:
        return bool(client.ping())
    finally:
        client.close()


# --- SMTP -------------------------------------------------------------------------


class Inbox:
    """aiosmtpd handler keeping every message received, in order."""

    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def to(self, address: str) -> list[email.message.Message]:
        with self.lock:
            return [m for m in self.messages if m["To"] == address]


# --- a photo store that can be held -----------------------------------------------


class HoldingProxy:
    """A TCP relay in front of the S3 server. While ``hold()`` is on, new connections are accepted
    and then left waiting: whoever reads a photo through it is stuck there, deterministically."""

    def __init__(self, target_port: int) -> None:
        import socket

        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.open = threading.Event()
        self.open.set()
        self.waiting: list[tuple[str, int]] = []  # peers of the connections being held
        self.closed = False
        threading.Thread(target=self._accept, daemon=True, name="s3-hold-proxy").start()

    def hold(self) -> None:
        self.waiting.clear()
        self.open.clear()

    def release(self) -> None:
        self.open.set()

    def close(self) -> None:
        self.closed = True
        self.open.set()
        self.listener.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, peer = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(conn, peer), daemon=True).start()

    def _relay(self, conn, peer) -> None:
        import socket

        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
        except OSError:
            conn.close()
            return
        upstream.settimeout(None)

        def pump(src, dst, gated: bool) -> None:
            try:
                while chunk := src.recv(65536):
                    if gated and not self.open.is_set():  # a request on a kept-alive connection too
                        self.waiting.append(peer)
                        self.open.wait()
                    if self.closed:
                        break
                    dst.sendall(chunk)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        back = threading.Thread(target=pump, args=(upstream, conn, False), daemon=True)
        back.start()
        pump(conn, upstream, True)
        back.join()
        conn.close()
        upstream.close()


def pid_with_local_port(pids: list[int], port: int) -> int | None:
    """Which of ``pids`` owns the TCP socket bound locally to ``port`` (Linux /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            match = re.fullmatch(r"socket:\[(\d+)\]", target)
            if match and match.group(1) in inodes:
                return pid
    return None


# --- HTTP as a browser does it ----------------------------------------------------------


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class Response:
    def __init__(self, status: int, headers, body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")


class Browser:
    """Cookies kept, redirects not followed (a 303 is an answer to look at), forms posted
    urlencoded or as multipart with files."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), NoRedirect)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> Response:
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=headers or {})
        try:
            with self.opener.open(req, timeout=60) as resp:
                return Response(resp.status, resp.headers, resp.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return Response(exc.code, exc.headers, exc.read())

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def post(
        self, path: str, form: dict[str, Any], files: dict[str, list[tuple[str, bytes]]] | None = None
    ) -> Response:
        if not files:
            body = urllib.parse.urlencode(form).encode()
            return self.request("POST", path, body, {"Content-Type": "application/x-www-form-urlencoded"})
        boundary = uuid.uuid4().hex
        out = io.BytesIO()
        for name, value in form.items():
            out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
        for name, items in files.items():
            for filename, data in items:
                out.write(
                    f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                    "Content-Type: image/jpeg\r\n\r\n".encode()
                )
                out.write(data + b"\r\n")
        out.write(f"--{boundary}--\r\n".encode())
        return self.request("POST", path, out.getvalue(), {"Content-Type": f"multipart/form-data; boundary={boundary}"})

    def post_json(self, path: str, body: bytes, headers: dict[str, str]) -> Response:
        return self.request("POST", path, body, headers)


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60.0, services: list[Service] = ()) -> Any:
    """Poll until ``check`` gives something truthy; on timeout fail with the services' logs."""
    deadline = time.monotonic() + timeout
    result = None
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    logs = "\n".join(s.tail() for s in services)
    raise AssertionError(f"no {what} after {timeout:.0f} s (last: {result!r})\n{logs}")
