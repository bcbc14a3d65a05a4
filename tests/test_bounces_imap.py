"""The bounce mailbox the worker polls, against a real IMAP server (Dovecot, started here):
returned mail delivered into it as an MTA's local delivery does, read by the Celery task on
the real worker, each message committed before it is deleted or moved."""

import pytest
from imap_tools import MailBoxUnencrypted

from mailer.bounces import handling, mailbox
from mailer.verp import Verp
from tests.dovecot import PASSWORD, USER, Dovecot, available
from tests.helpers_bounces import bounce_of, figures, forge, send_campaign, suppression_reason
from tests.helpers_engine import wait_until
from worker import beat_schedule

pytestmark = pytest.mark.skipif(not available(), reason="Debian's dovecot-imapd (make system-test-deps, as root)")


@pytest.fixture(scope="module")
def dovecot():
    server = Dovecot()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def inbox(dovecot):
    """The mailbox, emptied before and after each test."""
    def empty():
        with MailBoxUnencrypted("127.0.0.1", dovecot.port).login(USER, PASSWORD, "INBOX") as box:
            box.delete([m.uid for m in box.fetch(mark_seen=False, headers_only=True)])
            box.folder.set("Processed")
            box.delete([m.uid for m in box.fetch(mark_seen=False, headers_only=True)])
    empty()
    yield dovecot
    empty()


def deliver(server, raw: bytes, to: str) -> None:
    """Into the mailbox as local delivery writes it: Return-Path and Delivered-To on top."""
    with MailBoxUnencrypted("127.0.0.1", server.port).login(USER, PASSWORD, "INBOX") as box:
        box.append(f"Return-Path: <>\r\nDelivered-To: {to}\r\n".encode() + raw)


def count(server, folder: str = "INBOX") -> int:
    with MailBoxUnencrypted("127.0.0.1", server.port).login(USER, PASSWORD, folder) as box:
        return len(list(box.fetch(mark_seen=False, headers_only=True)))


def test_the_worker_polls_the_mailbox(app, session, smtp_server, celery_worker, inbox, monkeypatch):
    monkeypatch.setitem(app.config, "BOUNCE_MAILBOX_URL", inbox.url())
    campaign_id, sent = send_campaign(session, smtp_server, 6)
    verp = Verp(app.config)
    for item, name in [(sent[0], "qmail_no_mailbox.eml"), (sent[1], "gmail_does_not_exist.eml"),
                       (sent[2], "postfix_expired_soft.eml"), (sent[3], "aol_arf_redacted.eml"),
                       (sent[4], "exchange_out_of_office.eml")]:
        deliver(inbox, bounce_of(app, item, name), verp.return_path("d", item.delivery_id))
    forged = forge(verp.return_path("d", sent[5].delivery_id))
    deliver(inbox, bounce_of(app, sent[5], "postfix_user_unknown.eml", to=forged), forged)
    deliver(inbox, b"\x00\xff not a message at all", verp.address)
    assert count(inbox) == 7
    app.extensions["celery"].send_task("mailer.poll_bounce_mailbox")  # what beat sends
    wait_until(lambda: count(inbox) == 0, timeout=60)
    got = figures(campaign_id)
    assert got["bounces"] == 3 and got["complaints"] == 1
    assert got["events"] == {"hard": 2, "soft": 1, "complaint": 1}
    assert [suppression_reason(s.email) for s in sent] == ["bounced", "bounced", None, "complaint", None, None]
    print("\nIMAP path:", got)


def test_imaps_with_a_private_ca_moves_what_it_read(app, session, smtp_server, inbox, monkeypatch):
    monkeypatch.setitem(app.config, "BOUNCE_MAILBOX_URL",
                        inbox.url(tls=True, cafile=inbox.cafile, move="Processed"))
    campaign_id, sent = send_campaign(session, smtp_server, 2)
    raw = bounce_of(app, sent[0], "sendmail_user_unknown.eml")
    deliver(inbox, raw, Verp(app.config).return_path("d", sent[0].delivery_id))
    assert mailbox.poll(session, app.config) == {"recorded": 1}
    assert (count(inbox), count(inbox, "Processed")) == (0, 1)
    deliver(inbox, raw, Verp(app.config).return_path("d", sent[0].delivery_id))  # delivered twice
    assert mailbox.poll(session, app.config) == {"duplicate": 1}
    assert figures(campaign_id)["bounces"] == 1


def test_a_failure_leaves_the_message_for_the_next_poll(app, session, smtp_server, inbox, monkeypatch):
    monkeypatch.setitem(app.config, "BOUNCE_MAILBOX_URL", inbox.url())
    campaign_id, sent = send_campaign(session, smtp_server, 1)
    deliver(inbox, bounce_of(app, sent[0], "exim_user_unknown.eml"),
            Verp(app.config).return_path("d", sent[0].delivery_id))

    def broken(*args, **kwargs):
        raise RuntimeError("database gone")

    with monkeypatch.context() as patch:
        patch.setattr(handling, "receive_mail", broken)
        with pytest.raises(RuntimeError):
            mailbox.poll(session, app.config)
    assert count(inbox) == 1 and figures(campaign_id)["bounces"] == 0
    assert mailbox.poll(session, app.config) == {"recorded": 1}
    assert count(inbox) == 0 and figures(campaign_id)["bounces"] == 1


def test_oversized_messages_are_set_aside_unread(app, session, smtp_server, inbox, monkeypatch):
    monkeypatch.setitem(app.config, "BOUNCE_MAILBOX_URL", inbox.url(move="Processed"))
    monkeypatch.setitem(app.config, "BOUNCE_MAX_MESSAGE_KB", 4)
    campaign_id, sent = send_campaign(session, smtp_server, 1)
    deliver(inbox, bounce_of(app, sent[0], "postfix_user_unknown.eml") + b"X" * 5000 + b"\r\n",
            Verp(app.config).return_path("d", sent[0].delivery_id))
    assert mailbox.poll(session, app.config) == {"oversized": 1}
    assert count(inbox, "Processed") == 1 and figures(campaign_id)["events"] == {}


def test_wrong_credentials_fail_loudly_and_change_nothing(app, session, inbox, monkeypatch):
    monkeypatch.setitem(app.config, "BOUNCE_MAILBOX_URL", inbox.url().replace(PASSWORD, "zle-haslo"))
    with pytest.raises(Exception, match="(?i)auth|login"):
        mailbox.poll(session, app.config)


def test_beat_polls_only_when_configured(app, monkeypatch):
    assert "bounce-mailbox" not in beat_schedule(app)
    monkeypatch.setitem(app.config, "BOUNCE_MAILBOX_URL", "imaps://u:p@imap.example.org/INBOX")
    monkeypatch.setitem(app.config, "BOUNCE_MAILBOX_POLL_SECONDS", 30)
    entry = beat_schedule(app)["bounce-mailbox"]
    assert entry["task"] == "mailer.poll_bounce_mailbox" and entry["schedule"] == 30.0
    assert {"tick", "purge-pending"} <= set(beat_schedule(app))


@pytest.mark.parametrize("url, error", [("pop3://u:p@h/", "imap://"), ("imap://h/INBOX", "user name")])
def test_bad_mailbox_urls(url, error):
    with pytest.raises(ValueError, match=error):
        mailbox.MailboxSettings.from_url(url)
