"""Crashes: a worker process killed with SIGKILL mid-batch, and Redis restarted (its queue
lost) mid-campaign. The database is the truth: the beat tick re-queues what is left and
the campaign finishes; nobody recorded as sent is mailed again, nobody is lost."""

import signal
import subprocess
import uuid

import pytest

from mailer.models import CampaignStatus, DeliveryStatus
from tests.smtp_server import SMTPServer
from tests.helpers_engine import (address, campaign_status, dispatch, make_audience,
                                  make_campaign, prepare_without_fan_out, received_counts, rows,
                                  start_worker_process, stop_process, tick_in_subprocess, wait_until,
                                  worker_env)
from tests.smtp_server import free_port

CHUNK = 5
COUNT = 60


@pytest.fixture
def slow_server():
    server = SMTPServer()
    server.handler.delay = 0.04  # so that a kill lands mid-batch
    server.start()
    yield server
    server.stop()


def _env(app, server, **extra):
    return worker_env(app, SMTP_URL=f"smtp://127.0.0.1:{server.port}", SEND_CHUNK_SIZE=CHUNK,
                      SEND_LEASE_SECONDS=2, SEND_STALL_SECONDS=1, BATCH_SIZE=30,
                      CELERY_QUEUE=f"mailer-test-engine-{uuid.uuid4().hex[:8]}", **extra)


def _finish(session, env, campaign_id, timeout=90):
    """Tick (as beat would) until the campaign is sent."""
    def done():
        if campaign_status(campaign_id) == CampaignStatus.SENT:
            return True
        tick_in_subprocess(env)
        return False
    wait_until(done, timeout=timeout, interval=0.5)


def _check(server, campaign_id, sent_before: set[str], in_flight: set[str]) -> None:
    counts = received_counts(server)
    expected = {address(i) for i in range(COUNT)}
    assert set(counts) == expected  # nobody lost, nobody else
    for email in sent_before:
        assert counts[email] == 1, email  # recorded as sent: never sent again
    duplicates = {email for email, n in counts.items() if n > 1}
    assert duplicates <= in_flight  # only the documented window: the chunk being sent
    assert len(in_flight) <= CHUNK
    assert set(rows(campaign_id).values()) == {DeliveryStatus.SENT}


def test_worker_killed_mid_batch_then_campaign_finishes(app, session, slow_server):
    lists = make_audience(session, COUNT)
    campaign = make_campaign(session, lists)
    session.commit()
    batches = prepare_without_fan_out(session, campaign.id)
    env = _env(app, slow_server)
    worker = start_worker_process(env, "doomed")
    try:
        dispatch(env["REDIS_URL"], env["CELERY_QUEUE"], campaign.id, batches)
        slow_server.wait_for(12, timeout=60)
        stop_process(worker, signal.SIGKILL)  # no chance to finish, record or ack anything
    finally:
        stop_process(worker, signal.SIGKILL)
    statuses = rows(campaign.id)
    sent_before = {e for e, s in statuses.items() if s == DeliveryStatus.SENT}
    in_flight = {e for e, s in statuses.items() if s == DeliveryStatus.SENDING}
    assert sent_before and len(sent_before) < COUNT

    rescuer = start_worker_process(env, "rescuer")
    try:
        _finish(session, env, campaign.id)
    finally:
        stop_process(rescuer)
    _check(slow_server, campaign.id, sent_before, in_flight)


def test_redis_restarted_mid_campaign(app, session, slow_server, tmp_path):
    port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                             stdout=subprocess.DEVNULL)
    try:
        url = f"redis://127.0.0.1:{port}/0"
        wait_until(lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"],
                                          capture_output=True).stdout.strip() == b"PONG", 10)
        lists = make_audience(session, COUNT)
        campaign = make_campaign(session, lists)
        session.commit()
        batches = prepare_without_fan_out(session, campaign.id)
        env = _env(app, slow_server, REDIS_URL=url)
        worker = start_worker_process(env, "survivor")
        try:
            dispatch(url, env["CELERY_QUEUE"], campaign.id, batches)
            slow_server.wait_for(8, timeout=60)
            # Everything in Redis is gone: the queued batch, the unacked one.
            subprocess.run(["redis-cli", "-p", str(port), "DEBUG", "RESTART"], capture_output=True)
            wait_until(lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"],
                                              capture_output=True).stdout.strip() == b"PONG", 20)
            statuses = rows(campaign.id)
            sent_before = {e for e, s in statuses.items() if s == DeliveryStatus.SENT}
            _finish(session, env, campaign.id)
        finally:
            stop_process(worker)
        counts = received_counts(slow_server)
        assert set(counts) == {address(i) for i in range(COUNT)}
        assert all(counts[email] == 1 for email in sent_before)
        assert all(n == 1 for n in counts.values())  # the worker itself never died
        assert set(rows(campaign.id).values()) == {DeliveryStatus.SENT}
    finally:
        redis.terminate()
        redis.wait(timeout=10)
