"""The bounce mailbox the worker polls: IMAP through ``imap-tools``.

BOUNCE_MAILBOX_URL names it: ``imaps://user:password@host:993/INBOX`` (implicit TLS),
``imap://user:password@host:143/INBOX?starttls=1``, or plain ``imap://`` (only for a server
on this host). Options: ``move=Folder`` moves handled messages there (default: deleted),
``cafile=`` trusts a private CA, ``timeout=`` seconds.

Each poll reads up to BOUNCE_MAILBOX_BATCH messages (without marking them seen), hands each
to ``handling.receive_mail`` and commits, and only then deletes or moves it: a crash or a
database failure leaves the message in the mailbox for the next poll, and a message read
twice counts once. Messages over BOUNCE_MAX_MESSAGE_KB are not downloaded; they are moved
(or deleted) as ``oversized``.
"""

import logging
import ssl
from collections import Counter
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from imap_tools import BaseMailBox, MailBox, MailBoxStartTls, MailBoxUnencrypted
from imap_tools.message import MailMessage
from sqlalchemy.orm import Session

from . import handling

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MailboxSettings:
    host: str
    port: int
    username: str
    password: str
    folder: str = "INBOX"
    tls: str = "ssl"  # ssl, starttls, none
    move_to: str = ""
    cafile: str = ""
    timeout: float = 30.0

    @classmethod
    def from_url(cls, url: str) -> "MailboxSettings":
        """Raises ValueError for another scheme or a missing user."""
        parts = urlsplit(url)
        if parts.scheme not in {"imap", "imaps"}:
            raise ValueError(f"BOUNCE_MAILBOX_URL must start with imap:// or imaps://, not {parts.scheme}://")
        if not parts.username:
            raise ValueError("BOUNCE_MAILBOX_URL needs a user name and password")
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        starttls = query.get("starttls", "0").lower() in {"1", "true", "yes"}
        tls = "ssl" if parts.scheme == "imaps" else ("starttls" if starttls else "none")
        return cls(host=parts.hostname or "localhost",
                   port=parts.port or (993 if parts.scheme == "imaps" else 143),
                   username=unquote(parts.username), password=unquote(parts.password or ""),
                   folder=unquote(parts.path.lstrip("/")) or "INBOX", tls=tls,
                   move_to=query.get("move", ""), cafile=query.get("cafile", ""),
                   timeout=float(query.get("timeout", 30)))

    def connect(self):
        context = ssl.create_default_context(cafile=self.cafile or None) if self.tls != "none" else None
        box: BaseMailBox
        if self.tls == "ssl":
            box = MailBox(self.host, self.port, timeout=self.timeout, ssl_context=context)
        elif self.tls == "starttls":
            box = MailBoxStartTls(self.host, self.port, timeout=self.timeout, ssl_context=context)
        else:
            box = MailBoxUnencrypted(self.host, self.port, timeout=self.timeout)
        return box.login(self.username, self.password, initial_folder=self.folder)


class RawMessage(MailMessage):
    """imap-tools' message that also keeps the bytes exactly as the server sent them."""

    def __init__(self, fetch_data: list) -> None:
        super().__init__(fetch_data)
        self.raw = self._get_message_data_parts(fetch_data)[0]


def poll(session: Session, config) -> dict[str, int]:
    """Read the mailbox once; returns how many messages came to what (recorded, duplicate,
    auto_reply, forged, oversized ...). Raises the IMAP or database error that stopped it
    (what was committed before stays done)."""
    settings = MailboxSettings.from_url(config["BOUNCE_MAILBOX_URL"])
    limit = config["BOUNCE_MAX_MESSAGE_KB"] * 1024
    counts: Counter = Counter()
    with settings.connect() as box:
        box.email_message_class = RawMessage
        heads = list(box.fetch("ALL", mark_seen=False, headers_only=True,
                               limit=config["BOUNCE_MAILBOX_BATCH"], bulk=True))
        wanted = [m.uid for m in heads if m.uid and m.size_rfc822 <= limit]
        oversized = [m.uid for m in heads if m.uid and m.size_rfc822 > limit]
        if oversized:
            _done(box, settings, oversized)
            counts["oversized"] += len(oversized)
            log.warning("bounce mailbox: %d message(s) over %d KB set aside", len(oversized), limit // 1024)
        for message in (box.fetch(uid_list=wanted, mark_seen=False, bulk=20) if wanted else ()):
            try:
                outcome = handling.receive_mail(session, message.raw, source="imap")
                session.commit()
            except Exception:
                session.rollback()
                raise
            _done(box, settings, [message.uid])
            counts[outcome.verdict] += 1
    return dict(counts)


def _done(box, settings: MailboxSettings, uids: list[str]) -> None:
    if settings.move_to:
        box.move(uids, settings.move_to)
    else:
        box.delete(uids)
