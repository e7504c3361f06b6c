"""A throwaway SeaweedFS server with its S3 gateway on loopback, for the storage tests.

Every port is chosen free and passed explicitly (the gRPC ports too: the
"HTTP port + 10000" default can collide or overflow), so several runs can share
a machine. Requests are signed with a real access/secret key pair, as on S3.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REGION = "us-east-1"
# A clean stop takes 15 s (the filer waits out its metadata streams); the data is throwaway.
STOP_GRACE_SECONDS = 3


def find_weed() -> str | None:
    """The ``weed`` executable: next to the running Python first, then on PATH."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which("weed")


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that nothing listens on right now."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def s3_client(endpoint_url: str, access_key: str, secret_key: str, **config):
    import boto3
    from botocore.config import Config

    options = {"s3": {"addressing_style": "path"}, "signature_version": "s3v4", **config}
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(**options),
    )


def _die_with_parent():
    """Linux only: the server gets SIGKILL if the test process dies without cleaning up."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    pr_set_pdeathsig = 1

    def preexec():
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)

    return preexec


@dataclass
class S3Server:
    endpoint_url: str
    bucket: str
    access_key: str
    secret_key: str
    region: str
    startup_seconds: float

    def client(self, **config):
        return s3_client(self.endpoint_url, self.access_key, self.secret_key, **config)


class ServerFailed(RuntimeError):
    pass


class SeaweedS3:
    """Start with ``start()`` (returns an S3Server with a fresh bucket), always ``stop()``."""

    def __init__(self, weed: str, bucket: str = "portal-photos", deadline: float = 60.0):
        self.weed = weed
        self.bucket = bucket
        self.deadline = deadline
        self.workdir = Path(tempfile.mkdtemp(prefix="seaweedfs-"))
        self.log_path = self.workdir / "server.log"
        self.process: subprocess.Popen | None = None
        self.grpc_ports: dict[str, int] = {}
        self.access_key = "portal-test-" + secrets.token_hex(4)
        self.secret_key = secrets.token_urlsafe(24)

    def command(self) -> list[str]:
        (self.workdir / "data").mkdir()
        identities = {
            "identities": [
                {
                    "name": "portal-tests",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                }
            ]
        }
        config = self.workdir / "s3.json"
        config.write_text(json.dumps(identities))
        (master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc) = free_ports(8)
        self.s3_port = s3
        self.grpc_ports = {"master": master_grpc, "volume": volume_grpc, "filer": filer_grpc, "s3": s3_grpc}
        return [
            self.weed,
            "-logtostderr",  # into our log file, not glog files in the temp folder
            f"-config_dir={self.workdir}",  # ignore any SeaweedFS configuration of the machine
            "server",
            f"-dir={self.workdir / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={master}",
            f"-master.port.grpc={master_grpc}",
            f"-volume.port={volume}",
            f"-volume.port.grpc={volume_grpc}",
            f"-filer.port={filer}",
            f"-filer.port.grpc={filer_grpc}",
            "-s3",
            f"-s3.port={s3}",
            f"-s3.port.grpc={s3_grpc}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",  # extra listeners we do not need
            f"-s3.config={config}",
            f"-filer.localSocket={self.workdir / 'filer.sock'}",
            f"-s3.localSocket={self.workdir / 's3.sock'}",
            "-master.telemetry=false",
            "-volume.max=32",  # a bucket claims several volumes at once; too few and writes stall
            "-volume.preStopSeconds=0",  # stop at once instead of after 10 s
        ]

    def log_tail(self, chars: int = 6000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return text[-chars:]

    def start(self) -> S3Server:
        started = time.monotonic()
        command = self.command()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                # Anything it writes to the temp folder lands in ours and goes with it.
                env={**os.environ, "TMPDIR": str(self.workdir)},
                start_new_session=True,
                preexec_fn=_die_with_parent(),
            )
        endpoint = f"http://127.0.0.1:{self.s3_port}"
        # Short timeouts and no retries while polling: each attempt must fail fast.
        client = s3_client(
            endpoint, self.access_key, self.secret_key, connect_timeout=1, read_timeout=2, retries={"max_attempts": 1}
        )
        try:
            self._create_bucket(client, started, endpoint)
        finally:
            client.close()
        return S3Server(endpoint, self.bucket, self.access_key, self.secret_key, REGION, time.monotonic() - started)

    def _create_bucket(self, client, started: float, endpoint: str) -> None:
        """Poll until the gateway answers a signed request by creating the bucket."""
        last_error: Exception | None = None
        while time.monotonic() - started < self.deadline:
            if self.process.poll() is not None:
                raise ServerFailed(
                    f"weed exited with status {self.process.returncode}\n--- server log ---\n{self.log_tail()}"
                )
            try:
                client.create_bucket(Bucket=self.bucket)
                return
            except Exception as exc:  # not up yet: refused, 5xx, filer not ready
                code = getattr(exc, "response", {}).get("Error", {}).get("Code")
                if code == "BucketAlreadyOwnedByYou":  # an earlier attempt got through
                    return
                last_error = exc
                time.sleep(0.1)
        raise ServerFailed(
            f"S3 gateway on {endpoint} not ready after {self.deadline:.0f} s (last error: {last_error!r})\n"
            f"--- server log ---\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """SIGINT, then SIGKILL after a grace period; the process is always reaped."""
        process, self.process = self.process, None
        try:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=STOP_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=STOP_GRACE_SECONDS)
        finally:
            if process is None or process.poll() is not None:
                self._remove_grpc_sockets()
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _remove_grpc_sockets(self) -> None:
        """``weed server`` puts its local gRPC sockets in /tmp whatever TMPDIR says."""
        for name, port in self.grpc_ports.items():
            path = Path(f"/tmp/seaweedfs-{name}-grpc-{port}.sock")
            try:
                if path.is_socket():
                    path.unlink()
            except OSError:
                pass
