"""The same-run baseline: P processes that render the same campaign template, build the
same hand-assembled bytes and send them with smtplib over one connection each. No
database, no queue, no rate limiter: what a bare Python sender reaches on this machine."""

import multiprocessing
import smtplib
import time

from mailer.mail.compose import CampaignMailer, Recipient

from .seed import address

_mailer: CampaignMailer | None = None


def _send(args) -> int:
    host, port, first, last = args
    smtp = smtplib.SMTP(host, port, timeout=60)
    smtp.ehlo()
    sent = 0
    for i in range(first, last):
        message = _mailer.message_for(Recipient(i, address(i), f"Osoba {i}"))
        smtp.sendmail(message.sender, [message.recipient], message.data)
        sent += 1
    smtp.quit()
    return sent


def run(mailer: CampaignMailer, host: str, port: int, count: int, processes: int) -> tuple[int, float]:
    """Send ``count`` messages from ``processes`` forked processes; (sent, seconds).
    Must be called inside the app context (inherited by the forked children)."""
    global _mailer
    _mailer = mailer
    step = -(-count // processes)
    parts = [(host, port, 1 + k * step, min(count, (k + 1) * step) + 1) for k in range(processes)]
    context = multiprocessing.get_context("fork")
    with context.Pool(processes) as pool:
        started = time.perf_counter()
        sent = sum(pool.map(_send, parts))
        elapsed = time.perf_counter() - started
    return sent, elapsed
