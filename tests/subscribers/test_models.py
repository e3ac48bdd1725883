"""The subscriber tables: the migration matches the models, and constraints hold."""

from __future__ import annotations

from datetime import datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from newsletter.core.db import Database
from newsletter.core.models import Base
from subscribers.models import ConfirmationToken, Subscriber, Suppression
from tests.support.clock import FixedClock


def test_the_migrated_schema_matches_the_models(db: Database) -> None:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def _subscriber(now: datetime, **values: object) -> dict[str, object]:
    row: dict[str, object] = {
        "public_id": "p" * 22,
        "email": "ouder@example.org",
        "email_key": "ouder@example.org",
        "status": "pending",
        "themes": [],
        "created_at": now,
        "updated_at": now,
    }
    row.update(values)
    return row


@pytest.mark.parametrize(
    ("model", "values"),
    [
        (Subscriber, {"status": "weg"}),
        (Suppression, {"reason": "zomaar"}),
        (ConfirmationToken, {"purpose": "inloggen"}),
    ],
)
def test_check_constraints_refuse_unknown_states(
    db: Database, clock: FixedClock, model: type, values: dict[str, object]
) -> None:
    now = clock()
    with db.session() as session:
        session.execute(insert(Subscriber).values(_subscriber(now)))
    rows = {
        Subscriber: _subscriber(now, public_id="q" * 22, email_key="ander@example.org"),
        Suppression: {"address_hash": "a" * 64, "reason": "erased", "created_at": now},
        ConfirmationToken: {
            "token_hash": "b" * 64,
            "subscriber_id": 1,
            "purpose": "subscribe",
            "requested": {},
            "created_at": now,
            "expires_at": now,
        },
    }
    row = {**rows[model], **values}
    with pytest.raises(IntegrityError), db.session() as session:
        session.execute(insert(model).values(row))


def test_addresses_are_unique_by_key(db: Database, clock: FixedClock) -> None:
    now = clock()
    with db.session() as session:
        session.execute(insert(Subscriber).values(_subscriber(now)))
    with pytest.raises(IntegrityError), db.session() as session:
        session.execute(
            insert(Subscriber).values(
                _subscriber(now, public_id="r" * 22, email="OUDER@example.org")
            )
        )
