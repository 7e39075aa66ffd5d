"""Alembic environment of the leaderboard database.

The configuration is built in code (`leaderboard.db.alembic_config`); `leaderboard.db.upgrade`
passes an open connection in `config.attributes["connection"]`. Offline (SQL script) mode is
supported for reviewing migrations: `alembic -c <config> upgrade head --sql`.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from leaderboard.db import Base

config = context.config
target_metadata = Base.metadata


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
