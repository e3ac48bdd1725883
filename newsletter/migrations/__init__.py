"""The schema's history: Alembic migrations, applied by core/db.py or `newsletter db upgrade`."""
