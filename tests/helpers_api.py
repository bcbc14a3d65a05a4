"""Fixtures and factories for the API tests: staff with tokens, and JSON requests."""

import json
from datetime import datetime, timedelta, timezone

import pytest
from celery.utils.nodenames import anon_nodename

from mailer import users
from mailer.extensions import db
from mailer.models import MailingList, Role

PASSWORD = "correct horse battery"


def token_for(role: Role, email: str) -> str:
    user = users.create_user(db.session, email, PASSWORD, role)
    token = users.create_token(db.session, user, "tests")
    db.session.commit()
    return token


@pytest.fixture
def admin_token(app):
    return token_for(Role.ADMIN, "admin@miasto.example.pl")


@pytest.fixture
def editor_token(app):
    return token_for(Role.EDITOR, "editor@miasto.example.pl")


class Api:
    """A test client speaking JSON with a Bearer token."""

    def __init__(self, client, token: str | None):
        self.client, self.token = client, token

    def headers(self, extra: dict | None = None) -> dict:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return headers | (extra or {})

    def get(self, path: str, **kwargs):
        return self.client.get("/api/v1" + path, headers=self.headers(), **kwargs)

    def delete(self, path: str):
        return self.client.delete("/api/v1" + path, headers=self.headers())

    def send(self, method: str, path: str, body=None, *, raw: bytes | None = None,
             content_type: str = "application/json", headers: dict | None = None):
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        return self.client.open("/api/v1" + path, method=method, data=data,
                                content_type=content_type, headers=self.headers(headers))

    def post(self, path: str, body=None, **kwargs):
        return self.send("POST", path, body, **kwargs)

    def patch(self, path: str, body=None, **kwargs):
        return self.send("PATCH", path, body, **kwargs)


@pytest.fixture
def api(client, admin_token):
    return Api(client, admin_token)


@pytest.fixture
def editor_api(client, editor_token):
    return Api(client, editor_token)


@pytest.fixture
def anonymous(client):
    return Api(client, None)


def make_list(name: str = "Wydarzenia", public: bool = True, slug: str | None = None) -> MailingList:
    item = MailingList(name=name, slug=slug or name.lower().replace(" ", "-"), public=public)
    db.session.add(item)
    db.session.commit()
    return item


def future(days: int = 7) -> str:
    return (datetime.now(timezone.utc) + timedelta(days=days)).replace(microsecond=0).isoformat()


def event_body(**changes) -> dict:
    body = {"title": "Koncert na Rynku — jesień", "starts_at": future(7), "place": "Rynek Główny",
            "summary": "Zażółć gęślą jaźń", "body_md": "**Wstęp wolny**", "link": "https://miasto.example.pl/k"}
    return body | changes


def assert_error(response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json, response.get_data(as_text=True)
    body = response.get_json()
    assert isinstance(body.get("error"), str) and body["error"]
    if field is not None:
        assert body.get("field") == field, body
    return body


def settle(celery_worker) -> None:
    """Drop the tasks still queued and wait (ping) until the test worker, named after this
    process, has finished the one in hand: the tables are then not emptied under a running
    task (a deadlock on PostgreSQL)."""
    celery_worker.control.purge()
    assert celery_worker.control.ping(destination=[anon_nodename()], timeout=30, limit=1)
