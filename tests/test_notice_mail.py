"""The confirmation and welcome mails as the SMTP server receives them, the notice tasks'
rules, and the purge of stale sign-ups."""

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from mailer import notices, subscriptions
from mailer.models import ConsentRecord, Delivery, Notice, NoticeKind, NoticeStatus, SubscriptionStatus, utcnow
from mailer.suppression import suppress
from tests.helpers_engine import make_campaign
from tests.helpers_visitor import (
    barrier,
    confirm_path,
    csrf_token,
    drain,
    html_part,
    make_list,
    subscribe,
    subscriber,
    text_part,
)

ENCODED_WORD = re.compile(rb"=\?[^?]+\?[bBqQ]\?[^?]*\?=")


@pytest.fixture
def newsletter(request, session, smtp_server, celery_worker):
    yield make_list(session, name="Wydarzenia w mieście — Łódź", slug="wydarzenia")
    drain(request, session, smtp_server)


def headers_block(data: bytes) -> bytes:
    return data.split(b"\r\n\r\n", 1)[0]


def header_lines(data: bytes, name: bytes) -> list[bytes]:
    unfolded = re.sub(rb"\r\n[ \t]+", b" ", headers_block(data))
    return [line for line in unfolded.split(b"\r\n") if line.lower().startswith(name.lower() + b":")]


def welcome_mail(client, smtp_server, email, name="Zażółć Gęślą Jaźń"):
    subscribe(client, email, name=name)
    path = confirm_path(next(m for m in smtp_server.wait_for(1) if email in m.recipients))
    client.post(path, data={"csrf_token": csrf_token(client.get(path).data)})
    return next(m for m in smtp_server.wait_for(2) if m.message["Subject"].startswith(("Witamy", "Welcome")))


def check_well_formed(data: bytes, app) -> None:
    message_id = header_lines(data, b"Message-ID")
    for name in (b"Date", b"Message-ID", b"From", b"To", b"Subject"):
        assert len(header_lines(data, name)) == 1, name
    assert message_id[0].endswith(b"@" + app.config["MAIL_DOMAIN"].encode() + b">")
    for word in ENCODED_WORD.findall(headers_block(data)):
        assert len(word) <= 75
    body = data.split(b"\r\n\r\n", 1)[1]
    assert body.index(b"Content-Type: text/plain") < body.index(b"Content-Type: text/html")
    assert body.count(b"Content-Transfer-Encoding: base64") == 2  # one builder, one encoding
    assert b"8bit" not in data and max(data) < 128


def test_welcome_mail_meets_the_standards(client, app, session, newsletter, smtp_server):
    mail = welcome_mail(client, smtp_server, "standard@example.org")
    data, message = mail.data, mail.message
    check_well_formed(data, app)
    unsubscribe = header_lines(data, b"List-Unsubscribe")
    assert len(unsubscribe) == 1 and b"=?" not in unsubscribe[0]
    assert re.fullmatch(rb"List-Unsubscribe: <http://localhost/u/[A-Za-z0-9._-]+>", unsubscribe[0])
    assert header_lines(data, b"List-Unsubscribe-Post") == [b"List-Unsubscribe-Post: List-Unsubscribe=One-Click"]
    [list_id] = header_lines(data, b"List-Id")
    assert list_id.endswith(b"<wydarzenia." + app.config["MAIL_DOMAIN"].encode() + b">")
    assert str(message["List-Id"]).startswith("Wydarzenia w mieście — Łódź")
    assert message["Subject"] == "Witamy w newsletterze: Wydarzenia w mieście — Łódź"
    assert message["To"].addresses[0].display_name == "Zażółć Gęślą Jaźń"
    assert message["From"].addresses[0].display_name == app.config["MAIL_FROM_NAME"]
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    url = re.search(r"<(http://localhost/u/[^>]+)>", str(message["List-Unsubscribe"])).group(1)
    assert url in text_part(mail) and f'href="{url}"' in html_part(mail)
    assert "Wypisz się" in text_part(mail) and "Zażółć Gęślą Jaźń" in text_part(mail)


def test_confirmation_mail_is_well_formed_and_plain(client, app, session, newsletter, smtp_server):
    subscribe(client, "plain@example.org", name="Łukasz Żółć")
    [mail] = smtp_server.wait_for(1)
    check_well_formed(mail.data, app)
    assert mail.message["Subject"] == "Potwierdź zapis na newsletter"
    assert "Łukasz Żółć" in text_part(mail)
    assert confirm_path(mail) in html_part(mail)
    assert "72 godz." in text_part(mail)


def test_readers_of_one_rendered_copy_each_get_their_own_name_and_link(client, app, session, newsletter,
                                                                       smtp_server):
    """Confirmations in one language to one list are rendered once and filled in per reader:
    nothing of one reader may reach another, a name is escaped in the HTML part only, and a
    reader without a name is greeted without a dangling space."""
    people = {"a@example.org": "Ala <b>&</b> Kot", "b@example.org": "Bożena", "c@example.org": ""}
    for email, name in people.items():
        subscribe(client, email, name=name)
    received = {mail.recipients[0]: mail for mail in smtp_server.wait_for(3)}
    links = {email: confirm_path(mail) for email, mail in received.items()}
    assert len(set(links.values())) == 3
    for email, mail in received.items():
        others = [other for other in people if other != email]
        assert links[email] in html_part(mail)
        assert not any(links[other] in text_part(mail) + html_part(mail) for other in others)
        assert not any(people[other] and people[other] in text_part(mail) for other in others)
    assert "Ala <b>&</b> Kot" in text_part(received["a@example.org"])
    assert "Ala &lt;b&gt;&amp;&lt;/b&gt; Kot" in html_part(received["a@example.org"])
    assert "Dzień dobry!" in text_part(received["c@example.org"])
    assert "Bożena" in text_part(received["b@example.org"])


def test_a_copy_is_rendered_once_per_language_and_lists(client, app, session, newsletter, smtp_server,
                                                        monkeypatch):
    rendered = []
    render = notices.render
    monkeypatch.setattr(notices, "render", lambda *args, **kwargs: rendered.append(args[0]) or render(*args, **kwargs))
    app.extensions.pop("notice_copies", None)
    for n in range(3):
        subscribe(client, f"pl{n}@example.org", name=f"Osoba {n}")
    smtp_server.wait_for(3)
    client.get("/?lang=en")
    subscribe(client, "en@example.org", name="Someone")
    smtp_server.wait_for(4)
    assert rendered == ["confirm", "confirm"]  # Polish once, English once


def test_english_subscriber_gets_english_notices(client, app, session, newsletter, smtp_server):
    client.get("/?lang=en")
    mail = welcome_mail(client, smtp_server, "en@example.org", name="")
    assert mail.message["Subject"] == "Welcome to the newsletter: Wydarzenia w mieście — Łódź"
    assert "Unsubscribe here" in text_part(mail)
    assert subscriber(session, "en@example.org").locale == "en"


def test_long_name_subject_encoded_words_stay_short(client, app, session, smtp_server, celery_worker):
    make_list(session, name="Źródła, żurawie i gęśle — " * 4, slug="dlugie")
    mail = welcome_mail(client, smtp_server, "long@example.org", name="Ąę " * 60)
    check_well_formed(mail.data, app)
    assert mail.message["Subject"].endswith("gęśle — ")
    assert str(mail.message["List-Id"]).endswith("<dlugie.miasto.example.pl>")


def test_a_notice_written_as_its_sender_ends_is_sent(app, session, newsletter, smtp_server, monkeypatch):
    """A sign-up committed while a sender is ending finds the wake-up key taken, so it wakes
    nobody: the ending sender looks once more after letting the next wake-up through."""
    if notices._redis() is None:
        pytest.skip("without Redis every commit wakes a sender")
    notices._redis().set(notices._wake_key(app.config), 1, px=10_000)  # a sender was woken: this one
    let_go = notices._let_go

    def late_sign_up_then_let_go():
        subscriptions.subscribe(session, email="late@example.org", consent=True, source="admin")
        session.commit()  # its wake-up finds the key taken
        let_go()

    monkeypatch.setattr(notices, "_let_go", late_sign_up_then_let_go)
    notices.send(session)  # nothing due: it ends at once
    [mail] = smtp_server.wait_for(1, timeout=10)
    assert mail.recipients == ["late@example.org"]


def test_a_process_that_found_a_sender_awake_asks_again_only_later(app, session, newsletter, monkeypatch):
    """Sign-ups in quick succession in one process ask Redis whether a sender is awake once
    per AWAKE_SECONDS, not once each (at hundreds a second the question was a twentieth of a
    web worker's CPU); past that time, the next one asks again."""
    client = notices._redis()
    if client is None:
        pytest.skip("without Redis every commit wakes a sender")
    key = notices._wake_key(app.config)
    client.set(key, 1, px=10_000)  # a sender is awake: every question is answered "taken"
    asked: list[str] = []
    ask = client.set
    monkeypatch.setattr(client, "set", lambda name, *args, **kwargs: asked.append(name) or ask(name, *args, **kwargs))
    monkeypatch.setattr(notices, "AWAKE_SECONDS", 60)
    notices._awake.clear()
    for k in range(4):
        subscriptions.subscribe(session, email=f"szybko{k}@example.org", consent=True, source="admin")
        session.commit()
    assert asked == [key]
    monkeypatch.setattr(notices, "AWAKE_SECONDS", 0)
    subscriptions.subscribe(session, email="pozniej@example.org", consent=True, source="admin")
    session.commit()
    assert asked == [key, key]
    notices._let_go()  # as the sender would: the next sign-up wakes one


def test_a_sender_ending_while_a_process_asks_is_not_taken_for_awake(app, session, newsletter, smtp_server,
                                                                     monkeypatch):
    """The process's sender ends (lets the wake-up key go) while the process asks whether one
    is awake and hears "yes": that answer is stale, so the next notice asks again and wakes
    a sender (it was left for beat's tick, which the suite does not run: the mail never came)."""
    client = notices._redis()
    if client is None:
        pytest.skip("without Redis every commit wakes a sender")
    key = notices._wake_key(app.config)
    client.set(key, 1, px=10_000)
    ask = client.set

    def ends_meanwhile(name, *args, **kwargs):
        answer = ask(name, *args, **kwargs)  # "taken": a sender is awake ...
        monkeypatch.setattr(client, "set", ask)
        notices._let_go()  # ... and ends before the answer is acted upon
        return answer

    monkeypatch.setattr(client, "set", ends_meanwhile)
    notices._awake.clear()
    subscriptions.subscribe(session, email="w-biegu@example.org", consent=True, source="admin")
    session.commit()
    assert key not in notices._awake
    subscriptions.subscribe(session, email="nastepny@example.org", consent=True, source="admin")
    session.commit()  # asks Redis, finds no sender, wakes one: both mails go out
    assert sorted(mail.recipients[0] for mail in smtp_server.wait_for(2, timeout=10)) == [
        "nastepny@example.org", "w-biegu@example.org"]


def test_a_senders_turn_ends_and_the_next_sender_goes_on(app, session, newsletter, smtp_server, monkeypatch):
    """However many notices wait, a sender sends for one turn (RUN_SECONDS, here one batch of
    BATCH), then wakes the next one for the rest, so other tasks get the worker between."""
    woken = []
    monkeypatch.setattr(notices, "wake_now", lambda: woken.append(True))  # no task: the test worker stays out
    for k in range(5):
        subscriptions.subscribe(session, email=f"turn{k}@example.org", consent=True, source="admin")
        session.commit()
    monkeypatch.setattr(notices, "BATCH", 2)
    monkeypatch.setattr(notices, "RUN_SECONDS", 0)
    woken.clear()
    notices.send(session)
    assert len(smtp_server.wait_for(2)) == 2 and woken == [True]
    assert session.scalar(select(func.count()).where(Notice.status == NoticeStatus.QUEUED)) == 3


def test_two_senders_claiming_at_once_never_both_take_a_notice(app, session, newsletter, smtp_server, fresh):
    """The second sender claims between the first one's pick and its take. On SQLite the pick
    is read under no lock (a SELECT begins no transaction there), so a take that did not check
    the notice was still free took it again: two senders, two mails (seen under `make run`)."""
    from sqlalchemy import event

    from mailer.extensions import db

    subscriptions.subscribe(session, email="race@example.org", consent=True, source="admin")
    session.commit()
    smtp_server.wait_for(1)  # the confirmation, sent by the test worker
    owed = Notice(kind=NoticeKind.MANAGE, subscriber_id=subscriber(session, "race@example.org").id)
    session.add(owed)  # not queued: no sender is woken, the two below are the only ones
    session.commit()
    second: list = []
    started = []

    def the_other_sender_claims(conn, _cursor, statement, *_args):
        if not started and statement.lstrip().upper().startswith("SELECT NOTICES.ID, NOTICES.KIND"):
            started.append(True)
            other = fresh()
            second.extend(notices._claim(other, "second", 60)[0])
            other.commit()

    event.listen(db.engine, "after_cursor_execute", the_other_sender_claims)
    try:
        first = notices._claim(session, "first", 60)[0]
        session.commit()
    finally:
        event.remove(db.engine, "after_cursor_execute", the_other_sender_claims)
    assert started, "the other sender's claim did not run"
    assert [id_ for id_, _ in first + second] == [owed.id]


def test_a_notice_goes_once_and_only_while_it_has_something_to_say(app, session, newsletter,
                                                                     smtp_server):
    subscriptions.subscribe(session, email="quiet@example.org", consent=True, source="admin")
    session.commit()
    smtp_server.wait_for(1)
    sub = subscriber(session, "quiet@example.org")
    celery = app.extensions["celery"]
    for _ in range(3):  # the task redelivered: the notice is a row, already sent
        celery.send_task("mailer.send_notices")
    notices.queue(session, sub.id, NoticeKind.WELCOME)  # not confirmed: nothing to welcome to
    session.commit()
    subscriptions.unsubscribe(session, sub.id, source="admin")
    notices.queue(session, sub.id, NoticeKind.CONFIRM)  # nothing pending any more
    session.commit()
    assert [m.recipients for m in barrier(session, smtp_server)] == [["quiet@example.org"]]
    statuses = session.scalars(select(Notice.status).where(Notice.subscriber_id == sub.id)
                               .order_by(Notice.id)).all()
    assert statuses == [NoticeStatus.SENT, NoticeStatus.DROPPED, NoticeStatus.DROPPED]


def test_no_welcome_or_link_goes_to_a_suppressed_address(app, session, newsletter, smtp_server):
    """A welcome or a preference link owed to a suppressed address is dropped (a
    confirmation still goes: ``test_subscribe``)."""
    subscriptions.subscribe(session, email="blocked@example.org", consent=True, source="admin")
    session.commit()
    smtp_server.wait_for(1)
    sub = subscriber(session, "blocked@example.org")
    sub.subscriptions[0].status = SubscriptionStatus.CONFIRMED
    suppress(session, "blocked@example.org", reason="bounced")
    notices.queue(session, sub.id, NoticeKind.WELCOME)
    notices.queue(session, sub.id, NoticeKind.MANAGE)
    session.commit()
    assert [m.recipients for m in barrier(session, smtp_server)] == [["blocked@example.org"]]  # the first
    statuses = session.scalars(select(Notice.status).where(Notice.subscriber_id == sub.id)
                               .order_by(Notice.id)).all()
    assert statuses == [NoticeStatus.SENT, NoticeStatus.DROPPED, NoticeStatus.DROPPED]


def test_purge_pending_removes_only_stale_unconfirmed(app, session, newsletter, smtp_server):
    other = make_list(session, name="Sport", slug="sport")
    for email in ("stale@example.org", "fresh@example.org", "mixed@example.org"):
        subscriptions.subscribe(session, email=email, consent=True, source="admin",
                                list_ids=[newsletter.id, other.id])
    session.commit()
    old = utcnow() - timedelta(days=app.config["PURGE_PENDING_AFTER_DAYS"] + 1)
    for email in ("stale@example.org", "mixed@example.org"):
        for item in subscriber(session, email).subscriptions:
            item.created_at = old
        session.commit()
    subscriber(session, "mixed@example.org").subscriptions[0].status = SubscriptionStatus.CONFIRMED
    session.commit()
    stale_id = subscriber(session, "stale@example.org").id
    # a row from a campaign they once got (deliveries have no FK cascade: the purge deletes it)
    session.add(Delivery(campaign_id=make_campaign(session, [newsletter]).id, subscriber_id=stale_id))
    session.commit()
    app.extensions["celery"].send_task("mailer.purge_pending")
    barrier(session, smtp_server)  # the purge ran before the barrier's mail
    assert subscriber(session, "stale@example.org") is None
    assert subscriber(session, "fresh@example.org") is not None
    assert subscriber(session, "mixed@example.org") is not None
    assert session.scalar(select(func.count(ConsentRecord.id))
                          .where(ConsentRecord.subscriber_id == stale_id)) == 0
    assert session.scalar(select(func.count(Delivery.id)).where(Delivery.subscriber_id == stale_id)) == 0
    assert subscriptions.purge_pending(session) == 0


def test_a_sender_records_outcomes_only_on_the_notices_it_holds(app, session, newsletter, fresh):
    """What went out is recorded in one statement for the batch, fenced like each other
    outcome: rows whose lease another sender took are left to it."""
    from types import SimpleNamespace

    from mailer.dispatch import Item, Outcome
    from mailer.extensions import db
    from mailer.mail.transport import Result

    subscriptions.subscribe(session, email="held@example.org", consent=True, source="admin")
    session.commit()
    sub = subscriber(session, "held@example.org")
    later = utcnow() + timedelta(hours=1)  # not due: the test worker leaves them alone
    rows = [Notice(kind=NoticeKind.WELCOME, subscriber_id=sub.id, holder=holder, lease_expires_at=later,
                   available_at=later) for holder in ("mine", "mine", "mine", "theirs")]
    session.add_all(rows)
    session.commit()
    ids = [row.id for row in rows]

    def outcome(id_, **result):
        return Outcome(Item(id_, "held@example.org", 0, lambda: None),
                       Result(SimpleNamespace(message_id=f"<{id_}@test>"), **result))  # type: ignore[arg-type]

    store = notices.NoticeStore(db.engine, "mine", ids, 30, 5)
    assert store.flush([outcome(ids[0], ok=True), outcome(ids[1], ok=False, code=550, error="no such user"),
                        outcome(ids[2], ok=True), outcome(ids[3], ok=True)]) == "ok"
    found = {row.id: row for row in fresh().scalars(select(Notice).where(Notice.id.in_(ids)))}
    assert [(found[id_].status, found[id_].attempts, found[id_].message_id) for id_ in ids] == [
        (NoticeStatus.SENT, 1, f"<{ids[0]}@test>"), (NoticeStatus.FAILED, 1, ""),
        (NoticeStatus.SENT, 1, f"<{ids[2]}@test>"), (NoticeStatus.QUEUED, 0, "")]
    assert found[ids[1]].last_error == "550 no such user"
    session.execute(Notice.__table__.delete().where(Notice.id.in_(ids)))
    session.commit()
