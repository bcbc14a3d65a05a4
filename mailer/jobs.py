"""Background jobs, durable: a transactional outbox relayed to Celery by task name.

``enqueue`` adds a Job row to the caller's transaction: a rolled-back request queues
nothing, and a committed one cannot lose its job. Right after the commit the job is
published to the broker (a broker that is down costs the request nothing: the failure is
logged and the row marked unpublished). The relay (``relay``, run by beat's tick) publishes
again every job that is unpublished, or published long ago and never finished: a broker
that was down or restarted (and lost its queue) delays a job, never loses it. A worker
deletes the row when the task has run; tasks are safe to run twice, so a job published
twice acts once. ``mailer`` never imports ``worker``: the web process holds a send-only
Celery client, the worker its full app.
"""

import logging
from datetime import timedelta

from celery import Celery
from flask import Flask, current_app
from sqlalchemy import delete, event, or_, select, update
from sqlalchemy.orm import Session

from .models import Job
from .models.types import utcnow

log = logging.getLogger(__name__)
_PENDING = "mailer.pending_jobs"
_READY = "mailer.ready_jobs"
PREFIX = "job-"  # Celery task ids of jobs: "job-<id>"


def init_app(app: Flask) -> None:
    client = Celery(app.import_name, set_as_current=False)
    client.config_from_object(app.config["CELERY"])
    app.extensions.setdefault("celery", client)


def enqueue(session: Session, task_name: str, *args) -> None:
    """Run ``task_name(*args)`` once ``session`` commits (the job commits with it)."""
    job = Job(task=task_name, args=list(args), relayed_at=utcnow())
    session.add(job)
    session.info.setdefault(_PENDING, []).append(job)


def send_now(task_name: str, *args, **options) -> None:
    """Publish a task at once, outside any transaction (a sender's own continuation; beat's
    tick covers it if it is lost). Raises the broker's errors."""
    current_app.extensions["celery"].send_task(task_name, args=args, **options)


def job_id(task_id: str | None) -> int | None:
    """The Job behind a Celery task id, if it is one."""
    if task_id and task_id.startswith(PREFIX) and task_id[len(PREFIX):].isdigit():
        return int(task_id[len(PREFIX):])
    return None


def finished(session: Session, id_: int) -> None:
    """The task of job ``id_`` has run: forget the job."""
    session.execute(delete(Job).where(Job.id == id_))
    session.commit()


def relay(session: Session) -> int:
    """Publish every job not yet published, or published over JOB_RELAY_SECONDS ago and not
    finished; returns how many went out (stops at the first broker error)."""
    config = current_app.config
    now = utcnow()
    stale = now - timedelta(seconds=config["JOB_RELAY_SECONDS"])
    jobs = session.execute(select(Job.id, Job.task, Job.args).where(
        or_(Job.relayed_at.is_(None), Job.relayed_at < stale)).order_by(Job.id).limit(1000)).all()
    published = []
    try:
        for job in jobs:
            send_now(job.task, *job.args, task_id=f"{PREFIX}{job.id}")
            published.append(job.id)
    except Exception:
        log.warning("the broker refused a job; it stays queued", exc_info=True)
    if published:
        session.execute(update(Job).where(Job.id.in_(published)).values(relayed_at=now))
    session.commit()
    return len(published)


@event.listens_for(Session, "before_commit")
def _ready(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if pending:
        session.flush()
        session.info.setdefault(_READY, []).extend((job.id, job.task, list(job.args)) for job in pending)


@event.listens_for(Session, "after_commit")
def _publish(session: Session) -> None:
    failed = []
    for id_, task, args in session.info.pop(_READY, None) or ():
        try:
            send_now(task, *args, task_id=f"{PREFIX}{id_}")
        except Exception:
            log.warning("the broker is unreachable; job %s waits for the relay", id_, exc_info=True)
            failed.append(id_)
    if failed:  # the relay publishes them as soon as it can
        from .extensions import db

        with db.engine.begin() as conn:
            conn.execute(update(Job).where(Job.id.in_(failed)).values(relayed_at=None))


@event.listens_for(Session, "after_rollback")
def _drop(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_READY, None)
