"""gunicorn's settings for the web process (the Procfile, the bench, a deployment):
``gunicorn -c gunicorn.conf.py -b 0.0.0.0:8000 'mailer:create_app()'``.

On PostgreSQL each worker serves its requests as gevent greenlets: a sign-up's answer is
held ``SUBSCRIBE_ANSWER_SECONDS`` and waits on PostgreSQL and Redis, and a held greenlet
costs next to nothing, where a held thread takes part in the interpreter lock's hand-offs
(measured with ``python -m bench.signups``: 312 -> 417 sign-ups a second, 3.7 -> 3.0 ms of
web CPU each). psycopg cooperates with gevent by itself (3.1.14 and later), redis-py through
the patched sockets, the template fence's child (``mailer.mail.render``) through the patched
``select`` and ``waitpid``; the long check of an uploaded CSV file yields now and then
(``mailer.imports.upload.inspect``).

On SQLite (the embedded default) threads: SQLite's C library waits for a lock by sleeping
in C, which would stop every greenlet of the worker, the one holding the lock included.

``WEB_WORKERS`` (2: one a core), ``WEB_CONNECTIONS`` (requests a gevent worker serves at
once), ``WEB_THREADS`` (a threaded worker's threads) and ``WEB_WORKER_CLASS`` (``gevent`` or
``gthread``, to choose against the rule) are read from the environment.
"""

import os

from config import Config


def worker_kind(environ=os.environ) -> str:
    """``gevent`` on PostgreSQL, ``gthread`` on SQLite, unless ``WEB_WORKER_CLASS`` says."""
    chosen = environ.get("WEB_WORKER_CLASS", "")
    if chosen in {"gevent", "gthread"}:
        return chosen
    return "gthread" if Config(environ).SQLALCHEMY_DATABASE_URI.startswith("sqlite") else "gevent"


workers = int(os.environ.get("WEB_WORKERS") or 2)
worker_class = worker_kind()
if worker_class == "gevent":
    worker_connections = int(os.environ.get("WEB_CONNECTIONS") or 1000)
else:
    threads = int(os.environ.get("WEB_THREADS") or 32)


def post_worker_init(worker) -> None:
    """Once a worker has loaded the app, what is alive moves out of the collector's way, as in
    a Celery worker (``worker.freeze_heap``)."""
    from worker import freeze_heap

    freeze_heap()
