"""Consent records: the append-only proof of each subscribe, confirm and unsubscribe, and the
exact wording each consent was given to (``ConsentText``, kept under the hash of its text).

The sentences a visitor reads are made here, once, for the page and for the record: the
sign-up form's names the newsletters ticked (``sign_up_wording``; the page's script builds the
same sentence as boxes are ticked, from the parts ``sign_up_parts`` gives it), so what is
stored is exactly what was shown for the lists actually chosen.
"""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from flask import current_app
from flask_babel import force_locale, gettext, ngettext
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from .models import ConsentRecord, ConsentText, Subscriber, utcnow

MAX_USER_AGENT = 400
MAX_IP = 45
MAX_WORDING = 4000
NAMES = "{names}"  # where the script puts the chosen newsletters' names


@dataclass(frozen=True)
class Origin:
    """Where a request came from: ``ip`` is what ProxyFix made of the connection."""

    source: str
    ip: str = ""
    user_agent: str = ""


def text_hash(wording: str) -> str:
    return hashlib.sha256(wording.encode("utf-8")).hexdigest()


def keep_text(session: Session, wording: str, language: str = "") -> str:
    """Store ``wording`` unless it is kept already; its hash (the version records name)."""
    wording = wording[:MAX_WORDING]
    digest = text_hash(wording)
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(insert(ConsentText).values(hash=digest, wording=wording, language=language[:8],
                                               created_at=utcnow()).on_conflict_do_nothing(index_elements=["hash"]))
    return digest


def record(session: Session, subscriber: Subscriber, action: str, origin: Origin, *,
           list_id: int | None, version: str = "", text: str = "") -> ConsentRecord:
    """Append one record (the caller commits); ``text``: the hash of the wording seen."""
    entry = ConsentRecord(
        subscriber=subscriber, list_id=list_id, action=action, source=origin.source,
        consent_version=version, consent_text=text, ip=(origin.ip or "")[:MAX_IP],
        user_agent=(origin.user_agent or "")[:MAX_USER_AGENT],
    )
    session.add(entry)
    return entry


def texts(session: Session, hashes: Sequence[str]) -> dict[str, ConsentText]:
    wanted = {value for value in hashes if value}
    if not wanted:
        return {}
    return {item.hash: item for item in session.scalars(select(ConsentText).where(ConsentText.hash.in_(wanted)))}


# --- The sentences -----------------------------------------------------------------------------

def _quote(name: str) -> str:
    return gettext("\u201c%(name)s\u201d", name=name)


def _join(quoted: list[str]) -> str:
    if len(quoted) < 2:
        return "".join(quoted)
    return gettext("%(items)s and %(last)s", items=", ".join(quoted[:-1]), last=quoted[-1])


def _sign_up(count: int, names: str) -> str:
    return ngettext(
        "I agree to receive, by email, the newsletter %(names)s of %(organisation)s about upcoming events. "
        "I can withdraw my consent at any time with the link in every message.",
        "I agree to receive, by email, the newsletters %(names)s of %(organisation)s about upcoming events. "
        "I can withdraw my consent at any time with the link in every message.",
        count, names=names, organisation=current_app.config["ORGANISATION_NAME"])


def sign_up_wording(list_names: Sequence[str], locale: str | None = None) -> str:
    """The sign-up consent sentence naming ``list_names`` (in the order the form lists them),
    in ``locale`` (None: the current one)."""
    if locale is None:
        return _sign_up(len(list_names), _join([_quote(name) for name in list_names]))
    # Made once per app, lists and language (every sign-up asks; a locale forced and three
    # translations looked up were 4 % of a web worker's time a sign-up).
    made = current_app.extensions.setdefault("mailer.sign_up_wordings", {})
    key = (tuple(list_names), locale, current_app.config["ORGANISATION_NAME"])
    wording = made.get(key)
    if wording is None:
        with force_locale(locale):
            wording = _sign_up(len(list_names), _join([_quote(name) for name in list_names]))
        if len(made) > 256:
            made.clear()
        made[key] = wording
    return wording


def sign_up_parts() -> dict[str, str]:
    """What the form's script needs to build ``sign_up_wording`` for the boxes ticked: the
    sentence for 1, 2 and 5 newsletters with ``{names}`` left in (picked by the language's
    plural rules), how a name is quoted, and how the last two are joined."""
    return {"one": _sign_up(1, NAMES), "few": _sign_up(2, NAMES), "many": _sign_up(5, NAMES),
            "quote": _quote(NAMES), "and": gettext("%(items)s and %(last)s", items="{items}", last="{last}"),
            "none": gettext("Tick the newsletters you want to receive.")}


def preferences_wording(locale: str | None = None) -> str:
    """The sentence of the preference centre (joining a list there)."""
    def make() -> str:
        return gettext("By ticking a newsletter I am not yet on, I agree to receive it by email from "
                       "%(organisation)s. I can withdraw my consent at any time on this page or with the "
                       "link in every message.", organisation=current_app.config["ORGANISATION_NAME"])
    if locale is None:
        return make()
    with force_locale(locale):
        return make()


# --- The record, step by step ------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    """One consent record with the wording it names."""

    record: ConsentRecord
    list_name: str | None
    text: ConsentText | None


def history(session: Session, subscriber_id: int) -> tuple[Subscriber, list[Step]]:
    """The subscriber and their consent records, oldest first, each with the list's name and
    the exact wording seen (None for a withdrawal, or a record made before wordings were
    kept). Raises NotFound."""
    from .lookups import get_or_404
    from .models import MailingList

    subscriber = get_or_404(session, Subscriber, subscriber_id)
    records = list(session.scalars(select(ConsentRecord).where(ConsentRecord.subscriber_id == subscriber_id)
                                   .order_by(ConsentRecord.created_at, ConsentRecord.id)))
    names: dict[int, str] = {row.id: row.name for row in session.execute(select(MailingList.id, MailingList.name).where(
        MailingList.id.in_({r.list_id for r in records if r.list_id is not None})))}
    kept = texts(session, [r.consent_text for r in records])
    return subscriber, [Step(r, names.get(r.list_id) if r.list_id is not None else None, kept.get(r.consent_text))
                        for r in records]
