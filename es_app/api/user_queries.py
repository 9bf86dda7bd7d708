"""Queries on the users read model: one user, and search/filter/sort with keyset cursor pagination."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, and_, func, literal, or_, select

from es_app.projections.tables import users_view as uv

from .errors import ApiError

_SORT_COLUMNS = {"name": uv.c.name, "email": uv.c.email, "id": uv.c.id,
                 "created_at": func.coalesce(uv.c.created_at, literal(""))}
PUBLIC_COLUMNS = (uv.c.id, uv.c.name, uv.c.email, uv.c.phone, uv.c.active, uv.c.version,
                  uv.c.created_at, uv.c.updated_at)


def get_user(conn: Connection, user_id: str) -> Row | None:
    """Returns the user's read-model row (deleted ones too), or None."""
    return conn.execute(select(*PUBLIC_COLUMNS, uv.c.deleted).where(uv.c.id == user_id)).first()


def encode_cursor(sort: str, value: Any, last_id: str) -> str:
    """Returns an opaque cursor that continues after (value, id) in this sort order."""
    raw = json.dumps([sort, value, last_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[Any, str]:
    """Returns the (value, id) a cursor continues after; ApiError 422 when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        got_sort, value, last_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise ApiError(422, "invalid cursor: pass back the next_cursor of a previous page") from None
    if not isinstance(last_id, str) or not isinstance(value, str) or not _storable(value + last_id):
        raise ApiError(422, "invalid cursor: pass back the next_cursor of a previous page")
    if got_sort != sort:
        raise ApiError(422, f"the cursor belongs to another sort order than {sort!r}")
    if sort.lstrip("-") == "created_at" and value and not _is_time(value):
        raise ApiError(422, "invalid cursor: its created_at is not an ISO-8601 time")
    return value, last_id


def _storable(text: str) -> bool:
    """Returns True when a database can compare `text`: no NUL, no lone surrogate."""
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _is_time(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _after(column: ColumnElement, descending: bool, value: Any, last_id: str) -> ColumnElement[bool]:
    if descending:
        return or_(column < value, and_(column == value, uv.c.id < last_id))
    return or_(column > value, and_(column == value, uv.c.id > last_id))


def list_users(conn: Connection, *, search: str | None, active: bool | None, sort: str, limit: int,
               cursor: str | None) -> tuple[Sequence[Row], str | None]:
    """Returns one page of live users and the cursor of the next page (None at the end)."""
    descending = sort.startswith("-")
    key = sort.lstrip("-")
    column = _SORT_COLUMNS[key]
    q = select(*PUBLIC_COLUMNS, column.label("sort_value")).where(uv.c.deleted.is_(False))
    if search:
        pattern = f"%{_escape_like(search.lower())}%"
        q = q.where(or_(func.lower(uv.c.name).like(pattern, escape="\\"),
                        func.lower(uv.c.email).like(pattern, escape="\\")))
    if active is not None:
        q = q.where(uv.c.active.is_(active))
    if cursor:
        value, last_id = decode_cursor(cursor, sort)
        q = q.where(_after(column, descending, value, last_id))
    order = (column.desc(), uv.c.id.desc()) if descending else (column, uv.c.id)
    rows = conn.execute(q.order_by(*order).limit(limit + 1)).all()
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, encode_cursor(sort, last.sort_value, last.id)
