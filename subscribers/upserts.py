"""Inserts that tolerate a row with the same key, written the same on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def _insert(session: Session, model: type[Any], values: Mapping[str, Any]) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model).values(dict(values))
    if dialect == "sqlite":
        return sqlite.insert(model).values(dict(values))
    raise NotImplementedError(f"no upsert for {dialect}")  # settings allow only the two


def insert_or_ignore(session: Session, model: type[Any], values: Mapping[str, Any]) -> None:
    """Insert a row unless one with the same primary or unique key exists already."""
    session.execute(_insert(session, model, values).on_conflict_do_nothing())


def insert_or_update(
    session: Session,
    model: type[Any],
    values: Mapping[str, Any],
    *,
    key: Sequence[str],
    update: Sequence[str],
) -> None:
    """Insert a row, or set the `update` columns of the row that has the same `key`."""
    statement = _insert(session, model, values)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=list(key),
            set_={column: statement.excluded[column] for column in update},
        )
    )
