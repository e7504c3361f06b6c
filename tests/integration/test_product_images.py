"""Product pictures from the shop API: fetched once from the shop's address, checked like a
shopper's photo, kept in our photo store and served by the portal; a placeholder otherwise.
The shop's side is a real HTTP server on loopback."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image
from sqlalchemy import select

from portal.adapters.images import HttpImageFetcher, ImageFetchError
from portal.db.models import Product, Variant
from tests.helpers import encode, login_shopper, order_payload, post_json, soup

FILES = {
    "/tee.png": (encode(Image.new("RGB", (300, 300), (20, 120, 200)), "PNG"), "image/png"),
    "/tee-large.jpg": (encode(Image.new("RGB", (400, 300), (200, 60, 20)), "JPEG"), "image/jpeg"),
    "/notes.txt": (b"not a picture", "text/plain"),
}


class Shop(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the handler's API)
        body, kind = FILES.get(self.path, (b"", "text/plain"))
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        return None


@pytest.fixture
def shop_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Shop)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


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


def test_private_addresses_are_refused_unless_allowed(shop_server):
    with pytest.raises(ImageFetchError, match="not a public address"):
        HttpImageFetcher().fetch(f"{shop_server}/tee.png")
    with pytest.raises(ImageFetchError, match="http"):
        HttpImageFetcher(allow_private=True).fetch("file:///etc/passwd")
    assert HttpImageFetcher(allow_private=True).fetch(f"{shop_server}/tee.png") == FILES["/tee.png"][0]


@pytest.mark.parametrize("url", ["ftp://shop.example/a.png", "javascript:alert(1)", "https://x/" + "a" * 1100, 5])
def test_a_bad_picture_address_is_a_field_error(client, session, url):
    payload = catalogue("https://shop.example")
    payload["products"][0]["image_url"] = url
    response = post_json(client, "/api/v1/products", payload)
    assert response.status_code == 400
    assert [e["field"] for e in response.get_json()["errors"]] == ["products[0].image_url"]
