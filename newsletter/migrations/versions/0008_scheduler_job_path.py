"""scheduler_jobs: the job names its function at its new import path

APScheduler keeps each job as a pickled dict that names its function by import path
("module:function") and imports it when it reads the job back. The scheduler moved from
`newsletter.scheduling` to `newsletter.jobs.scheduler`: a job row written before the move
would fail to load, and APScheduler would drop it together with its next run time, so
a run missed while the scheduler was down would not be made up. The rows are rewritten
to the new path (and back on downgrade); anything else in them is kept as it is.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 04:00:00.000000
"""

from __future__ import annotations

import pickle
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

OLD_FUNCTION = "newsletter.scheduling:scheduled_run"
NEW_FUNCTION = "newsletter.jobs.scheduler:scheduled_run"

jobs = sa.table(
    "scheduler_jobs",
    sa.column("id", sa.Unicode(191)),
    sa.column("job_state", sa.LargeBinary),
)


def _rename_function(old: str, new: str) -> None:
    connection = op.get_bind()
    for job_id, blob in connection.execute(sa.select(jobs.c.id, jobs.c.job_state)).all():
        try:
            # Our own rows, written by APScheduler's job store: trusted as it trusts them.
            state: Any = pickle.loads(blob)  # noqa: S301
        except Exception:  # noqa: S112 (unreadable: APScheduler drops it, the scheduler adds it anew)
            continue
        if not isinstance(state, dict) or state.get("func") != old:
            continue
        state["func"] = new
        connection.execute(
            jobs.update()
            .where(jobs.c.id == job_id)
            .values(job_state=pickle.dumps(state, pickle.HIGHEST_PROTOCOL))
        )


def upgrade() -> None:
    _rename_function(OLD_FUNCTION, NEW_FUNCTION)


def downgrade() -> None:
    _rename_function(NEW_FUNCTION, OLD_FUNCTION)
