"""Staff templates render within hard limits of time, output and memory wherever they render
(STANDARDS 37): each class of blow-up is a clear 400 naming what was exceeded, within a few
seconds, and the site keeps answering meanwhile. The sandbox refuses the cheap expressions
outright; a child process with a deadline and an address-space limit stops the rest."""

import re
import threading
import time

import pytest
import requests
from werkzeug.serving import make_server

from mailer import campaigns, email_templates
from mailer.errors import InvalidInput
from mailer.mail.render import Limits, TemplateLimit, compile_limited
from mailer.models import Role
from tests.helpers_content import make_event, make_list
from tests.helpers_staff import login_as, make_user, post

# Each answers 400 quickly; the comment names the fence that stops it.
REFUSED_AT_ONCE = [
    "{{ '{:999999999}'.format(1) }}",                       # format width
    "{{ '{:>{}}'.format(1, 999999999) }}",                  # nested width
    "{{ '{0:0999999999d}'.format(7) }}",
    "{{ '%999999999d' % 1 }}",                              # printf width
    "{{ '%*d' % (999999999, 1) }}",
    "{{ '%.999999999f' % 1.5 }}",
    "{{ '%999999999s'|format('a') }}",                      # the format filter
    "{{ 'x'.center(999999999) }}",                          # padding methods
    "{{ 'x'.ljust(999999999) }}", "{{ 'x'.rjust(999999999) }}", "{{ '1'.zfill(999999999) }}",
    "{{ ('\t' * 1000).expandtabs(999999) }}",
    "{{ 'x'|center(999999999) }}",                          # padding filters
    "{{ 'x\ny'|indent(999999999, true) }}",
    "{{ ('a' * 99999).replace('a', 'bbbbbbbbbb') }}",       # replace
    "{{ ('a' * 99999)|replace('a', 'bbbbbbbbbb') }}",
    "{{ ('x' * 99999).join(['a'] * 99999) }}",              # join
    "{{ 'x' * 999999999 }}", "{{ ['x'] * 999999999 }}", "{{ 9 ** 999999 }}",  # repetition, powers
    "{{ lipsum(999999) }}", "{{ lipsum(1, false, 1, 99999999) }}",
    "{{ [1]|batch(999999999, 'x')|list }}", "{{ [1]|slice(999999999)|list }}",
    "{{ events[0].starts_at.strftime('%999999999Y') }}",   # strftime width
]
# What no single check sees: stopped by the output budget, the deadline or the memory limit.
STOPPED_BY_LIMITS = {
    "output": "{% for i in range(99999) %}{{ 'x' * 99999 }}{% endfor %}",
    "time": "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
    "time-strings": "{% set s = 'x' * 99999 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}",
    "memory": "{% set ns = namespace(a='') %}{% for i in range(99999) %}"
              "{% set ns.a = ns.a ~ ('x' * 99999) ~ ns.a[:99999] %}{% endfor %}{{ ns.a|length }}",
    "recursion": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(1) }}",
}
# The words of the Polish answers that name the limit ("... większy niż 1024 kB", "... trwało
# dłużej niż 2 s", "... więcej niż 256 MB pamięci").
NAMED = {"output": "kB", "time": "dłużej", "time-strings": "dłużej", "memory": ("MB", "dłużej"),
         "recursion": "nie udało"}


@pytest.fixture
def editor(client, session):
    login_as(client, session, Role.EDITOR)
    return client


def preview(client, html: str):
    layout = email_templates.layouts(__import__("mailer.extensions", fromlist=["db"]).db.session)[0]
    return post(client, "/admin/templates/preview", {"kind": "content", "layout_id": layout.id, "html": html,
                                                     "text": "", "name": "x"}, "/admin/templates/new")


@pytest.mark.parametrize("html", REFUSED_AT_ONCE)
def test_cheap_blow_ups_are_refused_by_the_sandbox(editor, session, html):
    make_event(session)
    started = time.monotonic()
    response = preview(editor, html)
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert time.monotonic() - started < 20  # not a benchmark: a hang would fail here
    page = response.get_data(as_text=True)
    assert "niedozwolone" in page, page[:2000]  # "tries something that is not allowed (...)"


@pytest.mark.parametrize("kind", sorted(STOPPED_BY_LIMITS))
def test_every_other_blow_up_stops_at_a_limit_named_in_the_answer(app, editor, session, kind, monkeypatch):
    monkeypatch.setitem(app.config, "TEMPLATE_RENDER_SECONDS", 2)
    monkeypatch.setitem(app.config, "LANGUAGES", ["pl"])  # one render per request
    make_event(session)
    started = time.monotonic()
    response = preview(editor, STOPPED_BY_LIMITS[kind])
    assert response.status_code == 400
    assert time.monotonic() - started < 20
    page = response.get_data(as_text=True)
    named = NAMED[kind] if isinstance(NAMED[kind], tuple) else (NAMED[kind],)
    assert any(word.lower() in page.lower() for word in named), page[-3000:]


@pytest.mark.parametrize("kind", ["time", "output", "memory"])
def test_limits_hold_wherever_staff_templates_render(app, session, kind):
    """Saving, creating a campaign from a template and launching (the freeze) all go through
    the same limited render; here the domain calls the web, API and worker make."""
    app.config["TEMPLATE_RENDER_SECONDS"], saved = 2, app.config["TEMPLATE_RENDER_SECONDS"]
    try:
        layout = email_templates.layouts(session)[0]
        with pytest.raises(InvalidInput):
            email_templates.save_template(session, None, {"name": "Zły", "kind": "content", "layout_id": layout.id,
                                                          "html": STOPPED_BY_LIMITS[kind], "text": ""})
        session.rollback()
        # A template that is harmless with the sample events but explodes with many real ones.
        bomb = ("{% for a in events %}{% for b in events %}{% for c in events %}{% for d in events %}"
                "{% for e in range(99999) %}{% endfor %}{% endfor %}{% endfor %}{% endfor %}{% endfor %}")
        template = email_templates.save_template(session, None, {"name": "Pętla", "kind": "content",
                                                                 "layout_id": layout.id, "html": "x", "text": ""})
        session.commit()
        events = [make_event(session, f"Wydarzenie {n}").id for n in range(12)]
        campaign = campaigns.create_campaign(session, event_ids=events, list_ids=[make_list(session).id],
                                             template_id=template.id)
        template.html = bomb
        session.commit()
        from mailer import campaign_mail

        with pytest.raises(TemplateLimit):
            campaign_mail.freeze(session, campaign)
    finally:
        app.config["TEMPLATE_RENDER_SECONDS"] = saved
        session.rollback()


def test_a_child_that_dies_is_a_limit_not_a_crash():
    limits = Limits(seconds=2, output=1000, memory=64 * 1024 * 1024)
    parts = {"subject": "S", "preheader": "", "layout_html": "{{ content }}", "layout_text": "",
             "content_text": "", "context": {}}
    ok = compile_limited(limits, content_html="<p>Dzień dobry</p>", **parts)
    assert "Dzień dobry" in ok.html_source
    with pytest.raises(TemplateLimit, match="larger"):
        compile_limited(limits, content_html="{{ 'x' * 5000 }}", **parts)
    with pytest.raises(InvalidInput, match="line 1"):
        compile_limited(limits, content_html="{% if %}", **parts)


def test_repeated_blow_ups_are_answered_429(app, editor, session, monkeypatch):
    monkeypatch.setitem(app.config, "TEMPLATE_LIMIT_STRIKES", "2 per minute")
    monkeypatch.setitem(app.config, "LANGUAGES", ["pl"])
    codes = [preview(editor, STOPPED_BY_LIMITS["output"]).status_code for _ in range(3)]
    assert codes == [400, 400, 429]
    assert preview(editor, "<p>spokojnie</p>").status_code == 429  # until the window passes


def test_the_site_keeps_answering_during_an_attack(app, session, monkeypatch):
    """Several hostile previews at once against a threaded server (as gunicorn's gthread
    workers): the home page and a staff page answer while they run, and each ends in a 400."""
    monkeypatch.setitem(app.config, "TEMPLATE_RENDER_SECONDS", 3)
    monkeypatch.setitem(app.config, "LANGUAGES", ["pl"])
    make_event(session)
    user = make_user(session, Role.EDITOR)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        browser = requests.Session()
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', browser.get(f"{base}/admin/login").text).group(1)
        browser.post(f"{base}/admin/login", data={"csrf_token": token, "email": user.email,
                                                  "password": "correct horse battery"})
        form = browser.get(f"{base}/admin/templates/new").text
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form).group(1)
        layout_id = re.search(r'<option value="(\d+)"', form).group(1)
        hostile = {"csrf_token": token, "kind": "content", "layout_id": layout_id, "text": "", "name": "x",
                   "html": STOPPED_BY_LIMITS["time"]}
        results: list[tuple[int, float]] = []

        def attack():
            answer = requests.post(f"{base}/admin/templates/preview", data=hostile, cookies=browser.cookies,
                                   timeout=60)
            results.append((answer.status_code, time.monotonic()))

        attackers = [threading.Thread(target=attack) for _ in range(3)]
        for thread in attackers:
            thread.start()
        time.sleep(0.5)
        home = requests.get(f"{base}/", timeout=30)
        staff = browser.get(f"{base}/admin/campaigns", timeout=30)
        answered = time.monotonic()
        for thread in attackers:
            thread.join(60)
        assert home.status_code == 200 and staff.status_code == 200
        assert [code for code, _ in results] == [400, 400, 400]
        assert answered < min(when for _, when in results)  # answered while the attack was running
    finally:
        server.shutdown()
