"""The Celery side: ``celery_init_app`` builds the worker's Celery app from the Flask app."""

import ctypes
import ctypes.util
import gc

from celery import Celery, Task
from celery.signals import worker_process_init, worker_ready
from flask import Flask

YOUNG_OBJECTS = 20_000  # the collector's first threshold in a worker (Python's default: 700)
M_TRIM_THRESHOLD, M_TOP_PAD = -1, -2  # glibc's mallopt parameters (malloc.h)
KEPT_FREE = 64 << 20  # free bytes at the top of the heap kept for reuse, not given back
TOP_PAD = 16 << 20  # bytes the heap grows by beyond what an allocation needs


def freeze_heap(**_) -> None:
    """Once a worker is up, what is alive (modules, the app, Celery's consumer) moves to the
    collector's permanent generation: full collections, which a sender's hundreds of objects
    a message trigger, no longer walk it (measured: 7.6 us of collection a message, 1.8 after).
    And a young generation of 20,000 objects rather than 700: a batch's few thousand objects,
    freed by reference counting once it is sent, no longer set off a collection each time (2.6
    us a message -> none measured at 200,000 messages; cyclic garbage waits a little longer)."""
    gc.freeze()
    gc.set_threshold(YOUNG_OBJECTS, *gc.get_threshold()[1:])
    keep_freed_heap()


def keep_freed_heap() -> None:
    """glibc gives the top of the heap back to the system once 128 kB of it are free, and a
    sender frees a batch's messages (megabytes) at once, then builds the next batch's: the
    heap shrank and grew again about once every ten messages (``brk``, strace), each page
    taken back with a page fault (3.4 a message, ``/proc/<pid>/stat``). Kept up to
    ``KEPT_FREE`` and grown ``TOP_PAD`` at a time, a worker took 6 us of CPU a message less
    (``python -m bench``, three interleaved pairs: 91-92 us against 97-98; the yardsticks,
    which call this too, unchanged) with the same peak RSS. The web workers call it too
    (``gunicorn.conf.py``): what a burst of requests freed is kept for the next. A no-op
    where the C library has no ``mallopt`` (macOS)."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_TRIM_THRESHOLD, KEPT_FREE)
    mallopt(M_TOP_PAD, TOP_PAD)


worker_ready.connect(freeze_heap, weak=False)  # once the consumer is up (a threads pool)
worker_process_init.connect(freeze_heap, weak=False)  # a solo pool; each prefork child


def celery_init_app(app: Flask) -> Celery:
    """Flask's documented pattern: every task runs inside the app context. A task that
    was a queued job (``mailer.jobs``) forgets its job when it has run."""
    from mailer import jobs
    from mailer.extensions import db_session

    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            with app.app_context():
                try:
                    return self.run(*args, **kwargs)
                finally:
                    job = jobs.job_id(self.request.id)
                    if job is not None:
                        db_session.rollback()
                        jobs.finished(db_session, job)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(app.config["CELERY"])
    celery_app.conf.beat_schedule = beat_schedule(app)
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    from . import tasks  # noqa: F401  registers the tasks on this app

    return celery_app


def beat_schedule(app: Flask) -> dict:
    """Periodic work. Campaign schedules and jobs live in the database; beat only ticks."""
    schedule = {
        "tick": {"task": "mailer.tick", "schedule": app.config["TICK_SECONDS"]},
        "purge-pending": {"task": "mailer.purge_pending", "schedule": 3600.0},
        "purge-webhook-nonces": {"task": "mailer.purge_webhook_nonces", "schedule": 3600.0},
        # The dashboard's audience figures (mailer.stats: too slow to count per page at a million).
        "refresh-summary": {"task": "mailer.refresh_summary", "schedule": 60.0, "options": {"expires": 60}},
    }
    if app.config.get("BOUNCE_MAILBOX_URL"):  # returned mail read from a mailbox
        every = float(app.config["BOUNCE_MAILBOX_POLL_SECONDS"])
        schedule["bounce-mailbox"] = {"task": "mailer.poll_bounce_mailbox", "schedule": every,
                                      "options": {"expires": every}}
    return schedule
