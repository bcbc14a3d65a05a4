"""/api/v1/campaigns: compose from events and lists, schedule, send through a real worker and
SMTP server, follow the progress, pause/resume/cancel."""

import time
from datetime import datetime, timedelta, timezone

import pytest

from mailer.extensions import db
from mailer.models import Campaign, Subscriber, Subscription, SubscriptionStatus
from tests.helpers_api import admin_token, anonymous, api, assert_error, editor_api, editor_token, event_body, make_list  # noqa: F401


def audience(size: int = 3):
    news = make_list("Wydarzenia")
    for n in range(size):
        subscriber = Subscriber(email=f"odbiorca{n}@example.org", name=f"Odbiorca {n}")
        db.session.add(subscriber)
        db.session.add(Subscription(subscriber=subscriber, list_id=news.id,
                                    status=SubscriptionStatus.CONFIRMED))
    db.session.commit()
    return news


def compose(api, list_ids: list[int], **changes) -> dict:
    event = api.post("/events", event_body()).get_json()
    response = api.post("/campaigns", {"event_ids": [event["id"]], "list_ids": list_ids} | changes)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_compose_prefills_subject_and_shows_progress(editor_api):
    news = audience()
    created = compose(editor_api, [news.id])
    assert created["subject"] == "Koncert na Rynku — jesień" and created["status"] == "draft"
    assert created["list_ids"] == [news.id] and len(created["event_ids"]) == 1
    shown = editor_api.get(f"/campaigns/{created['id']}").get_json()
    assert shown["progress"]["status"] == "draft" and shown["progress"]["sent"] == 0
    assert editor_api.get(f"/campaigns/{created['id']}/progress").get_json()["total"] == 0
    assert [c["id"] for c in editor_api.get("/campaigns").get_json()["items"]] == [created["id"]]


def test_compose_with_own_subject_then_edit(editor_api):
    news = audience(0)
    created = compose(editor_api, [news.id], subject="Zaproszenie na koncert", locale="en",
                      preheader="Wstęp wolny")
    assert (created["subject"], created["preheader"], created["locale"]) == \
        ("Zaproszenie na koncert", "Wstęp wolny", "en")
    response = editor_api.patch(f"/campaigns/{created['id']}", {"subject": "Koncert — zmiana godziny"})
    assert response.status_code == 200
    assert response.get_json()["subject"] == "Koncert — zmiana godziny"
    assert_error(editor_api.patch(f"/campaigns/{created['id']}", {"subject": "a\r\nBcc: x"}), 400, "subject")
    assert_error(editor_api.patch(f"/campaigns/{created['id']}", {"status": "sent"}), 400, "status")


@pytest.mark.parametrize("changes, field", [
    ({"event_ids": []}, "event_ids"),
    ({"event_ids": [424242]}, "event_ids"),
    ({"event_ids": "1"}, "event_ids"),
    ({"event_ids": [1.5]}, "event_ids"),
    ({"event_ids": list(range(1, 200))}, "event_ids"),
    ({"list_ids": [424242]}, "list_ids"),
    ({"list_ids": None}, "list_ids"),
    ({"subject": "x" * 201}, "subject"),
    ({"subject": "Koncert\nBcc: x@example.org"}, "subject"),
    ({"template_id": 424242}, "template_id"),
    ({"template_id": "1"}, "template_id"),
    ({"locale": "fr"}, "locale"),
])
def test_compose_refuses_bad_input(editor_api, changes, field):
    news = audience(0)
    event = editor_api.post("/events", event_body()).get_json()
    body = {"event_ids": [event["id"]], "list_ids": [news.id]} | changes
    assert_error(editor_api.post("/campaigns", body), 400, field)
    assert db.session.query(Campaign).count() == 0


def test_schedule_and_unschedule(editor_api):
    news = audience(1)
    created = compose(editor_api, [news.id])
    at = (datetime.now(timezone.utc) + timedelta(days=2)).replace(microsecond=0)
    response = editor_api.post(f"/campaigns/{created['id']}/schedule", {"at": at.isoformat()})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "scheduled"
    assert datetime.fromisoformat(response.get_json()["scheduled_at"]) == at
    response = editor_api.post(f"/campaigns/{created['id']}/unschedule")
    assert response.get_json()["status"] == "draft" and response.get_json()["scheduled_at"] is None
    assert_error(editor_api.post(f"/campaigns/{created['id']}/unschedule"), 409)


@pytest.mark.parametrize("body, field", [
    ({}, "at"), ({"at": "tomorrow"}, "at"), ({"at": 1893456000}, "at"),
    ({"at": "2001-01-01T10:00:00+00:00"}, None), ({"at": "2031-01-01T10:00:00", "when": "now"}, "when"),
])
def test_schedule_refuses_bad_times(editor_api, body, field):
    news = audience(1)
    created = compose(editor_api, [news.id])
    assert_error(editor_api.post(f"/campaigns/{created['id']}/schedule", body), 400, field)
    assert editor_api.get(f"/campaigns/{created['id']}").get_json()["status"] == "draft"


def test_unknown_campaigns_are_404(editor_api):
    for path in ("", "/progress"):
        assert_error(editor_api.get(f"/campaigns/424242{path}"), 404)
    for action in ("send", "pause", "resume", "cancel", "unschedule"):
        assert_error(editor_api.post(f"/campaigns/424242/{action}"), 404)
    assert_error(editor_api.post("/campaigns/424242/schedule", {"at": "2031-01-01T10:00:00Z"}), 404)
    assert_error(editor_api.patch("/campaigns/424242", {"subject": "x"}), 404)


def test_wrong_states_are_409(editor_api):
    news = audience(0)
    created = compose(editor_api, [news.id])
    assert_error(editor_api.post(f"/campaigns/{created['id']}/pause"), 409)
    assert_error(editor_api.post(f"/campaigns/{created['id']}/resume"), 409)
    assert editor_api.post(f"/campaigns/{created['id']}/cancel").get_json()["status"] == "cancelled"
    assert_error(editor_api.post(f"/campaigns/{created['id']}/cancel"), 409)
    assert_error(editor_api.post(f"/campaigns/{created['id']}/send"), 409)
    assert_error(editor_api.patch(f"/campaigns/{created['id']}", {"subject": "x"}), 409)


def test_send_reaches_every_subscriber_and_progress_says_so(editor_api, celery_worker, smtp_server):
    news = audience(3)
    created = compose(editor_api, [news.id])
    response = editor_api.post(f"/campaigns/{created['id']}/send")
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["status"] == "sending"
    smtp_server.wait_for(3)
    assert {m for m in ("odbiorca0@example.org", "odbiorca1@example.org", "odbiorca2@example.org")
            if smtp_server.to(m)} == {"odbiorca0@example.org", "odbiorca1@example.org",
                                      "odbiorca2@example.org"}
    deadline = time.monotonic() + 60
    while True:
        progress = editor_api.get(f"/campaigns/{created['id']}/progress").get_json()
        if progress["status"] == "sent" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert (progress["status"], progress["total"], progress["sent"], progress["failed"]) == ("sent", 3, 3, 0)
    assert_error(editor_api.post(f"/campaigns/{created['id']}/send"), 409)


def test_campaigns_need_a_token(anonymous):
    assert_error(anonymous.post("/campaigns", {"event_ids": [1], "list_ids": [1]}), 401)
    assert db.session.query(Campaign).count() == 0


def test_sending_or_scheduling_to_nobody_is_refused_and_stays_a_draft(editor_api, smtp_server):
    news = audience(0)
    created = compose(editor_api, [news.id])
    assert editor_api.get(f"/campaigns/{created['id']}").get_json()["recipients"] == 0
    response = editor_api.post(f"/campaigns/{created['id']}/send")
    assert_error(response, 400, "list_ids")
    assert response.get_json()["error"].startswith("Nikt nie otrzymałby tej kampanii")
    at = (datetime.now(timezone.utc) + timedelta(days=2)).replace(microsecond=0)
    assert_error(editor_api.post(f"/campaigns/{created['id']}/schedule", {"at": at.isoformat()}), 400, "list_ids")
    assert editor_api.get(f"/campaigns/{created['id']}").get_json()["status"] == "draft"
    response = editor_api.patch(f"/campaigns/{created['id']}", {"subject": "Nadal szkic"})
    assert response.status_code == 200  # still editable
    assert not smtp_server.messages
