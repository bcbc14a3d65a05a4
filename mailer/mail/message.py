"""Well-formed MIME bytes for one recipient, assembled by hand.

The standard library's ``policy.SMTP`` RFC 2047-encodes a bracketed URL longer than
about 77 characters, breaking ``List-Unsubscribe``; it is also ~25x slower than
assembling the bytes. So the structure is fixed here: headers folded one by one
(encoded words only where needed, each at most 75 characters), then
``multipart/alternative`` with text/plain before text/html, both quoted-printable.
"""

import binascii
import secrets
import time
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.policy import SMTP
from email.utils import formatdate

from ..errors import InvalidInput

CRLF = "\r\n"


@dataclass(frozen=True)
class Outgoing:
    """What a transport needs: the envelope and the exact bytes to send."""

    sender: str
    recipient: str
    data: bytes
    message_id: str
    meta: dict = field(default_factory=dict, compare=False)


def check_header_value(value: str) -> str:
    """Return ``value``; raise InvalidInput if it holds CR, LF or NUL (header injection)."""
    if any(ch in value for ch in "\r\n\x00"):
        raise InvalidInput("Line breaks are not allowed here.")
    return value


def address(display_name: str, email: str) -> Address:
    """An Address from a display name and an ASCII address; raises InvalidInput."""
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
    chunks, chunk, size = [], [], 0
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


def fold(name: str, value) -> str:
    """One header line (CRLF-folded). Non-ASCII text and display names become encoded words
    of at most 75 characters; ``value`` is a str, or an Address for address headers.
    Raises InvalidInput on CR/LF."""
    if name.lower() in ADDRESS_HEADERS:
        if not isinstance(value, Address):
            check_header_value(value)
            value = SMTP.header_factory(name, value).addresses[0]
        check_header_value(value.display_name)
        if value.display_name and not value.display_name.isascii():
            return f"{name}: {encoded_words(value.display_name)}{CRLF} <{value.addr_spec}>{CRLF}"
        value = str(value)
    check_header_value(value)
    if value.isascii():
        return SMTP.header_factory(name, value).fold(policy=SMTP)
    return f"{name}: {encoded_words(value)}{CRLF}"


def raw_header(name: str, value: str) -> str:
    """A header written as given: ASCII, already folded (CRLF only before white space)."""
    check_header_value(value.replace(CRLF + " ", " ").replace(CRLF + "\t", " "))
    value.encode("ascii")
    return f"{name}: {value}{CRLF}"


def make_msgid(domain: str) -> str:
    return f"<{int(time.time() * 1000):x}.{secrets.token_hex(8)}@{domain}>"


def qp(text: str) -> bytes:
    """Quoted-printable UTF-8 with CRLF line ends."""
    normalized = text.replace("\r\n", "\n").replace("\r", "\n")
    # b2a_qp ends soft and hard line breaks with LF here; the wire wants CRLF.
    return binascii.b2a_qp(normalized.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")


def build(*, sender: Address, to: Address, subject: str, text: str, html: str, domain: str,
          headers: list[tuple[str, str]] = (), envelope_from: str | None = None,
          message_id: str | None = None) -> Outgoing:
    """The message as bytes. ``headers`` are extra ASCII headers written verbatim
    (List-Unsubscribe, List-Id, Feedback-ID ...). Raises InvalidInput on CR/LF."""
    message_id = message_id or make_msgid(domain)
    boundary = "=_" + secrets.token_hex(12)
    head = [
        fold("From", sender),
        fold("To", to),
        fold("Subject", subject),
        raw_header("Date", formatdate(localtime=False, usegmt=True)),
        raw_header("Message-ID", message_id),
        raw_header("MIME-Version", "1.0"),
        *(raw_header(name, value) for name, value in headers),
        raw_header("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
    ]
    part_head = 'Content-Type: text/{kind}; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
    data = b"".join([
        "".join(head).encode("ascii"), b"\r\n",
        f"--{boundary}\r\n{part_head.format(kind='plain')}".encode("ascii"), qp(text), b"\r\n",
        f"--{boundary}\r\n{part_head.format(kind='html')}".encode("ascii"), qp(html), b"\r\n",
        f"--{boundary}--\r\n".encode("ascii"),
    ])
    return Outgoing(sender=envelope_from or sender.addr_spec, recipient=to.addr_spec,
                    data=data, message_id=message_id)
