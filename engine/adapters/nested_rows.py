"""A parent row with its child rows nested as JSON arrays: one statement instead of one per table.

`nested(child, where)` is a correlated scalar subquery that aggregates the child rows matching
`where` into a JSON array of objects (SQLite `json_group_array(json_object(...))`, PostgreSQL
`json_agg(json_build_object(...))`); `unnested(child, value)` reads it back as plain dicts with
the values the table's columns would have given (aware UTC datetimes, floats to the last
digit, booleans, decoded JSON), so the domain objects built from them are the same as from
plain rows.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    Float,
    Table,
    case,
    func,
    literal_column,
    select,
)

from engine.adapters.orm import UTCDateTime


def nested(dialect: str, child: Table, *where: ColumnElement[bool]) -> ColumnElement[Any]:
    """The child rows matching `where` as one JSON array (correlated to the outer query)."""
    pairs: list[Any] = []
    for column in child.columns:
        value: Any = column
        if dialect == "sqlite" and isinstance(column.type, JSON):
            value = func.json(column)  # stored as text: nest it as JSON, not as a string
        elif dialect == "sqlite" and isinstance(column.type, Float):
            # json_object writes a REAL with 15 significant digits: nest the 17 that make it
            value = case((column.is_(None), None), else_=func.printf("%!.17g", column))
        pairs += [literal_column(f"'{column.name}'"), value]  # a column name: a plain literal
    if dialect == "postgresql":
        aggregate = func.json_agg(func.json_build_object(*pairs))
    else:
        aggregate = func.json_group_array(func.json_object(*pairs))
    return select(aggregate).where(*where).scalar_subquery()


def unnested(child: Table, value: Any) -> list[dict[str, Any]]:
    """The rows of a `nested` array, each value as the column's type reads it."""
    if value is None:  # PostgreSQL's json_agg over no rows
        return []
    rows = json.loads(value) if isinstance(value, str) else value
    readers = _readers(child)
    return [{name: readers[name](v) for name, v in row.items()} for row in rows]


def _readers(child: Table) -> dict[str, Any]:
    found = _READERS.get(child.name)
    if found is None:
        found = _READERS[child.name] = {c.name: _reader(c.type) for c in child.columns}
    return found


_READERS: dict[str, dict[str, Any]] = {}


def _reader(kind: Any) -> Any:
    if isinstance(kind, UTCDateTime):
        return _moment
    if isinstance(kind, Float):
        return lambda v: None if v is None else float(v)
    if isinstance(kind, Boolean):
        return lambda v: None if v is None else bool(v)
    return lambda v: v


def _moment(value: str | None) -> datetime | None:
    """SQLite's naive 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC) or PostgreSQL's ISO with offset."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
