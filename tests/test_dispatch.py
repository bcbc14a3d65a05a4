"""The order of the sending loop's work (``mailer.dispatch``), over the tests' real SMTP
server: a run's messages are built before the first of them goes out, ``BUILD_AHEAD``
bytes of them at a time, every one is then sent and recorded, and a slice sent is let go."""

import weakref
from contextlib import nullcontext
from functools import partial

import pytest

from mailer import dispatch
from mailer.dispatch import Item, Run
from mailer.journal import FileJournal
from mailer.mail.message import Outgoing
from mailer.mail.transport import SMTPSettings, SMTPTransport

SIZE = 1_000  # bytes of each message


class Logged(SMTPTransport):
    """The SMTP transport, noting each message as it is begun (before any of it is written)."""

    def __init__(self, port: int, events: list):
        super().__init__(SMTPSettings(host="127.0.0.1", port=port))
        self.events = events

    def send(self, messages, observer):
        events = self.events

        class Noting:
            def begin(self, message):
                events.append(f"send {message.message_id}")
                return observer.begin(message)

            def end(self, result):
                observer.end(result)

        return super().send(messages, Noting())


def _build(n: int, events: list) -> Outgoing:
    events.append(f"build {n}")
    head = f"Subject: {n}\r\n\r\n".encode()
    return Outgoing(sender="bounces@example.org", recipient=f"r{n}@example.org",
                    data=head + b"x" * (SIZE - len(head) - 2) + b"\r\n", message_id=str(n))


class Counted:
    """A store that keeps the keys recorded sent, not the outcomes (nor their messages: a
    store lets them go). The database's stores are tested in test_deliveries and
    test_notice_mail."""

    def __init__(self):
        self.sent = []

    def flush(self, outcomes):
        self.sent += [outcome.item.key for outcome in outcomes if outcome.result.ok]
        return "ok"


def _send(smtp_server, tmp_path, count: int, build=_build) -> list[str]:
    smtp_server.reset()
    events: list[str] = []
    items = [Item(n, f"r{n}@example.org", 0, partial(build, n, events)) for n in range(count)]
    store, transport = Counted(), Logged(smtp_server.port, events)
    journal = FileJournal(tmp_path / "journal")
    try:
        report = dispatch.dispatch(items, Run(transport, journal, store, 30.0, nullcontext))
    finally:
        transport.close()
        journal.close()
    assert (report.attempted, report.accepted, report.stopped) == (count, count, "")
    assert sorted(m.recipients[0] for m in smtp_server.wait_for(count)) == sorted(
        f"r{n}@example.org" for n in range(count))
    assert sorted(store.sent) == list(range(count))
    return events


def test_a_run_is_built_before_its_first_message_is_sent(smtp_server, tmp_path):
    events = _send(smtp_server, tmp_path, 12)
    assert events == [f"build {n}" for n in range(12)] + [f"send {n}" for n in range(12)]


@pytest.mark.parametrize("ahead", [3, 5])
def test_a_long_run_is_built_and_sent_a_slice_at_a_time(smtp_server, tmp_path, monkeypatch, ahead):
    monkeypatch.setattr(dispatch, "BUILD_AHEAD", ahead * SIZE)  # bytes, not messages
    events = _send(smtp_server, tmp_path, 12)
    expected = []
    for first in range(0, 12, ahead):
        numbers = range(first, min(12, first + ahead))
        expected += [f"build {n}" for n in numbers] + [f"send {n}" for n in numbers]
    assert events == expected


def test_a_run_holds_a_few_slices_of_its_messages_at_a_time(smtp_server, tmp_path, monkeypatch):
    """However big a campaign's messages (a staff template may render a megabyte), a sender
    holds a bounded number of bytes of them: the slice sent is let go, and the recorder
    commits outcomes as soon as a slice's bytes of them wait."""
    monkeypatch.setattr(dispatch, "BUILD_AHEAD", 4 * SIZE)
    alive: weakref.WeakSet = weakref.WeakSet()
    most = []

    def build(n: int, events: list) -> Outgoing:
        most.append(len(alive))  # messages still held when this one is built
        message = _build(n, events)
        alive.add(message)
        return message

    _send(smtp_server, tmp_path, 60, build)
    assert max(most) <= 24  # slices of 4: the one built, the one sent, outcomes on their way (8 to 14 seen)
