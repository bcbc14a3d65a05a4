"""Parsing the staff content forms (events, templates, campaigns) into domain values."""

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import current_app
from werkzeug.datastructures import MultiDict

EVENT_FIELDS = ("title", "starts_at", "ends_at", "place", "summary", "body_md", "image_url", "link",
                "title_en", "place_en", "summary_en", "body_md_en")


def local_input(value: datetime | None) -> str:
    """An aware datetime as the value of an <input type=datetime-local> in Warsaw time."""
    if value is None:
        return ""
    zone = ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])
    return value.astimezone(zone).strftime("%Y-%m-%dT%H:%M")


def event_values(form: MultiDict) -> dict:
    """Form fields as create_event/update_event values (datetime-local = Warsaw time)."""
    return {**{field: form.get(field, "") for field in EVENT_FIELDS}, "category_ids": form.getlist("category_ids")}


def event_form_data(event=None) -> dict:
    """What the event form shows for an existing event (or an empty one)."""
    if event is None:
        return {**{field: "" for field in EVENT_FIELDS}, "category_ids": []}
    data = {field: getattr(event, field) or "" for field in EVENT_FIELDS}
    data["category_ids"] = [category.id for category in event.categories]
    data["starts_at"], data["ends_at"] = local_input(event.starts_at), local_input(event.ends_at)
    return data


def template_values(form: MultiDict) -> dict:
    return {"name": form.get("name", ""), "kind": form.get("kind", ""),
            "layout_id": form.get("layout_id") or None, "html": form.get("html", ""),
            "text": form.get("text", ""), "html_en": form.get("html_en", ""),
            "text_en": form.get("text_en", "")}


def campaign_values(form: MultiDict) -> dict:
    """The compose form as update_campaign values."""
    values = {"subject": form.get("subject", ""), "preheader": form.get("preheader", ""),
              "subject_en": form.get("subject_en", ""), "preheader_en": form.get("preheader_en", ""),
              "template_id": form.get("template_id") or None,
              "event_ids": form.getlist("event_ids"), "list_ids": form.getlist("list_ids"),
              "locale": form.get("locale", "pl"), "archived": form.get("archived") == "1"}
    if form.get("segments_shown"):  # the form offered segments (there are some)
        values["segment_ids"] = form.getlist("segment_ids")
    return values


def int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
