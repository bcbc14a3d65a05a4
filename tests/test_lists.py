"""Mailing lists: the domain functions and the admin pages."""

import pytest
from sqlalchemy import func, select

from mailer import lists
from mailer.errors import Conflict, InvalidInput, NotFound
from mailer.models import MailingList, Role
from tests.helpers_staff import login_as, post


def count(session) -> int:
    return session.scalar(select(func.count(MailingList.id)))


def test_slug_transliterates_polish_letters(session):
    item = lists.create_list(session, name="Żółć i gęślą jaźń — Łódź 2026", description="Opis")
    assert item.slug == "zolc-i-gesla-jazn-lodz-2026"
    again = lists.create_list(session, name="Żółć i gęślą jaźń: Łódź 2026")
    assert again.slug == "zolc-i-gesla-jazn-lodz-2026-2"
    assert lists.slugify("Ścieżka rowerowa ŁĄKA") == "sciezka-rowerowa-laka"


def test_create_update_and_public_lists(session):
    public = lists.create_list(session, name="Koncerty")
    private = lists.create_list(session, name="Radni", public=False)
    assert [m.id for m in lists.public_lists(session)] == [public.id]
    assert {m.id for m in lists.all_lists(session)} == {public.id, private.id}
    lists.update_list(session, private.id, name="Rada Miasta", description="Dla radnych", public=True)
    assert private.name == "Rada Miasta" and private.public and private.slug == "radni"
    with pytest.raises(NotFound):
        lists.update_list(session, 999_999, name="x", description="", public=True)


@pytest.mark.parametrize("name", ["", "   ", "x" * 121, "Zła\r\nnazwa"])
def test_bad_names_are_refused(session, name):
    with pytest.raises(InvalidInput):
        lists.create_list(session, name=name)


def test_taken_or_empty_explicit_slug(session):
    lists.create_list(session, name="A", slug="wydarzenia")
    with pytest.raises(Conflict):
        lists.create_list(session, name="B", slug="Wydarzenia")
    with pytest.raises(InvalidInput):
        lists.create_list(session, name="C", slug="!!!")


def test_admin_creates_and_edits_a_list(client, session):
    login_as(client, session, Role.ADMIN)
    response = post(client, "/admin/lists", {"name": "Wystawy w muzeum", "description": "Co miesiąc",
                                              "public": "y"}, "/admin/lists")
    assert response.status_code == 302
    item = session.scalar(select(MailingList).where(MailingList.name == "Wystawy w muzeum"))
    assert item.slug == "wystawy-w-muzeum" and item.public
    page = client.get(f"/admin/lists/{item.id}")
    assert page.status_code == 200 and b"Wystawy w muzeum" in page.data
    response = post(client, f"/admin/lists/{item.id}", {"name": "Wystawy", "description": ""},
                    f"/admin/lists/{item.id}")
    assert response.status_code == 302
    session.refresh(item)
    assert item.name == "Wystawy" and not item.public
    assert b"Wystawy" in client.get("/admin/lists").data


@pytest.mark.parametrize("data", [{"name": ""}, {"name": "x" * 500}, {"name": "a\r\nb"},
                                  {"name": "ok", "description": "d" * 3000}])
def test_bad_list_form_is_a_400_and_nothing_written(client, session, data):
    login_as(client, session, Role.ADMIN)
    before = count(session)
    response = post(client, "/admin/lists", data, "/admin/lists")
    assert response.status_code == 400
    assert b"field-error" in response.data
    assert count(session) == before


def test_editing_a_missing_list_is_404(client, session):
    login_as(client, session, Role.ADMIN)
    assert client.get("/admin/lists/424242").status_code == 404


def test_editor_reads_but_cannot_change_lists(client, session):
    item = lists.create_list(session, name="Koncerty")
    session.commit()
    login_as(client, session, Role.EDITOR)
    page = client.get("/admin/lists")
    assert page.status_code == 200 and b"Koncerty" in page.data and b"<form" not in page.data.split(b"</header>")[1].split(b"<footer")[0]
    assert post(client, "/admin/lists", {"name": "Nowa"}, "/admin/").status_code == 403
    assert post(client, f"/admin/lists/{item.id}", {"name": "Zmiana"}, "/admin/").status_code == 403
