"""Statements about many rows at once.

``among(session, column, values)`` is ``column IN (...)`` for a list of values: on PostgreSQL
``column = ANY(:array)``, one array parameter rather than one placeholder per value, so the
statement's text stays the same whatever the number of values (the driver converts and caches it
once; a 500-value ``IN`` was split and rendered again on every run).

``update_rows`` takes a list of dicts (the key and the new values), as ``session.execute(update(Entity),
rows)`` does. On PostgreSQL it sends one statement whose parameters are one array per column, joined
row by row with ``unnest`` (``UPDATE ... FROM unnest(...) AS v``): the statement's text does not grow
with the rows, and the driver converts one list per column rather than one parameter set per row.
Elsewhere (SQLite, whose driver runs ``executemany`` in C) it is the ORM's bulk UPDATE by primary
key. Column types apply as usual (sealed columns are sealed, UTC times checked).

``insert_rows`` adds new rows from a list of dicts. On PostgreSQL they go in with ``COPY ... FROM
STDIN`` (each value through its column type's bind processing first, so sealed columns are sealed
and UTC times checked; the columns' Python-side defaults fill what a row leaves out): the driver
writes the rows into one stream in C, where ``executemany`` (pipelined) sent a message per row and an
``INSERT ... SELECT FROM unnest(...)`` measured slower still. Elsewhere it is the driver's
``executemany`` (SQLite runs it in C).

Objects already in the session are not changed: callers set what they hold themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Table, any_, bindparam, func, insert, inspect, literal, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from portal.db.dialects import on_postgresql


def _arrays(table: Table, names: list[str], rows: list[dict[str, Any]]) -> Any:
    """``unnest(:a, :b, ...) AS v(a, b, ...)``: one typed array parameter per column."""
    params = [bindparam(f"v_{name}", [row[name] for row in rows], type_=ARRAY(table.c[name].type)) for name in names]
    return func.unnest(*params).table_valued(*names).render_derived(name="v")


def among(session: Session, column: Any, values: Iterable[Any]) -> ColumnElement[bool]:
    """``column IN values``, as ``column = ANY(:array)`` on PostgreSQL."""
    values = list(values)
    if on_postgresql(session):
        return column == any_(literal(values, ARRAY(column.type)))
    return column.in_(values)


def update_rows(session: Session, entity: Any, rows: list[dict[str, Any]]) -> None:
    """UPDATE ``entity``'s rows by primary key (``id``), each to its own values; every row names the
    same columns, ``id`` among them."""
    if not rows:
        return
    names = list(rows[0])
    if "id" not in names or any(row.keys() != rows[0].keys() for row in rows):
        raise ValueError("every row must name the same columns, 'id' among them")
    if not on_postgresql(session):
        session.execute(update(entity), rows)
        return
    table = inspect(entity).local_table
    values = _arrays(table, names, rows)
    session.execute(
        update(table)
        .where(table.c.id == values.c.id)
        .values({name: values.c[name] for name in names if name != "id"})
        .execution_options(synchronize_session=False)
    )


def insert_rows(session: Session, entity: Any, rows: list[dict[str, Any]]) -> None:
    """INSERT new rows of ``entity``, each a dict naming the same columns (the key is left to the
    database); in the session's transaction, no objects made."""
    if not rows:
        return
    names = list(rows[0])
    if any(row.keys() != rows[0].keys() for row in rows):
        raise ValueError("every row must name the same columns")
    if not on_postgresql(session):
        session.execute(insert(entity), rows)
        return
    table = inspect(entity).local_table
    dialect = session.get_bind().dialect
    defaults = [c for c in table.columns if c.name not in names and c.default is not None and not c.primary_key]
    if any(not (c.default.is_scalar or c.default.is_callable) for c in defaults):  # type: ignore[union-attr]
        session.execute(insert(entity), rows)  # a SQL expression default: INSERT renders it
        return
    # What INSERT would fill in from the columns' Python-side defaults, here once for the batch.
    filled = {c.name: c.default.arg(None) if c.default.is_callable else c.default.arg for c in defaults}  # type: ignore[union-attr]
    columns = [table.c[name] for name in [*names, *filled]]
    processors = [c.type.dialect_impl(dialect).bind_processor(dialect) for c in columns]
    statement = (
        f"COPY {table.name} ({', '.join(dialect.identifier_preparer.quote(c.name) for c in columns)}) FROM STDIN"
    )
    fixed = list(filled.values())
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor, cursor.copy(statement) as copy:
        for row in rows:
            values = [*(row[name] for name in names), *fixed]
            copy.write_row([value if p is None else p(value) for p, value in zip(processors, values, strict=True)])
