"""The stack's process helpers on their own (no services needed): children never outlive a stop,
a failed start says why with the log, and the holding proxy holds kept-alive connections too."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time

import pytest

from tests.stack.harness import HoldingProxy, Service, ServiceFailed, group_members, pid_with_local_port

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_stop_kills_the_whole_group_even_when_the_leader_ignores_sigterm(tmp_path):
    script = "trap '' TERM; sleep 60 & sleep 60 & echo started; wait"
    service = Service("group", ["sh", "-c", script], {"PATH": "/usr/bin:/bin"}, tmp_path).start()
    service.wait_until(lambda: "started" in service.log_path.read_text(), "start")
    service.wait_until(lambda: len(service.group_pids()) == 3, "two children")
    pgid = service.pid
    started = time.monotonic()
    service.stop(grace=1)
    assert time.monotonic() - started < 10
    assert not service.running()
    assert group_members(pgid) == []


def test_a_process_that_exits_early_fails_with_its_log(tmp_path):
    service = Service("broken", ["sh", "-c", "echo cannot bind port; exit 3"], {"PATH": "/usr/bin:/bin"}, tmp_path)
    service.start()
    with pytest.raises(ServiceFailed, match=r"(?s)broken exited with status 3.*cannot bind port"):
        service.wait_until(lambda: False, "ready")
    service.stop()


def test_holding_proxy_holds_new_and_kept_alive_connections(tmp_path):
    upstream = socket.socket()
    upstream.bind(("127.0.0.1", 0))
    upstream.listen()

    def echo() -> None:
        conn, _ = upstream.accept()
        with conn:
            while data := conn.recv(1024):
                conn.sendall(data)

    threading.Thread(target=echo, daemon=True).start()
    proxy = HoldingProxy(upstream.getsockname()[1])
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as client:
            client.sendall(b"one")
            assert client.recv(16) == b"one"
            proxy.hold()
            client.sendall(b"two")
            client.settimeout(0.5)
            with pytest.raises(TimeoutError):
                client.recv(16)  # held: nothing goes through
            assert len(proxy.waiting) == 1
            assert pid_with_local_port([os.getpid()], proxy.waiting[0][1]) is not None
            proxy.release()
            client.settimeout(5)
            assert client.recv(16) == b"two"
    finally:
        proxy.close()
        upstream.close()
