"""Transports: settings from SMTP_URL, outcome classification, the outbox, reconnection."""

import pytest

from tests.smtp_server import SMTPServer

from mailer.mail.message import Outgoing
from mailer.mail.transport import (OutboxTransport, Result, SMTPSettings, SMTPTransport,
                                   from_config)


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


def test_one_connection_reused_and_reopened_after_a_drop():
    server = SMTPServer()
    server.start()
    try:
        server.handler.drop_after = 2
        server.handler.replies["bad@example.org"] = "550 5.1.1 No such user"
        transport = SMTPTransport(SMTPSettings("127.0.0.1", server.port))
        results = transport.send([_message(f"r{i}@example.org") for i in range(3)]
                                 + [_message("bad@example.org"), _message("r3@example.org")])
        transport.close()
        assert [r.ok for r in results] == [True, True, True, False, True]
        assert results[3].code == 550
        assert sorted(r for m in server.messages for r in m.recipients) == \
            ["r0@example.org", "r1@example.org", "r2@example.org", "r3@example.org"]
        assert server.handler.drop_after is None  # the drop happened; the 3rd went on a new connection
    finally:
        server.stop()
