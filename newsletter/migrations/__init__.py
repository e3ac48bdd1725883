"""The schema's history: Alembic migrations, run by core/db.py on start or `newsletter db upgrade`."""
