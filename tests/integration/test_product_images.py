"""Product pictures from the shop API: fetched once from the shop's address, checked like a
shopper's photo, kept in our photo store and served by the portal; a placeholder otherwise.
The shop's side is a real HTTP server on loopback."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image
from sqlalchemy import select

from portal.adapters import images
from portal.adapters.images import HttpImageFetcher, ImageFetchError
from portal.db.models import Product, Variant
from tests.helpers import encode, login_shopper, order_payload, post_json, soup

FILES = {
    "/tee.png": (encode(Image.new("RGB", (300, 300), (20, 120, 200)), "PNG"), "image/png"),
    "/tee-large.jpg": (encode(Image.new("RGB", (400, 300), (200, 60, 20)), "JPEG"), "image/jpeg"),
    "/notes.txt": (b"not a picture", "text/plain"),
}
REDIRECTS = {
    "/moved.png": "http://127.0.0.1:{port}/tee.png",
    "/to-metadata": "http://169.254.169.254/latest/meta-data/",  # a cloud's metadata service
}
PUBLIC = "93.184.216.34"  # a public address; nothing answers it from here within the tests' timeout


class Shop(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the handler's API)
        self.server.requests.append(self.path)
        if self.path.startswith("/hop/"):  # /hop/3 -> /hop/2 -> /hop/1 -> /tee.png: three redirects
            left = int(self.path.removeprefix("/hop/"))
            return self.redirect(f"/hop/{left - 1}" if left > 1 else "/tee.png")
        if self.path in REDIRECTS:
            return self.redirect(REDIRECTS[self.path].format(port=self.server.server_address[1]))
        body, kind = FILES.get(self.path, (b"", "text/plain"))
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        return None


@contextmanager
def serving(server: ThreadingHTTPServer):
    server.requests = []  # the paths asked for, in order
    server.handle_error = lambda *args: None  # a client refusing our certificate is expected
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def shop():
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Shop)) as server:
        yield server


@pytest.fixture
def shop_server(shop):
    return f"http://127.0.0.1:{shop.server_address[1]}"


@pytest.fixture
def dns(monkeypatch):
    """Made-up names (*.test) answered from a table, one answer per lookup (the last one repeats);
    other names resolve as usual. Returns the table and the list of names looked up."""
    real = socket.getaddrinfo
    answers: dict[str, list[list[str]]] = {}
    lookups: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        lookups.append(host)
        addresses = answers[host].pop(0) if len(answers[host]) > 1 else answers[host][0]
        return [info for address in addresses for info in real(address, port, *args, **kwargs)]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers, lookups


def catalogue(base: str) -> dict:
    return {
        "products": [
            {
                "product_code": "TEE",
                "name": "T-shirt",
                "category": "tops",
                "image_url": f"{base}/tee.png",
                "variants": [
                    {"sku": "TEE-S", "variant": "S", "stock": 5},
                    {"sku": "TEE-L", "variant": "L", "stock": 5, "image_url": f"{base}/tee-large.jpg"},
                ],
            },
            {
                "product_code": "SCARF",
                "name": "Silk scarf",
                "category": "accessories",
                "image_url": f"{base}/notes.txt",
                "variants": [{"sku": "SCARF-RED", "variant": "Red", "stock": 1}],
            },
        ]
    }


def test_pictures_are_copied_and_served_by_the_portal(app, client, session, shop_server):
    app.config["PRODUCT_IMAGES_ALLOW_PRIVATE"] = True  # the test shop runs on loopback
    assert post_json(client, "/api/v1/products", catalogue(shop_server)).status_code == 200
    session.expire_all()
    tee = session.scalars(select(Product).where(Product.product_code == "TEE")).one()
    assert tee.image_key and tee.image_key.startswith("products/")
    served = client.get("/images/sku/TEE-S")  # the variant has none of its own: the product's
    assert served.status_code == 200 and served.mimetype == "image/jpeg"
    assert served.data[:3] == b"\xff\xd8\xff" and served.data != FILES["/tee.png"][0]  # re-encoded, ours
    large = client.get("/images/sku/TEE-L")
    assert large.status_code == 200 and large.data != served.data  # the variant's own picture

    scarf = session.scalars(select(Product).where(Product.product_code == "SCARF")).one()
    assert scarf.image_key is None and "not a JPEG, PNG" in scarf.image_error
    placeholder = client.get("/images/sku/SCARF-RED")
    assert placeholder.status_code == 302 and placeholder.headers["Location"].endswith("product-placeholder.svg")
    assert client.get("/images/sku/NOPE").status_code == 302

    # The order page shows our copy, never the shop's address.
    post_json(client, "/api/v1/orders", order_payload())
    login_shopper(client)
    page = soup(client.get("/order"))
    sources = [img["src"] for img in page.select("img.product")]
    assert sources == ["/images/sku/TEE-S", "/images/sku/SCARF-RED"]
    assert shop_server not in str(page)


def test_a_new_address_replaces_the_copy_and_the_same_one_is_not_fetched_again(app, client, session, shop_server):
    app.config["PRODUCT_IMAGES_ALLOW_PRIVATE"] = True
    post_json(client, "/api/v1/products", catalogue(shop_server))
    session.expire_all()
    first = session.scalars(select(Variant.image_key).where(Variant.sku == "TEE-L")).one()
    again = catalogue(shop_server)
    post_json(client, "/api/v1/products", again)
    session.expire_all()
    assert session.scalars(select(Variant.image_key).where(Variant.sku == "TEE-L")).one() == first
    again["products"][0]["variants"][1]["image_url"] = f"{shop_server}/tee.png"
    post_json(client, "/api/v1/products", again)
    session.expire_all()
    assert session.scalars(select(Variant.image_key).where(Variant.sku == "TEE-L")).one() != first


def test_private_addresses_are_refused_unless_allowed(shop, shop_server):
    with pytest.raises(ImageFetchError, match="not a public address"):
        HttpImageFetcher().fetch(f"{shop_server}/tee.png")
    assert shop.requests == []  # refused before connecting
    with pytest.raises(ImageFetchError, match="http"):
        HttpImageFetcher(allow_private=True).fetch("file:///etc/passwd")
    assert HttpImageFetcher(allow_private=True).fetch(f"{shop_server}/tee.png") == FILES["/tee.png"][0]
    with pytest.raises(ImageFetchError, match="larger than the limit"):
        HttpImageFetcher(max_bytes=100, allow_private=True).fetch(f"{shop_server}/tee.png")
    with pytest.raises(ImageFetchError, match="HTTP Error 404"):
        HttpImageFetcher(allow_private=True).fetch(f"{shop_server}/gone.png")


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1", "240.0.0.1"]
    + ["::1", "::", "fe80::1%eth0", "fc00::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1"],
)
def test_addresses_that_are_not_public(address):
    assert not images.is_public(address)


@pytest.mark.parametrize("address", [PUBLIC, "2606:2800:220:1:248:1893:25c8:1946", f"::ffff:{PUBLIC}"])
def test_public_addresses(address):
    assert images.is_public(address)  # an IPv4-mapped address is judged by its IPv4 address


@pytest.mark.parametrize("addresses", [[PUBLIC, "127.0.0.1"], ["::ffff:127.0.0.1"], ["0.0.0.0"]])
def test_a_name_with_any_private_address_is_refused(shop, dns, addresses):
    answers, _ = dns
    answers["shop.test"] = [addresses]
    with pytest.raises(ImageFetchError, match="shop.test is not a public address"):
        HttpImageFetcher().fetch(f"http://shop.test:{shop.server_address[1]}/tee.png")
    assert shop.requests == []


def test_the_name_is_resolved_once_and_the_checked_address_is_the_one_connected_to(shop, dns):
    answers, lookups = dns
    answers["shop.test"] = [[PUBLIC], ["127.0.0.1"]]  # a rebinding name: public for the check, loopback after
    with pytest.raises(ImageFetchError):
        HttpImageFetcher(timeout=0.5).fetch(f"http://shop.test:{shop.server_address[1]}/tee.png")
    assert lookups == ["shop.test"]
    assert shop.requests == []  # the fetch went to the public address, never to loopback


def test_redirects_are_followed_up_to_three(shop, shop_server):
    fetcher = HttpImageFetcher(allow_private=True)
    assert fetcher.fetch(f"{shop_server}/moved.png") == FILES["/tee.png"][0]
    assert fetcher.fetch(f"{shop_server}/hop/3") == FILES["/tee.png"][0]
    assert shop.requests[-4:] == ["/hop/3", "/hop/2", "/hop/1", "/tee.png"]
    shop.requests.clear()
    with pytest.raises(ImageFetchError, match="too many redirects"):
        fetcher.fetch(f"{shop_server}/hop/4")
    assert shop.requests == ["/hop/4", "/hop/3", "/hop/2", "/hop/1"]


def test_each_redirect_is_checked_like_the_first_address(shop, shop_server, monkeypatch):
    # The test shop stands in for a public one: loopback counts as public here, nothing else does.
    real = images.is_public
    monkeypatch.setattr(images, "is_public", lambda address: address == "127.0.0.1" or real(address))
    fetcher = HttpImageFetcher(timeout=0.5)
    assert fetcher.fetch(f"{shop_server}/moved.png") == FILES["/tee.png"][0]  # a redirect to a public address
    with pytest.raises(ImageFetchError, match="169.254.169.254 is not a public address"):
        fetcher.fetch(f"{shop_server}/to-metadata")
    assert shop.requests == ["/moved.png", "/tee.png", "/to-metadata"]


def test_https_names_the_host_while_connecting_to_the_checked_address(tmp_path, dns, monkeypatch):
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        + ["-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=shop.test"]
        + ["-addext", "subjectAltName=DNS:shop.test"],
        check=True,
        capture_output=True,
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the certificate is trusted, for its name only
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    names: list[str | None] = []
    context.sni_callback = lambda connection, name, _context: names.append(name)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Shop)
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    answers, lookups = dns
    answers["shop.test"] = answers["elsewhere.test"] = [["127.0.0.1"]]
    with serving(server):
        port = server.server_address[1]
        fetcher = HttpImageFetcher(allow_private=True, timeout=2)
        assert fetcher.fetch(f"https://shop.test:{port}/tee.png") == FILES["/tee.png"][0]
        with pytest.raises(ImageFetchError, match="certificate"):
            fetcher.fetch(f"https://elsewhere.test:{port}/tee.png")  # the certificate is not for this name
    assert names == ["shop.test", "elsewhere.test"]
    assert lookups == ["shop.test", "elsewhere.test"]
    assert server.requests == ["/tee.png"]


@pytest.mark.parametrize("url", ["ftp://shop.example/a.png", "javascript:alert(1)", "https://x/" + "a" * 1100, 5])
def test_a_bad_picture_address_is_a_field_error(client, session, url):
    payload = catalogue("https://shop.example")
    payload["products"][0]["image_url"] = url
    response = post_json(client, "/api/v1/products", payload)
    assert response.status_code == 400
    assert [e["field"] for e in response.get_json()["errors"]] == ["products[0].image_url"]
