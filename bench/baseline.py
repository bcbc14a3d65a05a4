"""The same-run yardsticks: P forked processes that build the same campaign's messages
(the project's own builder, per-recipient links and all) and send them over one
connection each. No database, no queue, no rate limiter, no bookkeeping.

- ``smtplib``: each message with ``sendmail`` (four round trips a message);
- ``pipelined``: through the project's own SMTP transport, which pipelines (RFC 2920)
  when the server offers it: what the engine's bookkeeping is measured against.
"""

import multiprocessing
import os
import smtplib
import time
from collections.abc import Callable

from mailer.mail.transport import SMTPSettings, SMTPTransport

from .seed import address

# The message factory of this process (made by _start): i -> Outgoing.
_build: Callable | None = None
_CHUNK = 500  # messages handed to the transport at a time (as the engine does per batch)


def _send_smtplib(args) -> int:
    host, port, first, last = args
    smtp = smtplib.SMTP(host, port, timeout=60)
    smtp.ehlo()
    sent = 0
    for i in range(first, last):
        message = _build(i)
        smtp.sendmail(message.sender, [message.recipient], message.data)
        sent += 1
    smtp.quit()
    return sent


def _send_pipelined(args) -> int:
    host, port, first, last = args
    transport = SMTPTransport(SMTPSettings(host=host, port=port, timeout=60))
    sent = 0
    try:
        for start in range(first, last, _CHUNK):
            messages = [_build(i) for i in range(start, min(last, start + _CHUNK))]
            sent += sum(1 for result in transport.send(messages) if result.ok)
    finally:
        transport.close()
    return sent


SENDERS = {"smtplib": _send_smtplib, "pipelined": _send_pipelined}


def message_factory(campaign_id: int) -> Callable:
    """i -> the campaign's message for bench recipient i, built as the engine builds it: the
    same frozen content, skeleton, links, return path and signature (inside an app context)."""
    from mailer import campaign_mail, deliveries
    from mailer.extensions import db
    from mailer.mail.message import now_date
    from mailer.models import Campaign

    mail = campaign_mail.mail_for(db.session, db.session.get(Campaign, campaign_id))
    date = now_date()
    return lambda i: mail.message(deliveries.Row(i, i, address(i), f"Osoba {i}", "pl", 0), date)


def _start(campaign_id: int, env: dict) -> None:
    """Pool initializer: a fresh process (spawned, so no broker or database connection
    of the parent's is shared) with its own app and message factory."""
    global _build
    os.environ.update(env)  # before the app reads its configuration
    from mailer import create_app

    app = create_app("test")
    app.app_context().push()
    _build = message_factory(campaign_id)

    from worker import freeze_heap

    freeze_heap()  # as a worker does once it is up


def _ready(_) -> int:
    time.sleep(0.2)  # long enough that each of the pool's processes takes one
    return os.getpid()


def run(kind: str, campaign_id: int, host: str, port: int, count: int, processes: int,
        env: dict, meter=None) -> tuple[int, float]:
    """Send ``count`` messages of the campaign from ``processes`` processes with the
    ``kind`` sender; returns (sent, seconds), timed once the processes are ready. ``meter``
    (a ``cpu.Meter``) is started then too: the processes' start-up (imports, the app, the
    message factory) is no part of a message's cost, as the engine's workers' is not."""
    step = -(-count // processes)
    parts = [(host, port, 1 + k * step, min(count, (k + 1) * step) + 1) for k in range(processes)]
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes, initializer=_start, initargs=(campaign_id, env)) as pool:
        while len(set(pool.map(_ready, range(processes), chunksize=1))) < processes:
            pass  # until every process has started (its initializer ran) and answered
        if meter is not None:
            meter.start()
        started = time.perf_counter()
        sent = sum(pool.map(SENDERS[kind], parts, chunksize=1))
        elapsed = time.perf_counter() - started
        if meter is not None:
            meter.sample()  # before the pool's processes go
    return sent, elapsed
