"""Email templates: validation on save (syntax, placeholder, sandbox), defaults, preview, pages."""

import pytest

from mailer import email_templates
from mailer.errors import InvalidInput
from mailer.models import Template, TemplateKind
from tests.helpers_content import log_in, make_event, make_staff, post

LAYOUT = ("<html><body>{{ content }}<p><a href=\"{{ unsubscribe_url }}\">Wypisz</a></p>"
          "</body></html>")


@pytest.fixture
def layout(session):
    return session.query(Template).filter_by(name="Układ podstawowy").one()


@pytest.fixture
def editor_client(client, session):
    log_in(client, make_staff(session))
    return client


def content(layout, html="<h1>{{ events[0].title }}</h1>", text=""):
    return {"name": "Mój szablon", "kind": "content", "layout_id": str(layout.id), "html": html,
            "text": text}


def test_defaults_render_with_polish_and_a_text_part(session, layout):
    make_event(session, title="Koncert kolęd — Zażółć gęślą jaźń")
    for name in ("Zapowiedź wydarzenia", "Przegląd wydarzeń"):
        template = session.query(Template).filter_by(name=name).one()
        rendered = email_templates.preview(session, template.id)
        assert "Zażółć gęślą jaźń" in rendered.html and "Zażółć gęślą jaźń" in rendered.text
        assert 'width="600"' in rendered.html and "max-width" in rendered.html
        assert "#unsubscribe" in rendered.html and "#unsubscribe" in rendered.text
        assert "Anna Kowalska" in rendered.text


def test_save_content_template(session, layout):
    template = email_templates.save_template(session, None, content(layout))
    session.commit()
    assert template.kind == TemplateKind.CONTENT and template.layout_id == layout.id


@pytest.mark.parametrize("html, expected", [
    ("<p>{{ events[0].title </p>", "line 1"),
    ("<p>ok</p>\n\n{% if %}", "line 3"),
    ("{{ ''.__class__.__mro__ }}", "not allowed"),
    ("{{ '{0.__class__.__mro__}'|attr('format')(1) }}", "not allowed"),
    ("{{ '{0.__class__}'.format(events) }}", "not allowed"),
    ("{{ events.append(1) }}", "not allowed"),
    ("{{ cycler.__init__.__globals__ }}", "not allowed"),
    ("{{ no_such_variable }}", "cannot be rendered"),
    ("{{ 1 / 0 }}", "cannot be rendered"),
])
def test_broken_or_hostile_content_is_refused(session, layout, html, expected):
    with pytest.raises(InvalidInput) as caught:
        email_templates.save_template(session, None, content(layout, html))
    assert expected in caught.value.message
    session.rollback()
    assert session.query(Template).filter_by(name="Mój szablon").count() == 0


def test_layout_needs_the_unsubscribe_placeholder(session, layout):
    values = {"name": "Nowy układ", "kind": "layout", "html": "<p>{{ content }}</p>", "text": ""}
    with pytest.raises(InvalidInput) as caught:
        email_templates.save_template(session, None, values)
    assert caught.value.field == "html"
    with pytest.raises(InvalidInput) as caught:
        email_templates.save_template(session, None, {**values, "html": LAYOUT,
                                                      "text": "{{ content }}"})
    assert caught.value.field == "text"
    with pytest.raises(InvalidInput) as caught:
        email_templates.save_template(session, None, {**values, "html": LAYOUT.replace(
            "{{ content }}", "")})
    assert "{{ content }}" in caught.value.message
    saved = email_templates.save_template(session, None, {**values, "html": LAYOUT,
                                                          "text": "{{ content }}\n{{ unsubscribe_url }}"})
    assert saved.kind == TemplateKind.LAYOUT


@pytest.mark.parametrize("change, field", [
    ({"name": ""}, "name"), ({"name": "x" * 121}, "name"), ({"name": "a\nb"}, "name"),
    ({"name": "Zapowiedź wydarzenia"}, "name"), ({"layout_id": ""}, "layout_id"),
    ({"kind": "other"}, "kind"), ({"html": ""}, "html"), ({"html": "x" * 100_001}, "html"),
])
def test_bad_fields(session, layout, change, field):
    with pytest.raises(InvalidInput) as caught:
        email_templates.save_template(session, None, {**content(layout), **change})
    assert caught.value.field == field


def test_restore_default(session, layout):
    original = layout.html
    email_templates.save_template(session, layout.id, {"name": layout.name, "html": LAYOUT,
                                                       "text": ""})
    assert layout.html == LAYOUT
    email_templates.restore_default(session, layout.id)
    assert layout.html == original
    own = email_templates.save_template(session, None, content(layout))
    with pytest.raises(InvalidInput):
        email_templates.restore_default(session, own.id)


def test_pages(editor_client, session, layout):
    listing = editor_client.get("/admin/templates")
    assert listing.status_code == 200 and "Zapowiedź wydarzenia" in listing.get_data(as_text=True)
    page = editor_client.get(f"/admin/templates/{layout.id}")
    assert page.status_code == 200 and "Przywróć domyślny" in page.get_data(as_text=True)
    frame = editor_client.get(f"/admin/templates/preview?id={layout.id}")
    assert frame.status_code == 200 and "script-src" not in frame.headers["Content-Security-Policy"]
    response = post(editor_client, "/admin/templates/new", content(layout), "/admin/templates/new")
    assert response.status_code == 302
    created = session.query(Template).filter_by(name="Mój szablon").one()
    response = post(editor_client, f"/admin/templates/{layout.id}/restore", {}, "/admin/templates/new")
    assert response.status_code == 302


def test_hostile_template_through_the_form_is_a_400(editor_client, session, layout):
    response = post(editor_client, "/admin/templates/new",
                    content(layout, "{{ ''.__class__.__mro__[1].__subclasses__() }}"),
                    "/admin/templates/new")
    assert response.status_code == 400
    assert "niedozwolone" in response.get_data(as_text=True)
    response = post(editor_client, "/admin/templates/new", content(layout, "{% for %}"),
                    "/admin/templates/new")
    assert response.status_code == 400
    assert "w wierszu 1" in response.get_data(as_text=True)
    assert session.query(Template).filter_by(name="Mój szablon").count() == 0


def test_preview_of_unsaved_edits(editor_client, session, layout):
    make_event(session, title="Wystawa fotografii")
    response = post(editor_client, "/admin/templates/preview", content(layout), "/admin/templates/new")
    assert response.status_code == 200 and "Wystawa fotografii" in response.get_data(as_text=True)
    response = post(editor_client, "/admin/templates/preview", content(layout, "{{ x.__class__ }}"),
                    "/admin/templates/new")
    assert response.status_code == 400
