"""Text folded for search: lower case, without diacritics (Polish ł and ø, ß, æ, œ
included), so "ŻÓŁĆ", "Łukasz" and "lukasz" match alike on SQLite (whose lower() folds only
A-Z) and on PostgreSQL, whatever the database's collation.

Subscribers keep their address and name folded in ``search_text`` (set by
``mailer.subscribers`` for ORM writes and by every bulk insert with ``subscriber_text``);
a search folds its query the same way and looks for it as a substring (a trigram index on
PostgreSQL).
"""

import unicodedata

from .addresses import shown_email

# Letters that Unicode does not decompose into a base letter and a mark.
_SPECIAL = str.maketrans({"ł": "l", "Ł": "l", "đ": "d", "Đ": "d", "ø": "o", "Ø": "o", "ß": "ss",
                          "æ": "ae", "Æ": "ae", "œ": "oe", "Œ": "oe", "ı": "i", "ħ": "h", "Ħ": "h"})
MAX_TEXT = 600


def _slow(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(_SPECIAL))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


# Latin letters with marks folded by one table lookup each (an import folds a million names).
_TABLE = {code: _slow(_slow(chr(code))) for code in range(0x80, 0x250)}


def fold(text: str | None) -> str:
    """``text`` in lower case without diacritics."""
    text = text or ""
    if text.isascii():
        return text.lower()
    folded = text.translate(_TABLE)
    return folded.lower() if folded.isascii() else _slow(folded)


def subscriber_text(email: str | None, name: str | None) -> str:
    """What a subscriber is found by: the folded address and name, one space apart; an
    address with an IDN domain also as it is shown (``jan@łódź.pl`` is found by "lodz")."""
    shown = shown_email(email)
    address = fold(email) if shown == email else f"{fold(email)} {fold(shown)}"
    return f"{address} {fold(name)}"[:MAX_TEXT]
