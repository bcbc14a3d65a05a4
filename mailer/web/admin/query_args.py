"""Values the staff pages read from a query string or form: checked once, here."""

from flask import abort

from ...lookups import MAX_ID


def number(values, name: str, largest: int = MAX_ID) -> int | None:
    """A whole number from a query or form field, 1 .. ``largest`` (a row id, a page's key);
    absent: None; anything else is a 400."""
    raw = values.get(name)
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw[:12]) <= largest:
        abort(400)
    return int(raw)
