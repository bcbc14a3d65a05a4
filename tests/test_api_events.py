"""/api/v1/events: the CMS lists, pushes, edits and removes events."""

from datetime import datetime, timezone

import pytest

from mailer.extensions import db
from mailer.models import Campaign, CampaignEvent, CampaignStatus, Event
from tests.helpers_api import admin_token, anonymous, api, assert_error, editor_api, editor_token, event_body  # noqa: F401


def test_create_read_list_update_delete(editor_api):
    response = editor_api.post("/events", event_body(starts_at="2031-12-05T18:00", ends_at="2031-12-05T20:30:00+01:00"))
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert created["title"] == "Koncert na Rynku — jesień" and created["summary"] == "Zażółć gęślą jaźń"
    # without an offset the time is Warsaw's (UTC+1 in December)
    assert datetime.fromisoformat(created["starts_at"]) == datetime(2031, 12, 5, 17, 0, tzinfo=timezone.utc)
    assert datetime.fromisoformat(created["ends_at"]) == datetime(2031, 12, 5, 19, 30, tzinfo=timezone.utc)

    assert editor_api.get(f"/events/{created['id']}").get_json() == created
    assert [e["id"] for e in editor_api.get("/events").get_json()["items"]] == [created["id"]]
    assert [e["id"] for e in editor_api.get("/events?upcoming=true").get_json()["items"]] == [created["id"]]

    response = editor_api.patch(f"/events/{created['id']}", {"place": "Filharmonia", "ends_at": None})
    assert response.status_code == 200, response.get_json()
    changed = response.get_json()
    assert changed["place"] == "Filharmonia" and changed["ends_at"] is None
    assert changed["title"] == created["title"] and changed["starts_at"] == created["starts_at"]

    assert editor_api.delete(f"/events/{created['id']}").status_code == 204
    assert_error(editor_api.get(f"/events/{created['id']}"), 404)
    assert db.session.query(Event).count() == 0


def test_past_events_are_listed_but_not_upcoming(editor_api):
    editor_api.post("/events", event_body(title="Było", starts_at="2020-01-01T10:00:00+01:00"))
    editor_api.post("/events", event_body(title="Będzie"))
    assert [e["title"] for e in editor_api.get("/events").get_json()["items"]] == ["Będzie", "Było"]
    assert [e["title"] for e in editor_api.get("/events?upcoming=1").get_json()["items"]] == ["Będzie"]


@pytest.mark.parametrize("changes, field", [
    ({"title": ""}, "title"),
    ({"title": "x" * 201}, "title"),
    ({"title": "Koncert\r\nBcc: x"}, "title"),
    ({"title": 7}, "title"),
    ({"starts_at": "next friday"}, "starts_at"),
    ({"starts_at": 1733421600}, "starts_at"),
    ({"starts_at": None}, "starts_at"),
    ({"ends_at": "2020-01-01T00:00:00+00:00"}, "ends_at"),
    ({"summary": "x" * 501}, "summary"),
    ({"body_md": "x" * 20001}, "body_md"),
    ({"link": "javascript:alert(1)"}, "link"),
    ({"image_url": "ftp://example.org/a.png"}, "image_url"),
    ({"colour": "red"}, "colour"),
])
def test_create_refuses_bad_input(editor_api, changes, field):
    assert_error(editor_api.post("/events", event_body(**changes)), 400, field)
    assert db.session.query(Event).count() == 0


def test_create_needs_title_and_start(editor_api):
    body = event_body()
    del body["title"]
    assert_error(editor_api.post("/events", body), 400, "title")
    body = event_body()
    del body["starts_at"]
    assert_error(editor_api.post("/events", body), 400, "starts_at")


def test_update_refuses_bad_input_and_keeps_the_event(editor_api):
    created = editor_api.post("/events", event_body()).get_json()
    assert_error(editor_api.patch(f"/events/{created['id']}", {}), 400)
    assert_error(editor_api.patch(f"/events/{created['id']}", {"title": None}), 400, "title")
    assert_error(editor_api.patch(f"/events/{created['id']}", {"title": "x" * 300}), 400, "title")
    assert_error(editor_api.patch(f"/events/{created['id']}", {"ends_at": "2000-01-01T00:00:00Z"}),
                 400, "ends_at")
    assert editor_api.get(f"/events/{created['id']}").get_json() == created
    assert_error(editor_api.patch("/events/31337", {"title": "x"}), 404)


def test_delete_refuses_an_event_a_sent_campaign_announced(editor_api):
    created = editor_api.post("/events", event_body()).get_json()
    campaign = Campaign(subject="Zaproszenie", status=CampaignStatus.SENT,
                        campaign_events=[CampaignEvent(event_id=created["id"])])
    db.session.add(campaign)
    db.session.commit()
    assert_error(editor_api.delete(f"/events/{created['id']}"), 409)
    assert_error(editor_api.delete("/events/31337"), 404)
    assert db.session.query(Event).count() == 1


def test_events_need_a_token(anonymous):
    assert_error(anonymous.get("/events"), 401)
    assert_error(anonymous.post("/events", event_body()), 401)
    assert db.session.query(Event).count() == 0
