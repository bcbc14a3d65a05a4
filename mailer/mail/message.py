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
    try:
        return Address(display_name=display_name, username=local, domain=domain)
    except (ValueError, IndexError) as exc:
        raise InvalidInput("This email address is not valid.") from exc


def fold(name: str, value) -> str:
    """One header, folded with CRLF and RFC 2047 encoded where needed."""
    check_header_value(str(value))
    return SMTP.header_factory(name, str(value)).fold(policy=SMTP)


def raw_header(name: str, value: str) -> str:
    """A header written as given (ASCII, already safe), never encoded."""
    check_header_value(value)
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
        fold("From", str(sender)),
        fold("To", str(to)),
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
