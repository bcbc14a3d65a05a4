"""Email addresses: validation, normalization and the keyed hash, in one place."""

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy import event, inspect

from .addresses import shown_email  # noqa: F401 (the address rules in one place)
from .errors import InvalidInput
from .folding import subscriber_text
from .mail.message import check_header_value
from .models import Subscriber

MAX_EMAIL = 254
# Plain addresses that email_validator accepts as they are (ASCII dot-atom local part of
# letters, digits, _ + -; LDH domain labels; an alphabetic TLD): checked here in a
# microsecond, the rest by email_validator (a CSV import of a million rows spent half its
# Python time there). The special-use TLDs it refuses are refused here too.
_PLAIN = re.compile(r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
                    r"[A-Za-z]{2,63}")
_SPECIAL_TLDS = {"arpa", "invalid", "local", "localhost", "onion", "test"}
MAX_NAME = 200
# Characters no name may hold: C0 and C1 controls, DEL, line and paragraph separators, the
# replacement character (undecodable input), bidirectional overrides (text that reads
# differently from how it is stored), and lone surrogates.
_NOT_IN_NAMES = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ufffd\u202a-\u202e\u2066-\u2069"
                           "\ud800-\udfff]")


@lru_cache(maxsize=4096)  # a sign-up checks its address twice (the rate limit's key, then the form)
def normalize_email(raw: str) -> str:
    """The address as stored: validated, lower case, the domain in ASCII (an IDN as its
    A-label: what the envelope needs), a local part with non-ASCII letters (RFC 6531,
    ``małgorzata.wiśniewska@``) kept in Unicode, NFC-normalised. Every way in (form, API,
    CSV import, staff forms, the CLI) goes through here.

    Raises InvalidInput for anything that is not a deliverable-looking address, including
    CR/LF and over-long input."""
    raw = (raw or "").strip()
    if not raw:
        raise InvalidInput("Enter your email address.", "email")
    if len(raw) > MAX_EMAIL:
        raise InvalidInput("This email address is too long.", "email")
    if _PLAIN.fullmatch(raw) and raw.index("@") <= 64 and "xn--" not in raw.lower() \
            and raw.rsplit(".", 1)[1].lower() not in _SPECIAL_TLDS and len(raw) - raw.index("@") <= 254:
        return raw.lower()
    try:
        check_header_value(raw)
        result = validate_email(unicodedata.normalize("NFC", raw), check_deliverability=False,
                                allow_smtputf8=True)
    except (EmailNotValidError, InvalidInput) as exc:
        raise InvalidInput("This email address is not valid.", "email") from exc
    local = unicodedata.normalize("NFC", result.local_part.lower())
    address = f"{local}@{result.ascii_domain.lower()}"
    if len(address.encode("utf-8")) > MAX_EMAIL:
        raise InvalidInput("This email address is too long.", "email")
    return address


def address_key(raw: str | None) -> str:
    """An address typed to find someone (a sign-in, a preview, a suppression lookup, a
    bounce's recipient) as stored addresses are written: normalized (NFC, an IDN domain as
    its A-label, lower case); when it is no valid address, only trimmed and lower-cased (it
    then matches what it matched before)."""
    try:
        return normalize_email(raw or "")
    except InvalidInput:
        return (raw or "").strip().lower()


# Domains that ignore dots in the local part (one mailbox for j.kowalski@ and jkowalski@).
DOTLESS_DOMAINS = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}


def mailbox(email: str) -> str:
    """The mailbox a human reads behind a normalized address: the +tag dropped (every large
    provider delivers ``name+anything@`` to ``name@``), and for Gmail the dots too. For rate
    limits only: mail still goes to the address as given."""
    local, _sep, domain = email.rpartition("@")
    local = local.split("+", 1)[0] or local
    if domain in DOTLESS_DOMAINS:
        local, domain = local.replace(".", "") or local, DOTLESS_DOMAINS[domain]
    return f"{local}@{domain}"


def clean_name(raw: str | None) -> str:
    """A display name as stored, from any source (form, embed, API, CSV import): runs of
    spaces folded; raises InvalidInput (overlong, line breaks, control characters)."""
    name = " ".join((raw or "").split(" ")).strip()
    if len(name) > MAX_NAME:
        raise InvalidInput("Your name is too long.", "name")
    if "\r" in name or "\n" in name:
        raise InvalidInput("Line breaks are not allowed here.", "name")
    if _NOT_IN_NAMES.search(name):
        raise InvalidInput("Your name contains characters that are not allowed.", "name")
    return name


def email_hash(email: str) -> str:
    """HMAC-SHA256 of the normalized address under SUPPRESSION_KEY (kept apart from
    SECRET_KEY so rotating that does not forget who must never be mailed). Subscribers carry
    it, and the suppression list holds nothing else."""
    return email_hasher()(email)


def email_hasher() -> Callable[[str], str]:
    """``email_hash`` with the key looked up once, for hashing many addresses in a row (a CSV
    import of a million rows spent 4 us a row in ``email_hash``, 1.5 us here)."""
    key = _hash_key(current_app.config["SUPPRESSION_KEY"] or current_app.config["SECRET_KEY"])
    return lambda email: hmac.digest(key, email.strip().lower().encode(), "sha256").hex()


@lru_cache(maxsize=8)
def _hash_key(secret: str) -> bytes:
    return hashlib.sha256(b"mailer.suppression:" + secret.encode()).digest()


@event.listens_for(Subscriber, "before_insert")
@event.listens_for(Subscriber, "before_update")
def _hash_address(_mapper: Any, _connection: Any, subscriber: Subscriber) -> None:
    """Keep ``email_hash`` in step with ``email``, and ``search_text`` with the address and
    name, for subscribers written through the ORM (bulk statements compute both themselves:
    ``email_hash``, ``mailer.folding.subscriber_text``)."""
    state = inspect(subscriber).attrs
    if subscriber.email_hash is None or state.email.history.has_changes():
        subscriber.email_hash = email_hash(subscriber.email)
    if not subscriber.search_text or state.email.history.has_changes() or state.name.history.has_changes():
        subscriber.search_text = subscriber_text(subscriber.email, subscriber.name)


def locale_of(session, subscriber_id: int) -> str | None:
    """A subscriber's language (None: no such subscriber): for pages opened from their mail."""
    from sqlalchemy import select

    from .lookups import MAX_ID

    if not 0 < subscriber_id <= MAX_ID:
        return None
    return session.scalar(select(Subscriber.locale).where(Subscriber.id == subscriber_id))
