"""Entry point: ``celery -A worker.celery_app worker`` (and ``beat``)."""

from mailer import create_app

from . import celery_init_app

flask_app = create_app()
celery_app = celery_init_app(flask_app)
