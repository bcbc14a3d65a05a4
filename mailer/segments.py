"""Segments: saved, named conditions over the audience, compiled to SQLAlchemy expressions.

Staff never write SQL: a segment is a list of conditions, each a small dict checked here
(``clean``) and compiled (``where``) to a boolean expression over ``Subscriber`` that the
subscriber search, bulk actions, recipient counts and the campaign snapshot
(``mailer.deliveries``) put in their WHERE clause. Conditions are combined with AND
(``match`` "all") or OR ("any").

A condition is ``{"field": ..., "op": ..., "value": ..., "key": ...}``:

=============  ==========================================  =====================================
field          op                                          value
=============  ==========================================  =====================================
list           is, is_not (subscribed to the list)         list id; "status": any, pending,
                                                           confirmed or unsubscribed (default
                                                           confirmed)
status         is, is_not (any subscription in the state)  pending, confirmed, unsubscribed
language       is, is_not                                  pl, en
tag            has, has_not                                a tag
attribute      eq, ne, contains, exists, missing,          text or number; "key" names the
               gt, gte, lt, lte                            attribute (district, birth_year ...)
signed_up      before, after (a date), within_days         ISO date, or a number of days
bounced        yes, no (hard or soft, ever or within       days (optional)
               "value" days)
complained     yes, no                                     -
last_sent      within_days, not_within_days, never         days
=============  ==========================================  =====================================

More fields plug in with ``register`` (e.g. "interest" once events carry categories:
``register("interest", ops={"is", "is_not"}, compile=..., check=...)``), so the form, the API
and the compiler learn them from one place.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import Float, String, and_, case, cast, exists, func, or_, select, true
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from .errors import Conflict, InvalidInput
from .lookups import get_or_404
from .models import (
    BounceEvent,
    BounceKind,
    Delivery,
    DeliveryStatus,
    MailingList,
    Segment,
    Subscriber,
    SubscriberTag,
    Subscription,
    SubscriptionStatus,
    utcnow,
)

MAX_CONDITIONS = 20
MAX_NAME = 120
MAX_DESCRIPTION = 2000
MAX_VALUE = 200
MAX_KEY = 64
MAX_DAYS = 36_500
MATCHES = ("all", "any")
NUMBER = r"^-?[0-9]{1,15}(\.[0-9]{1,15})?$"


@dataclass(frozen=True)
class Field:
    """A field a condition may test: its operators, a checker that returns the condition as
    stored (raising InvalidInput), and a compiler to a boolean expression over Subscriber."""

    name: str
    ops: tuple[str, ...]
    check: Callable[[Session, dict[str, Any]], dict[str, Any]]
    compile: Callable[[dict[str, Any]], ColumnElement[bool]]
    needs_value: frozenset[str] = field(default_factory=frozenset)


FIELDS: dict[str, Field] = {}


def register(name: str, ops: tuple[str, ...], check, compile, needs_value=None) -> None:
    """Teach segments a new field (see the module docstring)."""
    FIELDS[name] = Field(name, ops, check, compile, frozenset(ops if needs_value is None else needs_value))


def tag_name(raw: Any) -> str:
    """A tag as stored: trimmed, lower case, single spaces; raises InvalidInput."""
    if not isinstance(raw, str):
        raise InvalidInput("A tag must be text.", "tag")
    tag = " ".join(raw.split()).lower()
    if not tag:
        raise InvalidInput("Enter a tag.", "tag")
    if len(tag) > MAX_KEY or any(ord(ch) < 32 for ch in tag):
        raise InvalidInput("A tag may have at most 64 characters on one line.", "tag")
    return tag


def _int(value: Any, low: int = 1, high: int = MAX_DAYS) -> int:
    if isinstance(value, bool):
        raise InvalidInput("Enter a whole number in a condition.", "conditions")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidInput("Enter a whole number in a condition.", "conditions") from None
    if not low <= number <= high:
        raise InvalidInput("A number in a condition is out of range.", "conditions")
    return number


def _text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InvalidInput("A condition's value must be text or a number.", "conditions")
    text = str(value).strip()
    if len(text) > MAX_VALUE or any(ord(ch) < 32 for ch in text):
        raise InvalidInput("A condition's value is too long.", "conditions")
    return text


def _choice(value: Any, allowed) -> str:
    if value not in allowed:
        raise InvalidInput("A condition's value is not one of the allowed ones.", "conditions")
    return value


# --- The built-in fields -------------------------------------------------------------

def _check_list(session: Session, cond: dict) -> dict:
    list_id = _int(cond.get("value"), 1, 2**31 - 1)
    if session.get(MailingList, list_id) is None:
        raise InvalidInput("A condition names a list that does not exist.", "conditions")
    status = cond.get("status") or "confirmed"
    _choice(status, ("any", *(s.value for s in SubscriptionStatus)))
    return {"value": list_id, "status": status}


def _compile_list(cond: dict) -> ColumnElement[bool]:
    where = [Subscription.subscriber_id == Subscriber.id, Subscription.list_id == cond["value"]]
    if cond.get("status", "confirmed") != "any":
        where.append(Subscription.status == cond.get("status", "confirmed"))
    found = exists().where(*where)
    return found if cond["op"] == "is" else ~found


def _check_status(_session: Session, cond: dict) -> dict:
    return {"value": _choice(cond.get("value"), [s.value for s in SubscriptionStatus])}


def _compile_status(cond: dict) -> ColumnElement[bool]:
    found = exists().where(Subscription.subscriber_id == Subscriber.id, Subscription.status == cond["value"])
    return found if cond["op"] == "is" else ~found


def _check_language(_session: Session, cond: dict) -> dict:
    return {"value": _choice(cond.get("value"), ("pl", "en"))}


def _compile_language(cond: dict) -> ColumnElement[bool]:
    return Subscriber.locale == cond["value"] if cond["op"] == "is" else Subscriber.locale != cond["value"]


def _check_tag(_session: Session, cond: dict) -> dict:
    return {"value": tag_name(cond.get("value"))}


def _compile_tag(cond: dict) -> ColumnElement[bool]:
    found = exists().where(SubscriberTag.subscriber_id == Subscriber.id, SubscriberTag.tag == cond["value"])
    return found if cond["op"] == "has" else ~found


def attribute_key(raw: Any) -> str:
    """An attribute's name as stored: letters, digits, _ and -, at most 64; raises InvalidInput."""
    key = raw.strip() if isinstance(raw, str) else ""
    if not key or len(key) > MAX_KEY or not all(ch.isalnum() or ch in "_-" for ch in key):
        raise InvalidInput("An attribute name may have letters, digits, _ and - (at most 64).", "key")
    return key


def _check_attribute(_session: Session, cond: dict) -> dict:
    checked: dict[str, Any] = {"key": attribute_key(cond.get("key"))}
    op = cond["op"]
    if op in ("gt", "gte", "lt", "lte"):
        value = cond.get("value")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise InvalidInput("Compare an attribute with a number.", "conditions")
        try:
            number = float(value)
        except ValueError:
            raise InvalidInput("Compare an attribute with a number.", "conditions") from None
        if not math.isfinite(number):
            raise InvalidInput("Compare an attribute with a number.", "conditions")
        checked["value"] = int(number) if number.is_integer() and abs(number) < 2**53 else number
    elif op not in ("exists", "missing"):
        checked["value"] = _text(cond.get("value"))
    return checked


def _compile_attribute(cond: dict) -> ColumnElement[bool]:
    # As text on both databases (SQLite's JSON_EXTRACT gives a stored number as a number).
    text = cast(Subscriber.attributes[cond["key"]].as_string(), String)
    op = cond["op"]
    if op == "exists":
        return text.is_not(None)
    if op == "missing":
        return text.is_(None)
    if op == "eq":
        return func.lower(text) == cond["value"].lower()
    if op == "ne":
        return or_(text.is_(None), func.lower(text) != cond["value"].lower())
    if op == "contains":
        pattern = "%" + _escape(cond["value"].lower()) + "%"
        return func.lower(text).like(pattern, escape="\\")
    # A number stored as text ("1984") compares as a number; the CASE keeps anything else
    # away from the cast (which PostgreSQL would refuse).
    number = case((text.regexp_match(NUMBER), cast(text, Float)), else_=None)
    compare = {"gt": number > cond["value"], "gte": number >= cond["value"],
               "lt": number < cond["value"], "lte": number <= cond["value"]}
    return compare[op]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _day(value: Any) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise InvalidInput("Give the date as YYYY-MM-DD.", "conditions") from None


def _check_signed_up(_session: Session, cond: dict) -> dict:
    if cond["op"] == "within_days":
        return {"value": _int(cond.get("value"))}
    return {"value": _day(cond.get("value")).isoformat()}


def _start_of(day: str) -> datetime:
    return datetime.combine(date.fromisoformat(day), time(), tzinfo=timezone.utc)


def _compile_signed_up(cond: dict) -> ColumnElement[bool]:
    if cond["op"] == "within_days":
        return Subscriber.created_at >= utcnow() - timedelta(days=cond["value"])
    if cond["op"] == "before":
        return Subscriber.created_at < _start_of(cond["value"])
    return Subscriber.created_at >= _start_of(cond["value"]) + timedelta(days=1)


def _check_days_optional(_session: Session, cond: dict) -> dict:
    value = cond.get("value")
    return {"value": None if value in (None, "") else _int(value)}


def _compile_bounced(cond: dict) -> ColumnElement[bool]:
    where = [BounceEvent.subscriber_id == Subscriber.id, BounceEvent.kind.in_([BounceKind.HARD, BounceKind.SOFT])]
    if cond.get("value"):
        where.append(BounceEvent.created_at >= utcnow() - timedelta(days=cond["value"]))
    found = exists().where(*where)
    return found if cond["op"] == "yes" else ~found


def _compile_complained(cond: dict) -> ColumnElement[bool]:
    found = exists().where(BounceEvent.subscriber_id == Subscriber.id, BounceEvent.kind == BounceKind.COMPLAINT)
    return found if cond["op"] == "yes" else ~found


def _check_last_sent(_session: Session, cond: dict) -> dict:
    return {} if cond["op"] == "never" else {"value": _int(cond.get("value"))}


def _compile_last_sent(cond: dict) -> ColumnElement[bool]:
    where = [Delivery.subscriber_id == Subscriber.id, Delivery.status == DeliveryStatus.SENT]
    if cond["op"] != "never":
        where.append(Delivery.sent_at >= utcnow() - timedelta(days=cond["value"]))
    found = exists().where(*where)
    return found if cond["op"] == "within_days" else ~found


register("list", ("is", "is_not"), _check_list, _compile_list)
register("status", ("is", "is_not"), _check_status, _compile_status)
register("language", ("is", "is_not"), _check_language, _compile_language)
register("tag", ("has", "has_not"), _check_tag, _compile_tag)
register("attribute", ("eq", "ne", "contains", "exists", "missing", "gt", "gte", "lt", "lte"),
         _check_attribute, _compile_attribute, needs_value=("eq", "ne", "contains", "gt", "gte", "lt", "lte"))
register("signed_up", ("before", "after", "within_days"), _check_signed_up, _compile_signed_up)
register("bounced", ("yes", "no"), _check_days_optional, _compile_bounced, needs_value=())
register("complained", ("yes", "no"), lambda _s, _c: {}, _compile_complained, needs_value=())
register("last_sent", ("within_days", "not_within_days", "never"), _check_last_sent, _compile_last_sent,
         needs_value=("within_days", "not_within_days"))


# --- Checking and compiling -----------------------------------------------------------

def clean_conditions(session: Session, conditions: Any) -> list[dict[str, Any]]:
    """The conditions as stored, each checked; raises InvalidInput."""
    if not isinstance(conditions, list):
        raise InvalidInput("Conditions must be a list.", "conditions")
    if len(conditions) > MAX_CONDITIONS:
        raise InvalidInput("A segment may have at most 20 conditions.", "conditions")
    cleaned = []
    for cond in conditions:
        if not isinstance(cond, dict):
            raise InvalidInput("Each condition must be an object with a field and an operator.", "conditions")
        known = FIELDS.get(cond.get("field"))  # type: ignore[arg-type]
        if known is None:
            raise InvalidInput("A condition tests an unknown field.", "conditions")
        if cond.get("op") not in known.ops:
            raise InvalidInput("A condition has an operator its field does not have.", "conditions")
        cleaned.append({"field": known.name, "op": cond["op"], **known.check(session, cond)})
    return cleaned


def where(conditions: list[dict[str, Any]], match: str = "all") -> ColumnElement[bool]:
    """Stored conditions as one boolean expression over Subscriber (no condition: everyone)."""
    parts = [FIELDS[cond["field"]].compile(cond) for cond in conditions if cond.get("field") in FIELDS]
    if not parts:
        return true()
    return and_(*parts) if match != "any" else or_(*parts)


def segment_where(segment: Segment) -> ColumnElement[bool]:
    return where(segment.conditions or [], segment.match)


def any_of(segments: list[Segment]) -> ColumnElement[bool] | None:
    """Subscribers in any of ``segments`` (None when there are none: no narrowing)."""
    if not segments:
        return None
    return or_(*(segment_where(segment) for segment in segments)) if len(segments) > 1 else segment_where(segments[0])


# --- Saved segments -------------------------------------------------------------------

def _clean(session: Session, name: Any, description: Any, match: Any, conditions: Any,
           exclude_id: int | None = None) -> dict[str, Any]:
    name = " ".join(name.split()) if isinstance(name, str) else ""
    if not name:
        raise InvalidInput("Enter a name.", "name")
    if len(name) > MAX_NAME:
        raise InvalidInput("The name is too long.", "name")
    description = (description or "").strip() if isinstance(description, str) else ""
    if len(description) > MAX_DESCRIPTION:
        raise InvalidInput("The description is too long.", "description")
    if match not in MATCHES:
        raise InvalidInput("Choose whether all or any of the conditions must hold.", "match")
    taken = select(Segment.id).where(func.lower(Segment.name) == name.lower())
    if exclude_id is not None:
        taken = taken.where(Segment.id != exclude_id)
    if session.scalar(taken) is not None:
        raise Conflict("A segment with this name exists.", "name")
    return {"name": name, "description": description, "match": match,
            "conditions": clean_conditions(session, conditions)}


def create_segment(session: Session, *, name: Any, conditions: Any, match: Any = "all", description: Any = "",
                   created_by_id: int | None = None) -> Segment:
    """A new segment. Raises InvalidInput, Conflict (the name is taken)."""
    segment = Segment(**_clean(session, name, description, match, conditions), created_by_id=created_by_id)
    session.add(segment)
    session.flush()
    return segment


def update_segment(session: Session, segment_id: int, values: dict[str, Any]) -> Segment:
    """Change name, description, match or conditions (the others stay). Raises NotFound,
    InvalidInput, Conflict."""
    segment = get_or_404(session, Segment, segment_id)
    merged = {"name": segment.name, "description": segment.description, "match": segment.match,
              "conditions": segment.conditions, **values}
    for key, value in _clean(session, merged["name"], merged["description"], merged["match"],
                             merged["conditions"], exclude_id=segment.id).items():
        setattr(segment, key, value)
    session.flush()
    return segment


def delete_segment(session: Session, segment_id: int) -> None:
    """Remove a segment; campaigns that targeted it keep their lists. Raises NotFound."""
    session.delete(get_or_404(session, Segment, segment_id))
    session.flush()


def all_segments(session: Session) -> list[Segment]:
    return list(session.scalars(select(Segment).order_by(Segment.name, Segment.id)))


def segments_by_id(session: Session, ids: Any, field_name: str = "segment_ids") -> list[Segment]:
    """Existing segments in the order given; raises InvalidInput for a malformed or unknown id."""
    if ids is None:
        return []
    if not isinstance(ids, (list, tuple)):
        raise InvalidInput("Expected a list of ids.", field_name)
    try:
        wanted = list(dict.fromkeys(int(value) for value in ids))
    except (TypeError, ValueError):
        raise InvalidInput("Expected a list of ids.", field_name) from None
    found = {s.id: s for s in session.scalars(select(Segment).where(Segment.id.in_(wanted)))} if wanted else {}
    if len(found) != len(wanted):
        raise InvalidInput("One of the chosen segments does not exist.", field_name)
    return [found[i] for i in wanted]

