"""Provider webhooks: Amazon SES (through SNS), Postmark, SendGrid, Mailgun.

``receive(session, provider, body, headers)`` verifies the request the provider's way before
reading a byte of its content, turns each bounce or complaint into a ``handling.Event`` and
hands it on. Anything unsigned, forged, stale, replayed or malformed raises ``Refused`` with
a 4xx status and changes nothing; a provider that is not configured is 404.

- SES/SNS: the SNS signature over the canonical fields, with the certificate from an SNS host
  (``sns``); only topics listed in SES_SNS_TOPIC_ARNS; a SubscriptionConfirmation queues the
  visit of its SubscribeURL.
- Postmark: HTTP basic credentials set in the webhook's URL (POSTMARK_WEBHOOK_USER/_PASSWORD).
- SendGrid: the signed event webhook, ECDSA P-256 over timestamp + body with the public key
  SendGrid shows (SENDGRID_WEBHOOK_PUBLIC_KEY); timestamps older than WEBHOOK_MAX_AGE_SECONDS
  are stale.
- Mailgun: HMAC-SHA256 of timestamp + token under MAILGUN_WEBHOOK_SIGNING_KEY; stale
  timestamps refused; each token accepted once (``WebhookNonce``).

Events are idempotent by the provider's own event id (``handling.receive_event``).
"""

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import current_app
from sqlalchemy import CursorResult, delete, select
from sqlalchemy.orm import Session

from ..jobs import send_now
from ..models import BounceKind, WebhookNonce, utcnow
from . import handling, reports, sns
from .reports import Finding

PROVIDERS = ("ses", "postmark", "sendgrid", "mailgun")
MAX_EVENTS = 1000


class Refused(Exception):
    """The request is refused with ``status`` (401 unsigned, 403 forged or stale, 404 not
    configured, 409 replayed, 400 malformed); nothing was changed."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def receive(session: Session, provider: str, body: bytes, headers: dict[str, str]) -> dict:
    """Verify and act on one webhook request (the caller commits). Returns counts of what
    its events came to. Raises Refused."""
    if provider not in PROVIDERS:
        raise Refused(404, "unknown provider")
    headers = {key.lower(): value for key, value in headers.items()}
    events = _READERS[provider](session, current_app.config, body, headers)
    counts: Counter = Counter()
    for event in events:
        counts[handling.receive_event(session, event).verdict] += 1
    return {"events": len(events), **counts}


def _json(body: bytes):
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Refused(400, "the body is not JSON") from exc


def _object(value: Any) -> dict[str, Any]:
    """A JSON object, or an empty one for anything else (a provider's optional part)."""
    return value if isinstance(value, dict) else {}


def _text(value, limit: int = 1000) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _when(value) -> datetime | None:
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, timezone.utc)
        if isinstance(value, str) and value:
            when = datetime.fromisoformat(value.replace("Z", "+00:00")[:32])
            return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def _fresh(timestamp, config) -> None:
    try:
        stamp = float(timestamp)
    except (TypeError, ValueError) as exc:
        raise Refused(401, "the signature timestamp is missing") from exc
    if stamp != stamp or abs(time.time() - stamp) > config["WEBHOOK_MAX_AGE_SECONDS"]:
        raise Refused(403, "the signature timestamp is stale")


def use_nonce(session: Session, provider: str, nonce: str) -> None:
    """Accept ``nonce`` once for ``provider``; raises Refused (409) for a replay."""
    nonce = nonce[:128]
    if session.scalar(select(WebhookNonce.id).where(WebhookNonce.provider == provider,
                                                    WebhookNonce.nonce == nonce)) is not None:
        raise Refused(409, "this request was received before")
    session.add(WebhookNonce(provider=provider, nonce=nonce))
    session.flush()


def purge_nonces(session: Session) -> int:
    """Forget nonces older than twice the freshness window (their requests are stale anyway)."""
    cutoff = utcnow() - timedelta(seconds=2 * current_app.config["WEBHOOK_MAX_AGE_SECONDS"])
    return cast(CursorResult, session.execute(delete(WebhookNonce).where(WebhookNonce.created_at < cutoff))).rowcount


# --- Amazon SES through SNS ----------------------------------------------------------

def _ses(session: Session, config, body: bytes, headers: dict) -> list[handling.Event]:
    topics = config["SES_SNS_TOPIC_ARNS"]
    if not topics:
        raise Refused(404, "the SES webhook is not configured")
    message = _json(body)
    if not isinstance(message, dict) or not message.get("Signature"):
        raise Refused(401, "the SNS message is not signed")
    try:
        sns.verify(message, config["SES_SNS_URL_PATTERN"])
    except sns.SignatureError as exc:
        raise Refused(403, f"the SNS signature does not verify: {exc}") from exc
    if message.get("TopicArn") not in topics:
        raise Refused(403, "this SNS topic is not accepted here")
    kind = message["Type"]
    if kind == "SubscriptionConfirmation":
        url = str(message.get("SubscribeURL") or "")
        if not sns.trusted_url(url, config["SES_SNS_URL_PATTERN"]):
            raise Refused(400, "the subscription URL is not an SNS URL")
        send_now("mailer.confirm_sns_subscription", url)
        return []
    if kind != "Notification":
        return []
    notification = _json(message["Message"].encode("utf-8"))
    if not isinstance(notification, dict):
        raise Refused(400, "the SES notification is not an object")
    return ses_events(notification, message.get("MessageId", ""), message["Message"].encode("utf-8"))


def ses_events(notification: dict, sns_id: str, raw: bytes) -> list[handling.Event]:
    """Events of one SES notification (``notificationType``, or ``eventType`` when published
    through a configuration set)."""
    kind = notification.get("notificationType") or notification.get("eventType")
    mail = _object(notification.get("mail"))
    source = _text(mail.get("source"), 320)
    message_id = ""
    for header in mail.get("headers") or []:
        if isinstance(header, dict) and str(header.get("name", "")).lower() == "message-id":
            message_id = _text(header.get("value"), 250)
    common = _object(mail.get("commonHeaders"))
    message_id = message_id or _text(common.get("messageId"), 250)
    events = []
    if kind == "Bounce":
        bounce = _object(notification.get("bounce"))
        bounce_type = bounce.get("bounceType")
        sub_type = str(bounce.get("bounceSubType") or "")
        when = _when(bounce.get("timestamp"))
        for n, item in enumerate(_items(bounce.get("bouncedRecipients"))):
            status = reports._status(_text(item.get("status"), 16))
            diagnostic = _text(item.get("diagnosticCode"))
            if bounce_type == "Permanent":
                finding_kind = reports.classify(status, diagnostic) if status else BounceKind.HARD
            elif sub_type in {"ContentRejected", "AttachmentRejected"}:
                finding_kind = BounceKind.BLOCK
            else:  # Transient, Undetermined
                finding_kind = BounceKind.SOFT
            finding = Finding(finding_kind, _text(item.get("emailAddress"), 320).lower(), status,
                              diagnostic or f"{bounce_type} {sub_type}".strip())
            events.append(handling.Event("ses", f"{bounce.get('feedbackId') or sns_id}:{n}", finding,
                                         source, message_id, when, raw))
    elif kind == "Complaint":
        complaint = _object(notification.get("complaint"))
        feedback = _text(complaint.get("complaintFeedbackType"), 32) or "abuse"
        if feedback in reports.COMPLAINT_TYPES:
            for n, item in enumerate(_items(complaint.get("complainedRecipients"))):
                finding = Finding(BounceKind.COMPLAINT, _text(item.get("emailAddress"), 320).lower(), "",
                                  _text(complaint.get("userAgent")), feedback)
                events.append(handling.Event("ses", f"{complaint.get('feedbackId') or sns_id}:{n}", finding,
                                             source, message_id, _when(complaint.get("timestamp")), raw))
    elif kind not in {"Delivery", "Send", "Open", "Click", "Reject", "DeliveryDelay", "Rendering Failure",
                      "Subscription", None}:
        raise Refused(400, "unknown SES notification type")
    return events


def _items(value) -> list[dict]:
    if not isinstance(value, list):
        return []
    return [item for item in value[:MAX_EVENTS] if isinstance(item, dict)]


# --- Postmark ------------------------------------------------------------------------

POSTMARK_KINDS = {
    "HardBounce": BounceKind.HARD, "BadEmailAddress": BounceKind.HARD,
    "SoftBounce": BounceKind.SOFT, "Transient": BounceKind.SOFT, "DnsError": BounceKind.SOFT,
    "Unknown": BounceKind.SOFT,
    "Blocked": BounceKind.BLOCK, "DMARCPolicy": BounceKind.BLOCK, "SpamNotification": BounceKind.BLOCK,
    "VirusNotification": BounceKind.BLOCK, "ContentRelated": BounceKind.BLOCK,
    "SpamComplaint": BounceKind.COMPLAINT,
}


def _postmark(session: Session, config, body: bytes, headers: dict) -> list[handling.Event]:
    user, password = config["POSTMARK_WEBHOOK_USER"], config["POSTMARK_WEBHOOK_PASSWORD"]
    if not (user and password):
        raise Refused(404, "the Postmark webhook is not configured")
    scheme, _, encoded = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise Refused(401, "send the webhook's credentials (HTTP basic authentication)")
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Refused(401, "malformed credentials") from exc
    expected = f"{user}:{password}".encode()
    if not hmac.compare_digest(hashlib.sha256(given).digest(), hashlib.sha256(expected).digest()):
        raise Refused(403, "wrong credentials")
    record = _json(body)
    if not isinstance(record, dict) or not record.get("RecordType"):
        raise Refused(400, "not a Postmark webhook record")
    return postmark_events(record, body)


def postmark_events(record: dict, raw: bytes) -> list[handling.Event]:
    if record.get("RecordType") not in {"Bounce", "SpamComplaint"}:
        return []  # Delivery, Open, Click, SubscriptionChange
    type_ = _text(record.get("Type"))
    kind = POSTMARK_KINDS.get("SpamComplaint" if record["RecordType"] == "SpamComplaint" else type_)
    if kind is None:
        return []  # AutoResponder, Subscribe, ChallengeVerification ...: not a bounce
    event_id = record.get("ID")
    if not isinstance(event_id, (int, str)) or isinstance(event_id, bool) or not str(event_id):
        raise Refused(400, "the record has no ID")
    details = _text(record.get("Details")) or _text(record.get("Description"))
    return_path, message_id = "", ""
    content = record.get("Content")
    if isinstance(content, str) and content:  # the bounce itself, when the server keeps it
        dump = reports.read(content.encode("utf-8", "replace")[:512 * 1024])
        return_path = next((a for a in dump.return_paths if "+" in a), "")  # a VERP has a +token
        message_id = next(iter(dump.message_ids), "")
    finding = Finding(kind, _text(record.get("Email"), 320).lower(), reports._status(details), details,
                      "abuse" if kind == BounceKind.COMPLAINT else "")
    return [handling.Event("postmark", str(event_id)[:100], finding, return_path, message_id,
                           _when(record.get("BouncedAt")), raw)]


# --- SendGrid ------------------------------------------------------------------------

SENDGRID_CLASSES = {"invalid address": BounceKind.HARD, "mailbox unavailable": BounceKind.HARD,
                    "reputation": BounceKind.BLOCK, "content": BounceKind.BLOCK,
                    "frequency or volume too high": BounceKind.BLOCK, "technical": BounceKind.SOFT}


def _sendgrid(session: Session, config, body: bytes, headers: dict) -> list[handling.Event]:
    key_text = config["SENDGRID_WEBHOOK_PUBLIC_KEY"]
    if not key_text:
        raise Refused(404, "the SendGrid webhook is not configured")
    signature = headers.get("x-twilio-email-event-webhook-signature", "")
    timestamp = headers.get("x-twilio-email-event-webhook-timestamp", "")
    if not signature or not timestamp:
        raise Refused(401, "the request is not signed")
    _fresh(timestamp, config)
    try:
        key = sendgrid_key(key_text)
        key.verify(base64.b64decode(signature, validate=True), timestamp.encode() + body,
                   ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError) as exc:
        raise Refused(403, "the signature does not verify") from exc
    items = _json(body)
    if not isinstance(items, list):
        raise Refused(400, "expected a list of events")
    return sendgrid_events(items)


def sendgrid_key(text: str) -> ec.EllipticCurvePublicKey:
    """The verification key as SendGrid shows it (base64 DER), or PEM. Raises ValueError."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode())
    else:
        key = serialization.load_der_public_key(base64.b64decode(text))
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("not an ECDSA key")
    return key


def sendgrid_events(items: list) -> list[handling.Event]:
    events = []
    for item in _items(items):
        name = item.get("event")
        if name not in {"bounce", "spamreport"}:
            continue  # processed, delivered, deferred (still trying), dropped (SendGrid's own list) ...
        event_id = _text(item.get("sg_event_id"), 100)
        if not event_id:
            raise Refused(400, "an event has no sg_event_id")
        recipient = _text(item.get("email"), 320).lower()
        reason = _text(item.get("reason"))
        if name == "spamreport":
            finding = Finding(BounceKind.COMPLAINT, recipient, "", "spamreport", "abuse")
        else:
            status = reports._status(_text(item.get("status"), 16))
            kind = SENDGRID_CLASSES.get(_text(item.get("bounce_classification"), 60).lower())
            if kind is None:
                kind = BounceKind.BLOCK if item.get("type") == "blocked" else reports.classify(status, reason)
            finding = Finding(kind, recipient, status, reason)
        raw = json.dumps(item, ensure_ascii=False)[:16384].encode()
        events.append(handling.Event("sendgrid", event_id, finding, "", _text(item.get("smtp-id"), 250),
                                     _when(item.get("timestamp")), raw))
    return events


# --- Mailgun -------------------------------------------------------------------------

def _mailgun(session: Session, config, body: bytes, headers: dict) -> list[handling.Event]:
    key = config["MAILGUN_WEBHOOK_SIGNING_KEY"]
    if not key:
        raise Refused(404, "the Mailgun webhook is not configured")
    payload = _json(body)
    signed = payload.get("signature") if isinstance(payload, dict) else None
    if not isinstance(signed, dict) or not all(isinstance(signed.get(k), str) and signed.get(k)
                                               for k in ("timestamp", "token", "signature")):
        raise Refused(401, "the request is not signed")
    expected = hmac.new(key.encode(), (signed["timestamp"] + signed["token"]).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signed["signature"].lower()):
        raise Refused(403, "the signature does not verify")
    _fresh(signed["timestamp"], config)
    use_nonce(session, "mailgun", signed["token"])
    data = payload.get("event-data")
    if not isinstance(data, dict):
        raise Refused(400, "no event-data")
    return mailgun_events(data, body)


def mailgun_events(data: dict, raw: bytes) -> list[handling.Event]:
    name = data.get("event")
    event_id = _text(data.get("id"), 100)
    if name not in {"failed", "complained"}:
        return []
    if not event_id:
        raise Refused(400, "the event has no id")
    recipient = _text(data.get("recipient"), 320).lower()
    message = _object(data.get("message"))
    message_headers = _object(message.get("headers"))
    message_id = _text(message_headers.get("message-id"), 250)
    envelope = _object(data.get("envelope"))
    return_path = _text(envelope.get("sender"), 320)
    if name == "complained":
        finding = Finding(BounceKind.COMPLAINT, recipient, "", "complained", "abuse")
    else:
        if data.get("severity") != "permanent":
            return []  # Mailgun tries again: a warning, not a bounce
        status_info = _object(data.get("delivery-status"))
        text = " ".join(filter(None, (_text(status_info.get("message")), _text(status_info.get("description")))))
        code = status_info.get("code")
        status = reports._status(_text(status_info.get("enhanced-code"), 16)) or reports._status(text)
        reason = data.get("reason")
        if reason == "suppress-complaint":
            finding = Finding(BounceKind.COMPLAINT, recipient, "", "suppress-complaint", "abuse")
        elif reason == "suppress-unsubscribe":
            return []
        else:
            kind = BounceKind.HARD if reason == "suppress-bounce" else reports.classify(
                status, text, code if isinstance(code, int) and not isinstance(code, bool) else None)
            finding = Finding(kind, recipient, status, text or str(reason or ""))
    return [handling.Event("mailgun", event_id, finding, return_path, message_id,
                           _when(data.get("timestamp")), raw)]


_READERS = {"ses": _ses, "postmark": _postmark, "sendgrid": _sendgrid, "mailgun": _mailgun}
