"""Data key rotation: every sealed value re-encrypted under the current key, while the portal runs."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine

from portal.crypto import Keyring
from portal.db.models import Base
from portal.db.sealed import ResealReport, reseal_table, sealed_columns


def rotate_data_key(
    engine: Engine,
    keyring: Keyring,
    batch: int = 500,
    progress: Callable[[str, ResealReport], None] | None = None,
) -> dict[str, ResealReport]:
    """Re-encrypt every sealed column of every table under ``keyring``'s current key (and seal any
    plaintext left from before encryption), recomputing the blind indexes, ``batch`` rows per
    committed transaction.

    Idempotent and resumable: values already under the current key are left alone, so a second run
    (or a run after an interrupted one) only does what is left. Rows the portal writes meanwhile are
    written under the current key by the portal itself, provided every host has the new key ring.
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    reports: dict[str, ResealReport] = {}
    for table, columns in sealed_columns(Base.metadata).items():
        with engine.connect() as conn:
            reports[table] = reseal_table(conn, keyring, table, columns, batch, commit=conn.commit, progress=progress)
    return reports


__all__ = ["rotate_data_key"]
