"""Transports push built messages out: SMTP with connection reuse, or a local outbox folder.

``send`` takes many messages and returns one Result per message, in order, so the
caller records outcomes in bulk. A transport never raises for one recipient's failure.
"""

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

    @property
    def temporary(self) -> bool:
        """A 4xx answer or a lost connection: worth retrying later."""
        return not self.ok and (self.code < 500 or self.code >= 600)

    @property
    def hard_bounce(self) -> bool:
        """5.1.x (bad mailbox or domain): the address should never be mailed again."""
        return not self.ok and self.code >= 500 and self.code < 600 and " 5.1." in f" {self.error}"


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

    @classmethod
    def from_url(cls, url: str) -> "SMTPSettings":
        """``smtp://user:pass@host:port?starttls=1`` or ``smtps://...`` (implicit TLS)."""
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
        )


class SMTPTransport:
    """One SMTP connection, opened lazily, reused across messages, reopened if dropped."""

    def __init__(self, settings: SMTPSettings):
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        context = ssl.create_default_context()
        if s.ssl:
            smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=context)
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        smtp.ehlo()
        if s.starttls:
            smtp.starttls(context=context)
            smtp.ehlo()
        if s.username:
            smtp.login(s.username, s.password)
        return smtp

    def _send_one(self, message: Outgoing) -> Result:
        if self._smtp is None:
            self._smtp = self._connect()
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

    def send(self, messages: Iterable[Outgoing]) -> list[Result]:
        results = []
        for message in messages:
            try:
                results.append(self._send_one(message))
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                self.close()
                try:  # one fresh connection per message before giving up on it
                    results.append(self._send_one(message))
                except (smtplib.SMTPServerDisconnected, OSError) as again:
                    self.close()
                    results.append(Result(message, False, 421, f"connection lost: {again or exc}"))
        return results

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


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def from_config(config) -> Transport:
    """SMTP when ``SMTP_URL`` is set, else the outbox folder."""
    if config.get("SMTP_URL"):
        return SMTPTransport(SMTPSettings.from_url(config["SMTP_URL"]))
    return OutboxTransport(config["OUTBOX_DIR"])
