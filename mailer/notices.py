"""Notices: the mails the service owes one subscriber (the confirmation link, the welcome, a
preference-centre link and an erasure's confirmation link, both asked for by the subscriber).

A notice is a row written in the transaction that owes it (``queue``), so a commit never
mails nobody and a lost task loses nothing. ``send`` (a task body) claims due notices
with a lease, renders each from ``templates/email`` in its subscriber's language and sends
them all over one connection with the engine's ``dispatch``: journaled, recorded in bulk,
fenced by the lease. A notice is sent once even when its task runs twice. Confirmations
past the site-wide hourly cap (``PENDING_MAX_PER_HOUR``) wait for the next free slot
instead of being dropped; ``backlog`` tells staff how many wait.

The Notice row is its own outbox: no Job row is written per notice. After the commit a
sender is woken (``wake``), at most once while a woken sender has not ended (a Redis key
it deletes when it ends, then looks for due notices once more; a process that found one
awake asks again only ``AWAKE_SECONDS`` later), so 500 sign-ups a second keep one sender busy
sending them by the batch, not 500 tasks; beat's ``tick`` starts one for any due notice a
lost wake-up left behind.
"""

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from functools import cache, partial
from typing import NamedTuple, cast

from flask import current_app, render_template
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Table,
    Text,
    and_,
    bindparam,
    event,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from . import links, tokens
from .dispatch import Item, Outcome, Run, dispatch
from .errors import InvalidInput
from .extensions import db
from .jobs import send_now
from .journal import open_journal
from .mail import dkim
from .mail.headers import ListSettings, list_headers
from .mail.message import Outgoing, Skeleton, address, make_msgid
from .mail.render import MARKERS, Personalizer, Rendered, inline_css
from .mail.transport import from_config
from .models import (
    MailingList,
    Notice,
    NoticeKind,
    NoticeStatus,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Suppression,
)
from .models.types import utcnow
from .ratelimit import RateLimiter
from .statements import in_list, param
from .verp import SUBSCRIBER, Verp

TASK = "mailer.send_notices"
BATCH = 200  # notices claimed at a time
QUEUED = NoticeStatus.QUEUED
WAKE_SECONDS = 2.0  # a wake-up whose sender has not ended by then is sent again
RUN_SECONDS = 1.5  # a sender's turn while notices keep coming (under WAKE_SECONDS)
PACE_SECONDS = 0.1  # the least time between a sender's batches while notices keep coming
AWAKE_SECONDS = 0.1  # a process that found a sender awake does not ask again for this long
_WAKE = "mailer.wake_notices"
_awake: dict[str, float] = {}  # wake-up key -> when this process last found (or made) a sender awake
_let_go_count: dict[str, int] = {}  # wake-up key -> senders of this process that ended
_awake_lock = threading.Lock()
log = logging.getLogger(__name__)


def queue(session: Session, subscriber_id: int, kind: NoticeKind) -> None:
    """Owe ``subscriber_id`` a notice; it is sent after the caller commits."""
    session.add(Notice(kind=kind, subscriber_id=subscriber_id))
    wake(session)


def wake(session: Session) -> None:
    """Wake a sender once ``session`` commits (for notices written by other means too)."""
    session.info[_WAKE] = True


def _wake_key(config) -> str:
    return f"{config['REDIS_PREFIX']}:notices-wake"


def _redis():
    """The app's Redis client for wake-ups (None without REDIS_URL)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if not app.config["REDIS_URL"]:
        return None
    client = app.extensions.get("notices_redis")
    if client is None:
        import redis

        client = app.extensions["notices_redis"] = redis.Redis.from_url(
            app.config["REDIS_URL"], socket_timeout=1, socket_connect_timeout=1)
    return client


def wake_now() -> None:
    """Publish the sender task unless a sender woken less than WAKE_SECONDS ago has not
    ended yet (it sends what is written meanwhile). Raises the broker's errors.

    A process that found a sender awake asks again only AWAKE_SECONDS later: at hundreds of
    sign-ups a second the question was a twentieth of a web worker's CPU. Should that sender
    end in between, a notice written meanwhile waits for beat's tick (TICK_SECONDS)."""
    client = _redis()
    if client is None:
        send_now(TASK)
        return
    key = _wake_key(current_app.config)
    if time.monotonic() - _awake.get(key, -AWAKE_SECONDS) < AWAKE_SECONDS:
        return
    ended = _let_go_count.get(key, 0)
    woken = client.set(key, 1, nx=True, px=int(WAKE_SECONDS * 1000))
    with _awake_lock:
        if _let_go_count.get(key, 0) == ended:  # not if a sender of this process ended meanwhile
            _awake[key] = time.monotonic()
    if woken:
        send_now(TASK)


def _let_go() -> None:
    """A sender ends: the next notice written wakes another one."""
    client = _redis()
    if client is not None:
        key = _wake_key(current_app.config)
        with _awake_lock:  # this process asks Redis again (its own last look, first)
            _awake.pop(key, None)
            _let_go_count[key] = _let_go_count.get(key, 0) + 1
        try:
            client.delete(key)
        except Exception:
            log.warning("could not clear the notices wake-up key", exc_info=True)


def _wake_or_leave_to_tick() -> None:
    try:
        wake_now()
    except Exception:  # the rows wait for beat's tick
        log.warning("could not wake a notices sender; the tick will", exc_info=True)


@event.listens_for(Session, "after_commit")
def _wake_after_commit(session: Session) -> None:
    if session.info.pop(_WAKE, False):
        _wake_or_leave_to_tick()


@event.listens_for(Session, "after_rollback")
def _forget_wake(session: Session) -> None:
    session.info.pop(_WAKE, None)


def backlog(session: Session) -> dict[str, int]:
    """Notices waiting to be sent, and of them the confirmations held back by the hourly
    cap (for the staff dashboard and the metrics; an index range over queued rows only)."""
    now = utcnow()
    waiting = session.scalar(select(func.count()).where(Notice.status == QUEUED)) or 0
    capped = session.scalar(select(func.count()).where(
        Notice.status == QUEUED, Notice.kind == NoticeKind.CONFIRM, Notice.available_at > now)) or 0
    return {"waiting": waiting, "capped": capped}


# --- Rendering ---------------------------------------------------------------------

def render(name: str, subject: str, **context) -> Rendered:
    """``templates/email/{name}.html`` and ``.txt`` with ``context``; CSS inlined."""
    html = inline_css(render_template(f"email/{name}.html", subject=subject, **context))
    text = render_template(f"email/{name}.txt", subject=subject, **context)
    return Rendered(subject, html, text)


class Reader(NamedTuple):
    """What a notice needs of its subscriber, read with the batch (``_prepare``): the
    subscriber's lists, ``(name, slug)`` each in list order, pending and confirmed."""

    id: int
    email: str
    name: str
    locale: str
    confirm_nonce: str | None
    email_hash: str
    suppressed: bool
    pending: tuple[tuple[str, str], ...] = ()
    confirmed: tuple[tuple[str, str], ...] = ()


def _message(kind: NoticeKind, reader: Reader, verp: Verp) -> Outgoing | None:
    """The notice for its subscriber, or None when there is nothing left to tell them
    (nothing pending to confirm, nothing confirmed to welcome)."""
    config = current_app.config
    lists: tuple[tuple[str, str], ...] = ()
    values = {"name": reader.name or ""}
    unsubscribe_url = ""
    if kind == NoticeKind.MANAGE:
        values["manage_url"] = links.manage_url(reader.id)
    elif kind == NoticeKind.ERASE:
        from .preferences import erase_token

        values["action_url"] = links.erase_url(erase_token(reader.id, reader.email_hash))
    else:
        lists = reader.pending if kind == NoticeKind.CONFIRM else reader.confirmed
        if not lists or (kind == NoticeKind.CONFIRM and not reader.confirm_nonce):
            return None
        if kind == NoticeKind.CONFIRM:
            values["action_url"] = links.confirm_url(
                tokens.sign_timed(tokens.CONFIRM, [reader.id, reader.confirm_nonce]))
        else:
            unsubscribe_url = values["unsubscribe_url"] = links.unsubscribe_url(reader.id)
            values["manage_url"] = links.manage_url(reader.id)
    skeleton = _copy(kind, reader.locale or "", lists, bool(reader.name))
    return skeleton.render(to_name=reader.name, to_email=reader.email,
                           return_path=verp.return_path(SUBSCRIBER, reader.id),
                           message_id=make_msgid(config["MAIL_DOMAIN"]), values=values,
                           unsubscribe_url=unsubscribe_url)


COPIES = 512  # rendered notices a process keeps (kinds x languages x sets of lists x named)


def _copy(kind: NoticeKind, locale: str, lists: tuple[tuple[str, str], ...], named: bool) -> Skeleton:
    """The notice of ``kind`` rendered once for every reader of one language and set of
    lists (``(name, slug)`` each), with or without a name: Jinja, gettext and CSS inlining
    per message were half of a sender's CPU a confirmation. The reader's name and links are
    markers (``MARKERS``) each copy fills in, escaped in the HTML part."""
    copies = current_app.extensions.setdefault("notice_copies", {})
    key = (kind, locale, lists, named)
    skeleton = copies.get(key)
    if skeleton is None:
        if len(copies) >= COPIES:
            copies.clear()
        skeleton = copies[key] = _render_copy(kind, locale, lists, named)
    return skeleton


def _render_copy(kind: NoticeKind, locale: str, lists: tuple[tuple[str, str], ...], named: bool) -> Skeleton:
    config = current_app.config
    common = {"recipient_name": MARKERS["name"] if named else "", "organisation": config["ORGANISATION_NAME"]}
    names = [name for name, _slug in lists]
    headers: list[tuple[str, str]] = []
    suffix = ""
    with force_locale(locale or None):
        if kind == NoticeKind.CONFIRM:
            rendered = render("confirm", _("Confirm your subscription"), confirm_url=MARKERS["action_url"],
                              hours=config["CONFIRM_MAX_AGE"] // 3600, lists=names, **common)
        elif kind == NoticeKind.WELCOME:
            first_name, first_slug = lists[0]
            rendered = render("welcome", _("Welcome to the newsletter: %(name)s", name=first_name),
                              lists=names, unsubscribe_url=MARKERS["unsubscribe_url"],
                              home_url=links.absolute(f"/?lang={locale}"),  # their language
                              manage_url=MARKERS["manage_url"], **common)
            headers, suffix = list_headers(ListSettings(
                label=first_name, slug=first_slug,
                namespace=config.get("LIST_ID_NAMESPACE") or config["MAIL_DOMAIN"],
                mailto=config.get("UNSUBSCRIBE_MAILTO") or "",
                feedback_sender=config.get("FEEDBACK_ID_SENDER") or ""))
        elif kind == NoticeKind.MANAGE:  # asked for by the reader: no list headers (no newsletter)
            rendered = render("manage", _("Manage your subscription"), manage_url=MARKERS["manage_url"],
                              days=config["PREFERENCES_LINK_DAYS"], **common)
        else:
            rendered = render("erase", _("Confirm the erasure of your data"), erase_url=MARKERS["action_url"],
                              hours=config["ERASE_LINK_HOURS"], **common)
    return Skeleton(sender=address(config["MAIL_FROM_NAME"], config["MAIL_FROM"]), subject=rendered.subject,
                    text=Personalizer(rendered.text, escape_values=False),
                    html=Personalizer(rendered.html, escape_values=True), headers=headers, language=locale,
                    unsubscribe_suffix=suffix, signer=dkim.from_config(config))


# --- Sending (task body) -------------------------------------------------------------
# A sender's statements are built once (per dialect) with bind parameters and run through
# Core, as the engine's are (``deliveries``): a sender keeping up with sign-ups sends
# batches of a few dozen, and building and keying ORM statements and loading ORM objects
# cost it more than the mail (about 20 ms of CPU a batch, 1 ms a confirmation).

_NOTICES, _SUBSCRIBERS, _SUBSCRIPTIONS, _LISTS, _SUPPRESSIONS = (
    cast(Table, model.__table__) for model in (Notice, Subscriber, Subscription, MailingList, Suppression))
_CAP_LOCK = select(func.pg_advisory_xact_lock(0x6E6F7469))  # one claimer at a time counts against the cap


def _due(now):
    n = _NOTICES.c
    return and_(n.status == QUEUED, n.available_at <= now, or_(n.holder.is_(None), n.lease_expires_at < now))


def _fence(holder):
    n = _NOTICES.c
    return and_(n.holder == holder, n.status == QUEUED)


def _held(dialect: str):
    """The notices of the list ``p_ids`` that ``p_holder`` still holds."""
    return and_(in_list(dialect, _NOTICES.c.id, "p_ids"), _fence(bindparam("p_holder")))


@cache
def _pick_statement(dialect: str):
    n = _NOTICES.c
    pick = (select(n.id, n.kind, n.holder).where(_due(param("p_now", n.available_at)))
            .order_by(n.id).limit(bindparam("p_limit")))
    return pick.with_for_update(skip_locked=True) if dialect == "postgresql" else pick


@cache
def _cap_statement():
    """Confirmations sent in the last hour (counted up to the cap: the count costs what the
    cap allows, not what the site sent) and those held by live leases."""
    n = _NOTICES.c
    confirm = n.kind == NoticeKind.CONFIRM
    sent = select(n.id).where(confirm, n.sent_at > param("p_hour_ago", n.sent_at)).limit(bindparam("p_cap"))
    in_hand = select(func.count()).where(confirm, n.status == QUEUED, n.holder.is_not(None),
                                         n.lease_expires_at >= param("p_now", n.lease_expires_at))
    return select(select(func.count()).select_from(sent.subquery()).scalar_subquery(), in_hand.scalar_subquery())


@cache
def _take_statement(dialect: str):
    """Lease the picked notices still free: on SQLite the pick was read under no lock (a
    SELECT begins no transaction there), so another sender may have taken them since."""
    n = _NOTICES.c
    return (update(_NOTICES).where(in_list(dialect, n.id, "p_ids"), _due(param("p_now", n.available_at)))
            .values(holder=bindparam("p_holder"), lease_expires_at=param("p_expires", n.lease_expires_at))
            .returning(n.id))


def _claim(session: Session, holder: str, lease: float) -> tuple[list[tuple[int, str | None]], bool]:
    """Lease up to BATCH due notices; confirmations only while the hourly cap allows, the
    others' turn moved to when it will. Returns (notice id, previous holder) of each, and
    whether more may be due (a whole batch was found)."""
    config = current_app.config
    now = utcnow()
    conn = session.connection()
    dialect = conn.dialect.name
    picked = conn.execute(_pick_statement(dialect), {"p_now": now, "p_limit": BATCH}).all()
    room = len(picked)
    if any(row.kind == NoticeKind.CONFIRM for row in picked):
        if dialect == "postgresql":
            conn.execute(_CAP_LOCK)
        cap = config["PENDING_MAX_PER_HOUR"]
        sent, in_hand = conn.execute(_cap_statement(), {
            "p_hour_ago": now - timedelta(hours=1), "p_cap": cap, "p_now": now}).one()
        room = max(0, cap - sent - in_hand)
    chosen, held_back = [], []
    for row in picked:
        if row.kind == NoticeKind.CONFIRM:
            if room <= 0:
                held_back.append(row.id)
                continue
            room -= 1
        chosen.append((row.id, row.holder))
    if held_back:  # their turn: when the oldest confirmation of the hour leaves the window
        oldest = session.scalar(select(func.min(Notice.sent_at)).where(
            Notice.kind == NoticeKind.CONFIRM, Notice.sent_at > now - timedelta(hours=1))) or now
        session.execute(update(Notice).where(Notice.id.in_(held_back))
                        .values(available_at=oldest + timedelta(hours=1, seconds=1)))
    if chosen:
        taken = set(conn.execute(_take_statement(dialect), {
            "p_ids": [id_ for id_, _ in chosen], "p_holder": holder, "p_now": now,
            "p_expires": now + timedelta(seconds=lease)}).scalars())
        chosen = [(id_, previous) for id_, previous in chosen if id_ in taken]
    return chosen, len(picked) == BATCH


@cache
def _renew_statement(dialect: str):
    n = _NOTICES.c
    return (update(_NOTICES).where(_held(dialect))
            .values(lease_expires_at=param("p_expires", n.lease_expires_at)))


@cache
def _sent_statement(dialect: str):
    """Each notice of ``p_ids`` sent with its Message-ID of ``p_mids``: one UPDATE joined
    to the two arrays on PostgreSQL (a sender's record of a batch of 200 took 2.7 ms of its
    CPU this way, 11.6 ms as an executemany of a row each), an executemany on SQLite."""
    n = _NOTICES.c
    if dialect == "postgresql":
        sent = (func.unnest(bindparam("p_ids", type_=ARRAY(BigInteger)), bindparam("p_mids", type_=ARRAY(Text)))
                .table_valued("id", "mid").render_derived())
        key, mid = n.id == sent.c.id, sent.c.mid
    else:
        key, mid = n.id == bindparam("p_id"), bindparam("p_mid")
    return (update(_NOTICES).where(key, _fence(bindparam("p_holder")))
            .values(attempts=n.attempts + 1, status=NoticeStatus.SENT, sent_at=param("p_now", n.sent_at),
                    last_error="", message_id=mid))


@dataclass
class NoticeStore:
    """Records notices' outcomes, fenced by the holder's lease on each row."""

    engine: Engine
    holder: str
    ids: list[int]
    lease: float
    max_attempts: int

    def flush(self, outcomes: list[Outcome]) -> str:
        now = utcnow()
        with self.engine.begin() as conn:
            renewed = conn.execute(_renew_statement(conn.dialect.name), {
                "p_ids": self.ids, "p_holder": self.holder,
                "p_expires": now + timedelta(seconds=self.lease)}).rowcount
            if not renewed and not outcomes:
                return "lost"
            self._record(conn, outcomes, now)
        return "ok"

    def _record(self, conn: Connection, outcomes: list[Outcome], now) -> None:
        sent = [(outcome.item.key, outcome.result.message.message_id) for outcome in outcomes
                if outcome.result is not None and outcome.result.ok]
        if sent and conn.dialect.name == "postgresql":  # the usual outcome: one statement for all
            ids, mids = zip(*sent, strict=True)
            conn.execute(_sent_statement("postgresql"), {"p_ids": list(ids), "p_mids": list(mids),
                                                          "p_holder": self.holder, "p_now": now})
        elif sent:
            conn.execute(_sent_statement(conn.dialect.name), [
                {"p_id": id_, "p_mid": mid, "p_holder": self.holder, "p_now": now} for id_, mid in sent])
        for outcome in outcomes:
            result = outcome.result
            if result is not None and result.ok:
                continue
            if result is not None and result.temporary and outcome.item.attempts + 1 < self.max_attempts:
                wait = 30 * 2 ** outcome.item.attempts
                values = {"available_at": now + timedelta(seconds=wait), "holder": None,
                          "last_error": f"{result.code} {result.error}"[:500]}
            else:
                error = outcome.error if result is None else f"{result.code} {result.error}"
                values = {"status": NoticeStatus.FAILED, "last_error": error[:500]}
            conn.execute(update(Notice).where(Notice.id == outcome.item.key, _fence(self.holder))
                         .values(attempts=Notice.attempts + 1, **values))


def send(session: Session) -> None:
    """Send the notices due, a batch at a time over one connection, for one turn of up to
    RUN_SECONDS. While sign-ups stream in, batches are at least PACE_SECONDS apart, so that
    they are sent by the batch rather than a task, a connection and a claim for every few
    (which cost a worker more than the mails). Ending, a sender lets the next wake-up
    through and looks once more: what is due then (written meanwhile, or left when its
    turn was over) is sent by the sender it wakes; a notice written after wakes one itself."""
    config = current_app.config
    holder = uuid.uuid4().hex
    lease = config["SEND_LEASE_SECONDS"]
    verp = Verp(config)
    transport = from_config(config)
    ended = time.monotonic() + RUN_SECONDS
    try:
        while True:
            began = time.monotonic()
            claimed, more = _claim(session, holder, lease)
            session.commit()
            if claimed:
                items = _prepare(session, claimed, holder, verp)
                session.commit()
                if items and not _dispatch(session, items, holder, lease, transport):
                    return  # the server cannot be reached: the rest wait for the tick
            if time.monotonic() >= ended or not (claimed or more):
                break  # its turn is over (a sender it wakes goes on), or nothing was due
            if not more:
                time.sleep(max(0.0, PACE_SECONDS - (time.monotonic() - began)))
    finally:
        transport.close()
        _let_go()
    if session.scalar(select(Notice.id).where(_due(utcnow())).limit(1)) is not None:
        _wake_or_leave_to_tick()
    session.commit()


@cache
def _readers_statement(dialect: str):
    """The batch's notices still held by ``p_holder``, each with its subscriber (None when
    gone) and whether the address is suppressed."""
    n, s = _NOTICES.c, _SUBSCRIBERS.c
    suppressed = exists().where(_SUPPRESSIONS.c.email_hash == s.email_hash)
    return (select(n.id, n.kind, n.attempts, s.id.label("subscriber_id"), s.email, s.name, s.locale,
                   s.confirm_nonce, s.email_hash, suppressed.label("suppressed"))
            .select_from(_NOTICES.outerjoin(_SUBSCRIBERS, s.id == n.subscriber_id))
            .where(_held(dialect)).order_by(n.id))


@cache
def _lists_statement(dialect: str):
    """The lists of the batch's subscribers, pending or confirmed, in list order."""
    sub, lst = _SUBSCRIPTIONS.c, _LISTS.c
    return (select(sub.subscriber_id, sub.status, lst.name, lst.slug)
            .join_from(_SUBSCRIPTIONS, _LISTS, lst.id == sub.list_id)
            .where(in_list(dialect, sub.subscriber_id, "p_ids"),
                   sub.status.in_([SubscriptionStatus.PENDING, SubscriptionStatus.CONFIRMED]))
            .order_by(sub.subscriber_id, sub.list_id))


def _readers(conn: Connection, rows) -> dict[int, Reader]:
    """The subscribers of ``rows`` (of ``_readers_statement``) with their lists."""
    readers = {row.subscriber_id: Reader(row.subscriber_id, row.email, row.name, row.locale, row.confirm_nonce,
                                         row.email_hash, bool(row.suppressed))
               for row in rows if row.subscriber_id is not None}
    kinds = {NoticeKind.CONFIRM, NoticeKind.WELCOME}
    wanted = sorted({row.subscriber_id for row in rows if row.subscriber_id is not None and row.kind in kinds})
    lists: dict[int, dict[SubscriptionStatus, list[tuple[str, str]]]] = {}
    if wanted:
        for sub in conn.execute(_lists_statement(conn.dialect.name), {"p_ids": wanted}):
            lists.setdefault(sub.subscriber_id, {}).setdefault(sub.status, []).append((sub.name, sub.slug))
    for id_, found in lists.items():
        readers[id_] = readers[id_]._replace(pending=tuple(found.get(SubscriptionStatus.PENDING, ())),
                                             confirmed=tuple(found.get(SubscriptionStatus.CONFIRMED, ())))
    return readers


def _prepare(session: Session, claimed: list[tuple[int, str | None]], holder: str,
             verp: Verp) -> list[Item]:
    """The claimed notices as items: what a dead previous holder's journal says was
    accepted is recorded, not sent again; notices with nothing left to say are dropped."""
    accepted: set[int] = set()
    for previous in {old for _id, old in claimed if old}:
        journal = open_journal(current_app.config, f"n-{previous}")
        try:
            accepted |= {key for key, mark in journal.read().items() if mark == "a"}
        finally:
            journal.close()
    ids = [id_ for id_, _ in claimed]
    done = [id_ for id_ in ids if id_ in accepted]
    if done:
        session.execute(update(Notice).where(Notice.id.in_(done), _fence(holder))
                        .values(status=NoticeStatus.SENT, sent_at=utcnow()))
    conn = session.connection()
    rows = conn.execute(_readers_statement(conn.dialect.name), {"p_ids": ids, "p_holder": holder}).all()
    readers = _readers(conn, rows)
    items, dropped, refused = [], [], []
    for row in rows:
        reader, message = readers.get(row.subscriber_id), None
        # A confirmation goes to a suppressed address too: confirming is the only way back
        # (caps apply); anything else does not.
        if reader is not None and (row.kind == NoticeKind.CONFIRM or not reader.suppressed):
            try:
                message = _message(row.kind, reader, verp)
            except InvalidInput as exc:  # a name or address that cannot go in a header
                refused.append((row.id, str(exc)))
                continue
        if message is None:
            dropped.append(row.id)
            continue
        items.append(Item(row.id, row.email, row.attempts, partial(_same, message)))
    if dropped:
        session.execute(update(Notice).where(Notice.id.in_(dropped), _fence(holder))
                        .values(status=NoticeStatus.DROPPED))
    for id_, error in refused:
        session.execute(update(Notice).where(Notice.id == id_, _fence(holder))
                        .values(status=NoticeStatus.FAILED, last_error=error[:500]))
    return items


def _same(message: Outgoing) -> Outgoing:
    return message


@cache
def _release_statement(dialect: str):
    return update(_NOTICES).where(_held(dialect)).values(holder=None, lease_expires_at=None)


def _dispatch(session: Session, items: list[Item], holder: str, lease: float, transport) -> bool:
    """Send ``items``; False when the server cannot be reached (the rest wait for the tick)."""
    config = current_app.config
    journal = open_journal(config, f"n-{holder}")
    store = NoticeStore(db.engine, holder, [item.key for item in items], lease,
                        config["SEND_MAX_ATTEMPTS"])
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        report = dispatch(items, Run(transport, journal, store, lease, app.app_context,
                                     RateLimiter(config)))
        if not report.unrecorded:
            journal.clear()
    finally:
        journal.close()
    conn = session.connection()
    conn.execute(_release_statement(conn.dialect.name), {"p_ids": store.ids, "p_holder": holder})
    session.commit()
    return report.connection_error is None and not report.stopped


def tick(session: Session) -> None:
    """Beat: start a sender when due notices wait and nobody holds them (a lost task, a
    capped confirmation whose turn came, a worker that died)."""
    if session.scalar(select(Notice.id).where(_due(utcnow())).limit(1)) is not None:
        send_now(TASK)
    session.commit()

