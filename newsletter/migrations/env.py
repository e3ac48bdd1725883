"""Alembic environment: runs on the connection the application hands in (see core/db.py).

Every module that declares a table is imported here, so that `Base.metadata` holds them all.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from newsletter.content import models as _content_models  # noqa: F401 (registers the tables)
from newsletter.core.models import Base
from newsletter.delivery import outbox as _outbox  # noqa: F401 (registers the table)
from newsletter.editions import models as _edition_models  # noqa: F401 (registers the tables)
from newsletter.jobs import locking as _locking  # noqa: F401 (registers the table)
from newsletter.jobs import runs as _runs  # noqa: F401 (registers the table)
from newsletter.jobs import scheduler as _scheduling  # noqa: F401 (registers the table)
from newsletter.mail import queue as _mail_queue  # noqa: F401 (registers the table)
from newsletter.returns import probes as _probes  # noqa: F401 (registers the table)
from newsletter.returns import process as _return_mailbox  # noqa: F401 (and subscribers.bounces)
from newsletter.staff import accounts as _accounts  # noqa: F401 (registers the tables)
from subscribers import models as _subscriber_models  # noqa: F401 (registers the tables)

# A fixed key for PostgreSQL's advisory lock, so that two processes starting at once
# (the web app and the scheduler) do not both try to create the same tables.
MIGRATION_LOCK_KEY = 0x6E6C6D67  # "nlmg"


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        url = context.config.get_main_option("sqlalchemy.url")
        if not url:
            raise RuntimeError("pass a connection or set sqlalchemy.url")
        from newsletter.core.db import create_db_engine

        engine = create_db_engine(url)
        with engine.begin() as owned:
            _migrate(owned)
        engine.dispose()
    else:
        _migrate(connection)


def _migrate(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"))
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
