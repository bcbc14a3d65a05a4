"""Coming back: a bounced, complained or erased address that signs up again is mailed a
confirmation; only the mailbox owner's confirmation lifts the suppression (a complaint's only
with a consent given after it), the consent record shows the lifting, and the subscribe
answer is the same in every state."""

import pytest

from mailer import audience, subscriptions
from mailer.bounces import handling
from tests.helpers_bounces import bounce_of, consent_actions, send_campaign, suppression_reason
from tests.helpers_engine import launch_and_snapshot, make_campaign, run_all_batches
from tests.helpers_visitor import confirm_path, csrf_token, drain, statuses, subscribe


@pytest.fixture
def worker(request, session, smtp_server, celery_worker):
    yield celery_worker
    drain(request, session, smtp_server)


def answer(client, email: str) -> tuple[int, bytes]:
    import re

    response = subscribe(client, email)
    return response.status_code, re.sub(rb'value="[A-Za-z0-9._-]{40,}"', b'value="TOKEN"', response.data)


def confirm(client, smtp_server, email: str, count: int):
    mail = next(m for m in smtp_server.wait_for(count) if email in m.recipients
                and "/confirm/" in m.message.get_body(("plain",)).get_content())
    path = confirm_path(mail)
    page = client.get(path)
    return client.post(path, data={"csrf_token": csrf_token(page.data)})


def make_public(session):
    from mailer.models import MailingList

    for item in session.query(MailingList):
        item.public = True
    session.commit()


def test_a_bounced_address_comes_back_by_confirming(app, client, session, smtp_server, worker):
    campaign_id, sent = send_campaign(session, smtp_server, 2)
    make_public(session)
    person = sent[0]
    handling.receive_mail(session, bounce_of(app, person, "postfix_user_unknown.eml"), source="smtp")
    session.commit()
    assert suppression_reason(person.email) == "bounced"
    smtp_server.reset()
    # the same answer for a suppressed address as for a confirmed one and a new one
    assert answer(client, person.email) == answer(client, sent[1].email) == answer(client, "nowa@example.org")
    assert set(statuses(session, person.email).values()) == {"pending"}  # waits for the owner
    assert suppression_reason(person.email) == "bounced"  # not lifted by the sign-up alone
    done = confirm(client, smtp_server, person.email, 2)
    assert done.status_code == 200
    assert suppression_reason(person.email) is None
    assert set(statuses(session, person.email).values()) == {"confirmed"}
    assert ("lifted-bounced", "form") in consent_actions(person.email)
    # and the next campaign reaches them again
    smtp_server.reset()
    from mailer.models import MailingList

    campaign = make_campaign(session, list(session.query(MailingList)), "Znowu razem")
    session.commit()
    launch_and_snapshot(session, campaign.id)
    run_all_batches(session, campaign.id)
    assert any(person.email in m.recipients and "Znowu" in str(m.message["Subject"])
               for m in smtp_server.wait_for(1))


def test_a_complaint_is_lifted_only_by_a_new_confirmed_consent(app, client, session, smtp_server, worker,
                                                               monkeypatch):
    monkeypatch.setitem(app.config, "CONFIRM_COOLDOWN", 0)  # two confirmation mails in a row
    _, sent = send_campaign(session, smtp_server, 1)
    make_public(session)
    person = sent[0]
    # a confirmation link handed out before the complaint ...
    smtp_server.reset()
    from mailer.models import MailingList

    extra = MailingList(name="Wystawy", slug="wystawy", public=True)
    session.add(extra)
    session.commit()
    subscribe(client, person.email)
    old = confirm_path(next(m for m in smtp_server.wait_for(1) if person.email in m.recipients))
    handling.receive_mail(session, bounce_of(app, person, "yahoo_arf_complaint.eml"), source="imap")
    session.commit()
    assert suppression_reason(person.email) == "complaint"
    assert set(statuses(session, person.email).values()) == {"unsubscribed"}
    # ... cannot lift it
    page = client.get(old)
    assert page.status_code == 400, page.status_code
    assert client.post(old, data={"csrf_token": csrf_token(client.get("/").data)}).status_code == 400
    assert suppression_reason(person.email) == "complaint"
    # a new sign-up, confirmed by the owner, does
    smtp_server.reset()
    assert subscribe(client, person.email).status_code == 200
    assert confirm(client, smtp_server, person.email, 1).status_code == 200
    assert suppression_reason(person.email) is None
    actions = consent_actions(person.email)
    assert actions.index(("complaint", "imap")) < actions.index(("lifted-complaint", "form"))
    assert set(statuses(session, person.email).values()) == {"confirmed"}


def test_an_erased_address_comes_back_by_confirming(app, client, session, smtp_server, worker):
    _, sent = send_campaign(session, smtp_server, 1)
    make_public(session)
    person = sent[0]
    audience.erase_subscriber(session, person.subscriber_id)
    session.commit()
    assert suppression_reason(person.email) == "erased"
    smtp_server.reset()
    assert answer(client, person.email) == answer(client, "ktos@example.org")
    assert confirm(client, smtp_server, person.email, 2).status_code == 200
    assert suppression_reason(person.email) is None
    assert ("lifted-erased", "form") in consent_actions(person.email)


def test_an_unconfirmed_sign_up_lifts_nothing_and_nothing_else_is_mailed(app, client, session, smtp_server,
                                                                         worker):
    _, sent = send_campaign(session, smtp_server, 1)
    make_public(session)
    person = sent[0]
    handling.receive_mail(session, bounce_of(app, person, "gmail_does_not_exist.eml"), source="smtp")
    session.commit()
    smtp_server.reset()
    subscriptions.subscribe(session, email=person.email, consent=True, source="api")
    session.commit()
    mail = smtp_server.wait_for(1)
    assert [m.recipients for m in mail] == [[person.email]]
    assert "/confirm/" in mail[0].message.get_body(("plain",)).get_content()  # only the confirmation
    assert suppression_reason(person.email) == "bounced"
