"""Copies of the shop's product pictures in our photo store, so shoppers' browsers never load
the shop's address (no tracking, no mixed content, no broken pictures when the shop moves them)."""

from __future__ import annotations

import logging

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from portal.adapters.images import ImageFetcher, ImageFetchError
from portal.db.models import Product, Variant
from portal.storage import PhotoStore, StorageError
from portal.vision.intake import PhotoRejected, clean_photo

log = logging.getLogger("portal.products")


def fetch_product_images(
    session: Session, store: PhotoStore, fetcher: ImageFetcher, max_bytes: int, batch: int = 50
) -> int:
    """Fetch, check (decoded and re-encoded like a shopper's photo) and store the pictures not yet
    copied; a picture that cannot be used keeps its reason and is not tried again until the shop
    sends a new address. Returns how many were stored."""
    waiting = [
        session.scalars(
            select(model)
            .where(model.image_url.is_not(None), model.image_key.is_(None), model.image_error.is_(None))
            .limit(batch)
        ).all()
        for model in (Product, Variant)
    ]
    rows: list[Product | Variant] = [row for found in waiting for row in found]  # type: ignore[misc]
    stored = 0
    for row in rows:
        url = row.image_url or ""
        try:
            photo = clean_photo(fetcher.fetch(url), "picture", max_bytes)
        except ImageFetchError as exc:
            row.image_error = str(exc)[:255]
        except PhotoRejected as exc:
            row.image_error = exc.message.render()[:255]
        else:
            key = f"products/{photo.sha256[:40]}.jpg"
            try:
                store.put(key, photo.thumbnail or photo.data, "image/jpeg")
            except StorageError:
                log.exception("product picture not stored: %s", url)
                continue
            row.image_key = key
            stored += 1
        if row.image_error:
            log.warning("product picture %s not used: %s", url, row.image_error)
    session.commit()
    return stored


def picture_key(session: Session, sku: str) -> str | None:
    """Our copy of the picture for a SKU: the variant's own, else its product's."""
    row = session.execute(
        select(Variant.image_key, Product.image_key)
        .join(Product, Product.id == Variant.product_id)
        .where(Variant.sku == sku, or_(Variant.image_key.is_not(None), Product.image_key.is_not(None)))
    ).first()
    if row is None:
        return None
    return row[0] or row[1]
