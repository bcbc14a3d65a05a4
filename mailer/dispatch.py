"""The sending loop shared by campaigns and notices: one run of messages over one
connection, built a slice at a time before they are sent, each acceptance journaled as it
is answered, outcomes recorded in bulk by a recorder thread that also keeps the lease alive.

The unit of work (a campaign's batch, a set of notices) is leased; a ``Store`` records its
outcomes, fenced by that lease, and renews it. The sending thread never waits for the
database: it hands each outcome to the recorder, which commits a few times a second (or
every ``FLUSH_AT`` outcomes) and learns in the same transaction whether the lease still
holds and whether the campaign is still sending. Before each message the sending thread
checks, without a round trip, that the lease was renewed recently enough
(``lease - LEASE_MARGIN``): a worker stopped past its lease (SIGSTOP, a long GC, a lost
network) sends nothing more once it wakes, because its clock says the lease may be gone,
and the renewal it then asks for fails.

What can go out twice, and how it is bounded:
1. a worker killed (or a lease lost) while messages were in flight: at most the messages
   whose acceptance the journal does not hold yet (``MAX_TWICE`` per connection, a
   millisecond or two of sending); the next holder counts what may have gone
   (``MAX_DOUBTFUL`` at most, an upper bound);
2. a connection lost after a message's data and before the server's answer
   (``Result.doubt``): that message, retried later and counted.
Both counts go to ``Campaign.doubtful_count``.
"""

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .errors import InvalidInput
from .journal import LEAD, Journal, JournalDown
from .mail.message import Outgoing
from .mail.transport import ConnectionFailed, Result, Transport
from .ratelimit import ConnectionSlot, RateLimiter

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.3  # the recorder commits at least this often (and renews the lease)
FLUSH_AT = 500  # ... or as soon as this many outcomes wait (or BUILD_AHEAD bytes of messages)
LEASE_MARGIN = 0.5  # of the lease: stop sending when the last renewal is older than this share
RATE_WAIT = 2.0  # seconds a sender waits for rate tokens before it gives its batch back
BACKOFF_AFTER = 5  # temporary failures in a row after which a run stops and backs off
GROUP = 4  # items marked in flight by one journal write
BUILD_AHEAD = 8 << 20  # bytes of messages built before the first of them is sent
# Per connection a fault strikes: copies that can go twice (acceptances not yet journaled, or
# journaled by a write not yet acknowledged, and the message in flight), and messages counted
# as doubtful (those, and the ones marked in flight ahead that had not gone out yet).
MAX_TWICE = 2 * GROUP + 1
MAX_DOUBTFUL = LEAD + 3 * GROUP + 1


@dataclass
class Item:
    """One message to send: its key (a delivery's or a notice's id) and how to build it."""

    key: int
    email: str
    attempts: int
    build: Callable[[], Outgoing]  # raises InvalidInput when it cannot be built


@dataclass
class Outcome:
    item: Item
    result: Result | None  # None: the message could not be built (``error`` says why)
    error: str = ""


class Store(Protocol):
    def flush(self, outcomes: list[Outcome]) -> str:
        """Commit ``outcomes`` and renew the lease; "ok", "lost" (the lease is someone
        else's now) or "stop" (paused, cancelled: stop sending)."""
        ...


@dataclass
class Report:
    """How a run ended (each field None or zero when it did not happen)."""

    attempted: int = 0
    accepted: int = 0
    # "lost", "stop", "backoff", "failures", "rate", "journal", "slot" or "" (ran out of items)
    stopped: str = ""
    connection_error: ConnectionFailed | None = None
    rate_wait: float = 0.0  # seconds until the rate limit has tokens again
    last_error: str = ""
    unrecorded: int = 0  # outcomes the database never took (the journal keeps acceptances)


class Recorder(threading.Thread):
    """Commits outcomes and renews the lease, off the sending thread."""

    def __init__(self, store: Store, lease_seconds: float, slot: ConnectionSlot | None,
                 context: Callable):
        super().__init__(daemon=True, name="recorder")
        self.store, self.slot, self.context = store, slot, context
        self.lease = lease_seconds
        self.deadline = time.monotonic() + lease_seconds * LEASE_MARGIN
        self.verdict = "ok"
        self._buffer: list[Outcome] = []
        self._bytes = 0  # of the messages whose outcomes are in the buffer
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._renewed = threading.Event()
        self._done = False

    def add(self, outcome: Outcome) -> None:
        with self._lock:
            self._buffer.append(outcome)
            if outcome.result is not None:
                self._bytes += len(outcome.result.message.data)
            if len(self._buffer) >= FLUSH_AT or self._bytes >= BUILD_AHEAD:
                self._wake.set()

    def renew_now(self, timeout: float) -> bool:
        """Ask for a flush now and wait for it; True if the lease holds for a while more."""
        self._renewed.clear()
        self._wake.set()
        self._renewed.wait(timeout)
        return self.verdict == "ok" and time.monotonic() < self.deadline

    def finish(self) -> int:
        """Flush what is left and stop; returns how many outcomes could not be recorded."""
        self._done = True
        self._wake.set()
        self.join()
        return len(self._buffer)

    def run(self) -> None:
        with self.context():
            while True:
                self._wake.wait(FLUSH_SECONDS)
                self._wake.clear()
                last = self._done
                try:
                    self._flush()
                except Exception:  # never die: the sending thread relies on this one
                    log.exception("the recorder failed; sending stops")
                    self.verdict = "lost"
                    self._renewed.set()
                if last:
                    return

    def _flush(self) -> None:
        with self._lock:
            outcomes, self._buffer, self._bytes = self._buffer, [], 0
        started = time.monotonic()
        try:
            verdict = self.store.flush(outcomes)
        except Exception:  # the database is away: keep the outcomes, keep trying
            log.exception("recording outcomes failed; retrying")
            with self._lock:
                self._buffer[:0] = outcomes
            time.sleep(0.2)
            self._renewed.set()
            return
        if verdict == "ok" and self.slot is not None:
            try:
                held = self.slot.refresh()
            except Exception:  # Redis is away: the cap cannot be vouched for
                log.warning("the connection slot cannot be renewed", exc_info=True)
                held = False
            if not held:
                verdict = "slot"  # lost (another sender took it) or unknown: stop, back off
        if verdict == "ok":
            self.deadline = started + self.lease * LEASE_MARGIN
        self.verdict = verdict if self.verdict == "ok" else self.verdict
        self._renewed.set()


class Watch:
    """The transport's observer: journal, lease, rate and failure streak, per message."""

    def __init__(self, items: Sequence[Item], journal: Journal, recorder: Recorder,
                 limiter: RateLimiter | None, report: Report, pause_after: int = 0):
        self.items, self.journal, self.recorder = items, journal, recorder
        self.limiter, self.report, self.pause_after = limiter, report, pause_after
        self.tokens = 0  # taken from the rate limit and not used yet
        self.step = 1 if limiter is None or limiter.unlimited else \
            max(1, min(50, int(min(rate for _, _, rate in limiter.limits) / 10)))
        self._index: dict[int, int] = {}  # id(message) -> item index, while in the transport
        self._frontier = 0  # items before this index are marked in flight ...
        self._writes: list[tuple[int, int]] = []  # ... by these writes: (end index, write number)
        self._accepted: list[int] = []  # keys accepted since the last write
        self._temporary_streak = 0
        self._permanent_streak = 0

    def slices(self) -> Iterator[list[Outgoing]]:
        """The items' messages, built a slice at a time (``BUILD_AHEAD`` bytes of them: a
        whole batch of ordinary ones) before the first of the slice is handed on, as the
        bare sender of the bench builds its chunks: building in a loop of its own, and then
        sending in one, takes the worker a fifth to a quarter less CPU a message than
        building each message between two of the connection's reads and writes
        (bench/README.md). A slice sent is let go: however big the messages, a run holds
        a few slices' bytes at a time (the one built, the one sent, outcomes on their way
        to the database), not a batch's."""
        built: list[Outgoing] = []
        size = 0
        for index, item in enumerate(self.items):
            try:
                message = item.build()
            except InvalidInput as exc:
                self.recorder.add(Outcome(item, None, str(exc)))
                continue
            self._index[id(message)] = index
            built.append(message)
            size += len(message.data)
            if size >= BUILD_AHEAD:
                yield built
                built, size = [], 0
        if built:
            yield built

    def begin(self, message: Outgoing) -> bool:
        report, recorder = self.report, self.recorder
        if recorder.verdict != "ok":
            report.stopped = recorder.verdict
            return False
        if self._temporary_streak >= BACKOFF_AFTER:
            report.stopped = "backoff"
            return False
        if self.pause_after and self._permanent_streak >= self.pause_after:
            report.stopped = "failures"  # the store pauses the campaign as it records them
            return False
        if time.monotonic() >= recorder.deadline and not recorder.renew_now(timeout=5.0):
            report.stopped = recorder.verdict if recorder.verdict != "ok" else "lost"
            return False
        if self.limiter is not None and not self.limiter.unlimited:
            if not self.tokens:
                self.tokens = self.limiter.take(self.step, max_wait=RATE_WAIT)
                if not self.tokens:
                    report.stopped, report.rate_wait = "rate", self.limiter.wait_seconds()
                    return False
            self.tokens -= 1
        self._journal(self._index[id(message)])
        report.attempted += 1
        return True

    def _journal(self, index: int) -> None:
        """Make sure item ``index`` is marked in flight (durably) before its data goes out.
        One write marks the next ``GROUP`` items ahead of need and carries the acceptances
        heard since the last write, so the write that covers an item was sent a group
        earlier and its acknowledgement has long arrived: no round trip is waited for."""
        if index + LEAD > self._frontier:
            end = min(len(self.items), index + LEAD + GROUP)
            write = self.journal.mark(accepted=self._accepted,
                                      in_flight=[item.key for item in self.items[self._frontier:end]])
            self._writes.append((end, write))
            self._frontier, self._accepted = end, []
        while self._writes[0][0] <= index:
            self._writes.pop(0)
        self.journal.settle(self._writes[0][1])

    def close(self) -> None:
        """Journal the last acceptances (the database records them too)."""
        if self._accepted:
            self.journal.settle(self.journal.mark(accepted=self._accepted))
            self._accepted = []

    def end(self, result: Result) -> None:
        index = self._index.pop(id(result.message))
        item = self.items[index]
        self.recorder.add(Outcome(item, result))
        if result.ok:
            self._accepted.append(item.key)
            self.report.accepted += 1
            self._temporary_streak = self._permanent_streak = 0
        else:
            self.report.last_error = f"{result.code} {result.error}".strip()
            if not result.refused_here:  # the server's answer, not an address it cannot take
                self._temporary_streak = self._temporary_streak + 1 if result.temporary else 0
                self._permanent_streak = 0 if result.temporary else self._permanent_streak + 1


@dataclass
class Run:
    """What one dispatch needs besides its items."""

    transport: Transport
    journal: Journal
    store: Store
    lease_seconds: float
    context: Callable  # makes the app context the recorder thread works in
    limiter: RateLimiter | None = None
    slot: ConnectionSlot | None = None
    pause_after: int = 0  # permanent refusals in a row after which the run stops
    report: Report = field(default_factory=Report)


def dispatch(items: Sequence[Item], run: Run) -> Report:
    """Send ``items`` over ``run.transport``; returns how it went. Every outcome is
    committed (or, if the database is unreachable at the end, left in the journal for the
    next holder) before this returns."""
    recorder = Recorder(run.store, run.lease_seconds, run.slot, run.context)
    recorder.start()
    watch = Watch(items, run.journal, recorder, run.limiter, run.report, run.pause_after)
    try:
        for messages in watch.slices():
            run.transport.send(messages, watch)
            if run.report.stopped:
                break
            del messages  # sent: let it go before the next slice is built
        watch.close()
    except ConnectionFailed as exc:
        run.report.connection_error = exc
        run.report.last_error = f"{exc.code} {exc.error}"
    except JournalDown as exc:
        run.report.stopped = "journal"
        run.report.last_error = f"journal: {exc}"
        run.transport.close()  # mid-message perhaps: the server drops what it was given
    finally:
        run.report.unrecorded = recorder.finish()
        if run.limiter is not None:
            run.limiter.give_back(watch.tokens)
    if recorder.verdict != "ok" and not run.report.stopped:
        run.report.stopped = recorder.verdict
    return run.report
