"""Addresses as people read them: an internationalised domain (IDN) is stored and sent as
its A-label (``xn--...``, what the SMTP envelope needs) and shown as its U-label (``łódź.pl``)."""

import idna


def shown_email(email: str | None) -> str:
    """``email`` with an IDN domain in its own letters; as stored where it cannot be decoded."""
    email = email or ""
    local, sep, domain = email.rpartition("@")
    if not sep or "xn--" not in domain.lower():
        return email
    try:
        return f"{local}@{idna.decode(domain)}"
    except (idna.IDNAError, UnicodeError):
        return email
