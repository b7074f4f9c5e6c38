"""results.t as integer microseconds since the Unix epoch on SQLite

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 23:55:00

Schema 1 stored ``results.t`` on SQLite as SQLAlchemy's text form, ``YYYY-MM-DD HH:MM:SS.ffffff``
in UTC. Schema 2 stores the same instant as an integer (see ``schema.Instant``): converted in
place, then the table is rebuilt so its declared type says INTEGER. PostgreSQL keeps its
``timestamptz`` and has nothing to do. On SQLite this rewrites the results table once: about
a minute per ten million results; `tritonwatch db upgrade` asks for a backup first.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tritonwatch.errors import StoreError

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Seconds from the first 19 characters, microseconds from characters 21-26 (absent: 0).
_TEXT_TO_MICROS = """
UPDATE results
SET t = CAST(strftime('%s', substr(t, 1, 19)) AS INTEGER) * 1000000
        + CAST(substr(t || '.000000', 21, 6) AS INTEGER)
WHERE typeof(t) = 'text'
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(_TEXT_TO_MICROS)
    bad = (
        op.get_bind()
        .exec_driver_sql("SELECT count(*) FROM results WHERE typeof(t) != 'integer'")
        .scalar()
    )
    if bad:
        raise StoreError(
            f"{bad} results have a time that is not a date; the database is left as it was"
        )
    with op.batch_alter_table("results") as batch:
        batch.alter_column(
            "t",
            existing_type=sa.DateTime(timezone=True),
            type_=sa.BigInteger(),
            existing_nullable=False,
        )


def downgrade() -> None:
    # Forward only: restore from a backup instead.
    raise NotImplementedError("tritonwatch migrations are forward only")
