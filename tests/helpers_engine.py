"""Factories and checks for the sending engine's tests (real database, real SMTP server)."""

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import select, update

from mailer import deliveries, sending
from mailer.extensions import db
from mailer.models import (
    Campaign,
    CampaignEvent,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    Event,
    MailingList,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from mailer.models.types import utcnow

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = "odbiorcy.example.org"


def address(i: int) -> str:
    return f"osoba{i:05d}@{DOMAIN}"


def make_audience(session, count: int, *, lists: int = 1, status=SubscriptionStatus.CONFIRMED,
                  start: int = 0) -> list[MailingList]:
    """``count`` subscribers confirmed on every one of ``lists`` new lists."""
    made = []
    for n in range(lists):
        made.append(MailingList(name=f"Lista {n} {start}", slug=f"lista-{n}-{start}"))
    session.add_all(made)
    session.flush()
    for i in range(start, start + count):
        subscriber = Subscriber(email=address(i), name=f"Osoba {i}")
        session.add(subscriber)
        session.flush()
        for mailing_list in made:
            session.add(Subscription(subscriber_id=subscriber.id, list_id=mailing_list.id,
                                     status=status, confirmed_at=utcnow()))
    session.flush()
    return made


def make_campaign(session, lists: list[MailingList], subject: str = "Koncert na Rynku") -> Campaign:
    event = Event(title="Koncert na Rynku", starts_at=datetime.now(timezone.utc) + timedelta(days=7),
                  place="Rynek Główny", summary="Wieczór muzyki", body_md="Zapraszamy **wszystkich**.")
    session.add(event)
    session.flush()
    campaign = Campaign(subject=subject, name=subject, locale="pl")
    campaign.lists = list(lists)
    campaign.campaign_events = [CampaignEvent(event_id=event.id, position=0)]
    session.add(campaign)
    session.flush()
    return campaign


def launch_and_snapshot(session, campaign_id: int) -> Campaign:
    """Launch without a worker: the start task's body run here."""
    sending.launch(session, campaign_id)
    session.commit()
    sending.start(session, campaign_id)
    return session.get(Campaign, campaign_id)


def run_all_batches(session, campaign_id: int, timeout: float = 30.0) -> None:
    """Run a sender here until nothing is open or the campaign stops sending (a worker
    thread may be sending some batches at the same time)."""
    deadline = time.monotonic() + timeout
    while campaign_status(campaign_id) == CampaignStatus.SENDING and time.monotonic() < deadline:
        then = sending.send(session, campaign_id)
        db.session.commit()
        if then is not None and deliveries.has_open(session, campaign_id):
            time.sleep(min(then, 0.2))


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def campaign_status(campaign_id: int) -> str:
    db.session.commit()
    return db.session.scalar(select(Campaign.status).where(Campaign.id == campaign_id))


def rows(campaign_id: int) -> dict[str, str]:
    """email -> delivery status of a campaign."""
    db.session.commit()
    return dict(db.session.execute(
        select(Subscriber.email, Delivery.status).join(Delivery, Delivery.subscriber_id == Subscriber.id)
        .where(Delivery.campaign_id == campaign_id)).all())


def assert_exactly_once(smtp_server, campaign_id: int, expected: set[str]) -> None:
    """Every expected address received exactly one message, nobody else received any,
    and the Delivery table says sent for exactly those."""
    try:  # a worker thread may still be finishing its chunk
        smtp_server.wait_for(len(expected), timeout=10)
    except AssertionError:
        pass
    time.sleep(0.2)  # and anything extra would have arrived by now
    received = [r for m in smtp_server.messages for r in m.recipients]
    assert sorted(received) == sorted(expected), _diff(received, expected)
    statuses = rows(campaign_id)
    sent = {email for email, status in statuses.items() if status == DeliveryStatus.SENT}
    assert sent == expected


def _diff(received, expected) -> str:
    dupes = {r for r in received if received.count(r) > 1}
    return (f"duplicates={sorted(dupes)[:5]} missing={sorted(set(expected) - set(received))[:5]} "
            f"extra={sorted(set(received) - set(expected))[:5]}")


def worker_env(app, **overrides) -> dict:
    """Environment for a worker subprocess that talks to the same services as ``app``."""
    config = app.config
    env = {**os.environ,
           "MAILER_ENV": "test",
           "DATABASE_URL": config["SQLALCHEMY_DATABASE_URI"],
           "REDIS_URL": config["REDIS_URL"],
           "REDIS_PREFIX": config["REDIS_PREFIX"],
           "CELERY_QUEUE": config["CELERY"]["task_default_queue"],
           "SMTP_URL": config["SMTP_URL"],
           "BASE_URL": config["BASE_URL"],
           "MAIL_FROM": config["MAIL_FROM"],
           "MAIL_DOMAIN": config["MAIL_DOMAIN"],
           "SECRET_KEY": config["SECRET_KEY"]}
    env.update({key: str(value) for key, value in overrides.items()})
    return env


def start_worker_process(env: dict, name: str) -> subprocess.Popen:
    """A real ``celery worker`` process (solo pool), killed by the caller."""
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "--pool", "solo",
         "--loglevel", "WARNING", "-n", f"{name}@%h", "--without-mingle", "--without-gossip",
         "-Q", env["CELERY_QUEUE"]],
        cwd=ROOT, env=env, start_new_session=True)


def stop_process(process: subprocess.Popen, sig=signal.SIGTERM) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


__all__ = ["CampaignStatus", "DeliveryStatus"]


def wait_worker_idle(celery_app, timeout: float = 30.0) -> None:
    """Wait until the test worker has no active, reserved or scheduled task, so the
    tables are not emptied under a running task."""
    import redis

    inspect = celery_app.control.inspect(timeout=1.0, limit=1)
    broker = redis.Redis.from_url(celery_app.conf.broker_url)
    queue = celery_app.conf.task_default_queue
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline and quiet < 2:
        busy = broker.llen(queue) > 0  # tasks not yet taken by the worker
        for reply in (inspect.active(), inspect.reserved(), inspect.scheduled()):
            # a solo worker busy with a task does not answer at all: that is busy too
            busy = busy or not reply or any(reply.values())
        quiet = 0 if busy else quiet + 1
        time.sleep(0.05)


TICK_SCRIPT = """
import time
from worker.celery_app import flask_app
from mailer import sending
from mailer.extensions import db
with flask_app.app_context():
    sending.tick(db.session)
"""


def tick_in_subprocess(env: dict) -> None:
    """Beat's tick, run by a process configured like the workers (same broker and queue)."""
    subprocess.run([sys.executable, "-c", TICK_SCRIPT], cwd=ROOT, env=env, check=True, timeout=60)


def prepare_without_fan_out(session, campaign_id: int) -> None:
    """Launch and snapshot a campaign here but queue nothing (the test's own worker thread
    would otherwise start sending it)."""
    sending.launch(session, campaign_id)
    sending.pause(session, campaign_id)  # a start task seen by another worker only snapshots
    session.commit()
    sending.start(session, campaign_id)
    session.execute(update(Campaign).where(Campaign.id == campaign_id).values(status=CampaignStatus.SENDING))
    session.commit()


def dispatch(broker_url: str, queue: str, campaign_id: int, senders: int = 2) -> None:
    """Queue ``senders`` sender tasks on ``queue`` at ``broker_url`` (a worker subprocess's)."""
    from celery import Celery

    client = Celery("engine-tests", broker=broker_url, set_as_current=False)
    try:
        for _ in range(senders):
            client.send_task("mailer.send_campaign", args=(campaign_id,), queue=queue)
    finally:
        client.close()


def received_counts(server) -> dict[str, int]:
    counts: dict[str, int] = {}
    for message in server.messages:
        for recipient in message.recipients:
            counts[recipient] = counts.get(recipient, 0) + 1
    return counts
