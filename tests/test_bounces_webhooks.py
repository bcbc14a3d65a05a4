"""Provider webhooks: Amazon SES through SNS (signed with a certificate served here over HTTP,
SES_SNS_URL_PATTERN pointing at it), Postmark (basic auth), SendGrid (ECDSA), Mailgun (HMAC,
freshness, replays). Each provider's real payloads for a campaign sent through the test SMTP
server; anything unsigned, forged, stale, replayed or malformed is a 4xx and changes nothing."""

import base64
import datetime
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from mailer.bounces import sns
from mailer.verp import Verp
from tests.helpers_bounces import figures, forge, send_campaign, subscription_statuses, suppression_reason
from tests.helpers_engine import wait_until

TOPIC = "arn:aws:sns:eu-central-1:123456789012:ses-newsletter"
SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())
MAILGUN_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"


# --- A local "SNS": the signing certificate and the subscription link --------------------

def _rsa_certificate():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.eu-central-1.amazonaws.com")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    return key, cert.public_bytes(serialization.Encoding.PEM)


class LocalSNS:
    def __init__(self):
        self.key, self.pem = _rsa_certificate()
        self.visits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.visits.append(self.path)
                body = outer.pem if self.path.endswith(".pem") else b"<ConfirmSubscriptionResponse/>"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def sign(self, message: dict, version: str = "2", key=None) -> dict:
        message = {**message, "SignatureVersion": version,
                   "SigningCertURL": message.get("SigningCertURL", f"{self.base}/SimpleNotificationService-1.pem")}
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = (key or self.key).sign(sns.string_to_sign(message), padding.PKCS1v15(), algorithm)
        message["Signature"] = base64.b64encode(signature).decode()
        return message


@pytest.fixture(scope="module")
def local_sns():
    server = LocalSNS()
    yield server
    server.server.shutdown()


@pytest.fixture
def providers(app, local_sns, monkeypatch):
    settings = {
        "SES_SNS_TOPIC_ARNS": [TOPIC],
        "SES_SNS_URL_PATTERN": r"^http://127\.0\.0\.1:\d+/",
        "POSTMARK_WEBHOOK_USER": "postmark", "POSTMARK_WEBHOOK_PASSWORD": "s3cret-hook",
        "SENDGRID_WEBHOOK_PUBLIC_KEY": base64.b64encode(SENDGRID_KEY.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode(),
        "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY,
    }
    for key, value in settings.items():
        monkeypatch.setitem(app.config, key, value)
    return local_sns


def post(app, provider: str, body: bytes, headers: dict | None = None):
    return app.test_client().post(f"/webhooks/{provider}", data=body, headers=headers or {},
                                  content_type="text/plain; charset=UTF-8" if provider == "ses" else "application/json")


# --- Payloads as each provider sends them ------------------------------------------------

def ses_notification(app, sent, kind: str) -> dict:
    mail = {"timestamp": "2026-11-26T10:00:00.000Z", "messageId": f"0107019{sent.delivery_id:09d}-ses",
            "source": Verp(app.config).return_path("d", sent.delivery_id),
            "destination": [sent.email], "headersTruncated": False,
            "headers": [{"name": "Message-ID", "value": sent.message_id},
                        {"name": "Subject", "value": "Koncert na Rynku"}],
            "commonHeaders": {"messageId": sent.message_id, "subject": "Koncert na Rynku"}}
    if kind == "hard":
        return {"notificationType": "Bounce", "mail": mail, "bounce": {
            "bounceType": "Permanent", "bounceSubType": "General", "feedbackId": f"fb-{sent.delivery_id}",
            "timestamp": "2026-11-26T10:00:05.000Z", "reportingMTA": "dsn; a1-23.smtp-out.amazonses.com",
            "bouncedRecipients": [{"emailAddress": sent.email, "action": "failed", "status": "5.1.1",
                                   "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]}}
    if kind == "soft":
        return {"notificationType": "Bounce", "mail": mail, "bounce": {
            "bounceType": "Transient", "bounceSubType": "MailboxFull", "feedbackId": f"fb-{sent.delivery_id}",
            "timestamp": "2026-11-26T10:00:05.000Z",
            "bouncedRecipients": [{"emailAddress": sent.email, "status": "4.2.2",
                                   "diagnosticCode": "smtp; 452 4.2.2 mailbox full"}]}}
    return {"notificationType": "Complaint", "mail": mail, "complaint": {
        "feedbackId": f"cf-{sent.delivery_id}", "complaintFeedbackType": "abuse",
        "userAgent": "Yahoo!-Mail-Feedback/2.0", "timestamp": "2026-11-26T11:00:00.000Z",
        "complainedRecipients": [{"emailAddress": sent.email}]}}


def sns_envelope(notification: dict, message_id: str) -> dict:
    return {"Type": "Notification", "MessageId": message_id, "TopicArn": TOPIC,
            "Message": json.dumps(notification), "Timestamp": "2026-11-26T10:00:06.000Z",
            "UnsubscribeURL": "https://sns.eu-central-1.amazonaws.com/?Action=Unsubscribe"}


def sendgrid_headers(body: bytes, timestamp: int | None = None, key=SENDGRID_KEY) -> dict:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp}


def mailgun_body(data: dict, timestamp: int | None = None, token: str | None = None, key=MAILGUN_KEY) -> bytes:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    token = token or hashlib.sha256(json.dumps(data).encode() + stamp.encode()).hexdigest()[:50]
    signature = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    return json.dumps({"signature": {"timestamp": stamp, "token": token, "signature": signature},
                       "event-data": data}).encode()


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


# --- Amazon SES ----------------------------------------------------------------------

def test_ses_through_sns(app, session, smtp_server, providers):
    campaign_id, sent = send_campaign(session, smtp_server, 3)
    for n, (item, kind, version) in enumerate([(sent[0], "hard", "1"), (sent[1], "soft", "2"),
                                               (sent[2], "complaint", "2")]):
        message = providers.sign(sns_envelope(ses_notification(app, item, kind), f"sns-{n}"), version)
        answer = post(app, "ses", json.dumps(message).encode())
        assert answer.status_code == 200, answer.get_json()
        assert answer.get_json()["recorded"] == 1
        again = post(app, "ses", json.dumps(message).encode())  # SNS delivers at least once
        assert again.status_code == 200 and again.get_json()["duplicate"] == 1
    got = figures(campaign_id)
    assert (got["bounces"], got["complaints"]) == (2, 1)
    assert got["events"] == {"hard": 1, "soft": 1, "complaint": 1}
    assert suppression_reason(sent[0].email) == "bounced" and suppression_reason(sent[2].email) == "complaint"
    assert subscription_statuses(sent[2].email) == ["unsubscribed"]
    print("\nSES path:", got)


def test_ses_subscription_is_confirmed_by_the_worker(app, providers, celery_worker):
    url = f"{providers.base}/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=2336412f37"
    message = providers.sign({"Type": "SubscriptionConfirmation", "MessageId": "sub-1", "Token": "2336412f37",
                              "TopicArn": TOPIC, "Message": "You have chosen to subscribe to the topic.",
                              "SubscribeURL": url, "Timestamp": "2026-11-26T09:00:00.000Z"})
    assert post(app, "ses", json.dumps(message).encode()).status_code == 200
    wait_until(lambda: any("ConfirmSubscription" in visit for visit in providers.visits), timeout=30)


def test_ses_refusals_change_nothing(app, session, smtp_server, providers):
    campaign_id, sent = send_campaign(session, smtp_server, 1)
    good = providers.sign(sns_envelope(ses_notification(app, sent[0], "hard"), "sns-x"))
    other_key, _ = _rsa_certificate()
    cases = {
        "unsigned": ({k: v for k, v in good.items() if k != "Signature"}, 401),
        "forged signature": (providers.sign(sns_envelope(ses_notification(app, sent[0], "hard"), "sns-y"),
                                            key=other_key), 403),
        "tampered message": ({**good, "Message": good["Message"].replace("5.1.1", "5.1.2")}, 403),
        "certificate elsewhere": (providers.sign({**sns_envelope(ses_notification(app, sent[0], "hard"), "z"),
                                                  "SigningCertURL": "http://evil.example/cert.pem"}), 403),
        "certificate URL with user info": (providers.sign({
            **sns_envelope(ses_notification(app, sent[0], "hard"), "w"),
            "SigningCertURL": "http://127.0.0.1:1@evil.example/cert.pem"}), 403),
        "another topic": (providers.sign({**sns_envelope(ses_notification(app, sent[0], "hard"), "t"),
                                          "TopicArn": "arn:aws:sns:eu-central-1:999999999999:other"}), 403),
        "unknown signature version": ({**good, "SignatureVersion": "3"}, 403),
    }
    for name, (message, status) in cases.items():
        answer = post(app, "ses", json.dumps(message).encode())
        assert answer.status_code == status, (name, answer.get_json())
        assert answer.get_json()["error"]
    assert post(app, "ses", b"{not json").status_code == 400
    assert post(app, "ses", b"[]").status_code == 401
    big = b"{" + b" " * (app.config["WEBHOOK_MAX_BODY_KB"] * 1024 + 10) + b"}"
    assert post(app, "ses", big).status_code == 413
    assert not any("evil" in visit for visit in providers.visits)
    assert figures(campaign_id)["events"] == {} and suppression_reason(sent[0].email) is None


def test_trusted_sns_urls():
    pattern = r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/"
    assert sns.trusted_url("https://sns.eu-central-1.amazonaws.com/SimpleNotificationService-abc.pem", pattern)
    for url in ["http://sns.eu-central-1.amazonaws.com/x.pem", "https://sns.eu-central-1.amazonaws.com.evil.io/x.pem",
                "https://evil.io/sns.eu-central-1.amazonaws.com/x.pem",
                "https://sns.eu-central-1.amazonaws.com@evil.io/x.pem", "https://evil.io\\@sns.us-east-1.amazonaws.com/",
                None, 42, ""]:
        assert not sns.trusted_url(url, pattern), url


def test_an_unconfigured_provider_is_404(app):
    for provider in ("ses", "postmark", "sendgrid", "mailgun"):
        assert post(app, provider, b"{}").status_code == 404
    assert app.test_client().post("/webhooks/elsewhere", data=b"{}").status_code == 404


# --- Postmark ------------------------------------------------------------------------

def postmark_record(sent, record_type: str, type_: str, record_id: int) -> bytes:
    return json.dumps({"RecordType": record_type, "ID": record_id, "Type": type_, "TypeCode": 1,
                       "Name": type_, "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
                       "MessageStream": "outbound", "Description": "The server was unable to deliver your message.",
                       "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist",
                       "Email": sent.email, "From": "wydarzenia@miasto.example.pl",
                       "BouncedAt": "2026-11-26T10:33:54.9070259Z", "Inactive": True}).encode()


def test_postmark(app, session, smtp_server, providers):
    campaign_id, sent = send_campaign(session, smtp_server, 3)
    auth = basic("postmark", "s3cret-hook")
    assert post(app, "postmark", postmark_record(sent[0], "Bounce", "HardBounce", 101), auth).get_json()["recorded"] == 1
    assert post(app, "postmark", postmark_record(sent[1], "SpamComplaint", "SpamComplaint", 102), auth).status_code == 200
    assert post(app, "postmark", postmark_record(sent[2], "Bounce", "AutoResponder", 103), auth).get_json() == {"events": 0}
    assert post(app, "postmark", postmark_record(sent[0], "Bounce", "HardBounce", 101), auth).get_json()["duplicate"] == 1
    got = figures(campaign_id)
    assert (got["bounces"], got["complaints"]) == (1, 1)
    assert suppression_reason(sent[0].email) == "bounced" and suppression_reason(sent[1].email) == "complaint"
    print("\nPostmark path:", got)
    # refusals
    body = postmark_record(sent[2], "Bounce", "HardBounce", 104)
    assert post(app, "postmark", body).status_code == 401
    assert post(app, "postmark", body, basic("postmark", "guess")).status_code == 403
    assert post(app, "postmark", body, {"Authorization": "Basic !!!"}).status_code == 401
    assert post(app, "postmark", b"\xff\xfe", auth).status_code == 400
    assert post(app, "postmark", b'{"ID": 5}', auth).status_code == 400
    assert figures(campaign_id)["events"] == {"hard": 1, "complaint": 1}


# --- SendGrid ------------------------------------------------------------------------

def sendgrid_events(sent) -> bytes:
    now = int(time.time())
    return json.dumps([
        {"email": sent[0].email, "timestamp": now, "smtp-id": sent[0].message_id, "event": "processed",
         "sg_event_id": "c2VuZGdyaWQtcHJvY2Vzc2Vk", "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001"},
        {"email": sent[0].email, "timestamp": now, "smtp-id": sent[0].message_id, "event": "bounce",
         "sg_event_id": "ZmFrZS1ib3VuY2UtZXZlbnQ", "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001",
         "reason": "550 5.1.1 The email account that you tried to reach does not exist.", "status": "5.1.1",
         "type": "bounce", "bounce_classification": "Invalid Address"},
        {"email": sent[1].email, "timestamp": now, "smtp-id": sent[1].message_id, "event": "bounce",
         "sg_event_id": "YmxvY2tlZC1ldmVudA", "reason": "554 5.7.1 Service unavailable; Client host blocked",
         "status": "5.7.1", "type": "blocked", "bounce_classification": "Reputation"},
        {"email": sent[2].email, "timestamp": now, "smtp-id": sent[2].message_id, "event": "spamreport",
         "sg_event_id": "c3BhbXJlcG9ydC1ldmVudA"},
    ]).encode()


def test_sendgrid(app, session, smtp_server, providers):
    campaign_id, sent = send_campaign(session, smtp_server, 3)
    body = sendgrid_events(sent)
    answer = post(app, "sendgrid", body, sendgrid_headers(body))
    assert answer.status_code == 200 and answer.get_json() == {"events": 3, "recorded": 3}
    got = figures(campaign_id)
    assert (got["bounces"], got["complaints"]) == (2, 1) and got["events"] == {"hard": 1, "block": 1, "complaint": 1}
    assert [suppression_reason(s.email) for s in sent] == ["bounced", None, "complaint"]
    print("\nSendGrid path:", got)
    again = post(app, "sendgrid", body, sendgrid_headers(body))  # a re-sent batch counts once
    assert again.get_json() == {"events": 3, "duplicate": 3}
    # refusals
    assert post(app, "sendgrid", body).status_code == 401
    assert post(app, "sendgrid", body, sendgrid_headers(body, int(time.time()) - 3600)).status_code == 403
    assert post(app, "sendgrid", body.replace(b"5.7.1", b"5.1.1"), sendgrid_headers(body)).status_code == 403
    other = ec.generate_private_key(ec.SECP256R1())
    assert post(app, "sendgrid", body, sendgrid_headers(body, key=other)).status_code == 403
    junk = b'{"not": "a list"}'
    assert post(app, "sendgrid", junk, sendgrid_headers(junk)).status_code == 400
    assert post(app, "sendgrid", body, {**sendgrid_headers(body), "X-Twilio-Email-Event-Webhook-Signature": "%%"}
                ).status_code == 403
    assert figures(campaign_id)["events"] == {"hard": 1, "block": 1, "complaint": 1}


# --- Mailgun -------------------------------------------------------------------------

def mailgun_failed(app, sent, event_id: str, severity="permanent") -> dict:
    return {"event": "failed", "id": event_id, "timestamp": time.time(), "severity": severity,
            "reason": "bounce", "recipient": sent.email, "log-level": "error",
            "envelope": {"sender": Verp(app.config).return_path("d", sent.delivery_id), "transport": "smtp",
                         "targets": sent.email},
            "message": {"headers": {"message-id": sent.message_id.strip("<>"), "to": sent.email,
                                    "from": "wydarzenia@miasto.example.pl", "subject": "Koncert na Rynku"}},
            "delivery-status": {"code": 550, "message": "5.1.1 No such mailbox",
                                "description": "The email account that you tried to reach does not exist.",
                                "attempt-no": 1}}


def test_mailgun(app, session, smtp_server, providers):
    campaign_id, sent = send_campaign(session, smtp_server, 3)
    assert post(app, "mailgun", mailgun_body(mailgun_failed(app, sent[0], "mg-1"))).get_json()["recorded"] == 1
    complained = {"event": "complained", "id": "mg-2", "timestamp": time.time(), "recipient": sent[1].email,
                  "message": {"headers": {"message-id": sent[1].message_id.strip("<>")}}}
    assert post(app, "mailgun", mailgun_body(complained)).get_json()["recorded"] == 1
    temporary = mailgun_failed(app, sent[2], "mg-3", severity="temporary")
    assert post(app, "mailgun", mailgun_body(temporary)).get_json() == {"events": 0}
    got = figures(campaign_id)
    assert (got["bounces"], got["complaints"]) == (1, 1)
    assert suppression_reason(sent[0].email) == "bounced" and suppression_reason(sent[1].email) == "complaint"
    print("\nMailgun path:", got)
    # refusals: replayed token, stale, forged, unsigned, malformed
    body = mailgun_body(mailgun_failed(app, sent[2], "mg-4"), token="t" * 50)
    assert post(app, "mailgun", body).status_code == 200
    assert post(app, "mailgun", body).status_code == 409
    stale = mailgun_body(mailgun_failed(app, sent[2], "mg-5"), timestamp=int(time.time()) - 3600)
    assert post(app, "mailgun", stale).status_code == 403
    forged = mailgun_body(mailgun_failed(app, sent[2], "mg-6"), key="not-the-key")
    assert post(app, "mailgun", forged).status_code == 403
    assert post(app, "mailgun", json.dumps({"event-data": mailgun_failed(app, sent[2], "mg-7")}).encode()).status_code == 401
    assert post(app, "mailgun", b"[1, 2]").status_code == 401
    assert post(app, "mailgun", b"nonsense").status_code == 400
    no_data = json.loads(mailgun_body({}))
    no_data.pop("event-data")
    assert post(app, "mailgun", json.dumps(no_data).encode()).status_code == 400
    got = figures(campaign_id)
    assert got["events"] == {"hard": 2, "complaint": 1} and got["bounces"] == 2  # mg-4 only


def test_a_forged_return_path_from_a_provider_is_refused(app, session, smtp_server, providers):
    campaign_id, sent = send_campaign(session, smtp_server, 1)
    data = mailgun_failed(app, sent[0], "mg-9")
    data["envelope"]["sender"] = forge(data["envelope"]["sender"])  # (its last letter may have been x)
    answer = post(app, "mailgun", mailgun_body(data))
    assert answer.status_code == 200 and answer.get_json() == {"events": 1, "forged": 1}
    assert figures(campaign_id)["events"] == {}


def test_postmark_bounce_dump_maps_by_its_return_path(app, session, smtp_server, providers):
    from tests.helpers_bounces import bounce_of

    campaign_id, sent = send_campaign(session, smtp_server, 1)
    record = json.loads(postmark_record(sent[0], "Bounce", "HardBounce", 201))
    record["Email"] = "forwarded@elsewhere.example"  # the address that failed, after a forward
    record["Content"] = bounce_of(app, sent[0], "postfix_user_unknown.eml").decode()
    answer = post(app, "postmark", json.dumps(record).encode(), basic("postmark", "s3cret-hook"))
    assert answer.get_json() == {"events": 1, "recorded": 1}
    assert suppression_reason(sent[0].email) == "bounced" and figures(campaign_id)["bounces"] == 1
    from sqlalchemy import select

    from mailer.models import BounceEvent
    from tests.helpers_bounces import fresh

    with fresh() as other:
        assert other.scalar(select(BounceEvent.matched_by)) == "verp"
