"""Pooled PostgreSQL connections: tried before use only after sitting idle a while, and one the
server dropped meanwhile (a restart, a failover) is replaced, not handed to a request."""

import time

import pytest
import sqlalchemy as sa

from mailer.extensions import PING_IDLE_SECONDS, configure_engine


@pytest.mark.one_database("postgresql", "server connections and their backends are PostgreSQL's")
def test_a_connection_the_server_dropped_while_idle_is_replaced(app):
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    engine = sa.create_engine(url, pool_pre_ping=False, pool_size=1)  # as config.py sets it up
    configure_engine(engine)
    killer = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            first = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        with killer.connect() as conn:
            assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first}).scalar()
        time.sleep(PING_IDLE_SECONDS + 0.2)
        with engine.connect() as conn:  # the pooled one is dead: tried, dropped, a new one given
            second = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        assert second != first
    finally:
        engine.dispose()
        killer.dispose()
