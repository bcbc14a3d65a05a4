"""Jobs reach the broker only after the database commit."""

import uuid

import pytest
import redis

from mailer import create_app, jobs
from mailer.extensions import db
from mailer.models import MailingList
from tests.conftest import REDIS_URL


@pytest.fixture
def isolated_app(app):
    """The test app with a queue of its own that no worker consumes."""
    queue = f"mailer-jobs-test-{uuid.uuid4().hex[:8]}"
    config = dict(app.config)
    config["CELERY"] = {**config["CELERY"], "task_default_queue": queue}
    isolated = create_app("test", {k: v for k, v in config.items() if k.isupper()})
    client = redis.Redis.from_url(REDIS_URL)
    with isolated.app_context():
        yield isolated, lambda: client.llen(queue)
    client.delete(queue)


def test_enqueued_job_is_sent_after_commit(isolated_app):
    _app, queued = isolated_app
    db.session.add(MailingList(name="Lista", slug=f"l-{uuid.uuid4().hex[:6]}"))
    jobs.enqueue(db.session, "mailer.purge_pending")
    assert queued() == 0  # nothing before the commit
    db.session.commit()
    assert queued() == 1


def test_rolled_back_work_sends_nothing(isolated_app):
    _app, queued = isolated_app
    db.session.add(MailingList(name="Lista", slug=f"l-{uuid.uuid4().hex[:6]}"))
    jobs.enqueue(db.session, "mailer.purge_pending")
    db.session.rollback()
    db.session.commit()  # a later commit must not send what was rolled back
    assert queued() == 0


@pytest.fixture
def unreachable_broker(app):
    """The test app publishing to a Redis nobody listens on (a broker that is down)."""
    from tests.smtp_server import free_port

    config = {k: v for k, v in app.config.items() if k.isupper()}
    config["CELERY"] = {**config["CELERY"], "broker_url": f"redis://127.0.0.1:{free_port()}/0",
                        "task_default_queue": f"mailer-jobs-test-{uuid.uuid4().hex[:8]}"}
    down = create_app("test", config)
    with down.app_context():
        yield down


def test_a_broker_that_is_down_at_commit_loses_no_job_and_breaks_no_request(unreachable_broker, fresh):
    """The commit stands, the job stays in the database unpublished, and the relay
    publishes it once a broker answers (it raised out of commit() and was lost before)."""
    from mailer.models import Job

    db.session.add(MailingList(name="Lista", slug=f"l-{uuid.uuid4().hex[:6]}"))
    jobs.enqueue(db.session, "mailer.purge_pending")
    db.session.commit()  # does not raise
    with fresh() as session:
        [job] = session.query(Job).all()
        assert job.task == "mailer.purge_pending" and job.relayed_at is None
    assert jobs.relay(db.session) == 0  # still down: it waits
    queue = f"mailer-jobs-test-{uuid.uuid4().hex[:8]}"
    config = {k: v for k, v in unreachable_broker.config.items() if k.isupper()}
    config["CELERY"] = {**config["CELERY"], "broker_url": REDIS_URL, "task_default_queue": queue}
    back = create_app("test", config)  # the broker is back: beat's tick relays
    client = redis.Redis.from_url(REDIS_URL)
    try:
        with back.app_context():
            assert jobs.relay(db.session) == 1
            assert client.llen(queue) == 1
            assert jobs.relay(db.session) == 0  # published recently: not again
            db.session.remove()
        with fresh() as session:
            assert session.query(Job).one().relayed_at is not None
    finally:
        client.delete(queue)


def test_a_job_is_forgotten_once_its_task_has_run(app, celery_worker, fresh):
    from mailer.models import Job
    from tests.helpers_engine import wait_until

    jobs.enqueue(db.session, "mailer.purge_pending")
    db.session.commit()

    def gone() -> bool:
        with fresh() as session:
            return session.query(Job).count() == 0
    wait_until(gone, timeout=30)
