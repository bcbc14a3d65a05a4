"""One campaign's message for one recipient: rendered parts, list headers, bytes.

Fast on purpose (it runs once per recipient of a million): everything that is the same
for every recipient (From, Subject, List-Id, part headers, boundary) is prepared once per
campaign as a skeleton; per recipient only To, Date, Message-ID, the unsubscribe and view
URLs and the name are filled in, bodies are base64 (binascii, 76-character lines), and
the bytes are DKIM-signed when keys are configured.
"""

import binascii
import re
import secrets
from dataclasses import dataclass
from email.utils import formatdate

from flask import current_app

from .. import tokens
from ..models import Campaign
from . import dkim
from .headers import list_headers
from .message import CRLF, Outgoing, address, fold, make_msgid, raw_header
from .render import CompiledCampaign

_PLAIN_NAME = re.compile(r"[A-Za-z0-9 .'-]*")
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~@-]+")
_UNSUBSCRIBE_MARK = "@@mlr-unsubscribe@@"


@dataclass(frozen=True)
class Recipient:
    subscriber_id: int | None  # None for a test send to an address that is not a subscriber
    email: str
    name: str = ""


def _b64(text: str) -> bytes:
    """Base64 of the UTF-8 text with CRLF line ends, in lines of 76 characters."""
    if "\r" in text:  # rendered templates end lines with "\n" only: skip two copies
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    encoded = binascii.b2a_base64(text.encode("utf-8").replace(b"\n", b"\r\n"), newline=False)
    return b"\r\n".join([encoded[i:i + 76] for i in range(0, len(encoded), 76)]) + b"\r\n"


class CampaignMailer:
    """Built once per campaign (cached by the engine); ``message_for`` is called per recipient."""

    def __init__(self, campaign: Campaign, compiled: CompiledCampaign, signer=None):
        config = current_app.config
        self.config = config
        self.campaign_id = campaign.id
        self.compiled = compiled
        self.domain = config["MAIL_DOMAIN"]
        self.sender = address(config["MAIL_FROM_NAME"], config["MAIL_FROM"])
        self.envelope_from = self.sender.addr_spec
        first_list = campaign.lists[0] if campaign.lists else None
        self.list_label = first_list.name if first_list else config["ORGANISATION_NAME"]
        self.list_slug = first_list.slug if first_list else "newsletter"
        self.signer = signer if signer is not None else dkim.from_config(config)
        # The same tokens and URLs as mailer.links, with the serializers built once.
        self.base_url = config["BASE_URL"]
        self._unsubscribe = tokens.serializer(tokens.UNSUBSCRIBE)
        self._view = tokens.serializer(tokens.VIEW)
        self.boundary = "=_" + secrets.token_hex(12)
        extra = list_headers(config, unsubscribe_url=_UNSUBSCRIBE_MARK, label=self.list_label,
                             slug=self.list_slug, campaign_id=campaign.id)
        unsubscribe = [value for name, value in extra if name == "List-Unsubscribe"][0]
        self.unsubscribe_before, _, self.unsubscribe_after = unsubscribe.partition(_UNSUBSCRIBE_MARK)
        self.head_from = fold("From", str(self.sender))
        self.head_subject = fold("Subject", compiled.subject)
        self.head_tail = "".join([
            raw_header("MIME-Version", "1.0"),
            *(raw_header(name, value) for name, value in extra if name != "List-Unsubscribe"),
            raw_header("Content-Type", f'multipart/alternative; boundary="{self.boundary}"'),
            CRLF,
        ]).encode("ascii")
        part = ('--{b}\r\nContent-Type: text/{kind}; charset="utf-8"\r\n'
                "Content-Transfer-Encoding: base64\r\n\r\n")
        self.plain_head = part.format(b=self.boundary, kind="plain").encode("ascii")
        self.html_head = ("\r\n" + part.format(b=self.boundary, kind="html")).encode("ascii")
        self.closing = f"\r\n--{self.boundary}--\r\n".encode("ascii")

    def _to(self, recipient: Recipient) -> str:
        to = address(recipient.name, recipient.email)  # raises InvalidInput on CR/LF
        if _PLAIN_ADDRESS.fullmatch(recipient.email):
            if not recipient.name:
                return f"To: {recipient.email}{CRLF}"
            if _PLAIN_NAME.fullmatch(recipient.name):
                return f'To: "{recipient.name}" <{recipient.email}>{CRLF}'
        return fold("To", str(to))

    def message_for(self, recipient: Recipient, date: str | None = None,
                    message_id: str | None = None) -> Outgoing:
        """Raises InvalidInput when the recipient's name or address cannot go in a header.
        ``date`` (an RFC 5322 date) may be shared by a chunk of messages; ``message_id``
        defaults to a random one on MAIL_DOMAIN."""
        sid = recipient.subscriber_id or 0
        # links.unsubscribe_url / links.view_url, inlined (this runs a million times)
        unsubscribe = f"{self.base_url}/u/{self._unsubscribe.dumps([sid, self.campaign_id])}"
        values = {"name": recipient.name, "email": recipient.email, "unsubscribe_url": unsubscribe,
                  "view_url": f"{self.base_url}/m/{self._view.dumps([self.campaign_id, sid])}"}
        message_id = message_id or make_msgid(self.domain)
        head = "".join([
            self.head_from, self._to(recipient), self.head_subject,
            "Date: ", date or _now_date(), CRLF,
            "Message-ID: ", message_id, CRLF,
            raw_header("List-Unsubscribe", self.unsubscribe_before + unsubscribe + self.unsubscribe_after),
        ]).encode("ascii")
        data = b"".join([head, self.head_tail, self.plain_head, _b64(self.compiled.text(values)),
                         self.html_head, _b64(self.compiled.html(values)), self.closing])
        if self.signer is not None:
            data = self.signer.sign(data)
        return Outgoing(sender=self.envelope_from, recipient=recipient.email, data=data,
                        message_id=message_id)


def _now_date() -> str:
    return formatdate(localtime=False, usegmt=True)
