"""No raw English in the Polish staff interface: the login-required message, import states,
consent history codes, outbox dates and template syntax errors (issue 12)."""

from datetime import datetime, timezone
from email.utils import format_datetime

import pytest

from mailer.models import ConsentRecord, ImportJob, ImportStatus, Role
from tests.helpers_content import log_in, make_staff
from tests.helpers_content import post as content_post
from tests.helpers_staff import login_as, make_list, make_subscriber


def test_the_login_required_message_is_translated(client):
    page = client.get("/admin/", follow_redirects=True).get_data(as_text=True)
    assert "Zaloguj się, aby zobaczyć tę stronę." in page
    assert "Please log in" not in page
    client.get("/admin/login?lang=en")
    page = client.get("/admin/", follow_redirects=True).get_data(as_text=True)
    assert "Please log in to see this page." in page


def test_import_states_are_translated(client, session):
    for status in (ImportStatus.QUEUED, ImportStatus.FAILED):
        session.add(ImportJob(filename=f"{status}.csv", stored_name=f"{status}.csv", status=status))
    session.commit()
    login_as(client, session, Role.ADMIN)
    page = client.get("/admin/imports?lang=pl").get_data(as_text=True)
    assert "czeka w kolejce" in page and "nieudany" in page
    assert ">queued<" not in page and ">failed<" not in page


def test_consent_history_codes_are_labelled(client, session):
    news = make_list(session)
    person = make_subscriber(session, "ola@example.org", "Ola", [news], consent=False)
    for action, source in (("import-confirmed", "import"), ("unsubscribe", "one-click"),
                           ("admin-add", "admin"), ("subscribe", "embed")):
        session.add(ConsentRecord(subscriber_id=person.id, list_id=news.id, action=action, source=source,
                                  consent_version="", ip=""))
    session.commit()
    login_as(client, session, Role.ADMIN)
    page = client.get(f"/admin/subscribers/{person.id}?lang=pl").get_data(as_text=True)
    history = page.split("Historia zgód")[1] if "Historia zgód" in page else page
    for label in ("zaimportowany jako potwierdzony", "import CSV",
                  "wypisanie jednym kliknięciem w programie pocztowym", "dodany do listy przez redakcję",
                  "formularz osadzony na innej stronie"):
        assert label in history, label
    for code in (">import-confirmed<", ">one-click<", ">admin-add<", ">embed<", ">import<"):
        assert code not in history, code


def test_outbox_dates_in_the_page_language(app, client, session, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "SMTP_URL", "")
    monkeypatch.setitem(app.config, "OUTBOX_DIR", tmp_path / "outbox")
    (tmp_path / "outbox").mkdir()
    when = datetime(2026, 11, 29, 13, 5, tzinfo=timezone.utc)
    (tmp_path / "outbox" / "20261129T130500-abcd.eml").write_bytes(
        f"Date: {format_datetime(when)}\r\nTo: a@example.org\r\nSubject: Test\r\n\r\nTreść\r\n".encode())
    login_as(client, session, Role.ADMIN)
    page = client.get("/admin/outbox?lang=pl").get_data(as_text=True)
    assert "29.11.2026, 14:05" in page  # Warsaw time, Polish format
    assert "Sun, 29 Nov" not in page and "+0000" not in page


@pytest.mark.parametrize("html, polish", [
    ("<p>ok</p>\n{% for e in events %}{{ e.title }}", "Błąd składni szablonu w wierszu 2: blok „for” nie jest zamknięty"),
    ("{{ events[0].title }\n", "w wierszu 1: nieoczekiwany znak „}”"),
    ("\n\n{{ events y }}", "w wierszu 3: oczekiwano „}}”, a jest „y”"),
    ("{% frobnicate %}", "w wierszu 1: nieznany znacznik „frobnicate”"),
    ("{% if 1 %}x{% endfor %}", "„endfor” nie zamyka otwartego bloku „if”"),
])
def test_template_syntax_errors_in_polish_with_their_line(client, session, html, polish):
    from mailer.models import Template

    layout = session.query(Template).filter_by(name="Układ podstawowy").one()
    log_in(client, make_staff(session))
    response = content_post(client, "/admin/templates/new?lang=pl",
                            {"name": "Mój szablon", "kind": "content", "layout_id": str(layout.id),
                             "html": html, "text": ""}, "/admin/templates/new?lang=pl")
    assert response.status_code == 400
    page = response.get_data(as_text=True).replace("&#34;", '"').replace("&#39;", "'")
    assert polish in page, page[page.find("wierszu") - 200:][:600]
    for english in ("unexpected", "expected token", "Encountered unknown tag", "end of template"):
        assert english not in page, english
