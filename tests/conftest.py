"""Test fixtures on real services: PostgreSQL and SQLite, Redis, an aiosmtpd server in this
process and a real Celery worker thread.

Each run gets its own PostgreSQL database, Redis key prefix and Celery queue, so runs
may overlap on one machine. ``TEST_DATABASE_URL`` (a PostgreSQL server URL, default
``DATABASE_URL`` or the local one) and ``TEST_REDIS_URL`` (default ``REDIS_URL`` or
``redis://127.0.0.1:6379/15``) point the suite elsewhere; ``TEST_BACKENDS=sqlite`` or
``=postgresql`` runs it on one database only.
"""

import os
import uuid
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from celery.contrib.testing.worker import start_worker
from celery.utils.nodenames import anon_nodename
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from mailer import create_app
from mailer.email_templates import install_defaults
from mailer.extensions import db
from tests.smtp_server import SMTPServer
from worker import celery_init_app

RUN_ID = uuid.uuid4().hex[:10]
PG_SERVER_URL = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL") or \
    "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = os.environ.get("TEST_REDIS_URL") or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15"
BACKENDS = [b for b in os.environ.get("TEST_BACKENDS", "sqlite,postgresql").split(",") if b]


def pg_url(database: str) -> sa.URL:
    url = sa.make_url(PG_SERVER_URL).set(drivername="postgresql+psycopg")
    return url.set(database=database)


@pytest.fixture(scope="session")
def smtp_server():
    """A real SMTP server (aiosmtpd) on a free local port, recording every message."""
    server = SMTPServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def database_url(request, tmp_path_factory):
    """A fresh database of the backend under test, dropped at the end."""
    backend = request.param
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite'}"
        return
    name = f"mailer_test_{RUN_ID}"
    admin = sa.create_engine(pg_url("postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield pg_url(name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def pytest_generate_tests(metafunc):
    if "database_url" in metafunc.fixturenames:
        metafunc.parametrize("database_url", BACKENDS, indirect=True, scope="session")


def pytest_collection_modifyitems(config, items):
    """Skip the other database's variant of a test marked ``one_database``."""
    for item in items:
        marker = item.get_closest_marker("one_database")
        backend = getattr(item, "callspec", None) and item.callspec.params.get("database_url")
        if marker is None or backend is None:
            continue
        wanted = marker.args[0] if marker.args[0] in BACKENDS else BACKENDS[0]
        if backend != wanted:
            item.add_marker(pytest.mark.skip(reason=f"runs on {wanted} only: {marker.args[1]}"))


def service_config(database_url: str, smtp_server: SMTPServer, tmp: Path) -> dict:
    """Settings shared by the in-process app and by subprocesses (see ``subprocess_env``)."""
    queue = f"mailer-test-{RUN_ID}"
    return {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": REDIS_URL,
        "REDIS_PREFIX": f"mailer-test-{RUN_ID}",
        "RATELIMIT_STORAGE_URI": REDIS_URL,
        "RATELIMIT_KEY_PREFIX": f"mailer-test-{RUN_ID}",
        "CELERY": {
            "broker_url": REDIS_URL,
            "task_ignore_result": True,
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            "worker_prefetch_multiplier": 1,
            "task_default_queue": queue,
            "broker_connection_retry_on_startup": True,
            "broker_transport_options": {"visibility_timeout": 3600},
        },
        "SMTP_URL": f"smtp://127.0.0.1:{smtp_server.port}",
        "OUTBOX_DIR": tmp / "outbox",
        "INSTANCE_DIR": tmp / "instance",
        "BASE_URL": "http://localhost",
        "MAIL_FROM": "wydarzenia@miasto.example.pl",
        "MAIL_DOMAIN": "miasto.example.pl",
        "WTF_CSRF_ENABLED": True,
    }


class ServerLikeClient(FlaskClient):
    """A test client whose every request runs in an app context of its own, as on a server.

    The test body runs in an app context (for factories and domain calls), and Flask would
    run a request inside a context of the same app that is already pushed: requests would
    then share ``g`` (Flask-Login's user, Flask-WTF's token, Babel's locale) and the
    database session with the test and with each other, and a view that forgot to commit
    would look as if it had. Here each request (and each redirect followed) gets a fresh
    context, hence its own session, removed when the request ends."""

    def open(self, *args, **kwargs):
        with self.application.app_context():
            return super().open(*args, **kwargs)


@pytest.fixture(scope="session")
def app_instance(database_url, smtp_server, tmp_path_factory):
    app = create_app("test", service_config(database_url, smtp_server, tmp_path_factory.mktemp("app")))
    app.test_client_class = ServerLikeClient
    with app.app_context():
        db.create_all()  # the built-in email templates too (mailer.email_templates)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="session")
def celery_worker(app_instance):
    """A real Celery worker consuming this run's queue, in a thread of this process."""
    celery_app = celery_init_app(app_instance)
    with start_worker(celery_app, pool="solo", concurrency=1, perform_ping_check=False,
                      loglevel="WARNING", shutdown_timeout=30):
        app_instance.extensions["test_worker"] = celery_app
        yield celery_app
        app_instance.extensions.pop("test_worker", None)


def settle_worker(app) -> None:
    """Wait until the worker is idle with nothing queued or reserved for it, so tables are not
    emptied under a running task (a deadlock on PostgreSQL). The solo worker answers a ping only
    between tasks; a task in hand may queue others (a campaign's batches) after a purge, so the
    purge is repeated until a whole round finds nothing."""
    celery_app = app.extensions.get("test_worker")
    if celery_app is None:
        return
    worker = [anon_nodename()]
    quiet, revoked = 0, set()
    for _ in range(100):
        if not celery_app.control.ping(destination=worker, timeout=30, limit=1):
            raise RuntimeError("the test worker's task in hand ran for more than 30 s")
        purged = celery_app.control.purge()
        inspect = celery_app.control.inspect(destination=worker, timeout=30, limit=1)
        later = {task["request"]["id"] for tasks in (inspect.scheduled() or {}).values() for task in tasks}
        later -= revoked
        if later:  # retries with a countdown, held by the worker: they would run under a later test
            celery_app.control.revoke(list(later))
            revoked |= later
        reserved = inspect.reserved() or {}
        quiet = quiet + 1 if not purged and not later and not any(reserved.values()) else 0
        if quiet == 2:
            return
    raise RuntimeError("the test worker did not settle")


@pytest.fixture
def app(app_instance, smtp_server):
    """The app with a context pushed; every table emptied and every counter reset after."""
    smtp_server.reset()
    reset_rate_limits()  # also what tests without this fixture may have counted
    with app_instance.app_context():
        with db.engine.begin() as connection:
            install_defaults(connection)  # emptied by the test before
        yield app_instance
        db.session.remove()
        settle_worker(app_instance)
        empty_tables()
        reset_rate_limits()


def reset_rate_limits() -> None:
    """Forget this run's rate-limit counters (only ours: other runs may share the Redis), and
    the notices' wake-up key (its sender may have been purged with the queue)."""
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"LIMITS:LIMITER/mailer-test-{RUN_ID}/*", count=1000))
    keys.append(f"mailer-test-{RUN_ID}:notices-wake")
    client.delete(*keys)
    client.close()


def empty_tables() -> None:
    tables = [t.name for t in reversed(db.metadata.sorted_tables)]
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text(f"TRUNCATE {', '.join(tables)} CASCADE"))
        else:
            for table in tables:
                conn.execute(sa.text(f"DELETE FROM {table}"))


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def session(app):
    """The test body's own session (its app context's): for factories and domain calls."""
    return db.session


@pytest.fixture
def fresh(app):
    """Open a new session on a new connection, as another request would, to read what the
    requests committed (and only that)."""
    opened = []

    def open_session() -> Session:
        opened.append(Session(db.engine, expire_on_commit=False))
        return opened[-1]

    yield open_session
    for item in opened:
        item.close()
