"""A real browser (Chromium driven by Playwright) against the app served by waitress on loopback."""

from __future__ import annotations

import os
import shutil
import threading

import pytest

from tests.helpers import service_missing

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def chromium_path() -> str | None:
    for candidate in (
        os.environ.get("PORTAL_CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


@pytest.fixture
def live_server(app):
    import waitress

    app.config["JOBS_MODE"] = "eager"
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
    port = server.effective_port
    stopping = threading.Event()

    def serve() -> None:
        # The serving thread closes the server itself: closing its sockets from the test's
        # thread while the loop sits in select() fails there with "Bad file descriptor".
        while not stopping.is_set():
            server.asyncore.loop(timeout=0.05, map=server._map, use_poll=server.adj.asyncore_use_poll, count=1)
        server.close()

    thread = threading.Thread(target=serve, daemon=True, name="e2e-server")
    thread.start()
    yield f"http://127.0.0.1:{port}"
    stopping.set()
    thread.join(5)
    # Let requests still in flight (the status page polls) finish and give their database
    # connections back before the app's engine is disposed: a connection left checked out is
    # garbage-collected open later, and warns in whichever test is running then.
    server.task_dispatcher.shutdown(cancel_pending=True, timeout=10)
    # Connections the browser kept alive are closed too (the loop has stopped, so nothing else
    # uses them): left to the garbage collector, an unclosed socket warns in whichever test is
    # running when it is collected.
    for channel in list(server.active_channels.values()):
        channel.handle_close()
    assert not server.active_channels


@pytest.fixture
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        service_missing("playwright is not installed")
    path = chromium_path()
    if path is None:
        service_missing("no Chromium on this machine (install the chromium package)")
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-GB")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, errors


@pytest.fixture
def camera_page():
    """``camera_page(video)``: a page in a Chromium of its own whose camera is a fake device playing
    ``video`` (a .y4m file), allowed without asking. Not for a test that also uses ``page``."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        service_missing("playwright is not installed")
    path = chromium_path()
    if path is None:
        service_missing("no Chromium on this machine (install the chromium package)")
    errors: list[str] = []
    with sync_playwright() as p:
        launched = []

        def open_page(video):
            instance = p.chromium.launch(
                executable_path=path,
                args=[
                    *CHROMIUM_ARGS,
                    "--use-fake-device-for-media-stream",
                    "--use-fake-ui-for-media-stream",
                    f"--use-file-for-fake-video-capture={video}",
                ],
            )
            launched.append(instance)
            context = instance.new_context(viewport={"width": 390, "height": 844}, locale="en-GB")
            page = context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            return page

        yield open_page
        for instance in launched:
            instance.close()
    assert not errors, errors
