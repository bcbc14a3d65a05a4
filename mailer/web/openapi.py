"""The OpenAPI 3.1 document of /api/v1, as data. Request bodies come from api_schemas, so the
document and the validation cannot drift apart; tests compare its paths with the url_map."""

from . import api_schemas as schemas

ID = {"type": "integer", "minimum": 1, "maximum": schemas.MAX_ID}
TIME = {"type": ["string", "null"], "format": "date-time"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict:
    return {"$ref": f"#/components/responses/{description}"}


def _operation(summary: str, ok: tuple[int, dict | None, str], *, body: str | None = None,
               params: list | None = None, errors=(), admin: bool = False) -> dict:
    status, schema, description = ok
    responses = {str(status): _json(schema, description) if schema else {"description": description}}
    for code in ("400", "401", *errors, "429"):
        responses[code] = _error(code)
    if admin:
        responses["403"] = _error("403")
    operation = {"summary": summary, "responses": responses}
    if admin:
        operation["description"] = "Only for tokens of administrators (403 for editors)."
    if params:
        operation["parameters"] = params
    if body:
        operation["requestBody"] = {"required": True,
                                    "content": {"application/json": {"schema": _ref(body)}}}
    return operation


def _path_id(name: str, what: str) -> dict:
    return {"name": name, "in": "path", "required": True, "description": f"The {what}'s id.",
            "schema": ID}


def _query(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}


def _items(name: str) -> dict:
    return {"type": "object", "required": ["items"],
            "properties": {"items": {"type": "array", "items": _ref(name)}}}


MODELS = {
    "Error": {"type": "object", "required": ["error"], "properties": {
        "error": {"type": "string", "description": "What is wrong, in the request's language."},
        "field": {"type": "string", "description": "The field at fault, when there is one."}}},
    "List": {"type": "object", "required": ["id", "name", "slug", "description", "public"],
             "properties": {"id": ID, "name": {"type": "string"}, "slug": {"type": "string"},
                            "description": {"type": "string"}, "public": {"type": "boolean"},
                            "created_at": TIME}},
    "Subscription": {"type": "object", "properties": {
        "list_id": ID, "status": {"type": "string", "enum": ["pending", "confirmed", "unsubscribed"]},
        "created_at": TIME, "confirmed_at": TIME, "unsubscribed_at": TIME}},
    "Subscriber": {"type": "object", "required": ["id", "email", "subscriptions"], "properties": {
        "id": ID, "email": {"type": "string"}, "name": {"type": "string"},
        "locale": {"type": "string"}, "created_at": TIME,
        "subscriptions": {"type": "array", "items": _ref("Subscription")}}},
    "SubscriberPage": {"type": "object", "required": ["items", "total", "page", "per_page"],
                       "properties": {"items": {"type": "array", "items": _ref("Subscriber")},
                                      "total": {"type": "integer"}, "page": {"type": "integer"},
                                      "per_page": {"type": "integer"}}},
    "SubscriberExport": {"type": "object", "description":
                         "Everything kept about the subscriber, with the consent history."},
    "Accepted": {"type": "object", "required": ["status"], "properties": {
        "status": {"type": "string", "const": "accepted"}, "message": {"type": "string"}}},
    "Event": {"type": "object", "required": ["id", "title", "starts_at"], "properties": {
        "id": ID, "title": {"type": "string"}, "starts_at": {"type": "string", "format": "date-time"},
        "ends_at": TIME, "place": {"type": "string"}, "summary": {"type": "string"},
        "body_md": {"type": "string"}, "image_url": {"type": "string"}, "link": {"type": "string"},
        "created_at": TIME, "updated_at": TIME}},
    "Progress": {"type": "object", "required": ["status", "total", "sent", "failed"], "properties": {
        "status": {"type": "string", "enum": ["draft", "scheduled", "sending", "paused", "sent",
                                              "cancelled"]},
        "total": {"type": "integer"}, "queued": {"type": ["integer", "null"]},
        "sent": {"type": "integer"}, "failed": {"type": "integer"},
        "skipped": {"type": ["integer", "null"], "description": "Not sent: cancelled or suppressed."},
        "rate": {"type": ["number", "null"], "description": "Messages per second."},
        "eta_seconds": {"type": ["number", "null"]}, "reason": {"type": ["string", "null"]}}},
    "Campaign": {"type": "object", "required": ["id", "subject", "status", "event_ids", "list_ids"],
                 "properties": {
        "id": ID, "name": {"type": "string"}, "subject": {"type": "string"},
        "preheader": {"type": "string"}, "template_id": {"type": ["integer", "null"]},
        "locale": {"type": "string"}, "archived": {"type": "boolean"},
        "status": {"type": "string", "enum": ["draft", "scheduled", "sending", "paused", "sent",
                                              "cancelled"]},
        "event_ids": {"type": "array", "items": ID}, "list_ids": {"type": "array", "items": ID},
        "scheduled_at": TIME, "started_at": TIME, "finished_at": TIME, "created_at": TIME,
        "bounce_count": {"type": "integer", "description": "Messages that came back (once per message)."},
        "complaint_count": {"type": "integer", "description": "Recipients who marked it as spam."},
        "bounce_rate": {"type": ["number", "null"], "description": "Bounces per message sent (0-1)."},
        "complaint_rate": {"type": ["number", "null"], "description": "Complaints per message sent (0-1)."},
        "progress": _ref("Progress")}},
}

BODIES = {
    "ListCreate": schemas.json_schema(schemas.LIST_CREATE),
    "ListUpdate": schemas.json_schema(schemas.LIST_UPDATE, partial=True),
    "Subscribe": schemas.json_schema(schemas.SUBSCRIBE),
    "EventCreate": schemas.json_schema(schemas.EVENT),
    "EventUpdate": schemas.json_schema(schemas.EVENT, partial=True),
    "CampaignCreate": schemas.json_schema(schemas.CAMPAIGN_CREATE),
    "CampaignUpdate": schemas.json_schema(schemas.CAMPAIGN_UPDATE, partial=True),
    "CampaignSchedule": schemas.json_schema(schemas.CAMPAIGN_SCHEDULE),
}

RESPONSES = {
    "400": "Malformed JSON, a wrong type, a missing, unknown or overlong field, or a broken rule.",
    "401": "No token, or a token that is unknown or revoked.",
    "403": "The token's user may not do this.",
    "404": "No such item.",
    "409": "The item's state does not allow this.",
    "413": "The body is too large.",
    "429": "Too many requests; wait and try again.",
}

LIST_ID, EVENT_ID = _path_id("list_id", "list"), _path_id("event_id", "event")
SUBSCRIBER_ID, CAMPAIGN_ID = _path_id("subscriber_id", "subscriber"), _path_id("campaign_id", "campaign")
NO_CONTENT = (204, None, "Done.")


def paths() -> dict:
    return {
        "/openapi.json": {"get": {"summary": "This document.", "security": [],
                                  "responses": {"200": {"description": "The OpenAPI document.",
                                                        "content": {"application/json": {}}}}}},
        "/lists": {
            "get": _operation("All mailing lists.", (200, _items("List"), "The lists.")),
            "post": _operation("Create a list.", (201, _ref("List"), "The new list."),
                               body="ListCreate", errors=("409",), admin=True),
        },
        "/lists/{list_id}": {
            "parameters": [LIST_ID],
            "patch": _operation("Rename, describe, or make a list public or private.",
                                (200, _ref("List"), "The changed list."), body="ListUpdate",
                                errors=("404", "409"), admin=True),
        },
        "/subscribers": {
            "get": _operation("Search subscribers by address or name, filter by list and status.",
                              (200, _ref("SubscriberPage"), "One page of subscribers."), params=[
                _query("query", {"type": "string", "maxLength": 200}, "Part of an address or name."),
                _query("list_id", ID, "Only subscribers of this list."),
                _query("status", {"type": "string", "enum": ["pending", "confirmed", "unsubscribed"]},
                       "Only subscriptions in this state."),
                _query("page", {"type": "integer", "minimum": 1, "maximum": 100000}, "From 1."),
                _query("per_page", {"type": "integer", "minimum": 1, "maximum": 200}, "Default 50."),
            ]),
        },
        "/subscribers/{subscriber_id}": {
            "parameters": [SUBSCRIBER_ID],
            "get": _operation("A subscriber's data with subscriptions and consent history.",
                              (200, _ref("SubscriberExport"), "The subscriber's data."),
                              errors=("404",)),
            "delete": _operation("Erase a subscriber: personal data removed, the address suppressed.",
                                 NO_CONTENT, errors=("404",), admin=True),
        },
        "/subscribers/subscribe": {
            "post": _operation(
                "Sign a visitor up (double opt-in): a confirmation mail is queued. The answer is "
                "the same whether the address is new, pending, confirmed or suppressed. Limited "
                "per visitor IP and per address like the public form.",
                (202, _ref("Accepted"), "Accepted."), body="Subscribe", errors=("413",)),
        },
        "/events": {
            "get": _operation("Events, the latest first; with upcoming=true only those not ended, "
                              "soonest first.", (200, _items("Event"), "The events."), params=[
                _query("upcoming", {"type": "string", "enum": ["true", "false", "1", "0"]},
                       "Only events that have not ended.")]),
            "post": _operation("Create an event.", (201, _ref("Event"), "The new event."),
                               body="EventCreate", errors=("413",)),
        },
        "/events/{event_id}": {
            "parameters": [EVENT_ID],
            "get": _operation("One event.", (200, _ref("Event"), "The event."), errors=("404",)),
            "patch": _operation("Change some of an event's fields.", (200, _ref("Event"), "The event."),
                                body="EventUpdate", errors=("404", "413")),
            "delete": _operation("Delete an event no sent campaign announced.", NO_CONTENT,
                                 errors=("404", "409")),
        },
        "/campaigns": {
            "get": _operation("All campaigns, the newest first.", (200, _items("Campaign"), "The campaigns.")),
            "post": _operation("Compose a draft campaign from events for lists.",
                               (201, _ref("Campaign"), "The new draft."), body="CampaignCreate",
                               errors=("404", "413")),
        },
        "/campaigns/{campaign_id}": {
            "parameters": [CAMPAIGN_ID],
            "get": _operation("A campaign with its progress.", (200, _ref("Campaign"), "The campaign."),
                              errors=("404",)),
            "patch": _operation("Change a draft or scheduled campaign (archived: at any time).",
                                (200, _ref("Campaign"), "The campaign."), body="CampaignUpdate",
                                errors=("404", "409", "413")),
        },
        "/campaigns/{campaign_id}/progress": {
            "parameters": [CAMPAIGN_ID],
            "get": _operation("How far sending has got.", (200, _ref("Progress"), "The progress."),
                              errors=("404",)),
        },
        "/campaigns/{campaign_id}/send": {
            "parameters": [CAMPAIGN_ID],
            "post": _operation("Send a draft or scheduled campaign now.",
                               (202, _ref("Campaign"), "Sending has started."), errors=("404", "409")),
        },
        "/campaigns/{campaign_id}/schedule": {
            "parameters": [CAMPAIGN_ID],
            "post": _operation("Send the campaign at a given time.",
                               (200, _ref("Campaign"), "The scheduled campaign."),
                               body="CampaignSchedule", errors=("404", "409", "413")),
        },
        "/campaigns/{campaign_id}/unschedule": {
            "parameters": [CAMPAIGN_ID],
            "post": _operation("Turn a scheduled campaign back into a draft.",
                               (200, _ref("Campaign"), "The draft."), errors=("404", "409")),
        },
        **{f"/campaigns/{{campaign_id}}/{action}": {
            "parameters": [CAMPAIGN_ID],
            "post": _operation(summary, (200, _ref("Campaign"), "The campaign."), errors=("404", "409")),
        } for action, summary in [("pause", "Pause sending; batches stop after their current chunk."),
                                  ("resume", "Resume a paused campaign."),
                                  ("cancel", "Stop sending for good; unsent messages are skipped.")]},
    }


def document() -> dict:
    """The whole OpenAPI 3.1 document; relative server URL, so it fits any BASE_URL."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Mailer API", "version": "1.0.0",
                 "description": "Lists, subscribers, events and campaigns of the newsletter "
                                "service. Authenticate with a per-user token "
                                "(`flask --app mailer tokens create EMAIL`) sent as "
                                "`Authorization: Bearer <token>`. Every error is JSON: "
                                "`{\"error\": message, \"field\": name}`."},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": paths(),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": MODELS | BODIES,
            "responses": {code: _json(_ref("Error"), text) for code, text in RESPONSES.items()},
        },
    }
