"""Alembic's entry point for the ledger's migrations.

bouncewise runs the migrations itself (`bouncewise.ledger.store.upgrade`) on a connection it
passes in `config.attributes["connection"]`. An operator who prefers the alembic command can
run it with `-x url=DATABASE_URL` and `script_location` pointing at this folder.
"""

from alembic import context
from sqlalchemy import create_engine

from bouncewise.ledger.models import Base

config = context.config
connection = config.attributes.get("connection")

if connection is not None:
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url")
    if not url:
        raise SystemExit("no database: run alembic with -x url=DATABASE_URL")
    engine = create_engine(url)
    with engine.connect() as own_connection:
        context.configure(connection=own_connection, target_metadata=Base.metadata,
                          render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
