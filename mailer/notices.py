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
sender is woken (``wake``), at most once while a woken sender has not started yet (a Redis
key it deletes when it starts), so 500 sign-ups a second start a handful of senders, not
500 tasks; beat's ``tick`` starts one for any due notice a lost wake-up left behind.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from flask import current_app, render_template
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import Connection, Engine, and_, bindparam, event, func, or_, select, update
from sqlalchemy.orm import Session, selectinload

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
from .models import Notice, NoticeKind, NoticeStatus, Subscriber, Subscription, SubscriptionStatus, Suppression
from .models.types import utcnow
from .ratelimit import RateLimiter
from .verp import SUBSCRIBER, Verp

TASK = "mailer.send_notices"
BATCH = 200  # notices claimed at a time
QUEUED = NoticeStatus.QUEUED
WAKE_SECONDS = 2.0  # a wake-up whose sender has not started by then is sent again
_WAKE = "mailer.wake_notices"
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
    """Publish the sender task unless a wake-up sent less than WAKE_SECONDS ago is still
    waiting for its sender to start. Raises the broker's errors."""
    client = _redis()
    if client is not None and not client.set(_wake_key(current_app.config), 1, nx=True,
                                             px=int(WAKE_SECONDS * 1000)):
        return
    send_now(TASK)


def _started() -> None:
    """A sender starts: the next notice written wakes another one."""
    client = _redis()
    if client is not None:
        try:
            client.delete(_wake_key(current_app.config))
        except Exception:
            log.warning("could not clear the notices wake-up key", exc_info=True)


@event.listens_for(Session, "after_commit")
def _wake_after_commit(session: Session) -> None:
    if session.info.pop(_WAKE, False):
        try:
            wake_now()
        except Exception:  # the rows wait for beat's tick
            log.warning("could not wake a notices sender; the tick will", exc_info=True)


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


def _confirm_token(subscriber: Subscriber) -> str:
    return tokens.sign_timed(tokens.CONFIRM, [subscriber.id, subscriber.confirm_nonce])


def _message(notice: Notice, subscriber: Subscriber, verp: Verp) -> Outgoing | None:
    """The notice for its subscriber, or None when there is nothing left to tell them
    (nothing pending to confirm, nothing confirmed to welcome)."""
    config = current_app.config
    lists: tuple[tuple[str, str], ...] = ()
    values = {"name": subscriber.name or ""}
    unsubscribe_url = ""
    if notice.kind == NoticeKind.MANAGE:
        values["manage_url"] = links.manage_url(subscriber.id)
    elif notice.kind == NoticeKind.ERASE:
        from .preferences import erase_token

        values["action_url"] = links.erase_url(erase_token(subscriber))
    else:
        wanted = SubscriptionStatus.PENDING if notice.kind == NoticeKind.CONFIRM else SubscriptionStatus.CONFIRMED
        subscriptions = sorted((item for item in subscriber.subscriptions if item.status == wanted),
                               key=lambda item: item.list_id)
        if not subscriptions or (notice.kind == NoticeKind.CONFIRM and not subscriber.confirm_nonce):
            return None
        lists = tuple((item.list.name, item.list.slug) for item in subscriptions)
        if notice.kind == NoticeKind.CONFIRM:
            values["action_url"] = links.confirm_url(_confirm_token(subscriber))
        else:
            unsubscribe_url = values["unsubscribe_url"] = links.unsubscribe_url(subscriber.id)
            values["manage_url"] = links.manage_url(subscriber.id)
    skeleton = _copy(notice.kind, subscriber.locale or "", lists, bool(subscriber.name))
    return skeleton.render(to_name=subscriber.name, to_email=subscriber.email,
                           return_path=verp.return_path(SUBSCRIBER, subscriber.id),
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

def _due(now):
    return and_(Notice.status == QUEUED, Notice.available_at <= now,
                or_(Notice.holder.is_(None), Notice.lease_expires_at < now))


def _claim(session: Session, holder: str, lease: float) -> list[tuple[int, str | None]]:
    """Lease up to BATCH due notices; confirmations only while the hourly cap allows, the
    others' turn moved to when it will. Returns (notice id, previous holder)."""
    config = current_app.config
    now = utcnow()
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":  # one claimer at a time counts against the cap
        session.execute(select(func.pg_advisory_xact_lock(0x6E6F7469)))
    hour_ago = now - timedelta(hours=1)
    sent = session.scalar(select(func.count()).where(
        Notice.kind == NoticeKind.CONFIRM, Notice.sent_at > hour_ago)) or 0
    in_hand = session.scalar(select(func.count()).where(
        Notice.kind == NoticeKind.CONFIRM, Notice.status == QUEUED, Notice.holder.is_not(None),
        Notice.lease_expires_at >= now)) or 0
    room = max(0, config["PENDING_MAX_PER_HOUR"] - sent - in_hand)
    picked = session.execute(select(Notice.id, Notice.kind, Notice.holder).where(_due(now))
                             .order_by(Notice.id).limit(BATCH).with_for_update(skip_locked=True)).all()
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
            Notice.kind == NoticeKind.CONFIRM, Notice.sent_at > hour_ago)) or now
        session.execute(update(Notice).where(Notice.id.in_(held_back))
                        .values(available_at=oldest + timedelta(hours=1, seconds=1)))
    if chosen:
        session.execute(update(Notice).where(Notice.id.in_([id_ for id_, _ in chosen]))
                        .values(holder=holder, lease_expires_at=now + timedelta(seconds=lease)))
    return chosen


def _fence(holder: str):
    return and_(Notice.holder == holder, Notice.status == QUEUED)


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
            renewed = conn.execute(update(Notice).where(Notice.id.in_(self.ids), _fence(self.holder))
                                   .values(lease_expires_at=now + timedelta(seconds=self.lease))).rowcount
            if not renewed and not outcomes:
                return "lost"
            self._record(conn, outcomes, now)
        return "ok"

    def _record(self, conn: Connection, outcomes: list[Outcome], now) -> None:
        sent = [{"key": outcome.item.key, "mid": outcome.result.message.message_id} for outcome in outcomes
                if outcome.result is not None and outcome.result.ok]
        if sent:  # the usual outcome, all in one executemany (one pipelined round trip), not one each
            conn.execute(update(Notice).where(Notice.id == bindparam("key"), _fence(self.holder))
                         .values(attempts=Notice.attempts + 1, status=NoticeStatus.SENT, sent_at=now,
                                 last_error="", message_id=bindparam("mid")), sent)
        for outcome in outcomes:
            result, fence = outcome.result, and_(Notice.id == outcome.item.key, _fence(self.holder))
            if result is not None and result.ok:
                continue
            elif result is not None and result.temporary and outcome.item.attempts + 1 < self.max_attempts:
                wait = 30 * 2 ** outcome.item.attempts
                values = {"available_at": now + timedelta(seconds=wait), "holder": None,
                          "last_error": f"{result.code} {result.error}"[:500]}
            else:
                error = outcome.error if result is None else f"{result.code} {result.error}"
                values = {"status": NoticeStatus.FAILED, "last_error": error[:500]}
            conn.execute(update(Notice).where(fence).values(attempts=Notice.attempts + 1, **values))


def send(session: Session) -> None:
    """Send every notice due now, a batch at a time over one connection."""
    config = current_app.config
    _started()
    holder = uuid.uuid4().hex
    lease = config["SEND_LEASE_SECONDS"]
    verp = Verp(config)
    transport = from_config(config)
    try:
        while True:
            claimed = _claim(session, holder, lease)
            session.commit()
            if not claimed:
                return
            items = _prepare(session, claimed, holder, verp)
            session.commit()
            if items and not _dispatch(session, items, holder, lease, transport):
                return
    finally:
        transport.close()


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
    notices = session.scalars(select(Notice).where(Notice.id.in_(ids), _fence(holder))).all()
    # The batch's subscribers with their subscriptions and lists in two statements: one
    # subscriber, its subscriptions and its lists read per notice were three round trips and
    # 30 % of a sender's CPU a confirmation.
    subscribers = {subscriber.id: subscriber for subscriber in session.scalars(
        select(Subscriber).where(Subscriber.id.in_({notice.subscriber_id for notice in notices}))
        .options(selectinload(Subscriber.subscriptions).joinedload(Subscription.list)))}
    items, dropped, refused = [], [], []
    for notice in notices:
        subscriber = subscribers.get(notice.subscriber_id)
        if subscriber is None:
            dropped.append(notice.id)
            continue
        # A confirmation goes to a suppressed address too: confirming is the only way back
        # (caps apply); anything else does not.
        wanted = notice.kind == NoticeKind.CONFIRM or not _suppressed(session, subscriber)
        try:
            message = _message(notice, subscriber, verp) if wanted else None
        except InvalidInput as exc:  # a name or address that cannot go in a header
            refused.append((notice.id, str(exc)))
            continue
        if message is None:
            dropped.append(notice.id)
            continue
        items.append(Item(notice.id, subscriber.email, notice.attempts, partial(_same, message)))
    if dropped:
        session.execute(update(Notice).where(Notice.id.in_(dropped), _fence(holder))
                        .values(status=NoticeStatus.DROPPED))
    for id_, error in refused:
        session.execute(update(Notice).where(Notice.id == id_, _fence(holder))
                        .values(status=NoticeStatus.FAILED, last_error=error[:500]))
    return items


def _same(message: Outgoing) -> Outgoing:
    return message


def _suppressed(session: Session, subscriber: Subscriber) -> bool:
    return session.scalar(select(Suppression.id).where(
        Suppression.email_hash == subscriber.email_hash)) is not None


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
    session.execute(update(Notice).where(Notice.id.in_(store.ids), _fence(holder))
                    .values(holder=None, lease_expires_at=None))
    session.commit()
    return report.connection_error is None and not report.stopped


def tick(session: Session) -> None:
    """Beat: start a sender when due notices wait and nobody holds them (a lost task, a
    capped confirmation whose turn came, a worker that died)."""
    if session.scalar(select(Notice.id).where(_due(utcnow())).limit(1)) is not None:
        send_now(TASK)
    session.commit()

