"""The outbox for staff: pages newest first and a search; a subscriber's page lists the
confirmation and welcome mail they were sent as well as campaigns."""

import re
from datetime import timedelta

import pytest

from mailer.mail.message import Skeleton, address
from mailer.mail.transport import OutboxTransport
from mailer.models import Notice, NoticeKind, NoticeStatus, utcnow
from tests.helpers_content import fixed
from tests.helpers_staff import login_as, make_list, make_subscriber


def write(folder, n: int, to: str, subject: str) -> None:
    message = Skeleton(sender=address("Urząd Miasta", "a@example.org"), subject=subject,
                       text=fixed("Tekst"), html=fixed("<p>HTML</p>")).render(
        to_name="", to_email=to, return_path="bounces@example.org", message_id=f"<{n}@example.org>")
    OutboxTransport(folder).send([message])


@pytest.fixture
def outbox(app, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "OUTBOX_DIR", tmp_path)
    monkeypatch.setitem(app.config, "SMTP_URL", "")
    return tmp_path


def subjects(page: str) -> list[str]:
    return re.findall(r'/admin/outbox/[^"]+\.eml">([^<]+)</a>', page)


def test_outbox_pages_newest_first_and_back(outbox, client, session, monkeypatch):
    from mailer import outbox as folder_reader

    monkeypatch.setattr(folder_reader, "PAGE", 3)
    for n in range(7):
        write(outbox, n, f"osoba{n}@example.org", f"Wiadomość {n}")
    login_as(client, session)
    first = client.get("/admin/outbox").get_data(as_text=True)
    assert subjects(first) == ["Wiadomość 6", "Wiadomość 5", "Wiadomość 4"]
    assert "← Nowsze wiadomości" not in first
    older = re.search(r'href="(/admin/outbox\?before=[^"]+)"', first).group(1).replace("&amp;", "&")
    second = client.get(older).get_data(as_text=True)
    assert subjects(second) == ["Wiadomość 3", "Wiadomość 2", "Wiadomość 1"]
    third = client.get(re.search(r'href="(/admin/outbox\?before=[^"]+)"', second).group(1)).get_data(as_text=True)
    assert subjects(third) == ["Wiadomość 0"] and "Starsze wiadomości" not in third
    back = client.get(re.search(r'href="(/admin/outbox\?after=[^"]+)"', third).group(1)).get_data(as_text=True)
    assert subjects(back) == ["Wiadomość 3", "Wiadomość 2", "Wiadomość 1"]
    assert client.get("/admin/outbox?before=../../etc.eml").status_code == 200  # a bad key: ignored


def test_outbox_search_by_recipient_or_subject(outbox, client, session):
    write(outbox, 1, "anna@example.org", "Koncert na Rynku")
    write(outbox, 2, "jan@example.org", "Potwierdź zapis")
    write(outbox, 3, "ANNA.k@example.org", "Wystawa")
    login_as(client, session)
    assert subjects(client.get("/admin/outbox?q=anna").get_data(as_text=True)) == ["Wystawa", "Koncert na Rynku"]
    assert subjects(client.get("/admin/outbox?q=potwierdź").get_data(as_text=True)) == ["Potwierdź zapis"]
    page = client.get("/admin/outbox?q=nikt").get_data(as_text=True)
    assert "Żadna wiadomość tutaj nie pasuje do „nikt”." in page


def test_a_subscribers_page_lists_confirmation_and_welcome_mail(client, session):
    """Notices are rows of their own (not deliveries): the page lists them with the campaigns.
    (Written here as sent: a worker left running by another test may send queued ones at any
    moment.)"""
    newsletter = make_list(session, "Wydarzenia")
    person = make_subscriber(session, "nowa@example.org", lists=[newsletter])
    now = utcnow()
    session.add_all([
        Notice(kind=NoticeKind.CONFIRM, subscriber_id=person.id, status=NoticeStatus.SENT,
               created_at=now - timedelta(minutes=5), sent_at=now - timedelta(minutes=5)),
        Notice(kind=NoticeKind.WELCOME, subscriber_id=person.id, status=NoticeStatus.SENT,
               created_at=now - timedelta(minutes=1), sent_at=now - timedelta(minutes=1))])
    session.commit()
    login_as(client, session)
    page = client.get(f"/admin/subscribers/{person.id}").get_data(as_text=True)
    assert "Do tego subskrybenta nie wysłano jeszcze żadnej wiadomości." not in page
    table = page.split('id="subscriber-mail"')[1].split("</table>")[0]
    rows = table.split("<tr>")[2:]
    assert "Wiadomość powitalna" in rows[0] and "wysłana" in rows[0]  # the newest first
    assert "Prośba o potwierdzenie zapisu" in rows[1] and "wysłana" in rows[1]
