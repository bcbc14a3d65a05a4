"""Transports push built messages out: SMTP with connection reuse, or a local outbox folder.

``send(messages, observer)`` takes many messages (any iterable, consumed lazily) and returns
one Result per message it attempted, in order. A transport never raises for one
recipient's failure. It raises ``ConnectionFailed`` when it cannot talk to the server at all
(refused, no greeting within the connect timeout, TLS or AUTH refused, the connection lost
again right after a reconnect); the Results of what was attempted before ride on it.

The ``observer`` hears of each message twice: ``begin(message)`` before anything of it is
written (it may answer False: stop, this message and the rest are not attempted), and
``end(result)`` as soon as the server's answer is read. The sending engine journals
acceptances there; the transport knows nothing of it.

A message can reach its recipient twice in one way here, decided as a mail server decides
it (RFC 1047): when the connection is lost after the message's final dot was written and
before the server answered, the message is "in doubt" (``Result.doubt``). It is a temporary
failure, tried again later by the caller (never at once, silently, on a new connection),
and the caller counts it.
"""

import base64
import functools
import smtplib
import socket
import ssl
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email import policy
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from .message import Outgoing


@dataclass(frozen=True)
class Result:
    message: Outgoing
    ok: bool
    code: int = 250
    error: str = ""
    # Sent, but the connection was lost before the server answered: it may have been
    # delivered. Tried again later like a 4xx, and counted.
    doubt: bool = False
    # Refused here, never offered to the server (an address it cannot take): says nothing
    # of the server's health, so it does not count towards pausing a campaign.
    refused_here: bool = False

    @property
    def temporary(self) -> bool:
        """A 4xx answer or an unanswered message: worth trying again later."""
        return not self.ok and (self.doubt or self.code < 500 or self.code >= 600)

    @property
    def hard_bounce(self) -> bool:
        """5.1.x (bad mailbox or domain): the address should never be mailed again."""
        return (not self.ok and not self.doubt and 500 <= self.code < 600
                and " 5.1." in f" {self.error}")


class ConnectionFailed(Exception):
    """No usable connection to the server. ``results`` are those of the messages attempted
    before; the rest were not attempted. ``code`` and ``error`` say what went wrong."""

    def __init__(self, code: int, error: str, results: list[Result]):
        super().__init__(f"{code} {error}")
        self.code, self.error, self.results = code, error, results


class Observer(Protocol):
    def begin(self, message: Outgoing) -> bool: ...

    def end(self, result: Result) -> None: ...


class _Everything:
    """The observer of callers that want every message sent and nothing else."""

    def begin(self, message: Outgoing) -> bool:
        return True

    def end(self, result: Result) -> None:
        pass


EVERYTHING = _Everything()


class Transport(Protocol):
    def send(self, messages: Iterable[Outgoing], observer: Observer = EVERYTHING) -> list[Result]: ...

    def close(self) -> None: ...


class OutboxTransport:
    """Writes each message as an .eml file, with the Return-Path and Delivered-To a mailbox
    would show: the embedded default, read by staff in the admin."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def forget(self, recipient: str) -> int:
        """Delete every message to ``recipient`` (an erasure); returns how many."""
        wanted = recipient.strip().lower()
        removed = 0
        for path in self.folder.glob("*.eml") if self.folder.is_dir() else []:
            try:
                with open(path, "rb") as handle:
                    headers = BytesHeaderParser(policy=policy.default).parse(handle)
            except OSError:
                continue
            addresses = {str(headers.get("Delivered-To", "")).strip().lower()}
            to = headers.get("To")
            addresses |= {a.addr_spec.lower() for a in getattr(to, "addresses", ())} if to is not None else set()
            if wanted in addresses:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def send(self, messages: Iterable[Outgoing], observer: Observer = EVERYTHING) -> list[Result]:
        self.folder.mkdir(parents=True, exist_ok=True)
        results = []
        for message in messages:
            if not observer.begin(message):
                break
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
            path = self.folder / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(f"Return-Path: <{message.sender}>\r\nDelivered-To: {message.recipient}\r\n"
                            .encode() + message.data)
            tmp.rename(path)  # readers never see half a message
            results.append(Result(message, True))
            observer.end(results[-1])
        return results

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class SMTPSettings:
    host: str
    port: int
    username: str = ""
    password: str = ""
    ssl: bool = False
    starttls: bool = False
    timeout: float = 30.0  # for each reply once connected
    connect_timeout: float = 10.0  # for the TCP connection, greeting, EHLO, TLS and AUTH
    cafile: str = ""  # trust this CA bundle instead of the system's (a private relay)

    @classmethod
    def from_url(cls, url: str) -> "SMTPSettings":
        """``smtp://user:pass@host:port?starttls=1`` or ``smtps://...`` (implicit TLS);
        ``?timeout=`` and ``?connect_timeout=`` in seconds, ``?cafile=`` a CA bundle for
        the server's certificate. Raises ValueError."""
        parts = urlsplit(url)
        if parts.scheme not in {"smtp", "smtps"}:
            raise ValueError(f"SMTP_URL must start with smtp:// or smtps://, not {parts.scheme}://")
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        implicit = parts.scheme == "smtps"
        return cls(
            host=parts.hostname or "localhost",
            port=parts.port or (465 if implicit else 25),
            username=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            ssl=implicit,
            starttls=query.get("starttls", "0").lower() in {"1", "true", "yes"},
            timeout=float(query.get("timeout", 30)),
            connect_timeout=float(query.get("connect_timeout", 10)),
            cafile=query.get("cafile", ""),
        )


class _Queue:
    """The messages still to send: an iterator with a pushed-back front (messages the
    observer already agreed to, whose connection closed before their turn) and one message
    read ahead (``prepare``), which the observer has not been asked about yet."""

    def __init__(self, messages: Iterable[Outgoing]):
        self._rest: Iterator[Outgoing] = iter(messages)
        self._front: deque[Outgoing] = deque()
        self._ahead: Outgoing | None = None
        self._failed: Exception | None = None
        self.order: dict[int, int] = {}  # id(message) -> its place (messages live till the end)

    def push_back(self, messages: list[Outgoing]) -> None:
        self._front.extendleft(reversed(messages))

    def prepare(self) -> None:
        """Read the next message from the iterator now (building it, when the iterator
        builds), so that ``take`` finds it ready. What reading raises, ``take`` raises."""
        if self._ahead is None and self._failed is None and not self._front:
            try:
                self._ahead = self._next()
            except Exception as exc:  # raised in turn, where the caller expects it
                self._failed = exc

    def take(self) -> tuple[Outgoing | None, bool]:
        """The next message, and whether the observer already agreed to it."""
        if self._front:
            return self._front.popleft(), True
        if self._failed is not None:
            failed, self._failed = self._failed, None
            raise failed
        message, self._ahead = self._ahead, None
        return (message if message is not None else self._next()), False

    def _next(self) -> Outgoing | None:
        message = next(self._rest, None)
        if message is not None:
            self.order[id(message)] = len(self.order)
        return message

    def in_order(self, results: list[Result]) -> list[Result]:
        return sorted(results, key=lambda result: self.order[id(result.message)])


@dataclass
class _Connection:
    smtp: smtplib.SMTP
    # Begun on this connection, envelope not yet answered: they go again on the next one.
    in_hand: list[Outgoing] = field(default_factory=list)
    # Its final dot went out; the server has not answered yet.
    unanswered: Outgoing | None = None


class SMTPTransport:
    """One SMTP connection, opened lazily, reused across messages, reopened if dropped.

    When the server offers PIPELINING (RFC 2920) each message costs one round trip, not
    four: its data goes out in one write with the next message's MAIL, RCPT and DATA,
    and the client then waits for the one reply it needs next (DATA's 354). Without it,
    smtplib's ``sendmail`` waits for every reply. An address that is not ASCII goes out with
    SMTPUTF8 where the server offers it, and is refused alone (553 5.6.7) where it does not.
    """

    def __init__(self, settings: SMTPSettings):
        self.settings = settings
        self._conn: _Connection | None = None

    def _connect(self) -> _Connection:
        s = self.settings
        context = _tls_context(s.cafile) if s.ssl or s.starttls else None
        # The greeting is read within the connect timeout, like EHLO, TLS and AUTH below.
        if s.ssl:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, context=context,
                                                  timeout=s.connect_timeout)
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.connect_timeout)
        try:
            smtp.ehlo()
            if s.starttls:
                smtp.starttls(context=context)
                smtp.ehlo()
            if s.username:
                _authenticate(smtp, s.username, s.password)
            if smtp.sock is not None:
                smtp.sock.settimeout(s.timeout)
                # Pipelined writes end in small pieces (a message's last bytes, the next
                # envelope): Nagle's algorithm would hold them for the previous ACK.
                smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except BaseException:
            _close(smtp)
            raise
        return _Connection(smtp)

    def send(self, messages: Iterable[Outgoing], observer: Observer = EVERYTHING) -> list[Result]:
        """One Result per message attempted, in order. Raises ConnectionFailed."""
        queue = _Queue(messages)
        results: list[Result] = []
        fruitless = 0  # connections lost in a row without an answer on them
        while True:
            if self._conn is None:
                try:
                    self._conn = self._connect()
                except (smtplib.SMTPException, OSError) as exc:
                    raise ConnectionFailed(*_failure(exc, "connecting"), queue.in_order(results)) from exc
            answered = len(results)
            try:
                if self._conn.smtp.has_extn("pipelining"):
                    self._send_pipelined(self._conn, queue, results, observer)
                else:
                    self._send_each(self._conn, queue, results, observer)
                return queue.in_order(results)
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                conn, self._conn = self._conn, None
                _close(conn.smtp)
                if conn.unanswered is not None:
                    results.append(Result(conn.unanswered, False, 451,
                                          f"4.4.2 connection lost before the server answered: {exc}",
                                          doubt=True))
                    observer.end(results[-1])
                queue.push_back(conn.in_hand)
                fruitless = 0 if len(results) > answered else fruitless + 1
                if fruitless >= 2:
                    raise ConnectionFailed(*_failure(exc, "connection lost"), queue.in_order(results)) from exc

    def _begin(self, conn: _Connection, queue: _Queue, results: list[Result],
               observer: Observer) -> Outgoing | None:
        """The next message the observer agrees to start, now in hand (None: none left, or
        stop). A message with an address the server cannot take is answered here."""
        smtputf8 = conn.smtp.has_extn("smtputf8")
        while True:
            message, agreed = queue.take()
            if message is None:
                return None
            if not agreed and not observer.begin(message):
                return None
            if message.needs_smtputf8 and not smtputf8:
                results.append(Result(message, False, 553, "5.6.7 the address needs SMTPUTF8, "
                                                           "which the mail server does not offer",
                                      refused_here=True))
                observer.end(results[-1])
                continue
            conn.in_hand.append(message)
            return message

    def _send_each(self, conn: _Connection, queue: _Queue, results: list[Result],
                   observer: Observer) -> None:
        """One command and one reply at a time (a server without PIPELINING)."""
        smtp = conn.smtp
        while (message := self._begin(conn, queue, results, observer)) is not None:
            code, text = smtp.mail(message.sender, ["SMTPUTF8"] if message.needs_smtputf8 else [])
            if code == 250:
                code, text = smtp.rcpt(message.recipient)
            if code in (250, 251):
                conn.in_hand, conn.unanswered = [], message
                try:
                    code, text = smtp.data(message.data)
                except smtplib.SMTPDataError as exc:  # DATA itself refused
                    code, text = exc.smtp_code, _text(exc.smtp_error).encode()
                conn.unanswered = None
            else:
                conn.in_hand = []
            result = Result(message, code == 250, code, "" if code == 250 else _text(text))
            results.append(result)
            observer.end(result)
            if code == 421:  # the server is closing: the rest go on a new connection
                raise smtplib.SMTPServerDisconnected(_text(text))
            if not result.ok:
                _reset(smtp)

    def _send_pipelined(self, conn: _Connection, queue: _Queue, results: list[Result],
                        observer: Observer) -> None:
        """Raises SMTPServerDisconnected when the server closes (421): what is in hand goes
        again on a new connection."""
        smtp = conn.smtp
        message = self._begin(conn, queue, results, observer)
        if message is not None:
            smtp.send(_envelope(message))
        while message is not None:
            replies = [smtp.getreply() for _ in range(3)]  # MAIL, RCPT, DATA
            refusal = next(((code, text) for (code, text), ok in zip(replies, _ACCEPTED, strict=True)
                            if code not in ok), None)
            # In hand until the next one is begun: if that raises, the server waits for this
            # one's data, so ``close`` must drop the connection, not say QUIT (read as data).
            following = self._begin(conn, queue, results, observer)
            conn.in_hand.remove(message)
            ahead = _envelope(following) if following is not None else b""
            if refusal is None:
                conn.unanswered = message
                smtp.send(_dot_stuffed(message.data) + ahead)
                queue.prepare()  # built while the server reads this one (else it waits for it)
                code, text = smtp.getreply()
                conn.unanswered = None
                result = Result(message, code == 250, code, "" if code == 250 else _text(text))
                closing = code == 421
            else:
                code, text = refusal
                result = Result(message, False, code, _text(text))
                closing = any(reply_code == 421 for reply_code, _ in replies)
                if not closing:  # end the transaction (a 354 given anyway gets an empty body)
                    empty = replies[2][0] == 354
                    smtp.send((b".\r\n" if empty else b"") + b"RSET\r\n" + ahead)
                    for _ in range(2 if empty else 1):
                        smtp.getreply()
            results.append(result)
            observer.end(result)
            if closing:
                raise smtplib.SMTPServerDisconnected(f"{code} {_text(text)}")
            message = following

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if conn.unanswered is None and not conn.in_hand:
            try:
                conn.smtp.quit()
                return
            except (smtplib.SMTPException, OSError):
                pass
        _close(conn.smtp)  # mid-transaction: the server drops what it was given


def _close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.close()
    except OSError:
        pass


def _reset(smtp: smtplib.SMTP) -> None:
    try:
        smtp.rset()
    except smtplib.SMTPException:
        pass  # a dead connection: the next command finds out


def _failure(exc: BaseException, what: str) -> tuple[int, str]:
    code = getattr(exc, "smtp_code", None) or 421
    detail = _text(getattr(exc, "smtp_error", None) or exc) or type(exc).__name__
    return code, f"{what}: {detail}"


def _authenticate(smtp: smtplib.SMTP, username: str, password: str) -> None:
    """AUTH PLAIN in UTF-8 (RFC 4616) when offered: smtplib's ``login`` encodes ASCII only
    and, refused, retries with other mechanisms. Otherwise ``login``."""
    if "PLAIN" not in smtp.esmtp_features.get("auth", "").upper().split():
        smtp.login(username, password)
        return
    token = base64.b64encode(b"\0" + username.encode() + b"\0" + password.encode()).decode("ascii")
    code, text = smtp.docmd("AUTH", "PLAIN " + token)
    if code != 235:
        raise smtplib.SMTPAuthenticationError(code, text)


@functools.cache
def _tls_context(cafile: str) -> ssl.SSLContext:
    """Built once per process: loading the CA bundle takes about 20 ms, once per batch
    it was a tenth of a worker's time."""
    return ssl.create_default_context(cafile=cafile or None)


_ACCEPTED = ((250,), (250, 251), (354,))  # what MAIL, RCPT and DATA answer when all is well


def _envelope(message: Outgoing) -> bytes:
    """MAIL, RCPT and DATA in one piece (with SMTPUTF8 when an address needs it)."""
    if message.needs_smtputf8:
        return (f"MAIL FROM:<{message.sender}> SMTPUTF8\r\nRCPT TO:<{message.recipient}>\r\n"
                "DATA\r\n").encode()
    return f"MAIL FROM:<{message.sender}>\r\nRCPT TO:<{message.recipient}>\r\nDATA\r\n".encode("ascii")


def _dot_stuffed(data: bytes) -> bytes:
    """The DATA payload as smtplib sends bytes: a dot that starts a line doubled, a line
    with a single dot at the end (built messages already end every line with CRLF)."""
    if b"\n." in data:
        data = data.replace(b"\n.", b"\n..")
    if data.startswith(b"."):
        data = b"." + data
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def forget_recipient(config, recipient: str) -> int:
    """Remove the mail kept for ``recipient`` where this service keeps any (the outbox
    folder while no SMTP server is configured); SMTP keeps nothing. Returns how many."""
    if config.get("SMTP_URL"):
        return 0
    return OutboxTransport(config["OUTBOX_DIR"]).forget(recipient)


def from_config(config) -> Transport:
    """SMTP when ``SMTP_URL`` is set, else the outbox folder."""
    if config.get("SMTP_URL"):
        return SMTPTransport(SMTPSettings.from_url(config["SMTP_URL"]))
    return OutboxTransport(config["OUTBOX_DIR"])
