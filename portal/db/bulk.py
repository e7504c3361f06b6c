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

For new rows, the driver's ``executemany`` (pipelined on PostgreSQL) stays: with sealed and JSON
columns it measured faster than an ``INSERT ... SELECT FROM unnest(...)``, whose arrays are quoted
value by value.

Objects already in the session are not changed: callers set what they hold themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Table, any_, bindparam, func, inspect, literal, update
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
