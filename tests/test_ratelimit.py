"""The global rate limit (a Redis token bucket shared by every worker process) and the
cap on concurrent SMTP connections. Measured in counts of messages per window at the
server, never in elapsed time."""

import time
import uuid

import pytest

from mailer.models import CampaignStatus
from mailer.ratelimit import ConnectionSlot, RateLimiter
from tests.helpers_engine import (
    campaign_status,
    dispatch,
    make_audience,
    make_campaign,
    prepare_without_fan_out,
    start_worker_process,
    stop_process,
    wait_until,
    worker_env,
)
from tests.smtp_server import SMTPServer

RATE = 10


def _config(app, **values):
    return {**app.config, "REDIS_PREFIX": f"rl-test-{uuid.uuid4().hex[:8]}", **values}


@pytest.mark.parametrize("backend", ["redis", "local"])
def test_bucket_grants_capacity_then_nothing(app, backend):
    config = _config(app, RATE_PER_SECOND=5, RATE_PER_HOUR=0)
    if backend == "local":
        config["REDIS_URL"] = ""
    limiter = RateLimiter(config)
    assert limiter._try(3)[0] == 3
    granted, wait_ms = limiter._try(10)
    assert granted == 2  # the bucket holds 5
    granted, wait_ms = limiter._try(1)
    assert granted == 0 and 0 < wait_ms <= 250


def test_hourly_limit_applies_with_the_per_second_one(app):
    limiter = RateLimiter(_config(app, RATE_PER_SECOND=100, RATE_PER_HOUR=7))
    assert limiter._try(50)[0] == 7
    assert limiter._try(1)[0] == 0


def test_no_limit_configured_grants_everything(app):
    assert RateLimiter(_config(app, RATE_PER_SECOND=0, RATE_PER_HOUR=0)).take(1000) == 1000


@pytest.mark.parametrize("backend", ["redis", "local"])
def test_connection_slots_are_capped_and_released(app, backend):
    config = _config(app, SMTP_MAX_CONNECTIONS=2)
    if backend == "local":
        config["REDIS_URL"] = ""
    first, second, third = (ConnectionSlot(config, lease=30) for _ in range(3))
    assert first.acquire(timeout=0) and second.acquire(timeout=0)
    assert not third.acquire(timeout=0)
    first.release()
    assert third.acquire(timeout=0)
    second.release()
    third.release()


def test_expired_slot_lease_frees_the_slot(app):
    config = _config(app, SMTP_MAX_CONNECTIONS=1)
    dead = ConnectionSlot(config, lease=0.2)
    assert dead.acquire(timeout=0)  # its holder "dies" without releasing
    assert ConnectionSlot(config, lease=30).acquire(timeout=2)


@pytest.fixture
def timed_server():
    server = SMTPServer()
    server.start()
    yield server
    server.stop()


@pytest.mark.one_database("postgresql", "the limit lives in Redis; the database only holds the "
                                        "rows, and workers on several machines share PostgreSQL")
def test_rate_holds_across_two_worker_processes(app, session, timed_server, monkeypatch):
    monkeypatch.setitem(app.config, "BATCH_SIZE", 30)  # two batches: one per worker
    lists = make_audience(session, 60)
    campaign = make_campaign(session, lists)
    session.commit()
    prepare_without_fan_out(session, campaign.id)
    env = worker_env(app, SMTP_URL=f"smtp://127.0.0.1:{timed_server.port}", RATE_PER_SECOND=RATE,
                     REDIS_PREFIX=f"rl-test-{uuid.uuid4().hex[:8]}", BATCH_SIZE=30,
                     CELERY_QUEUE=f"mailer-test-rate-{uuid.uuid4().hex[:8]}")
    workers = [start_worker_process(env, f"rate{i}") for i in range(2)]
    try:
        dispatch(env["REDIS_URL"], env["CELERY_QUEUE"], campaign.id, senders=2)
        wait_until(lambda: campaign_status(campaign.id) == CampaignStatus.SENT, timeout=90)
    finally:
        for worker in workers:
            stop_process(worker)
    arrivals = sorted(timed_server.handler.arrivals)
    assert len(arrivals) == 60
    # In any window of W seconds a bucket of RATE per second (holding at most RATE) issues
    # at most RATE * W + RATE tokens, and senders take them a message at a time (a tenth of
    # the rate at most). Two independent per-process buckets would let through about 80.
    window = 3.0
    worst = max(sum(1 for t in arrivals if start <= t < start + window) for start in arrivals)
    assert worst <= RATE * window + RATE + 1, worst
    assert worst >= RATE  # it was not trivially slow either


def test_a_campaign_takes_as_many_tokens_as_it_sends(app, session, smtp_server, monkeypatch):
    """Tokens are taken as messages go and the unused ones given back: 10 messages once took
    500 of 1,000 hourly tokens (a chunk's worth, taken before the rows were claimed)."""
    from tests.helpers_engine import launch_and_snapshot, run_all_batches

    prefix = f"rl-test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setitem(app.config, "RATE_PER_HOUR", 1000)
    monkeypatch.setitem(app.config, "RATE_PER_SECOND", 50)
    monkeypatch.setitem(app.config, "REDIS_PREFIX", prefix)
    campaign = make_campaign(session, make_audience(session, 10))
    session.commit()
    launch_and_snapshot(session, campaign.id)
    run_all_batches(session, campaign.id)
    assert campaign_status(campaign.id) == CampaignStatus.SENT
    left = RateLimiter(_config(app, RATE_PER_SECOND=0, RATE_PER_HOUR=1000, REDIS_PREFIX=prefix))
    assert 990 <= left.take(1000, max_wait=0) <= 991  # (plus what an hourly rate refills in seconds)


EMBEDDED_TAKER = """
import json, sys, time
from mailer.ratelimit import RateLimiter
config = json.loads(sys.argv[1])
limiter = RateLimiter(config)
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # both start together
taken, until = 0, time.time() + 1.0
while time.time() < until:
    taken += limiter.take(1, max_wait=0.05)
print(taken)
"""


def test_without_redis_two_processes_share_one_bucket(app, tmp_path):
    """The embedded default runs two worker processes: the limit is theirs together."""
    import json
    import subprocess
    import sys

    from tests.helpers_engine import ROOT

    config = {"RATE_PER_SECOND": 20, "RATE_PER_HOUR": 0, "REDIS_URL": "", "REDIS_PREFIX": "embedded",
              "INSTANCE_DIR": str(tmp_path)}
    start = str(time.time() + 3)
    takers = [subprocess.Popen([sys.executable, "-c", EMBEDDED_TAKER, json.dumps(config), start],
                               cwd=ROOT, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    total = sum(int(taker.communicate(timeout=30)[0]) for taker in takers)
    # A full bucket and a second's worth: 40 together (two buckets of their own: 80).
    assert 38 <= total <= 42, total
