"""Transports push built messages out: SMTP with connection reuse, or a local outbox folder.

``send`` takes many messages and returns one Result per message, in order, so the
caller records outcomes in bulk. A transport never raises for one recipient's failure.
"""

import base64
import functools
import smtplib
import ssl
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from .message import Outgoing


@dataclass(frozen=True)
class Result:
    message: Outgoing
    ok: bool
    code: int = 250
    error: str = ""
    # The connection was refused (greeting, TLS, AUTH), not the recipient: a setting to
    # fix, after which the message is worth sending again.
    connecting: bool = False

    @property
    def temporary(self) -> bool:
        """A 4xx answer, a lost or refused connection: worth retrying later."""
        return not self.ok and (self.connecting or self.code < 500 or self.code >= 600)

    @property
    def hard_bounce(self) -> bool:
        """5.1.x (bad mailbox or domain): the address should never be mailed again."""
        return (not self.ok and not self.connecting and 500 <= self.code < 600
                and " 5.1." in f" {self.error}")


class Transport(Protocol):
    def send(self, messages: Iterable[Outgoing]) -> list[Result]: ...

    def close(self) -> None: ...


class OutboxTransport:
    """Writes each message as an .eml file: the embedded default, read in the admin."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def send(self, messages: Iterable[Outgoing]) -> list[Result]:
        self.folder.mkdir(parents=True, exist_ok=True)
        results = []
        for message in messages:
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
            path = self.folder / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(message.data)
            tmp.rename(path)  # readers never see half a message
            results.append(Result(message, True))
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
    timeout: float = 30.0
    cafile: str = ""  # trust this CA bundle instead of the system's (a private relay)

    @classmethod
    def from_url(cls, url: str) -> "SMTPSettings":
        """``smtp://user:pass@host:port?starttls=1`` or ``smtps://...`` (implicit TLS);
        ``?timeout=`` seconds, ``?cafile=`` a CA bundle for the server's certificate."""
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
            cafile=query.get("cafile", ""),
        )


class SMTPTransport:
    """One SMTP connection, opened lazily, reused across messages, reopened if dropped.

    When the server offers PIPELINING (RFC 2920) each message costs one round trip, not
    four: its data goes out in one write with the next message's MAIL, RCPT and DATA,
    and the client then waits for the one reply it needs next (DATA's 354). Without it,
    smtplib's ``sendmail`` waits for every reply.
    """

    def __init__(self, settings: SMTPSettings):
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        context = _tls_context(s.cafile) if s.ssl or s.starttls else None
        if s.ssl:
            smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=context)
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        try:
            smtp.ehlo()
            if s.starttls:
                smtp.starttls(context=context)
                smtp.ehlo()
            if s.username:
                _authenticate(smtp, s.username, s.password)
        except BaseException:
            smtp.close()
            raise
        return smtp

    def send(self, messages: Iterable[Outgoing]) -> list[Result]:
        """One Result per message, in order. A connection lost mid-message costs that
        message one more try on a fresh connection, then it is a temporary failure."""
        messages = list(messages)
        results: list[Result] = []
        retried = -1  # the index of the message that had its second chance
        while len(results) < len(messages):
            try:
                if self._smtp is None:
                    try:
                        self._smtp = self._connect()
                    except smtplib.SMTPServerDisconnected:
                        raise
                    except smtplib.SMTPException as exc:  # greeting, STARTTLS or AUTH refused
                        code = getattr(exc, "smtp_code", 530)
                        error = f"connecting: {_text(getattr(exc, 'smtp_error', exc))}"
                        return results + [Result(m, False, code, error, connecting=True)
                                          for m in messages[len(results):]]
                if self._smtp.has_extn("pipelining"):
                    self._send_pipelined(messages[len(results):], results)
                else:
                    for message in messages[len(results):]:
                        results.append(self._send_one(message))
                        if self._smtp is None:
                            break  # closed after a 421: the rest go on a new connection
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                self.close()
                if retried == len(results):
                    results.append(Result(messages[len(results)], False, 421, f"connection lost: {exc}"))
                retried = len(results)
        return results

    def _send_one(self, message: Outgoing) -> Result:
        if _envelope(message) is None:
            return _needs_smtputf8(message)
        try:
            refused = self._smtp.sendmail(message.sender, [message.recipient], message.data)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = exc.recipients[message.recipient]
            self._reset()
            return Result(message, False, code, _text(text))
        except smtplib.SMTPResponseException as exc:
            self._reset()
            return Result(message, False, exc.smtp_code, _text(exc.smtp_error))
        if refused:
            code, text = refused[message.recipient]
            return Result(message, False, code, _text(text))
        return Result(message, True)

    def _send_pipelined(self, messages: list[Outgoing], results: list[Result]) -> None:
        """Append a Result per message; returns early, the connection closed, after a 421."""
        smtp = self._smtp
        envelopes = [_envelope(message) for message in messages]
        ahead = False  # this message's envelope went out with the previous write
        for index, message in enumerate(messages):
            if envelopes[index] is None:
                results.append(_needs_smtputf8(message))
                ahead = False
                continue
            if not ahead:
                smtp.send(envelopes[index])
            replies = [smtp.getreply() for _ in range(3)]  # MAIL, RCPT, DATA
            refusal = next(((code, text) for (code, text), ok in zip(replies, _ACCEPTED)
                            if code not in ok), None)
            following = envelopes[index + 1] if index + 1 < len(messages) else None
            ahead = following is not None
            if refusal is None:
                smtp.send(_dot_stuffed(message.data) + (following or b""))
                code, text = smtp.getreply()
                results.append(Result(message, code == 250, code, "" if code == 250 else _text(text)))
                closing = code == 421
            else:
                code, text = refusal
                results.append(Result(message, False, code, _text(text)))
                closing = any(code == 421 for code, _ in replies)
                if not closing:  # end the transaction (a 354 given anyway gets an empty body)
                    empty = replies[2][0] == 354
                    smtp.send((b".\r\n" if empty else b"") + b"RSET\r\n" + (following or b""))
                    for _ in range(2 if empty else 1):
                        smtp.getreply()
            if closing:  # the server is closing: the rest go on a new connection
                self.close()
                return

    def _reset(self) -> None:
        try:
            self._smtp.rset()
        except (smtplib.SMTPException, OSError, AttributeError):
            self.close()

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                self._smtp.close()
            self._smtp = None


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


def _envelope(message: Outgoing) -> bytes | None:
    """MAIL, RCPT and DATA in one piece (None when an address is not ASCII)."""
    try:
        return (f"MAIL FROM:<{message.sender}>\r\nRCPT TO:<{message.recipient}>\r\nDATA\r\n"
                .encode("ascii"))
    except UnicodeEncodeError:
        return None


def _needs_smtputf8(message: Outgoing) -> Result:
    """An address smtplib cannot write (it would raise): refused for good, nothing sent."""
    return Result(message, False, 553, "5.6.7 the address needs SMTPUTF8")


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


def from_config(config) -> Transport:
    """SMTP when ``SMTP_URL`` is set, else the outbox folder."""
    if config.get("SMTP_URL"):
        return SMTPTransport(SMTPSettings.from_url(config["SMTP_URL"]))
    return OutboxTransport(config["OUTBOX_DIR"])
