"""Returned mail read into findings: which recipient, what kind, which status, what text.

Pure functions of the bytes (no database, no app): ``read(raw, envelope_to=...)`` returns a
``Report``. In order:

1. an RFC 3464 delivery status notification (``multipart/report;
   report-type=delivery-status``): one finding per recipient whose Action is ``failed``;
   ``delayed`` is a warning, not a bounce;
2. an RFC 5965 ARF report (``report-type=feedback-report``): a complaint when its
   Feedback-Type is abuse, fraud or other (``not-spam``, ``virus`` and RFC 6591
   ``auth-failure`` reports are not complaints);
3. an auto-reply or out-of-office answer (RFC 3834 ``Auto-Submitted``, ``X-Autoreply``,
   ``Precedence: auto_reply``, the usual subjects) from a person's address: not a bounce;
4. any other format, through Mailman's heuristic detectors (``flufl.bounce``): Exim,
   qmail, old Postfix, Exchange, Yahoo, AOL ... with the status and text found next to
   the address in the body.

Each report also lists the addresses that may be our signed return path (envelope and
delivery headers, the returned message's Return-Path, ARF's Original-Mail-From) and the
returned message's Message-ID, for ``handling`` to map it to its delivery.
"""

import hashlib
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr, parsedate_to_datetime

from flufl.bounce import all_failures

from ..models.bounces import BounceKind

DSN = "dsn"
ARF = "arf"
HEURISTIC = "heuristic"
AUTO_REPLY = "auto_reply"  # not a bounce
DELAY = "delay"  # a warning that delivery is still being tried: not a bounce
NOT_A_BOUNCE = "not_a_bounce"

MAX_TEXT = 256 * 1024  # body text scanned by the heuristics
MAX_DIAGNOSTIC = 1000
COMPLAINT_TYPES = {"abuse", "fraud", "other"}

_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_BASIC = re.compile(r"(?<![\d.])([245]\d\d)(?![\d.])")
_MESSAGE_ID = re.compile(r"^\s*Message-ID:\s*(<[^>\s]{1,250}>)", re.I | re.M)
_PLUS_ADDRESS = re.compile(r"[A-Za-z0-9._%=-]{1,64}\+[A-Za-z0-9=-]{1,40}@[A-Za-z0-9.-]{1,253}")

_HARD_TEXT = re.compile(
    r"user unknown|unknown user|no such (user|mailbox|recipient|address)|does ?n[o']t exist|"
    r"not exist|invalid (recipient|mailbox|address)|recipient (not found|unknown|invalid)|"
    r"unknown recipient|mailbox (unavailable|not found|does not exist)|address rejected|"
    r"recipientnotfound|no mailbox|account (is )?(disabled|deactivated|closed|inactive)|"
    r"account has been disabled|not our customer|unrouteable|bad destination|"
    r"host (not found|unknown)|domain (not found|does not exist)|name or service not known|"
    r"adresat nie istnieje|nie ma takiego (u[zż]ytkownika|konta)|konto nie istnieje", re.I)
_FULL_TEXT = re.compile(
    r"mailbox (is )?full|over ?quota|quota exceeded|exceeded (the )?(storage|quota)|"
    r"insufficient (system )?storage|out of storage|skrzynka .{0,20}pe[lł]na|"
    r"przekroczon[ay] limit", re.I)
_BLOCK_TEXT = re.compile(
    r"spam|blocked|black ?list|block ?list|policy|reputation|denied|\bspf\b|\bdmarc\b|"
    r"\bdkim\b|not authori[sz]ed|unauthenticated|abuse|rate limit|too many", re.I)

_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery (status notification|failure|has failed|notification)|"
    r"returned mail|mail delivery (failed|failure|system|subsystem)|failure notice|"
    r"non[- ]?delivery|could not be delivered|delivery problem|nie dor[eę]czon|"
    r"niedostarczon|zwrot poczty", re.I)
_AUTO_SUBJECT = re.compile(
    r"^\s*(\[?auto(matic|matyczna)?[ _-]?(reply|response|respond|answer|antwort|odpowied)|"
    r"auto:|autoreply|autosvar|automatisk svar|automatische antwort|r[ée]ponse automatique|"
    r"respuesta autom|risposta automatica|odpowied[zź] automatyczna|"
    r"out of (the )?office|ooo\b|abwesenheit|absence|away from|vacation|on (holiday|leave)|"
    r"urlop|nieobecn|poza biurem|fuori sede|afwezig)", re.I)
_DAEMONS = {"mailer-daemon", "mailerdaemon", "mail-daemon", "postmaster", "bounce", "bounces",
            "mail.delivery.system", "mdaemon"}


@dataclass(frozen=True)
class Finding:
    """One recipient's outcome: ``kind`` (hard, soft, block, complaint)."""

    kind: BounceKind
    recipient: str = ""  # the address the report names ("" when it names none)
    status: str = ""  # enhanced status code, "5.1.1"
    diagnostic: str = ""
    feedback_type: str = ""  # complaints only


@dataclass
class Report:
    verdict: str  # DSN, ARF, HEURISTIC, AUTO_REPLY, DELAY, NOT_A_BOUNCE
    findings: list[Finding] = field(default_factory=list)
    return_paths: list[str] = field(default_factory=list)  # where a VERP token may be
    message_ids: list[str] = field(default_factory=list)  # of the returned original
    key: str = ""  # sha256 naming this report: the same report read twice has the same key
    raw_size: int = 0
    raw_sha256: str = ""
    excerpt: str = ""
    reported_at: datetime | None = None
    subject: str = ""


# --- Entry point ---------------------------------------------------------------------

def read(raw: bytes, *, envelope_to: list[str] | None = None, keep: int = 16 * 1024) -> Report:
    """The report in ``raw`` (a whole message as received). ``envelope_to`` are the SMTP
    recipients (our return paths, when it came over SMTP); ``keep`` how many bytes of it the
    report keeps as its excerpt. Never raises on bad input:
    anything unreadable is NOT_A_BOUNCE."""
    msg = message_from_bytes(raw, policy=policy.compat32)
    report = Report(verdict=NOT_A_BOUNCE, raw_size=len(raw), raw_sha256=hashlib.sha256(raw).hexdigest(),
                    excerpt=raw[:keep].decode("utf-8", "replace").replace("\x00", ""),
                    key=_key(msg, raw), subject=_header_text(msg.get("Subject", ""))[:300])
    report.return_paths = [*(envelope_to or []), *_delivery_addresses(msg)]
    report.reported_at = _date(msg.get("Date"))
    try:
        _read_into(report, msg)
    except Exception:
        report.verdict, report.findings = NOT_A_BOUNCE, []
    report.return_paths = list(dict.fromkeys(a.strip().strip("<>") for a in report.return_paths if a))
    report.message_ids = list(dict.fromkeys(report.message_ids))
    return report


def _read_into(report: Report, msg: Message) -> None:
    param = msg.get_param("report-type", "", "content-type") if msg.get_content_type() == "multipart/report" else ""
    report_type = param.lower() if isinstance(param, str) else ""
    originals = _original_headers(msg)
    for headers in originals:
        report.message_ids += _ids(headers.get_all("Message-ID", []))
        report.return_paths += [a for _, a in getaddresses(headers.get_all("Return-Path", []))]
    if report_type == "feedback-report" or _part(msg, "message/feedback-report") is not None:
        _read_arf(report, msg, originals)
        return
    delivery_status = report_type == "delivery-status" or _part(msg, "message/delivery-status") is not None
    if delivery_status and _read_dsn(report, msg):
        return
    text = _body_text(msg)
    report.message_ids += _MESSAGE_ID.findall(text)  # originals quoted inline (qmail, Exim)
    report.return_paths += _PLUS_ADDRESS.findall(text)
    if is_auto_reply(msg):
        report.verdict = AUTO_REPLY
        return
    _read_heuristic(report, msg, text)


# --- RFC 3464 ------------------------------------------------------------------------

def _read_dsn(report: Report, msg: Message) -> bool:
    """Findings from the message/delivery-status part; False when it holds no recipient block."""
    part = _part(msg, "message/delivery-status")
    if part is None:
        return False
    blocks = part.get_payload()
    if isinstance(blocks, str):  # some generators leave it unparsed
        blocks = [HeaderParser().parsestr(chunk) for chunk in re.split(r"\r?\n\s*\r?\n", blocks)
                  if chunk.strip()]
    seen_action = False
    delayed = False
    for block in blocks:
        if not isinstance(block, Message):
            continue
        if block.get("Arrival-Date") and report.reported_at is None:
            report.reported_at = _date(block.get("Arrival-Date"))
        action = (block.get("Action") or "").strip().lower()
        if not action:
            continue
        seen_action = True
        if action.startswith("delayed"):
            delayed = True
            continue
        if not action.startswith(("fail", "error")):  # delivered, relayed, expanded
            continue
        recipient = _dsn_address(block.get("Original-Recipient")) or _dsn_address(block.get("Final-Recipient")) \
            or _dsn_address(block.get("X-Actual-Recipient"))
        diagnostic = _unfold(block.get("Diagnostic-Code") or "")
        diagnostic = diagnostic.split(";", 1)[1].strip() if ";" in diagnostic[:12] else diagnostic
        status = _status(block.get("Status") or "") or _status(diagnostic)
        kind = classify(status, diagnostic, _basic_code(diagnostic))
        if not status and kind is not None:
            status = "5.0.0" if kind != BounceKind.SOFT else "4.0.0"
        report.findings.append(Finding(kind, recipient, status, diagnostic[:MAX_DIAGNOSTIC]))
        when = _date(block.get("Last-Attempt-Date"))
        if when:
            report.reported_at = when
    if report.findings:
        report.verdict = DSN
        text = None
        for n, finding in enumerate(report.findings):
            if not finding.diagnostic and finding.recipient:  # Sendmail: the reason is in the text
                text = _body_text(msg) if text is None else text
                report.findings[n] = Finding(finding.kind, finding.recipient, finding.status,
                                             _near(text, finding.recipient)[:MAX_DIAGNOSTIC])
        return True
    if seen_action:
        report.verdict = DELAY if delayed else NOT_A_BOUNCE
        return True
    return False


def _dsn_address(value: str | None) -> str:
    """``rfc822; user@example.org`` -> the address (other address types: "")."""
    if not value:
        return ""
    kind, sep, address = _unfold(value).partition(";")
    if not sep:
        address, kind = kind, "rfc822"
    if kind.strip().lower() != "rfc822":
        return ""
    return parseaddr(address.strip())[1].lower()


# --- RFC 5965 ------------------------------------------------------------------------

def _read_arf(report: Report, msg: Message, originals: list[Message]) -> None:
    part = _part(msg, "message/feedback-report")
    fields = _fields(part) if part is not None else Message()
    feedback_type = (fields.get("Feedback-Type") or "").strip().lower()
    report.return_paths += [a for _, a in getaddresses(fields.get_all("Original-Mail-From", []))]
    if fields.get("Arrival-Date"):
        report.reported_at = _date(fields.get("Arrival-Date")) or report.reported_at
    if feedback_type not in COMPLAINT_TYPES:
        report.verdict = NOT_A_BOUNCE
        return
    recipients = [a for _, a in getaddresses(fields.get_all("Original-Rcpt-To", []))]
    if not recipients:  # the complainer's address, when the provider did not redact it
        for headers in originals:
            recipients += [a for _, a in getaddresses(headers.get_all("To", []))]
    recipients = [a.lower() for a in recipients if "@" in a] or [""]
    report.verdict = ARF
    agent = _unfold(fields.get("User-Agent") or "")
    report.findings = [Finding(BounceKind.COMPLAINT, recipient, "", agent[:MAX_DIAGNOSTIC], feedback_type)
                       for recipient in dict.fromkeys(recipients)]


def _fields(part: Message) -> Message:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    if isinstance(payload, str):
        return HeaderParser().parsestr(payload.lstrip())
    return Message()


# --- Auto-replies (RFC 3834) ---------------------------------------------------------

def is_auto_reply(msg: Message) -> bool:
    """An automatic answer from a person's mailbox (vacation, out of office, ticket
    receipt): not a report about delivery. A message from a mailer daemon or with a bounce's
    subject is never one, though bounces too carry ``Auto-Submitted: auto-replied`` (and
    auto-replies, like bounces, should come from the null sender: RFC 3834 §3.3)."""
    if looks_like_bounce(msg):
        return False
    auto_submitted = (msg.get("Auto-Submitted") or "").strip().lower()
    precedence = (msg.get("Precedence") or msg.get("X-Precedence") or "").strip().lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return True
    if any(msg.get(name) for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder",
                                      "X-Auto-Reply")):
        return True
    if (msg.get("X-Autogenerated") or "").strip().lower() == "reply":
        return True
    if precedence in {"auto_reply", "auto-reply"}:
        return True
    if "autoresponder" in (msg.get("X-POST-MessageClass") or "").lower():
        return True
    return bool(_AUTO_SUBJECT.search(_header_text(msg.get("Subject", ""))))


def looks_like_bounce(msg: Message) -> bool:
    """Sent by a mail system, not a person: a daemon's From or a bounce subject."""
    name, address = parseaddr(_header_text(msg.get("From", "")))
    local = address.rpartition("@")[0].lower() if "@" in address else address.lower()
    if local in _DAEMONS or re.search(r"mail delivery (system|subsystem)|postmaster", name, re.I):
        return True
    return bool(_BOUNCE_SUBJECT.search(_header_text(msg.get("Subject", ""))))


# --- Everything else: flufl.bounce ---------------------------------------------------

def _read_heuristic(report: Report, msg: Message, text: str) -> None:
    quiet = _DropRecords()  # flufl logs a detector's exception at ERROR level before raising it
    logging.getLogger("flufl.bounce").addFilter(quiet)
    try:
        temporary, permanent = all_failures(msg)
    except Exception:
        temporary, permanent = frozenset(), frozenset()
    finally:
        logging.getLogger("flufl.bounce").removeFilter(quiet)
    failed = sorted({a.decode("ascii", "replace").lower() for a in permanent})
    if not failed:
        report.verdict = DELAY if temporary else NOT_A_BOUNCE  # flufl's "temporary": warnings
        return
    report.verdict = HEURISTIC
    for recipient in failed:
        diagnostic = _near(text, recipient)
        status = _status(diagnostic)
        kind = classify(status, diagnostic, _basic_code(diagnostic))
        report.findings.append(Finding(kind, recipient, status or ("4.0.0" if kind == BounceKind.SOFT else "5.0.0"),
                                       diagnostic[:MAX_DIAGNOSTIC]))


class _DropRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


def _near(text: str, address: str, span: int = 600) -> str:
    """The lines of ``text`` from the address on (where bounces put the server's answer)."""
    at = text.lower().find(address)
    if at < 0:
        chunk = text[:span]
    else:
        start = text.rfind("\n", 0, at) + 1
        chunk = text[start:start + span]
    lines = [line.strip() for line in chunk.splitlines() if line.strip()]
    out = []
    for line in lines[:8]:
        if line.startswith("--") or line.lower().startswith(("content-type", "reporting-mta")):
            break
        out.append(line)
    return " ".join(out)


# --- Classification ------------------------------------------------------------------

def classify(status: str, diagnostic: str = "", basic: int | None = None) -> BounceKind:
    """Hard, soft or block from an enhanced status code (RFC 3463) and the server's text.

    4.x.x (a failure given up after retries) is soft. 5.1.x (bad mailbox, bad domain) is
    hard; 5.7.x (policy, authentication, spam) and 5.6.x (content) are blocks, which say
    nothing about the address. 5.2.2 (mailbox full), 5.2.3 (message too large), 5.3.x
    and 5.5.x are soft. Anything else permanent is judged by its text, hard by default."""
    text = diagnostic or ""
    match = _ENHANCED.match(status or "")
    if match:
        klass, subject, detail = match.groups()
    elif basic:
        klass, subject, detail = str(basic)[0], "0", "0"
    else:
        klass, subject, detail = "5", "0", "0"
    if klass == "4":
        return BounceKind.SOFT
    if klass == "2":  # "failed" with a success code: a confused MTA, worth another try
        return BounceKind.SOFT
    if subject == "7":
        return BounceKind.BLOCK
    if subject == "1":
        return BounceKind.HARD
    if subject == "6":
        return BounceKind.BLOCK
    if (subject, detail) == ("2", "1"):  # mailbox disabled
        return BounceKind.HARD
    if _HARD_TEXT.search(text):
        return BounceKind.HARD
    if _FULL_TEXT.search(text):
        return BounceKind.SOFT
    if subject in {"2", "3", "5"}:
        return BounceKind.SOFT
    if subject == "4":
        return BounceKind.HARD if detail in {"4", "6"} else BounceKind.SOFT  # unroutable, loop
    if _BLOCK_TEXT.search(text):
        return BounceKind.BLOCK
    return BounceKind.HARD


def _status(text: str) -> str:
    match = _ENHANCED.search(text or "")
    return ".".join(match.groups()) if match else ""


def _basic_code(text: str) -> int | None:
    match = _BASIC.search(text or "")
    return int(match.group(1)) if match else None


# --- Helpers -------------------------------------------------------------------------

def _key(msg: Message, raw: bytes) -> str:
    """The same report delivered twice (twice by the MTA, or by SMTP and by the mailbox)
    has the same key: its own Message-ID and its body. Trace headers added on the way
    (Received, Delivered-To, Return-Path) do not count."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = raw.partition(b"\n\n")
    body = body.replace(b"\r\n", b"\n")
    own_id = (msg.get("Message-ID") or "").strip()
    return hashlib.sha256(b"mail\0" + own_id.encode("utf-8", "replace") + b"\0"
                          + hashlib.sha256(body).digest()).hexdigest()


def _part(msg: Message, content_type: str) -> Message | None:
    for part in msg.walk():
        if part.get_content_type() == content_type:
            return part
    return None


def _original_headers(msg: Message) -> list[Message]:
    """The headers of the returned original (message/rfc822 or text/rfc822-headers parts)."""
    found: list[Message] = []
    if not msg.is_multipart():
        return found
    for part in msg.walk():
        content_type = part.get_content_type()
        if content_type in {"message/rfc822", "message/global"}:
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                found.append(payload[0])
        elif content_type in {"text/rfc822-headers", "text/global-headers"}:
            payload = part.get_payload(decode=True)
            text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
            found.append(HeaderParser().parsestr(text.lstrip()))
    return found


def _delivery_addresses(msg: Message) -> list[str]:
    """Where the report was delivered: To and the trace headers final delivery adds."""
    addresses = []
    for name in ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "X-Rcpt-To",
                 "X-Forwarded-To", "To", "Cc"):
        addresses += [a for _, a in getaddresses(msg.get_all(name, []))]
    return addresses


def _ids(values: list[str]) -> list[str]:
    ids = []
    for value in values:
        ids += re.findall(r"<[^>\s]{1,250}>", str(value))
    return ids


def _body_text(msg: Message) -> str:
    chunks, size = [], 0
    for part in msg.walk():
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        if part.get_content_type() not in {"text/plain", "text/html"}:
            continue
        try:
            payload = part.get_payload(decode=True)
        except Exception:
            continue
        if not isinstance(payload, bytes):
            continue
        charset = part.get_content_charset() or "utf-8"
        try:
            text = payload.decode(charset, "replace")
        except LookupError:
            text = payload.decode("latin-1")
        if part.get_content_type() == "text/html":
            text = re.sub(r"<[^>]{0,2000}>", " ", text)
        chunks.append(text)
        size += len(text)
        if size > MAX_TEXT:
            break
    return "\n".join(chunks)[:MAX_TEXT]


def _header_text(value) -> str:
    try:
        return str(make_header(decode_header(str(value or ""))))
    except Exception:
        return str(value or "")


def _unfold(value: str) -> str:
    return " ".join(str(value).split())


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = parsedate_to_datetime(_unfold(value))
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)
