"""Alembic runs migrations on the connection `Store.migrate` hands it."""

from alembic import context

from serve.store.tables import metadata

context.configure(connection=context.config.attributes["connection"], target_metadata=metadata,
                  render_as_batch=True)  # SQLite alters tables by copying them
with context.begin_transaction():
    context.run_migrations()
