"""Background jobs, enqueued by task name only after the database commit.

A rolled-back request never mails anyone, and ``mailer`` never imports ``worker``:
the web process holds a send-only Celery client, the worker its full app.
"""

from celery import Celery
from flask import Flask, current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

_PENDING = "mailer.pending_jobs"


def init_app(app: Flask) -> None:
    client = Celery(app.import_name, set_as_current=False)
    client.config_from_object(app.config["CELERY"])
    app.extensions.setdefault("celery", client)


def enqueue(session: Session, task_name: str, *args) -> None:
    """Send ``task_name(*args)`` to the workers once ``session`` commits."""
    session.info.setdefault(_PENDING, []).append((task_name, args))


def send_now(task_name: str, *args, **options) -> None:
    """Send a task immediately (for callers with nothing to commit, like beat ticks)."""
    current_app.extensions["celery"].send_task(task_name, args=args, **options)


@event.listens_for(Session, "after_commit")
def _send_pending(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    for task_name, args in pending or ():
        send_now(task_name, *args)


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)
