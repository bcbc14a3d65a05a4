"""One commit point per request, and requests that behave as on a server: each in its own
context and session, so a view that forgot to commit, or a login that leaked into another
client, shows up here. And reading never writes: every GET route, walked as every role."""

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from mailer import links, preferences, subscriptions, tokens, users
from mailer.extensions import db
from mailer.models import (
    Category,
    AudienceAction,
    Campaign,
    CampaignStatus,
    Event,
    ImportJob,
    ImportStatus,
    MailingList,
    Role,
    Segment,
    Subscriber,
    Template,
    utcnow,
)
from mailer.web import transaction
from tests.helpers_api import Api, admin_token, make_list  # noqa: F401
from tests.helpers_staff import login_as, make_user

WRITES = re.compile(r"^\s*(INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER)\b", re.IGNORECASE)


def test_a_change_through_the_api_is_committed(client, admin_token, fresh):
    item = make_list("Sport")
    response = Api(client, admin_token).patch(f"/lists/{item.id}", {"name": "Kultura"})
    assert response.status_code == 200
    with fresh() as reader:  # another connection: only what was committed
        assert reader.get(MailingList, item.id).name == "Kultura"


def test_without_the_commit_point_nothing_is_kept(client, admin_token, fresh, monkeypatch):
    """The same request with the commit point switched off: the change is gone, so the test
    above is one that a missing commit fails."""
    item = make_list("Sport")
    monkeypatch.setattr(transaction, "WRITES", set())  # every request is treated as a read
    response = Api(client, admin_token).patch(f"/lists/{item.id}", {"name": "Kultura"})
    assert response.status_code == 200 and response.get_json()["name"] == "Kultura"
    with fresh() as reader:
        assert reader.get(MailingList, item.id).name == "Sport"


def test_a_refused_request_leaves_nothing(client, admin_token, fresh):
    item = make_list("Sport")
    api = Api(client, admin_token)
    assert api.patch(f"/lists/{item.id}", {"name": "x" * 500}).status_code == 400
    assert api.post("/lists", {"name": "Sport 2", "slug": "!!!"}).status_code == 400
    with fresh() as reader:
        assert [m.name for m in reader.scalars(sa.select(MailingList))] == ["Sport"]


def test_a_fresh_client_is_anonymous_after_another_one_logged_in(app, client, session):
    login_as(client, session, Role.ADMIN)
    assert client.get("/admin/").status_code == 200
    other = app.test_client()
    response = other.get("/admin/")
    assert response.status_code == 302 and "/admin/login" in response.headers["Location"]


def test_requests_do_not_share_the_test_session(client, admin_token, session):
    """An object the test holds is not the one the request changes: the test sees the change
    only after it ends its own transaction."""
    item = make_list("Sport")
    held = session.get(MailingList, item.id)
    Api(client, admin_token).patch(f"/lists/{item.id}", {"name": "Kultura"})
    assert held.name == "Sport"
    session.rollback()
    assert session.get(MailingList, item.id).name == "Kultura"


# --- GET never writes --------------------------------------------------------------------------

def seed(session) -> dict[str, str]:
    """One of everything a GET route can show, and the value of each route argument."""
    mailing_list = MailingList(name="Wydarzenia", slug="wydarzenia", public=True)
    event = Event(title="Koncert", starts_at=utcnow() + timedelta(days=3), place="Rynek")
    session.add_all([mailing_list, event])
    session.flush()
    subscriptions.subscribe(session, email="anna@example.org", consent=True, source="admin")
    subscriber = session.scalar(sa.select(Subscriber))
    sent = Campaign(subject="Koncert", status=CampaignStatus.SENT, archived=True, finished_at=utcnow())
    sent.lists = [mailing_list]
    session.add(sent)
    job = ImportJob(filename="a.csv", stored_name="gone.csv", status=ImportStatus.DONE, invalid_rows=[])
    segment = Segment(name="Krowodrza", conditions=[{"field": "language", "op": "is", "value": "pl"}])
    action = AudienceAction(action="tag", details={"tag": "x"}, status="done")
    category = Category(slug="koncerty", name_pl="Koncerty", name_en="Concerts")
    session.add_all([job, segment, action, category])
    session.flush()
    template = session.scalar(sa.select(Template))
    values = {
        "campaign_id": str(sent.id), "event_id": str(event.id), "list_id": str(mailing_list.id),
        "subscriber_id": str(subscriber.id), "template_id": str(template.id), "job_id": str(job.id),
        "segment_id": str(segment.id), "action_id": str(action.id), "category_id": str(category.id),
        "name": "nothing.eml", "filename": "css/app.css",
    }
    tokens_by_endpoint = {
        "public.confirm_page": subscriptions.confirm_token(subscriber),
        "public.unsubscribe": links.unsubscribe_url(subscriber.id).rsplit("/", 1)[1],
        "archive.view_in_browser": tokens.sign(tokens.VIEW, [sent.id, subscriber.id]),
        "preferences.page": tokens.manage_token(subscriber.id),
        "preferences.erase_page": preferences.erase_token(subscriber.id, subscriber.email_hash),
    }
    session.commit()
    return values | {f"token@{key}": value for key, value in tokens_by_endpoint.items()}


def get_routes(app, values: dict[str, str]) -> list[str]:
    paths = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods:
            continue

        def argument(match, endpoint=rule.endpoint):
            name = match.group(1)
            return values[f"token@{endpoint}"] if name == "token" else values[name]
        paths.append(re.sub(r"<(?:[^:>]+:)?(\w+)>", argument, rule.rule))
    return sorted(paths)


@pytest.fixture
def watch_writes(app):
    """Record every statement that would change the database, from any session."""
    seen: list[str] = []

    def before(_conn, _cursor, statement, _params, _context, _many):
        if WRITES.match(statement):
            seen.append(statement.split("\n")[0][:120])

    sa.event.listen(db.engine, "before_cursor_execute", before)
    yield seen
    sa.event.remove(db.engine, "before_cursor_execute", before)


def test_no_get_route_writes_as_any_role(app, session, watch_writes):
    values = seed(session)
    paths = get_routes(app, values)
    assert len(paths) > 40
    anonymous, editor, admin = app.test_client(), app.test_client(), app.test_client()
    login_as(editor, session, Role.EDITOR)
    login_as(admin, session, Role.ADMIN)
    api_tokens = []
    for role in (Role.EDITOR, Role.ADMIN):
        user = make_user(session, role)
        api_tokens.append(users.create_token(session, user, "tests"))
    session.commit()
    apis = [Api(app.test_client(), token) for token in api_tokens]
    for api in apis:  # a token's first use is recorded (at most once per few minutes)
        assert api.get("/lists").status_code == 200
    watch_writes.clear()

    answers = []
    for path in paths:
        for who, caller in (("anonymous", anonymous), ("editor", editor), ("admin", admin)):
            answers.append((who, path, caller.get(path).status_code))
        if path.startswith("/api/v1/"):
            for n, api in enumerate(apis):
                answers.append((f"api{n}", path, api.client.get(path, headers=api.headers()).status_code))
    assert not watch_writes, f"GET requests wrote: {watch_writes}"
    assert all(status < 500 for *_, status in answers), [a for a in answers if a[2] >= 500]
    assert sum(1 for *_, status in answers if status == 200) > 60  # they did show something
