"""The fixtures themselves talk to the real services."""

import smtplib

import sqlalchemy as sa

from mailer.extensions import db


def test_database_is_real(app):
    dialect = db.engine.dialect.name
    assert dialect in {"sqlite", "postgresql"}
    assert db.session.execute(sa.text("select 1")).scalar() == 1


def test_smtp_server_receives(smtp_server):
    smtp_server.reset()
    with smtplib.SMTP("127.0.0.1", smtp_server.port) as smtp:
        smtp.sendmail("a@example.org", ["b@example.org"], b"Subject: x\r\n\r\nhello\r\n")
    [received] = smtp_server.wait_for(1)
    assert received.recipients == ["b@example.org"]
    assert received.message["subject"] == "x"


def test_a_worker_that_is_up_keeps_its_startup_heap_out_of_the_collectors_way(celery_worker):
    """worker.freeze_heap, on worker_ready: the objects alive once a worker is up (modules,
    the app, Celery) move to the permanent generation, so the full collections that sending
    triggers do not walk them every time."""
    import gc

    from worker import YOUNG_OBJECTS

    assert gc.get_freeze_count() > 10_000
    assert gc.get_threshold()[0] == YOUNG_OBJECTS  # and a batch's objects do not set off collections
