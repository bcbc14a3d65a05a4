"""Reading returned mail: the corpus of real-world formats in tests/data/bounces/ (each written
the way its MTA writes it), classification, auto-replies, and malformed input."""

import pytest

from mailer.bounces import reports
from mailer.models import BounceKind
from tests.helpers_bounces import CORPUS, corpus

VERP = "bounces+d1z-abcdefgh@miasto.example.pl"
RECIPIENT = "osoba00001@odbiorcy.example.org"
MESSAGE_ID = "<7.12.1764148500@miasto.example.pl>"

# name -> (verdict, kind of the finding, status)
EXPECTED = {
    "postfix_user_unknown.eml": (reports.DSN, "hard", "5.1.1"),
    "postfix_mailbox_full.eml": (reports.DSN, "soft", "5.2.2"),
    "postfix_expired_soft.eml": (reports.DSN, "soft", "4.4.1"),
    "postfix_delayed.eml": (reports.DELAY, None, None),
    "exim_user_unknown.eml": (reports.HEURISTIC, "hard", "5.1.1"),
    "sendmail_user_unknown.eml": (reports.DSN, "hard", "5.1.1"),
    "qmail_no_mailbox.eml": (reports.HEURISTIC, "hard", "5.1.1"),
    "office365_recipient_not_found.eml": (reports.DSN, "hard", "5.1.10"),
    "gmail_does_not_exist.eml": (reports.DSN, "hard", "5.1.1"),
    "gmail_policy_block.eml": (reports.DSN, "block", "5.7.26"),
    "yahoo_legacy_no_account.eml": (reports.HEURISTIC, "hard", "5.0.0"),
    "polish_provider_dsn.eml": (reports.DSN, "soft", "5.0.0"),
    "yahoo_arf_complaint.eml": (reports.ARF, "complaint", ""),
    "aol_arf_redacted.eml": (reports.ARF, "complaint", ""),
    "arf_not_spam.eml": (reports.NOT_A_BOUNCE, None, None),
    "vacation_rfc3834.eml": (reports.AUTO_REPLY, None, None),
    "exchange_out_of_office.eml": (reports.AUTO_REPLY, None, None),
    "helpdesk_x_autoreply.eml": (reports.AUTO_REPLY, None, None),
    "human_reply.eml": (reports.NOT_A_BOUNCE, None, None),
}


def test_every_corpus_file_has_an_expectation():
    assert {path.name for path in CORPUS.glob("*.eml")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus(name):
    verdict, kind, status = EXPECTED[name]
    report = reports.read(corpus(name, RETURN_PATH=VERP, RECIPIENT=RECIPIENT, MESSAGE_ID=MESSAGE_ID))
    assert report.verdict == verdict
    if kind is None:
        assert report.findings == []
        return
    [finding] = report.findings
    assert (finding.kind.value, finding.status) == (kind, status)
    if name != "aol_arf_redacted.eml":  # AOL redacts the complainer's address
        assert finding.recipient == RECIPIENT
    assert VERP in report.return_paths  # where the token is: To, Envelope-To, Return-Path, Original-Mail-From
    assert MESSAGE_ID in report.message_ids
    if kind != "complaint":
        assert finding.diagnostic
    else:
        assert finding.feedback_type == "abuse"
    assert report.reported_at is not None and len(report.key) == 64


def test_the_same_report_twice_has_one_key_whatever_the_trace_headers():
    raw = corpus("postfix_user_unknown.eml", RETURN_PATH=VERP, RECIPIENT=RECIPIENT, MESSAGE_ID=MESSAGE_ID)
    traced = b"Delivered-To: " + VERP.encode() + b"\r\nReceived: from x by y; now\r\n" + raw
    assert reports.read(raw).key == reports.read(traced).key
    other = corpus("postfix_user_unknown.eml", RETURN_PATH=VERP, RECIPIENT="kto@example.org", MESSAGE_ID=MESSAGE_ID)
    assert reports.read(other).key != reports.read(raw).key


def test_envelope_recipients_are_return_path_candidates():
    raw = corpus("qmail_no_mailbox.eml", RETURN_PATH="bounces@miasto.example.pl", RECIPIENT=RECIPIENT,
                 MESSAGE_ID=MESSAGE_ID)
    report = reports.read(raw, envelope_to=[VERP])
    assert report.return_paths[0] == VERP


@pytest.mark.parametrize("status, text, kind", [
    ("5.1.1", "User unknown", BounceKind.HARD),
    ("5.1.10", "RecipientNotFound", BounceKind.HARD),
    ("5.2.1", "mailbox disabled", BounceKind.HARD),
    ("5.2.2", "Mailbox full", BounceKind.SOFT),
    ("5.2.3", "Message too large", BounceKind.SOFT),
    ("5.3.4", "Message too big for system", BounceKind.SOFT),
    ("5.4.4", "Unable to route", BounceKind.HARD),
    ("5.4.1", "Recipient address rejected: Access denied", BounceKind.HARD),
    ("5.7.1", "Message rejected as spam", BounceKind.BLOCK),
    ("5.7.26", "unauthenticated", BounceKind.BLOCK),
    ("5.6.0", "content rejected", BounceKind.BLOCK),
    ("4.2.2", "over quota", BounceKind.SOFT),
    ("4.4.1", "Connection timed out", BounceKind.SOFT),
    ("5.0.0", "Skrzynka odbiorcy jest pelna", BounceKind.SOFT),
    ("5.0.0", "No such user here", BounceKind.HARD),
    ("5.0.0", "Blocked by our blacklist", BounceKind.BLOCK),
    ("", "554 delivery error", BounceKind.HARD),
])
def test_classification(status, text, kind):
    assert reports.classify(status, text) == kind


@pytest.mark.parametrize("raw", [
    b"",
    b"\x00\xff\xfe garbage \x00",
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n--x\r\n"
    b"Content-Type: message/delivery-status\r\n\r\nAction: failed\r\nStatus: 9.9.9.9.9\r\n--x",
    b"Content-Type: multipart/report; report-type=feedback-report\r\n\r\nno boundary at all",
    b"Subject: =?utf-8?q?=ZZ?=\r\nFrom: <<<>>>\r\n\r\n" + b"A" * 100_000,
    ("Content-Type: multipart/mixed; boundary=a\r\n\r\n" + "--a\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n" * 200).encode(),
])
def test_malformed_input_is_no_bounce_and_does_not_raise(raw):
    report = reports.read(raw)
    assert report.verdict in {reports.NOT_A_BOUNCE, reports.DSN}
    for finding in report.findings:  # a failed action with a nonsense status still names no one
        assert finding.recipient == ""


def test_a_bounce_with_auto_submitted_is_still_a_bounce():
    # Postfix and Exim add Auto-Submitted: auto-replied to their bounces (RFC 3834 says so)
    raw = corpus("exim_user_unknown.eml", RETURN_PATH=VERP, RECIPIENT=RECIPIENT, MESSAGE_ID=MESSAGE_ID)
    assert b"Auto-Submitted: auto-replied" in raw
    assert reports.read(raw).verdict == reports.HEURISTIC
