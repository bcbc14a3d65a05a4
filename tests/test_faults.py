"""The fault suite: exactly once under real faults.

A real campaign (COUNT recipients) on PostgreSQL, with its own Redis (broker, journal,
limits), two ``celery worker`` processes and ``celery beat``, sent to the tests' SMTP server
while one fault at a time strikes: a worker killed with SIGKILL; a worker stopped past its
lease and resumed; the server answering 451 for a stretch; connections dropped after the
server kept a message and before the client heard so; a relay that accepts connections
and never greets; Redis restarted; the broker down while staff launch, pause and resume.

After each: every recipient got a copy (counted at the server), the campaign's sent
counter equals the number of recipients the server saw, and every copy that arrived twice
lies in a documented, counted window: ``doubtful_count`` is at least the number of extra
copies, and at most ``dispatch.MAX_DOUBTFUL`` per connection the fault struck (of which at
most ``dispatch.MAX_TWICE`` can really have gone twice).

The heaviest variants, so PostgreSQL only (SQLite serializes writers and adds nothing
here but minutes).
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field

import pytest
import redis as redis_lib
from sqlalchemy import func, insert, select

from mailer import create_app, sending
from mailer.extensions import db
from mailer.dispatch import MAX_DOUBTFUL, MAX_TWICE
from mailer.models import (
    Campaign,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    Job,
    MailingList,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    utcnow,
)
from mailer.suppression import email_hash
from tests.conftest import RUN_ID, ServerLikeClient, service_config
from tests.fault_proxy import FaultProxy
from tests.helpers_engine import (
    ROOT,
    make_campaign,
    received_counts,
    start_worker_process,
    stop_process,
    wait_until,
    worker_env,
)
from tests.helpers_staff import login_as, post
from tests.smtp_server import SMTPServer, free_port

pytestmark = [pytest.mark.slow,
              pytest.mark.one_database("postgresql", "the heaviest variants: SQLite serializes writers "
                                                     "and adds nothing here but minutes")]
COUNT = 2000
LEASE = 3  # seconds: a dead or stopped sender's batch is free after this
SETTINGS = {"SEND_LEASE_SECONDS": LEASE, "SEND_STALL_SECONDS": 2, "TICK_SECONDS": 0.5,
            "SEND_RETRY_BASE_SECONDS": 0.3, "SEND_RETRY_MAX_SECONDS": 1.0, "SEND_MAX_ATTEMPTS": 50,
            "SEND_PAUSE_AFTER_SECONDS": 600, "SEND_PAUSE_AFTER_FAILURES": 0, "BATCH_SIZE": 100,
            "SEND_SENDERS": 4, "JOB_RELAY_SECONDS": 5}


def domain_address(i: int) -> str:
    return f"odbiorca{i:05d}@faults.example.org"


@dataclass
class Stack:
    app: object
    smtp: SMTPServer
    proxy: FaultProxy
    redis_port: int
    redis_dir: str
    env: dict
    processes: list[subprocess.Popen] = field(default_factory=list)

    def start_worker(self, name: str) -> subprocess.Popen:
        process = start_worker_process(self.env, f"{name}-{uuid.uuid4().hex[:4]}")
        self.processes.append(process)
        return process

    def start_beat(self) -> None:
        schedule = os.path.join(self.redis_dir, "beat-schedule")
        self.processes.append(subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker.celery_app", "beat", "-s", schedule,
             "--loglevel", "WARNING"], cwd=ROOT, env=self.env, start_new_session=True))

    def redis(self) -> redis_lib.Redis:
        return redis_lib.Redis(port=self.redis_port, socket_timeout=5)

    def stop_redis(self) -> None:
        try:
            self.redis().shutdown(nosave=True)
        except redis_lib.ConnectionError:
            pass  # it went away, as asked

    def start_redis(self) -> None:
        subprocess.Popen(["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no", "--dir", self.redis_dir],
                         stdout=subprocess.DEVNULL)
        wait_until(self._redis_up, timeout=20)

    def _redis_up(self) -> bool:
        try:
            return self.redis().ping()
        except redis_lib.ConnectionError:
            return False


@pytest.fixture
def stack(app, database_url, tmp_path):
    smtp = SMTPServer()
    smtp.start()
    proxy = FaultProxy(smtp.port)
    stack = Stack(app=None, smtp=smtp, proxy=proxy, redis_port=free_port(), redis_dir=str(tmp_path),
                  env={})
    stack.start_redis()
    redis_url = f"redis://127.0.0.1:{stack.redis_port}/0"
    config = service_config(database_url, smtp, tmp_path)
    queue = f"mailer-faults-{RUN_ID}-{uuid.uuid4().hex[:6]}"
    config.update(SETTINGS, REDIS_URL=redis_url,
                  SMTP_URL=f"smtp://127.0.0.1:{proxy.port}?connect_timeout=1&timeout=5",
                  REDIS_PREFIX=queue,
                  CELERY={**config["CELERY"], "broker_url": redis_url, "task_default_queue": queue})
    stack.app = create_app("test", config)
    stack.app.test_client_class = ServerLikeClient
    stack.env = worker_env(stack.app, **{key: value for key, value in SETTINGS.items()},
                           INSTANCE_DIR=tmp_path / "instance")
    try:
        with stack.app.app_context():
            yield stack
            db.session.remove()
    finally:
        for process in stack.processes:
            stop_process(process, signal.SIGKILL)
        proxy.stop()
        smtp.stop()
        stack.stop_redis()


def audience(count: int = COUNT) -> MailingList:
    """``count`` confirmed subscribers on a new list, inserted in bulk."""
    mailing_list = MailingList(name="Awarie", slug=f"awarie-{uuid.uuid4().hex[:6]}")
    db.session.add(mailing_list)
    db.session.flush()
    now = utcnow()
    first = db.session.scalar(select(func.coalesce(func.max(Subscriber.id), 0))) + 1
    db.session.execute(insert(Subscriber), [
        {"id": first + i, "email": domain_address(i), "email_hash": email_hash(domain_address(i)),
         "name": f"Odbiorca {i}", "locale": "pl", "attributes": {}, "confirm_sent_today": 0,
         "created_at": now, "updated_at": now} for i in range(count)])
    db.session.execute(insert(Subscription), [
        {"subscriber_id": first + i, "list_id": mailing_list.id, "status": SubscriptionStatus.CONFIRMED,
         "created_at": now, "confirmed_at": now} for i in range(count)])
    db.session.commit()
    return mailing_list


def campaign_row(campaign_id: int) -> Campaign:
    db.session.commit()
    db.session.expire_all()
    return db.session.get(Campaign, campaign_id)


def wait_sent(campaign_id: int, timeout: float = 180) -> None:
    wait_until(lambda: campaign_row(campaign_id).status == CampaignStatus.SENT, timeout=timeout,
               interval=0.25)


def received(stack: Stack) -> int:
    return stack.smtp.count


def verify(stack: Stack, campaign_id: int, struck: int, journals_struck: int = 0) -> Campaign:
    """Everyone got it; the counters equal the server; extra copies lie in the counted
    window, which is bounded for each connection the fault struck (mailer.dispatch). A
    journal the fault struck (Redis gone while its sender marked messages in flight ahead)
    may leave such marks for the next holder to count as doubtful, though nothing went twice."""
    time.sleep(0.5)  # anything still on its way arrives
    counts = received_counts(stack.smtp)
    campaign = campaign_row(campaign_id)
    assert set(counts) == {domain_address(i) for i in range(COUNT)}
    assert campaign.sent_count == len(counts) == COUNT
    extra = sum(n - 1 for n in counts.values())
    twice = [(email, [m.message["Message-ID"] for m in stack.smtp.to(email)]) for email, n in counts.items()
             if n > 1]
    assert extra <= campaign.doubtful_count <= (struck + journals_struck) * MAX_DOUBTFUL, \
        (extra, campaign.doubtful_count, twice)
    assert extra <= struck * MAX_TWICE
    statuses = db.session.execute(select(Delivery.status, func.count()).where(
        Delivery.campaign_id == campaign_id).group_by(Delivery.status)).all()
    assert dict(statuses) == {DeliveryStatus.SENT: COUNT}
    return campaign


def launch(stack: Stack, workers: int = 2) -> int:
    campaign = make_campaign(db.session, [audience()], subject="Awarie — kampania próbna")
    db.session.commit()
    for n in range(workers):
        stack.start_worker(f"w{n}")
    stack.start_beat()
    sending.launch(db.session, campaign.id)
    db.session.commit()
    return campaign.id


def test_worker_killed_with_sigkill(stack):
    campaign_id = launch(stack)
    wait_until(lambda: received(stack) >= COUNT // 3, timeout=120, interval=0.02)
    stop_process(stack.processes[0], signal.SIGKILL)  # no chance to record or acknowledge
    stack.start_worker("rescuer")
    wait_sent(campaign_id)
    campaign = verify(stack, campaign_id, struck=1)
    print(f"\nSIGKILL: {sum(n - 1 for n in received_counts(stack.smtp).values())} copies twice, "
          f"{campaign.doubtful_count} counted as possibly twice")


def test_worker_stopped_past_its_lease_then_resumed(stack):
    stack.smtp.handler.delay = 0.002
    campaign_id = launch(stack)
    wait_until(lambda: received(stack) >= COUNT // 3, timeout=120, interval=0.02)
    stopped = stack.processes[0]
    os.killpg(stopped.pid, signal.SIGSTOP)
    time.sleep(LEASE + 2)  # its batch goes to the other worker
    os.killpg(stopped.pid, signal.SIGCONT)  # it wakes up holding a lease that is gone
    wait_sent(campaign_id)
    verify(stack, campaign_id, struck=1)


def test_a_stretch_of_451_answers_slows_the_campaign_and_it_goes_on_by_itself(stack):
    stack.smtp.handler.delay = 0.001
    campaign_id = launch(stack)
    wait_until(lambda: received(stack) >= COUNT // 4, timeout=120, interval=0.02)
    stack.smtp.handler.refuse_all = "451 4.3.0 Try again later"
    wait_until(lambda: campaign_row(campaign_id).status_code == "backoff", timeout=30)
    time.sleep(2)
    stack.smtp.handler.refuse_all = ""
    wait_sent(campaign_id)  # no person pressed resume
    campaign = verify(stack, campaign_id, struck=0)
    assert campaign.status_code == "" and campaign.failed_count == 0


def test_connections_dropped_after_the_server_kept_the_message(stack):
    """The server keeps every 150th message and drops the connection before its answer: the
    client cannot know; it tries that message again later and counts it."""
    stack.smtp.handler.drop_every = 150
    campaign_id = launch(stack)
    wait_sent(campaign_id)
    drops = stack.smtp.handler.dropped
    assert drops >= 5
    campaign = verify(stack, campaign_id, struck=drops)
    extra = sum(n - 1 for n in received_counts(stack.smtp).values())
    assert extra == campaign.doubtful_count == drops  # each drop: one copy twice, counted once


def test_a_relay_that_accepts_and_never_greets(stack):
    """Connections are accepted and nothing is said: each costs the connect timeout once,
    the campaign backs off instead of waiting a timeout per message, and goes on when the
    relay answers again."""
    stack.smtp.handler.delay = 0.001
    campaign_id = launch(stack)
    wait_until(lambda: received(stack) >= COUNT // 4, timeout=120, interval=0.02)
    stack.proxy.silent = True
    stack.proxy.drop_all()  # the senders' connections drop: they must reconnect
    before = stack.proxy.connections
    wait_until(lambda: campaign_row(campaign_id).status_code == "backoff", timeout=30)
    time.sleep(3)
    attempts = stack.proxy.connections - before
    stack.proxy.silent = False
    wait_sent(campaign_id)
    verify(stack, campaign_id, struck=2)
    assert attempts <= 12, attempts  # a few connects, backing off: not one per message


def test_redis_restarted_mid_campaign(stack):
    stack.smtp.handler.delay = 0.002
    campaign_id = launch(stack)
    wait_until(lambda: received(stack) >= COUNT // 3, timeout=120, interval=0.02)
    stack.stop_redis()  # the queue, the unacknowledged tasks and the journal are gone
    time.sleep(1)
    stack.start_redis()
    wait_sent(campaign_id)
    verify(stack, campaign_id, struck=0, journals_struck=2)  # no worker died: nothing twice


def test_broker_down_while_staff_launch_pause_and_resume(stack):
    """Every action commits its job with its data: the requests succeed while the broker is
    down and the campaign goes out once it is back."""
    campaign = make_campaign(db.session, [audience()], subject="Broker niedostępny")
    db.session.commit()
    staff = stack.app.test_client()
    login_as(staff, db.session)
    for n in range(2):
        stack.start_worker(f"w{n}")
    stack.start_beat()
    stack.stop_redis()
    page = f"/admin/campaigns/{campaign.id}"
    for action in ("send", "pause", "resume"):
        response = post(staff, f"{page}/{action}", page=page)
        assert response.status_code == 302, (action, response.status_code)
    assert db.session.scalar(select(func.count()).select_from(Job)) >= 2  # start + senders, kept
    assert campaign_row(campaign.id).status == CampaignStatus.SENDING
    assert received(stack) == 0
    stack.start_redis()
    wait_sent(campaign.id)
    verify(stack, campaign.id, struck=0)
    wait_until(lambda: db.session.scalar(select(func.count()).select_from(Job)) == 0, timeout=30)
