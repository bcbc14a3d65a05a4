"""Well-formed MIME bytes, assembled by hand: one builder for every message we send.

A ``Skeleton`` holds what is the same for every recipient of a message (From, Subject, the
list headers, the part headers, the bodies with their recipient markers) and is made once;
``render`` fills in one recipient (To, Date, Message-ID, List-Unsubscribe and the marked
values) and returns the exact bytes to send, DKIM-signed when a signer is given. Campaigns
make one skeleton per campaign and render it a million times; a notice makes one and renders
it once. The builder knows nothing of models, tokens or the app: it is fed plain values.

Why by hand: the standard library's ``policy.SMTP`` RFC 2047-encodes a bracketed URL longer
than about 77 characters, breaking ``List-Unsubscribe``, and is ~25x slower. Headers are
folded one by one (encoded words only where needed, each at most 75 characters), then
``multipart/alternative`` with text/plain before text/html.

Transfer encoding: base64 for both parts, chosen for speed (it runs once per recipient).
Timed with ``timeit`` on the built-in announcement (8.3 kB of Polish HTML and text):
base64 42 us a message, quoted-printable 96 us (``b2a_qp`` and its CRLF pass); quoted-
printable is 16 % smaller (9.7 kB against 11.5 kB). Both are 7-bit, so DKIM signatures
survive relays that would re-encode 8-bit bodies.
"""

import binascii
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.policy import SMTP
from email.utils import formatdate
from typing import Protocol

from ..errors import InvalidInput

CRLF = "\r\n"
Body = Callable[..., str]  # (the recipient's values[, the event sections kept]) -> the part's text


@dataclass(frozen=True)
class Outgoing:
    """What a transport needs: the envelope and the exact bytes to send."""

    sender: str  # the envelope sender (MAIL FROM, Return-Path): a VERP address
    recipient: str
    data: bytes
    message_id: str

    @property
    def needs_smtputf8(self) -> bool:
        return not (self.sender.isascii() and self.recipient.isascii())


class Signer(Protocol):
    def sign(self, message: bytes) -> bytes: ...


_UNSAFE_IN_HEADERS = re.compile("[\x00-\x08\x0a-\x1f\x7f\u2028\u2029]")


def check_header_value(value: str) -> str:
    """Return ``value``; raise InvalidInput if it holds CR, LF, NUL or another control
    character (header injection, or a header a client shows garbled), TAB excepted."""
    if _UNSAFE_IN_HEADERS.search(value):
        raise InvalidInput("Line breaks are not allowed here.")
    return value


def address(display_name: str, email: str) -> Address:
    """An Address from a display name and an address; raises InvalidInput."""
    check_header_value(display_name)
    check_header_value(email)
    local, _, domain = email.rpartition("@")
    if not local or not domain:
        raise InvalidInput("This email address is not valid.")
    try:
        return Address(display_name=display_name, username=local, domain=domain)
    except (ValueError, IndexError) as exc:
        raise InvalidInput("This email address is not valid.") from exc


ADDRESS_HEADERS = {"from", "to", "cc", "reply-to", "sender"}
# 42 bytes of UTF-8 make 56 base64 characters: "=?utf-8?b?" + 56 + "?=" = 68 <= 75 (RFC 2047),
# and "Subject: " + 68 still fits a 78-character line.
_WORD_BYTES = 42


def encoded_words(text: str, separator: str = CRLF + " ") -> str:
    """``text`` as RFC 2047 encoded words of at most 68 characters, never splitting a character."""
    chunks: list[str] = []
    chunk: list[str] = []
    size = 0
    for ch in text:
        width = len(ch.encode("utf-8"))
        if size + width > _WORD_BYTES:
            chunks.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(ch)
        size += width
    chunks.append("".join(chunk))
    return separator.join(
        "=?utf-8?b?" + binascii.b2a_base64(c.encode("utf-8"), newline=False).decode("ascii") + "?="
        for c in chunks
    )


def fold(name: str, value: str | Address) -> str:
    """One header line (CRLF-folded). Non-ASCII text and display names become encoded words
    of at most 75 characters; an address whose mailbox is not ASCII is written in UTF-8
    (RFC 6532: sent only where the server offers SMTPUTF8). Raises InvalidInput on CR/LF."""
    if name.lower() in ADDRESS_HEADERS:
        if isinstance(value, Address):
            mailbox = value
        else:
            check_header_value(value)
            mailbox = SMTP.header_factory(name, value).addresses[0]
        check_header_value(mailbox.display_name)
        if not mailbox.addr_spec.isascii():
            phrase = encoded_words(mailbox.display_name) + CRLF + " " if mailbox.display_name else ""
            return f"{name}: {phrase}<{mailbox.addr_spec}>{CRLF}"
        if mailbox.display_name and not mailbox.display_name.isascii():
            return f"{name}: {encoded_words(mailbox.display_name)}{CRLF} <{mailbox.addr_spec}>{CRLF}"
        value = str(mailbox)
    text = str(value)
    check_header_value(text)
    if text.isascii():
        return str(SMTP.header_factory(name, text).fold(policy=SMTP))
    return f"{name}: {encoded_words(text)}{CRLF}"


def raw_header(name: str, value: str) -> str:
    """A header written as given: ASCII, already folded (CRLF only before white space)."""
    check_header_value(value.replace(CRLF + " ", " ").replace(CRLF + "\t", " "))
    value.encode("ascii")
    return f"{name}: {value}{CRLF}"


def make_msgid(domain: str) -> str:
    return f"<{int(time.time() * 1000):x}.{secrets.token_hex(8)}@{domain}>"


def now_date() -> str:
    """An RFC 5322 date; one may be shared by the messages of a second."""
    return formatdate(localtime=False, usegmt=True)


def base64_body(text: str) -> bytes:
    """Base64 of the UTF-8 text with CRLF line ends, in lines of 76 characters."""
    if "\r" in text:  # rendered templates end lines with "\n" only: skip two copies
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    encoded = binascii.b2a_base64(text.encode("utf-8").replace(b"\n", b"\r\n"), newline=False)
    return b"\r\n".join([encoded[i:i + 76] for i in range(0, len(encoded), 76)]) + b"\r\n"


_PLAIN_NAME = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 .'-")
_PLAIN_ADDRESS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                           ".!#$%&'*+/=?^_`{|}~@-")


class Skeleton:
    """One message's fixed parts; ``render`` makes one recipient's bytes.

    ``headers`` are extra ASCII headers written verbatim after the fixed ones (List-Id,
    List-Unsubscribe-Post, Feedback-ID ...); ``unsubscribe_suffix`` follows each
    recipient's ``<url>`` in List-Unsubscribe (``, <mailto:...>``). Raises InvalidInput on
    CR/LF in any header value."""

    def __init__(self, *, sender: Address, subject: str, text: Body, html: Body,
                 headers: Sequence[tuple[str, str]] = (), language: str = "",
                 unsubscribe_suffix: str = "", signer: Signer | None = None):
        self.text, self.html, self.signer = text, html, signer
        self.unsubscribe_suffix = unsubscribe_suffix
        self.boundary = "=_" + secrets.token_hex(12)
        self.head = (fold("From", sender) + fold("Subject", subject)).encode("ascii")
        self.tail = "".join([
            raw_header("MIME-Version", "1.0"),
            *(raw_header(name, value) for name, value in headers),
            *([raw_header("Content-Language", language)] if language else []),
            raw_header("Content-Type", f'multipart/alternative; boundary="{self.boundary}"'),
            CRLF,
        ]).encode("ascii")
        part = ('--{b}\r\nContent-Type: text/{kind}; charset="utf-8"\r\n'
                "Content-Transfer-Encoding: base64\r\n\r\n")
        self.plain_head = part.format(b=self.boundary, kind="plain").encode("ascii")
        self.html_head = ("\r\n" + part.format(b=self.boundary, kind="html")).encode("ascii")
        self.closing = f"\r\n--{self.boundary}--\r\n".encode("ascii")

    @staticmethod
    def _to(name: str, email: str) -> bytes:
        if _PLAIN_ADDRESS.issuperset(email) and _PLAIN_NAME.issuperset(name) and "@" in email:
            line = f'To: "{name}" <{email}>\r\n' if name else f"To: {email}\r\n"
            return line.encode("ascii")
        return fold("To", address(name, email)).encode("utf-8")

    def render(self, *, to_name: str, to_email: str, return_path: str, message_id: str,
               values: Mapping[str, str] | None = None, date: str | None = None,
               unsubscribe_url: str = "", events: frozenset[int] | None = None) -> Outgoing:
        """The bytes for one recipient. ``values`` fill the bodies' markers; ``date`` (RFC
        5322) may be shared by many messages; ``events``: the event sections a campaign's
        copy keeps (None: all; ``Personalizer``). Raises InvalidInput when the recipient's name
        or address cannot go in a header."""
        values = values or {}
        recipient = [b"Date: ", (date or now_date()).encode("ascii"), b"\r\nMessage-ID: ",
                     message_id.encode("ascii"), b"\r\n"]
        if unsubscribe_url:
            recipient += [raw_header("List-Unsubscribe", f"<{unsubscribe_url}>{self.unsubscribe_suffix}")
                          .encode("ascii")]
        data = b"".join([self.head, self._to(to_name, to_email), *recipient, self.tail,
                         self.plain_head, base64_body(self.text(values) if events is None
                                                      else self.text(values, events)),
                         self.html_head, base64_body(self.html(values) if events is None
                                                     else self.html(values, events)), self.closing])
        if self.signer is not None:
            data = self.signer.sign(data)
        return Outgoing(sender=return_path, recipient=to_email, data=data, message_id=message_id)
