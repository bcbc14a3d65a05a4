"""Transports: settings from SMTP_URL, outcome classification, the outbox, reconnection,
SMTP with and without PIPELINING."""

import smtplib

import pytest

from mailer.mail.message import Outgoing
from mailer.mail.transport import OutboxTransport, Result, SMTPSettings, SMTPTransport, from_config
from tests.smtp_server import SMTPServer


def _message(to: str) -> Outgoing:
    return Outgoing("a@example.org", to, b"Subject: x\r\n\r\nhello\r\n", "<1@example.org>")


def test_settings_from_url():
    s = SMTPSettings.from_url("smtps://u%40x:p%3Aw@mail.example.org?timeout=5")
    assert (s.host, s.port, s.username, s.password, s.ssl, s.timeout) == \
        ("mail.example.org", 465, "u@x", "p:w", True, 5.0)
    assert SMTPSettings.from_url("smtp://h:2525?starttls=1").starttls
    with pytest.raises(ValueError):
        SMTPSettings.from_url("http://h")


def test_outcome_classes():
    m = _message("b@example.org")
    assert Result(m, False, 451, "4.3.0 later").temporary
    assert Result(m, False, 421, "connection lost").temporary
    assert not Result(m, False, 550, "5.7.1 policy").temporary
    assert Result(m, False, 550, "5.1.1 no such user").hard_bounce
    assert not Result(m, False, 554, "5.7.1 blocked").hard_bounce
    assert not Result(m, True).hard_bounce


def test_outbox_when_no_smtp(tmp_path):
    transport = from_config({"SMTP_URL": "", "OUTBOX_DIR": tmp_path})
    assert isinstance(transport, OutboxTransport)
    [result] = transport.send([_message("b@example.org")])
    assert result.ok and len(list(tmp_path.glob("*.eml"))) == 1


@pytest.fixture
def server():
    server = SMTPServer()
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_one_connection_reused_and_reopened_after_a_drop(server, pipelining):
    server.handler.pipelining = pipelining
    server.handler.drop_after = 2
    server.handler.replies["bad@example.org"] = "550 5.1.1 No such user"
    transport = SMTPTransport(SMTPSettings("127.0.0.1", server.port))
    results = transport.send([_message(f"r{i}@example.org") for i in range(3)]
                             + [_message("bad@example.org"), _message("r3@example.org")])
    transport.close()
    assert [r.ok for r in results] == [True, True, False, False, True]
    # The 3rd's data went out and the connection dropped before the answer: it may have
    # been delivered, so it is not sent again at once but left to the caller, counted.
    assert results[2].doubt and results[2].temporary and results[2].code == 451
    assert results[3].code == 550 and "5.1.1" in results[3].error
    assert sorted(r for m in server.messages for r in m.recipients) == \
        ["r0@example.org", "r1@example.org", "r3@example.org"]
    assert server.handler.drop_after is None  # the drop happened; the rest went on a new connection


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_refusals_mid_chunk_and_a_closing_server(server, pipelining):
    """A refused recipient does not disturb the transaction after it; a 421 (the server
    closes) fails only its own message, the rest go on a new connection."""
    server.handler.pipelining = pipelining
    server.handler.replies.update({"bad@example.org": "550 5.1.1 No such user",
                                   "busy@example.org": "421 4.7.0 Too busy, closing"})
    names = ["a", "bad", "b", "busy", "c", "bad", "bad", "d"]
    transport = SMTPTransport(SMTPSettings("127.0.0.1", server.port))
    results = transport.send([_message(f"{name}@example.org") for name in names])
    transport.close()
    assert [(r.ok, r.code) for r in results] == [
        (True, 250), (False, 550), (True, 250), (False, 421), (True, 250), (False, 550), (False, 550),
        (True, 250)]
    assert results[3].temporary and not results[1].temporary
    assert [m.recipients for m in server.messages] == [[f"{n}@example.org"] for n in "abcd"]


def test_dots_arrive_as_sent(server):
    """The pipelined DATA payload is dot-stuffed (the server takes the doubled dots out)."""
    body = b"Subject: kropki\r\n\r\n.first\r\n..second\r\n.\r\nend"
    transport = SMTPTransport(SMTPSettings("127.0.0.1", server.port))
    [result] = transport.send([Outgoing("a@example.org", "b@example.org", body, "<1@example.org>")])
    transport.close()
    assert result.ok
    assert server.messages[0].data == body + b"\r\n"


@pytest.mark.parametrize("pipelining, most", [(True, 3 + 10), (False, 2 + 4 * 10)],
                         ids=["pipelined", "one-by-one"])
def test_pipelining_writes_once_per_message(server, monkeypatch, pipelining, most):
    """With PIPELINING a message is one write (its data and the next envelope) and one
    wait; without, MAIL, RCPT, DATA and the data each wait for their reply."""
    server.handler.pipelining = pipelining
    writes = []
    send = smtplib.SMTP.send
    monkeypatch.setattr(smtplib.SMTP, "send", lambda smtp, data: (writes.append(data), send(smtp, data))[1])
    transport = SMTPTransport(SMTPSettings("127.0.0.1", server.port))
    results = transport.send([_message(f"r{i}@example.org") for i in range(10)])
    transport.close()
    assert all(r.ok for r in results) and len(server.messages) == 10
    assert len(writes) <= most
    if pipelining:
        assert sum(isinstance(w, bytes) and b"MAIL FROM:<a@example.org>" in w for w in writes) == 10
        assert len(writes) < 2 + 4 * 10


def test_the_next_message_is_built_while_the_server_reads_this_one(server, monkeypatch):
    """Pipelined, a message is taken from the caller's iterator (built, in the engine) once
    the previous one's data is out and before its answer comes back, not after it: the
    building and the server's work overlap. A failure to build is raised in its turn, and
    the connection is dropped, not closed with QUIT, as a message's data is owed."""
    server.handler.pipelining = True
    events = []

    def messages():
        for i in range(4):
            events.append(f"built {i}")
            yield _message(f"r{i}@example.org")
        raise ValueError("cannot build the 5th")

    class Log:
        def begin(self, message):
            return True

        def end(self, result):
            events.append(f"answered {result.message.recipient[1]}")

    quits = []
    quit_ = smtplib.SMTP.quit
    monkeypatch.setattr(smtplib.SMTP, "quit", lambda smtp: (quits.append(smtp), quit_(smtp))[1])
    transport = SMTPTransport(SMTPSettings("127.0.0.1", server.port))
    with pytest.raises(ValueError, match="5th"):
        transport.send(messages(), Log())
    transport.close()
    assert quits == []  # the server waits for the 4th's data: a QUIT would be read as data
    # The 5th failed while the 3rd was out: raised once the 4th's envelope was answered, as
    # it would have been without reading ahead; the 4th's data never went.
    assert events == ["built 0", "built 1", "built 2", "answered 0", "built 3", "answered 1",
                      "answered 2"]
    assert len(server.messages) == 3


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_address_that_needs_smtputf8_goes_out_where_offered_and_is_refused_alone_elsewhere(
        pipelining):
    """A mailbox with Polish letters (RFC 6531) is sent with SMTPUTF8 where the server
    offers it; where it does not, that message alone is refused for good (smtplib raised and
    lost the chunk), its neighbours go out."""
    for offered, expected in ((True, (True, 250)), (False, (False, 553))):
        server = SMTPServer(enable_SMTPUTF8=offered)
        server.handler.pipelining = pipelining
        server.start()
        try:
            transport = SMTPTransport(SMTPSettings("127.0.0.1", server.port))
            results = transport.send([_message("a@example.org"), _message("zażółć@example.org"),
                                      _message("b@example.org")])
            transport.close()
        finally:
            server.stop()
        assert [(r.ok, r.code) for r in results] == [(True, 250), expected, (True, 250)]
        assert offered or not results[1].temporary
        received = [m.recipients for m in server.messages]
        assert received == ([["a@example.org"], ["zażółć@example.org"], ["b@example.org"]] if offered
                            else [["a@example.org"], ["b@example.org"]])
