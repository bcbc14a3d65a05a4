"""The inbound SMTP/LMTP endpoint: a campaign sent through the test SMTP server, its bounces and
complaints returned over SMTP (and LMTP) as an MTA hands them on; refusals for everything that
is not ours; and the endpoint run as its own process by ``flask bounces serve``."""

import smtplib
import subprocess
import sys
import time

import pytest

from mailer.bounces import receiver
from mailer.verp import Verp
from tests.helpers_bounces import bounce_of, figures, forge, send_campaign, subscription_statuses, suppression_reason
from tests.helpers_engine import ROOT, stop_process, worker_env
from tests.smtp_server import free_port


@pytest.fixture
def endpoint(app):
    server = receiver.make_server(app, "127.0.0.1", free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def lmtp_endpoint(app):
    server = receiver.make_server(app, "127.0.0.1", free_port(), lmtp=True)
    server.start()
    yield server
    server.stop()


def hand_over(server, raw: bytes, to: str, sender: str = "") -> dict:
    """Deliver as an MTA does: null sender, the return path as the recipient."""
    with smtplib.SMTP(server.hostname, server.port, timeout=30) as client:
        return client.sendmail(sender, [to], raw)


def test_bounces_and_complaints_come_back_over_smtp(app, session, smtp_server, endpoint):
    campaign_id, sent = send_campaign(session, smtp_server, 6)
    verp = Verp(app.config)
    returned = [(sent[0], "postfix_user_unknown.eml"), (sent[1], "office365_recipient_not_found.eml"),
                (sent[2], "gmail_policy_block.eml"), (sent[3], "postfix_mailbox_full.eml"),
                (sent[4], "yahoo_arf_complaint.eml"), (sent[5], "vacation_rfc3834.eml")]
    for item, name in returned:
        raw = bounce_of(app, item, name)
        to = verp.return_path("d", item.delivery_id)
        assert hand_over(endpoint, raw, to) == {}
    hand_over(endpoint, bounce_of(app, sent[0], "postfix_user_unknown.eml"),
              verp.return_path("d", sent[0].delivery_id))  # the MTA delivers it again
    got = figures(campaign_id)
    assert got["sent"] == 6 and got["bounces"] == 4 and got["complaints"] == 1
    assert got["events"] == {"hard": 2, "block": 1, "soft": 1, "complaint": 1}
    assert got["deliveries"] == {"bounced": 4, "sent": 2}
    assert [suppression_reason(s.email) for s in sent] == ["bounced", "bounced", None, None, "complaint", None]
    assert subscription_statuses(sent[4].email) == ["unsubscribed"]
    assert subscription_statuses(sent[5].email) == ["confirmed"]  # an out-of-office is no bounce
    assert endpoint.handler.outcomes.count("recorded") == 5 and "auto_reply" in endpoint.handler.outcomes
    print("\nSMTP path:", got)


def test_not_an_open_sink(app, session, smtp_server, endpoint):
    campaign_id, sent = send_campaign(session, smtp_server, 1)
    raw = bounce_of(app, sent[0], "postfix_user_unknown.eml")
    verp = Verp(app.config)
    genuine = verp.return_path("d", sent[0].delivery_id)
    forged = forge(genuine)
    refused = {
        "someone@elsewhere.example": "5.7.1",  # relaying
        f"postmaster@{verp.domain}": "5.1.1",  # another mailbox of the domain
        forged: "5.1.1",  # an altered token
    }
    with smtplib.SMTP(endpoint.hostname, endpoint.port, timeout=30) as client:
        client.ehlo()
        for address, code in refused.items():
            client.mail("")
            status, text = client.rcpt(address)
            assert status == 550 and code in text.decode(), (address, status, text)
            client.rset()
        # a report that names a forged return path in its headers is refused at DATA
        client.mail("")
        assert client.rcpt(verp.address)[0] == 250
        status, text = client.data(bounce_of(app, sent[0], "postfix_user_unknown.eml", to=forged))
        assert status == 550
        # bounded size: aiosmtpd refuses it
        client.rset()
        client.mail("")
        client.rcpt(genuine)
        padding = (b"X" * 76 + b"\r\n") * (app.config["BOUNCE_MAX_MESSAGE_KB"] * 1024 // 78 + 10)
        status, _ = client.data(raw + padding)
        assert status == 552
    assert figures(campaign_id)["events"] == {} and suppression_reason(sent[0].email) is None


def test_lmtp_answers_each_recipient(app, session, smtp_server, lmtp_endpoint):
    campaign_id, sent = send_campaign(session, smtp_server, 2)
    verp = Verp(app.config)
    raw = bounce_of(app, sent[0], "exim_user_unknown.eml")
    recipients = [verp.return_path("d", sent[0].delivery_id), verp.address]
    with smtplib.LMTP(lmtp_endpoint.hostname, lmtp_endpoint.port, timeout=30) as client:
        client.ehlo()  # smtplib.LMTP sends LHLO
        client.mail("")
        assert [client.rcpt(r)[0] for r in recipients] == [250, 250]
        # RFC 2033: one reply per recipient after the data (smtplib reads only the first)
        replies = [client.data(raw)[0], client.getreply()[0]]
    assert replies == [250, 250]
    got = figures(campaign_id)
    assert got["bounces"] == 1 and got["events"] == {"hard": 1}
    assert suppression_reason(sent[0].email) == "bounced"


def test_a_database_failure_answers_451_and_the_mta_keeps_the_message(app, session, smtp_server, endpoint,
                                                                      monkeypatch):
    campaign_id, sent = send_campaign(session, smtp_server, 1)
    from mailer.bounces import handling

    def broken(*args, **kwargs):
        raise RuntimeError("database gone")

    monkeypatch.setattr(handling, "receive_mail", broken)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        hand_over(endpoint, bounce_of(app, sent[0], "postfix_user_unknown.eml"),
                  Verp(app.config).return_path("d", sent[0].delivery_id))
    assert refused.value.smtp_code == 451
    monkeypatch.undo()
    assert figures(campaign_id)["bounces"] == 0


@pytest.mark.slow
def test_flask_bounces_serve_runs_as_its_own_process(app, session, smtp_server, tmp_path):
    campaign_id, sent = send_campaign(session, smtp_server, 2)
    port = free_port()
    env = worker_env(app, BOUNCE_SMTP_HOST="127.0.0.1", BOUNCE_SMTP_PORT=port,
                     BOUNCE_FEEDBACK_ADDRESSES="fbl@miasto.example.pl")
    log = open(tmp_path / "bounces.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "flask", "--app", "mailer", "bounces", "serve"],
                               cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                smtplib.SMTP("127.0.0.1", port, timeout=5).quit()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "bounces.log").read_text()
                time.sleep(0.1)
        verp = Verp(app.config)
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.sendmail("", [verp.return_path("d", sent[0].delivery_id)],
                            bounce_of(app, sent[0], "sendmail_user_unknown.eml"))
            # a feedback loop's report, to the address registered with the provider
            client.sendmail("scomp@aol.net", ["fbl@miasto.example.pl"],
                            bounce_of(app, sent[1], "aol_arf_redacted.eml"))
    finally:
        stop_process(process)
    assert process.returncode == 0, (tmp_path / "bounces.log").read_text()
    got = figures(campaign_id)
    assert got["bounces"] == 1 and got["complaints"] == 1
    assert suppression_reason(sent[0].email) == "bounced" and suppression_reason(sent[1].email) == "complaint"
