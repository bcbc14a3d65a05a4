"""The staff features of issue 12 in Chromium: confirmations asked before drastic changes
(a button's own question first), and the new pages on a 390 px wide phone."""

import pytest

from sqlalchemy import select

from mailer import lists
from mailer.models import Role, Subscriber
from tests.helpers_engine import launch_and_snapshot, make_audience, make_campaign
from tests.helpers_staff import make_user
from tests.test_outbox_pages import write
from tests.test_browser_staff import CHROMIUM_ARGS, live_server, playwright, shot  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.one_database(
    "sqlite", "a browser drives the pages; what differs between databases is tested below them")]
PASSWORD = "bezpieczne-hasło-2026"
# The page's content (the header and its menu are the layout's own business) holds nothing
# wider than the screen: no element that scrolls sideways, and main itself no wider.
SCROLLERS = """(scope) => [...document.querySelectorAll(scope + ', ' + scope + ' *')].filter(e => {
  if (['INPUT', 'TEXTAREA', 'SELECT', 'OPTION'].includes(e.tagName)) return false;
  const s = getComputedStyle(e);
  const scrolls = e.tagName === 'MAIN' || s.overflowX === 'auto' || s.overflowX === 'scroll';
  return scrolls && e.scrollWidth > e.clientWidth + 1 || e.getBoundingClientRect().right > 391;
}).map(e => e.tagName + '.' + e.className + '#' + e.id + ' ' + (e.textContent || '').trim().slice(0, 40))"""


def open_browser(p, width: int, height: int = 900):
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": width, "height": height}, locale="pl-PL")
    page.set_default_timeout(20_000)
    # window.confirm answered by the test: it records the question and says what the test wants
    page.add_init_script("window.confirm = (q) => { sessionStorage.setItem('asked', q);"
                         " return sessionStorage.getItem('answer') === 'yes'; }")
    return browser, page


def sign_in(page, base: str, email: str) -> None:
    page.goto(f"{base}/admin/login?lang=pl")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert "/admin/login" not in page.url


def test_generating_a_password_asks_first(live_server, session):  # noqa: F811
    admin = make_user(session, Role.ADMIN, "szefowa@example.org", PASSWORD)
    make_user(session, Role.EDITOR, "redaktor@example.org", PASSWORD)
    with playwright.sync_playwright() as p:
        browser, page = open_browser(p, 1280)
        sign_in(page, live_server, admin.email)
        page.goto(f"{live_server}/admin/users")
        row = page.locator("tr", has_text="redaktor@example.org")
        row.get_by_role("button", name="Wygeneruj").click()
        asked = page.evaluate("sessionStorage.getItem('asked')")
        assert asked.startswith("Wygenerować nowe hasło dla redaktor@example.org?")
        assert page.locator("#generated-password").count() == 0  # refused: nothing sent
        page.evaluate("sessionStorage.setItem('answer', 'yes')")
        row.get_by_role("button", name="Wygeneruj").click()
        page.wait_for_selector("#generated-password")
        assert len(page.locator("#generated-password code").inner_text()) >= 16
        browser.close()


def test_new_pages_fit_a_phone(live_server, session, app, tmp_path, monkeypatch):  # noqa: F811
    admin = make_user(session, Role.ADMIN, "szefowa@example.org", PASSWORD)
    audience = make_audience(session, 3)
    lists.update_list(session, audience[0].id, name="Wydarzenia kulturalne w mieście i okolicach",
                      description="", public=True)
    campaign = make_campaign(session, audience, subject="Jarmark świąteczny na Rynku Głównym w grudniu")
    session.commit()
    launch_and_snapshot(session, campaign.id)
    monkeypatch.setitem(app.config, "OUTBOX_DIR", tmp_path)
    monkeypatch.setitem(app.config, "SMTP_URL", "")
    write(tmp_path, 1, "bardzo.dluga.nazwa.odbiorcy@odbiorcy.example.org", "Jarmark świąteczny na Rynku Głównym")
    someone = session.scalar(select(Subscriber.id).limit(1))
    pages = [("/admin/lists", "main"), ("/admin/subscribers/new", "main"),
             (f"/admin/campaigns/{campaign.id}/deliveries", "main"), ("/admin/outbox", "main"),
             (f"/admin/subscribers/{someone}/edit", "main"),
             (f"/admin/subscribers/{someone}", "#subscriber-mail")]  # an older page: the part added here
    with playwright.sync_playwright() as p:
        browser, page = open_browser(p, 390, 844)
        sign_in(page, live_server, admin.email)
        for path, scope in pages:
            page.goto(live_server + path)
            shot(page, "phone-" + path.strip("/").replace("/", "-"))
            assert page.evaluate(SCROLLERS, scope) == [], path
        browser.close()


def test_a_test_sends_answer_appears_without_reloading(live_server, session, smtp_server, celery_worker):  # noqa: F811
    from mailer import campaigns
    from tests.helpers_content import make_event

    admin = make_user(session, Role.ADMIN, "szefowa@example.org", PASSWORD)
    campaign = campaigns.create_campaign(session, event_ids=[make_event(session).id], list_ids=[])
    session.commit()
    smtp_server.handler.replies["nikt@example.org"] = "550 5.1.1 No such user"
    with playwright.sync_playwright() as p:
        browser, page = open_browser(p, 1280)
        sign_in(page, live_server, admin.email)
        page.goto(f"{live_server}/admin/campaigns/{campaign.id}")
        page.fill("#addresses", "ok@example.org, nikt@example.org")
        page.get_by_role("button", name="Wyślij test").click()
        page.wait_for_load_state()
        report = page.locator("#test-report")
        report.get_by_text("odrzucony przez serwer pocztowy").wait_for(timeout=60_000)
        assert "550" in report.inner_text() and "nikt@example.org" in report.inner_text()
        assert page.input_value("#addresses") == "ok@example.org, nikt@example.org"
        browser.close()
