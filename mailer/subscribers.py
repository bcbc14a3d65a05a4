"""Email addresses: validation and normalization in one place."""

from email_validator import EmailNotValidError, validate_email

from .errors import InvalidInput
from .mail.message import check_header_value

MAX_EMAIL = 254


def normalize_email(raw: str) -> str:
    """The address as stored: validated, IDN domain in ASCII, lower case.

    Raises InvalidInput for anything that is not a deliverable-looking address,
    including CR/LF, over-long input and non-ASCII local parts (SMTPUTF8)."""
    raw = (raw or "").strip()
    if not raw:
        raise InvalidInput("Enter your email address.", "email")
    if len(raw) > MAX_EMAIL:
        raise InvalidInput("This email address is too long.", "email")
    try:
        check_header_value(raw)
        result = validate_email(raw, check_deliverability=False, allow_smtputf8=False)
    except (EmailNotValidError, InvalidInput) as exc:
        raise InvalidInput("This email address is not valid.", "email") from exc
    return result.ascii_email.lower()
