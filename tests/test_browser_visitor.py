"""The visitor path in Debian's Chromium: subscribe on the home page, confirm from the
mail, unsubscribe from the welcome mail's link. Screenshots in artifacts/screenshots."""

import re
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect
from werkzeug.serving import make_server

from mailer.models import Event, utcnow
from tests.helpers_visitor import drain, html_part, make_list, statuses, text_part

SHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def live_server(app, monkeypatch):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    monkeypatch.setitem(app.config, "BASE_URL", base)  # links in mail point here
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield base
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture
def browser_page():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900}, locale="pl-PL")
        yield page
        browser.close()


def shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"visitor-{name}.png"), full_page=True)


@pytest.mark.browser
@pytest.mark.one_database("sqlite", "a browser drives the pages; what differs between databases "
                                    "is tested below them")
def test_visitor_subscribes_confirms_and_leaves(request, app, session, smtp_server, celery_worker,
                                                live_server, browser_page):
    page = browser_page
    newsletter = make_list(session, name="Wydarzenia w mieście")
    start = (utcnow() + timedelta(days=6)).replace(hour=17, minute=0, second=0, microsecond=0)
    session.add_all([
        Event(title="Koncert kolęd na Rynku", starts_at=start, ends_at=start + timedelta(hours=2),
              place="Rynek Główny, scena przy ratuszu",
              summary="Chór miejski i orkiestra dęta zapraszają na wspólne śpiewanie kolęd."),
        Event(title="Wystawa „Łódź nocą”", starts_at=start + timedelta(days=4),
              place="Galeria Miejska, ul. Piotrkowska 12",
              summary="Fotografie miasta po zmroku — wernisaż z udziałem autorów."),
    ])
    session.commit()

    page.goto(live_server + "/")
    assert page.locator("h1").inner_text() == "Najbliższe wydarzenia"
    assert not page.locator("input[name=consent]").is_checked()
    shot(page, "1-index")
    page.fill("input[name=email]", "Zofia.Wozniak@example.org")
    page.fill("input[name=name]", "Zofia Woźniak")
    page.check("input[name=consent]")
    page.click(".subscribe-form button[type=submit]")
    assert page.locator("h1").inner_text() == "Sprawdź skrzynkę pocztową"
    shot(page, "2-check-inbox")

    [mail] = smtp_server.wait_for(1)
    link = re.search(re.escape(live_server) + r"/confirm/\S+", text_part(mail)).group(0)
    page.goto(link)
    assert page.locator("h1").inner_text() == "Potwierdź zapis na newsletter"
    shot(page, "3-confirm")
    assert statuses(session, "zofia.wozniak@example.org") == {newsletter.id: "pending"}
    page.click("button[type=submit]")
    assert page.locator("h1").inner_text() == "Zapis potwierdzony"
    shot(page, "4-confirmed")
    assert statuses(session, "zofia.wozniak@example.org") == {newsletter.id: "confirmed"}

    welcome = smtp_server.wait_for(2)[1]
    unsubscribe = re.search(r"<(http[^>]+)>", str(welcome.message["List-Unsubscribe"])).group(1)
    assert unsubscribe.startswith(live_server + "/u/")
    page.goto(unsubscribe)
    assert "zofia.wozniak@example.org" in page.locator(".lead").inner_text()
    shot(page, "5-unsubscribe")
    page.click("button.danger")
    assert page.locator("h1").inner_text() == "Wypisano Cię z newslettera."
    shot(page, "6-unsubscribed")
    assert statuses(session, "zofia.wozniak@example.org") == {newsletter.id: "unsubscribed"}

    for name, received in (("mail-confirm", mail), ("mail-welcome", welcome)):
        page.set_content(html_part(received))
        shot(page, name)
    page.goto(live_server + "/embed")
    preview = page.locator("section.card form.newsletter-embed")
    preview.locator("input[name=email]").fill("osadzony@example.org")
    preview.locator("input[name=consent]").check()
    preview.locator("button[type=submit]").click()
    expect(page.locator(".newsletter-embed-result")).not_to_be_empty()  # (the CSP allows no eval)
    assert preview.locator(".newsletter-embed-result").inner_text() == "Sprawdź skrzynkę pocztową"
    shot(page, "8-embed")
    assert statuses(session, "osadzony@example.org") == {newsletter.id: "pending"}
    page.goto(live_server + "/?lang=en")
    assert page.locator("h1").inner_text() == "Upcoming events"
    shot(page, "7-index-en")
    drain(request, session, smtp_server)


@pytest.mark.browser
@pytest.mark.one_database("sqlite", "a browser drives the pages; what differs between databases "
                                    "is tested below them")
def test_chromium_lets_an_address_with_polish_letters_through(request, app, session, smtp_server,
                                                              celery_worker, live_server, browser_page):
    """type=email made Chromium refuse ł before the @ on its own; the field is text with the
    email keyboard, and the server's one validation decides (RFC 6531, an IDN domain)."""
    page = browser_page
    newsletter = make_list(session, name="Wydarzenia w mieście")
    page.goto(live_server + "/")
    page.fill("input[name=email]", "Małgorzata.Wiśniewska@żółw.pl")
    page.check("input[name=consent]")
    page.click(".subscribe-form button[type=submit]")
    assert page.locator("h1").inner_text() == "Sprawdź skrzynkę pocztową"
    assert statuses(session, "małgorzata.wiśniewska@xn--w-uga1v8h.pl") == {newsletter.id: "pending"}
    page.goto(live_server + "/embed")  # the snippet other sites paste: the browser validates it
    preview = page.locator("section.card form.newsletter-embed")
    preview.locator("input[name=email]").fill("łukasz.żółkiewski@example.pl")
    preview.locator("input[name=consent]").check()
    preview.locator("button[type=submit]").click()
    expect(preview.locator(".newsletter-embed-result")).to_have_text("Sprawdź skrzynkę pocztową")
    assert statuses(session, "łukasz.żółkiewski@example.pl") == {newsletter.id: "pending"}
    drain(request, session, smtp_server)
