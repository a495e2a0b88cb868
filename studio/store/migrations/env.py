"""Alembic environment: runs migrations on the connection the store passes in."""

from alembic import context

from studio.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("studio migrations run through studio.store.migrate(), which passes a connection")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
