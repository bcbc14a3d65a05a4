"""Jobs reach the broker only after the database commit."""

import uuid

import pytest
import redis

from mailer import create_app, jobs
from mailer.extensions import db
from mailer.models import MailingList
from tests.conftest import REDIS_URL


@pytest.fixture
def isolated_app(app_instance):
    """The test app with a queue of its own that no worker consumes."""
    queue = f"mailer-jobs-test-{uuid.uuid4().hex[:8]}"
    config = dict(app_instance.config)
    config["CELERY"] = {**config["CELERY"], "task_default_queue": queue}
    app = create_app("test", {k: v for k, v in config.items() if k.isupper()})
    client = redis.Redis.from_url(REDIS_URL)
    with app.app_context():
        yield app, lambda: client.llen(queue)
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
