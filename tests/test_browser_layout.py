"""Staff and public pages in Chromium at desktop and phone sizes: every staff page fits a
390 px screen, passes axe-core's WCAG 2.1 A/AA rules, forms report every error at once and
take the visitor to the first one, and the template editor drops a stale error.

The staff pages are enumerated from the app's URL map (GET routes without arguments), plus
one page of each kind that takes an id, so a page added later is covered without editing
this file."""

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from playwright.sync_api import expect

from mailer.models import (
    Campaign, CampaignEvent, Category, Event, ImportJob, ImportStatus, Role, Segment, Template, TemplateKind,
)
from mailer.tokens import manage_token
from tests.helpers_content import make_list, make_staff, make_subscriber
from tests.test_browser_staff import CHROMIUM_ARGS, live_server  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.one_database(
    "sqlite", "a browser drives the pages; what differs between databases is tested below them")]
playwright = pytest.importorskip("playwright.sync_api")
axe_playwright = pytest.importorskip("axe_playwright_python.sync_playwright")

PASSWORD = "bezpieczne-hasło-2026"
EMAIL = "admin@miasto.example.pl"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
PUBLIC_PAGES = ["/", "/subscribe", "/embed", "/archive", "/admin/login", "/confirm/not-a-token",
                "/u/not-a-token", "/manage", "/p/not-a-token"]
# Pages that are not HTML pages of their own (JSON polls, a message's raw parts, the preview
# frame's document) and the logout/login pages a signed-in browser is sent away from.
NOT_PAGES = {"admin.campaign_progress", "admin.import_status", "admin.campaign_preview",
             "admin.campaign_test_report",
             "admin.template_preview", "admin.login", "admin.login_2fa"}


@pytest.fixture
def browser():
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def new_page(browser, viewport: dict):
    page = browser.new_page(viewport=viewport, locale="pl-PL")
    page.set_default_timeout(20_000)
    return page


@pytest.fixture
def staff_data(session, app, tmp_path):
    """An admin and one row of each kind a staff page with an id shows."""
    make_staff(session, EMAIL, role=Role.ADMIN, password=PASSWORD)
    mailing_list = make_list(session, "Wydarzenia w mieście — bardzo długa nazwa listy do sprawdzenia",
                             "wydarzenia")
    subscriber = make_subscriber(session, "zofia.wisniewska-bardzo-dlugi-adres@example.org", mailing_list,
                                 name="Zofia Wiśniewska")
    start = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=7)
    event = Event(title="Koncert kolęd na Rynku Głównym", starts_at=start, ends_at=start + timedelta(hours=2),
                  place="Rynek Główny", summary="Zażółć gęślą jaźń.", body_md="Wstęp **wolny**.")
    session.add(event)
    session.flush()
    campaign = Campaign(subject="Koncert kolęd", name="Koncert kolęd", locale="pl")
    campaign.lists = [mailing_list]
    campaign.campaign_events = [CampaignEvent(event_id=event.id, position=0)]
    session.add(campaign)
    template = Template(name="Zapowiedź", kind=TemplateKind.CONTENT, html="<h1>{{ subject }}</h1>", text="")
    session.add(template)
    segment = Segment(name="Krowodrza", conditions=[{"field": "language", "op": "is", "value": "pl"}])
    session.add(segment)
    job = ImportJob(filename="adresy.csv", stored_name="gone.csv", status=ImportStatus.DONE,
                    invalid_rows=[[3, "invalid address"]], total_rows=3, done_rows=3)
    session.add(job)
    category = Category(slug="koncerty", name_pl="Koncerty", name_en="Concerts")
    session.add(category)
    session.commit()
    return {"admin.campaign": campaign.id, "admin.subscriber": subscriber.id,
            "admin.list_edit": mailing_list.id, "admin.event_edit": event.id,
            "admin.template_edit": template.id, "admin.import_job": job.id,
            "admin.segment_edit": segment.id, "admin.subscriber_erase": subscriber.id,
            "admin.campaign_deliveries": campaign.id, "admin.subscriber_edit": subscriber.id,
            "admin.category_edit": category.id, "admin.subscriber_consent": subscriber.id,
            "_public": [f"/p/{manage_token(subscriber.id)}"]}


def staff_pages(app, ids: dict) -> list[str]:
    """Every admin GET page: those without arguments from the URL map, and those with one id
    (every such route must have an id in `ids`, so a new one fails here until it has)."""
    paths = []
    with app.test_request_context():
        from flask import url_for
        for rule in app.url_map.iter_rules():
            if not rule.endpoint.startswith("admin.") or "GET" not in (rule.methods or ()):
                continue
            if rule.endpoint in NOT_PAGES:
                continue
            if not rule.arguments:
                paths.append(url_for(rule.endpoint))
            elif rule.endpoint == "admin.outbox_message":
                continue  # the outbox holds no message in this test (its page is tested with one elsewhere)
            else:
                assert rule.endpoint in ids, f"{rule.endpoint}: give this test an id for it"
                [argument] = rule.arguments
                paths.append(url_for(rule.endpoint, **{argument: ids[rule.endpoint]}))
    return sorted(set(paths))


def sign_in(page, base: str) -> None:
    page.goto(f"{base}/admin/login?lang=pl")
    page.fill("#email", EMAIL)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert "/admin/login" not in page.url


SHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
SHOT_PAGES = {"/admin/": "dashboard", "/admin/subscribers": "subscribers", "/admin/campaigns/1": "campaign",
              "/admin/events/new": "event-form"}


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"layout-{name}.png"), full_page=True)


def overflow(page) -> tuple[int, int]:
    return page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")


def test_every_staff_page_fits_a_phone(app, live_server, browser, staff_data):  # noqa: F811
    base = live_server
    page = new_page(browser, PHONE)
    for path in PUBLIC_PAGES + staff_data["_public"]:  # the visitors' pages too
        page.goto(base + path)
        width, screen = overflow(page)
        assert width <= screen, (path, width)
    sign_in(page, base)
    pages = staff_pages(app, staff_data)
    assert "/admin/" in pages and "/admin/subscribers" in pages and len(pages) > 15
    too_wide = {}
    for path in pages:
        response = page.goto(base + path)
        assert response is not None
        if response.status == 404 and path == "/admin/outbox":
            continue  # the outbox exists only when mail goes to the folder (here: to SMTP)
        assert response.status == 200, path
        width, screen = overflow(page)
        if width > screen:
            too_wide[path] = width
        if path in SHOT_PAGES:
            shot(page, "phone-" + SHOT_PAGES[path])
    assert not too_wide, f"wider than the {PHONE['width']} px screen: {too_wide}"
    # The menu and the language switch are reachable on a phone.
    page.goto(base + "/admin/")
    toggle = page.locator(".nav-toggle")
    expect(toggle).to_be_visible()
    toggle.click()
    expect(page.locator("nav.nav a", has_text="Subskrybenci")).to_be_visible()
    shot(page, "phone-menu")
    english = page.locator(".lang a[hreflang=en]")
    expect(english).to_be_visible()
    box = english.bounding_box()
    assert box is not None and box["x"] + box["width"] <= PHONE["width"]



def axe_violations(page) -> list[str]:
    results = axe_playwright.Axe().run(page, options={"runOnly": {"type": "tag", "values": WCAG},
                                                      "resultTypes": ["violations"]})
    found = []
    for violation in results.response["violations"]:
        targets = [", ".join(node["target"]) for node in violation["nodes"][:3]]
        found.append(f"{violation['id']} ({violation['impact']}): {violation['help']} at {targets}")
    return found


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_every_page_passes_axe(app, live_server, browser, staff_data, viewport):  # noqa: F811
    base = live_server
    page = new_page(browser, viewport)
    problems = {}
    for path in PUBLIC_PAGES + staff_data["_public"]:
        page.goto(base + path)
        problems[path] = axe_violations(page)
    sign_in(page, base)
    for path in staff_pages(app, staff_data):
        response = page.goto(base + path)
        if response is not None and response.status == 404:
            continue  # the outbox, without an outbox folder
        problems[path] = axe_violations(page)
    problems = {path: found for path, found in problems.items() if found}
    assert not problems, "\n".join(f"{path}: {found}" for path, found in problems.items())


def in_viewport(page, selector: str) -> bool:
    box = page.locator(selector).bounding_box()
    size = page.viewport_size
    return box is not None and size is not None and box["y"] >= 0 and box["y"] + box["height"] <= size["height"]


def test_forms_show_every_error_and_take_the_phone_to_the_first(app, live_server, browser, staff_data):  # noqa: F811
    base = live_server
    page = new_page(browser, PHONE)
    # The public subscribe form: below the events on a phone; two mistakes at once.
    page.goto(f"{base}/?lang=pl")
    page.fill("#email", "to-nie-adres")
    page.click("form.subscribe-form button[type=submit]")
    page.wait_for_load_state()
    errors = page.locator("form.subscribe-form .field-error")
    expect(errors).to_have_count(2)
    expect(page.locator("#email")).to_be_focused()
    assert page.get_attribute("#email", "aria-invalid") == "true"
    assert page.get_attribute("#email", "aria-describedby") == "email-error"
    assert "zgod" in page.inner_text("#consent-error").lower()
    assert in_viewport(page, "#email")
    shot(page, "phone-subscribe-errors")

    # The event form: four mistakes in one submit, each next to its field.
    sign_in(page, base)
    page.goto(f"{base}/admin/events/new")
    page.fill("#starts_at", "2030-12-12T16:00")
    page.fill("#ends_at", "2030-12-12T15:00")
    page.fill("#image_url", "ftp://example.org/a.png")
    page.fill("#link", "javascript:alert(1)")
    page.click("text=Zapisz wydarzenie")
    page.wait_for_load_state()
    for field in ["title", "ends_at", "image_url", "link"]:
        assert page.get_attribute(f"#{field}", "aria-invalid") == "true", field
        expect(page.locator(f"#{field}-error")).to_be_visible()
    expect(page.locator(".flash-error")).to_contain_text("4")
    expect(page.locator("#title")).to_be_focused()
    assert in_viewport(page, "#title")
    shot(page, "phone-event-errors")

    # A WTForms form (the new list) marks its fields too.
    page.goto(f"{base}/admin/lists")
    page.click("form:has(#name) button[type=submit]")
    page.wait_for_load_state()
    assert page.get_attribute("#name", "aria-invalid") == "true"
    expect(page.locator("#name")).to_be_focused()


def test_a_preview_that_succeeds_clears_the_stale_error(app, live_server, browser, staff_data):  # noqa: F811
    base = live_server
    page = new_page(browser, DESKTOP)
    sign_in(page, base)
    page.goto(f"{base}/admin/templates/{staff_data['admin.template_edit']}")
    page.fill("#html", "<h1>{{ subject </h1>")
    page.click("text=Zapisz szablon")
    page.wait_for_load_state()
    expect(page.locator("#html-error")).to_contain_text("wierszu 1")
    expect(page.locator(".flash-error")).to_be_visible()
    # Still wrong: the preview shows the error and the page keeps its own.
    page.click("text=Podejrzyj zmiany")
    page.frame_locator("iframe[name=preview]").locator(".flash-error").wait_for()
    expect(page.locator("#html-error")).to_be_visible()
    # Fixed: the preview renders and the stale error goes.
    page.fill("#html", "<h1>{{ subject }}</h1>")
    page.click("text=Podejrzyj zmiany")
    page.frame_locator("iframe[name=preview]").get_by_role("heading", name="Najbliższe wydarzenia").wait_for()
    expect(page.locator("#html-error")).to_have_count(0)
    expect(page.locator(".flash-error")).to_have_count(0)
    assert page.get_attribute("#html", "aria-invalid") is None


def test_screenshots_of_the_main_staff_pages(app, live_server, browser, staff_data):  # noqa: F811
    """Desktop and phone pictures of the dashboard, a subscriber search and the campaign's
    send controls (artifacts/screenshots/layout-*.png), each page checked to fit."""
    base = live_server
    for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page = new_page(browser, viewport)
        sign_in(page, base)
        for name, path in (("dashboard", "/admin/"), ("search", "/admin/subscribers?q=zofia"),
                           ("send", f"/admin/campaigns/{staff_data['admin.campaign']}")):
            page.goto(base + path)
            if name == "send":
                page.locator("#recipients-count").scroll_into_view_if_needed()
                page.screenshot(path=str(SHOTS / f"layout-{label}-{name}-viewport.png"))
            width, screen = overflow(page)
            assert width <= screen, (label, path, width)
            shot(page, f"{label}-{name}")
        page.close()


def test_preview_tabs_are_tabs_for_the_keyboard(app, live_server, browser, staff_data):  # noqa: F811
    base = live_server
    page = new_page(browser, DESKTOP)
    sign_in(page, base)
    page.goto(f"{base}/admin/campaigns/{staff_data['admin.campaign']}")
    tabs = page.get_by_role("tab")
    expect(tabs).to_have_count(3)
    desktop, phone = page.locator("#tab-desktop"), page.locator("#tab-phone")
    expect(desktop).to_have_attribute("aria-selected", "true")
    desktop.focus()
    page.keyboard.press("ArrowRight")
    expect(phone).to_be_focused()
    expect(phone).to_have_attribute("aria-selected", "true")
    expect(desktop).to_have_attribute("aria-selected", "false")
    expect(page.locator("#preview-panel")).to_have_attribute("data-view", "phone")
    expect(page.locator("#preview-panel")).to_have_attribute("aria-labelledby", "tab-phone")
    page.keyboard.press("End")
    expect(page.locator("#tab-text")).to_have_attribute("aria-selected", "true")
    page.keyboard.press("ArrowRight")  # wraps round
    expect(desktop).to_be_focused()
    assert page.get_attribute("#tab-phone", "tabindex") == "-1"
