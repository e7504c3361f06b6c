"""Column types that keep personal data encrypted in the database, and the batch re-sealer.

Services and views read and write plain values; the database only ever sees
``<key id>:<base64>`` (see ``portal.crypto``). Equality lookups go through the keyed blind index
column beside the value (``<column>_bidx``), never through the sealed column itself: a sealed
value has a random nonce, so comparing it with a literal never matches.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Text, TypeDecorator, and_, column, select, table, update
from sqlalchemy.sql import operators

from portal import crypto

_NO_SQL_ON_SEALED = {
    operators.eq,
    operators.ne,
    operators.lt,
    operators.le,
    operators.gt,
    operators.ge,
    operators.like_op,
    operators.ilike_op,
    operators.not_like_op,
    operators.not_ilike_op,
    operators.contains_op,
    operators.startswith_op,
    operators.endswith_op,
    operators.in_op,
    operators.not_in_op,
    operators.between_op,
}


class _SealedComparator(TypeDecorator.Comparator):  # type: ignore[name-defined]
    """Comparing a sealed column with a value in SQL can never match (each write has its own nonce):
    say so at once instead of returning nothing. NULL tests stay allowed; use the blind index."""

    def operate(self, op: Any, *other: Any, **kwargs: Any) -> Any:
        if op in _NO_SQL_ON_SEALED and not (op in (operators.eq, operators.ne) and other and other[0] is None):
            context = getattr(self.type, "context", "this column")
            raise TypeError(
                f"{context} is encrypted: compare its blind index ({context.split('.')[-1]}_bidx) or compare in Python"
            )
        return super().operate(op, *other, **kwargs)


class Sealed(TypeDecorator):
    """A string column stored encrypted, bound to ``context`` (``table.column``). None stays NULL and
    the empty string stays empty (nothing to hide, and "has a comment" stays a cheap SQL test).

    ``index`` names the blind index kind kept in the ``<column>_bidx`` column beside it (the model
    fills it in when the value is set); the re-sealer recomputes it under the current key.
    A value written before encryption (plain text) is read as it is until ``keys rotate`` seals it.
    """

    impl = Text
    cache_ok = True
    comparator_factory = _SealedComparator

    def __init__(self, context: str, index: str | None = None) -> None:
        super().__init__()
        if index is not None and index not in crypto.INDEX_KINDS:
            raise ValueError(f"unknown blind index kind {index!r}")
        self.context = context
        self.index = index

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None or value == "":
            return value
        return crypto.seal(crypto.keyring(), str(value), self.context)

    def process_result_value(self, value: Any, dialect: Any) -> str | None:
        if value is None or value == "" or not crypto.is_sealed(value):
            return value
        return crypto.unseal(crypto.keyring(), value, self.context)

    def process_literal_param(self, value: Any, dialect: Any) -> str:  # pragma: no cover - never rendered
        raise TypeError("a sealed value is never written into SQL text")


class SealedJSON(TypeDecorator):
    """A JSON document stored encrypted as one sealed text (the outbox: addresses, message bodies)."""

    impl = Text
    cache_ok = True
    comparator_factory = _SealedComparator

    def __init__(self, context: str) -> None:
        super().__init__()
        self.context = context

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        return crypto.seal(crypto.keyring(), json.dumps(value), self.context)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        if crypto.is_sealed(value):
            value = crypto.unseal(crypto.keyring(), value, self.context)
        return json.loads(value)


def index_of(kind: str, value: str | None) -> str | None:
    """The blind index to store beside a value being written (under the current key)."""
    return crypto.blind_index(crypto.keyring(), kind, value)


def candidates(kind: str, value: str) -> list[str]:
    """Index values that match ``value`` under any key of the ring (for ``<column>_bidx IN (...)``)."""
    return crypto.blind_candidates(crypto.keyring(), kind, value)


@dataclass(frozen=True)
class SealedColumn:
    """One sealed column for the re-sealer: its name, its blind index kind (if any), and its context."""

    name: str
    context: str
    index: str | None = None


@dataclass
class ResealReport:
    rows: int = 0  # rows looked at
    rewritten: int = 0  # rows written back under the current key
    plaintext: int = 0  # values found unencrypted and sealed
    skipped: int = 0  # rows changed by someone else meanwhile (they were written under the current key)

    def add(self, other: ResealReport) -> None:
        self.rows += other.rows
        self.rewritten += other.rewritten
        self.plaintext += other.plaintext
        self.skipped += other.skipped


def _reseal_value(keyring: crypto.Keyring, value: str, context: str) -> tuple[str, bool]:
    """(plaintext, was plaintext in the database)."""
    if crypto.is_sealed(value):
        return crypto.unseal(keyring, value, context), False
    return value, True


def reseal_table(
    conn: Connection,
    keyring: crypto.Keyring,
    table_name: str,
    columns: list[SealedColumn],
    batch: int = 500,
    commit: Callable[[], None] | None = None,
    progress: Callable[[str, ResealReport], None] | None = None,
) -> ResealReport:
    """Seal every value of ``columns`` not already under the current key (plain text included) and
    recompute its blind index, ``batch`` rows at a time in id order, calling ``commit`` after each.

    Each row is written back only if its sealed values are still the ones read (compare and set), so
    the portal can keep writing meanwhile: a row it changed was written under the current key anyway.
    Running it again finds nothing left to do; stopped half way, it carries on where it finds work.
    """
    raw = table(
        table_name,
        column("id"),
        *[column(c.name, Text) for c in columns],
        *[column(c.name + "_bidx", Text) for c in columns if c.index],
    )
    current = keyring.current.id
    report = ResealReport()
    last = 0
    while True:
        rows = conn.execute(
            select(raw.c.id, *[raw.c[c.name] for c in columns]).where(raw.c.id > last).order_by(raw.c.id).limit(batch)
        ).all()
        if not rows:
            break
        part = ResealReport(rows=len(rows))
        for row in rows:
            last = row.id
            values = row._mapping
            changes: dict[str, Any] = {}
            for c in columns:
                old = values[c.name]
                if old is None or old == "" or crypto.sealed_key_id(old) == current:
                    continue
                plain, was_plain = _reseal_value(keyring, old, c.context)
                part.plaintext += was_plain
                changes[c.name] = crypto.seal(keyring, plain, c.context)
                if c.index:
                    changes[c.name + "_bidx"] = crypto.blind_index(keyring, c.index, plain)
            if not changes:
                continue
            unchanged = [
                raw.c[c.name].is_(None) if values[c.name] is None else raw.c[c.name] == values[c.name] for c in columns
            ]
            done = conn.execute(update(raw).where(raw.c.id == row.id, and_(*unchanged)).values(**changes))
            if done.rowcount == 1:
                part.rewritten += 1
            else:
                part.skipped += 1
        if commit is not None:
            commit()
        report.add(part)
        if progress is not None:
            progress(table_name, report)
    return report


def sealed_columns(metadata: Any) -> dict[str, list[SealedColumn]]:
    """Every sealed column of the models, by table (what ``keys rotate`` walks)."""
    out: dict[str, list[SealedColumn]] = {}
    for tbl in metadata.sorted_tables:
        for col in tbl.columns:
            if isinstance(col.type, Sealed):
                out.setdefault(tbl.name, []).append(SealedColumn(col.name, col.type.context, col.type.index))
            elif isinstance(col.type, SealedJSON):
                out.setdefault(tbl.name, []).append(SealedColumn(col.name, col.type.context))
    return out


__all__ = [
    "ResealReport",
    "Sealed",
    "SealedColumn",
    "SealedJSON",
    "candidates",
    "index_of",
    "reseal_table",
    "sealed_columns",
]
