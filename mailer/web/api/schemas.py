"""The API's requests and answers, declared once as pydantic models: the bodies and query
parameters are validated with them (``mailer.web.api.spec``) and the OpenAPI document is
made from them and from the views that name them.

Bodies are strict (a JSON string is not a number, ``"yes"`` is not ``true``) and refuse
unknown fields; a PATCH body names at least one field and only the fields it names change.
"""

import ipaddress
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

MAX_ID = 2**31 - 1  # the id columns are 32-bit integers on PostgreSQL
MAX_IDS = 100

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Locale = Literal["pl", "en"]
Status = Literal["pending", "confirmed", "unsubscribed"]
CampaignState = Literal["draft", "scheduled", "sending", "paused", "sent", "cancelled"]


def _distinct(ids: list[int] | None) -> list[int] | None:
    return None if ids is None else list(dict.fromkeys(ids))


def _ip(value: str) -> str:
    if not value:
        return value
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise PydanticCustomError("ip_address", "This is not an IP address.") from None


Ids = Annotated[list[Id], Field(max_length=MAX_IDS), AfterValidator(_distinct)]
SomeIds = Annotated[list[Id], Field(min_length=1, max_length=MAX_IDS), AfterValidator(_distinct)]
When = Annotated[datetime, Field(json_schema_extra={"maxLength": 64})]


def _without_null_defaults(schema: dict[str, Any]) -> None:
    """A PATCH field absent from the body is unchanged, not null: say nothing of a default."""
    for item in schema.get("properties", {}).values():
        if item.get("default", ...) is None:
            del item["default"]
    schema["minProperties"] = 1


class Body(BaseModel):
    """A JSON request body: strict types, no unknown field."""

    model_config = ConfigDict(extra="forbid", strict=True)

    def values(self) -> dict[str, Any]:
        """The fields the client sent, as the domain functions take them."""
        return self.model_dump(exclude_unset=True)


class Patch(Body):
    """A partial update: at least one field; the others keep their values."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_without_null_defaults)

    @model_validator(mode="before")
    @classmethod
    def _not_empty(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data:
            raise PydanticCustomError("empty_patch", "Send at least one field to change.")
        return data


# --- Bodies ---------------------------------------------------------------------------------

class ListCreate(Body):
    name: Annotated[str, Field(max_length=120)]
    slug: Annotated[str | None, Field(max_length=80,
                                      description="URL name; made from the name when absent.")] = None
    description: Annotated[str, Field(max_length=2000)] = ""
    public: Annotated[bool, Field(description="Offered on the public sign-up form.")] = True


class ListUpdate(Patch):
    name: Annotated[str, Field(max_length=120)] = None  # type: ignore[assignment]
    description: Annotated[str, Field(max_length=2000)] = None  # type: ignore[assignment]
    public: bool = None  # type: ignore[assignment]
    archived: Annotated[bool, Field(description=(
        "Archived: offered neither on the sign-up form nor to new campaigns; "
        "subscriptions and history stay."))] = None  # type: ignore[assignment]


class Subscribe(Body):
    email: Annotated[str, Field(max_length=254)]
    name: Annotated[str, Field(max_length=200)] = ""
    list_ids: Annotated[SomeIds | None, Field(description="Public lists; absent or null: all of them.")] = None
    locale: Annotated[Locale | None, Field(description=(
        "The subscriber's language (their mail and pages); absent: the request's Accept-Language, "
        "else pl."))] = None
    consent: Annotated[bool, Field(description="The visitor ticked the consent box; must be true.")]
    ip: Annotated[str, Field(max_length=45, description=(
        "The visitor's IP address, recorded with the consent and used for the per-IP rate "
        "limit; default: the caller's.")), AfterValidator(_ip)] = ""
    user_agent: Annotated[str, Field(max_length=400, description="The visitor's browser.")] = ""
    consent_text: Annotated[str, Field(max_length=4000, description=(
        "The exact consent sentence the visitor was shown, kept as the proof of what they agreed "
        "to; default: this service's own sign-up sentence naming the lists chosen."))] = ""


class EventFields(BaseModel):
    title: Annotated[str, Field(max_length=200)]
    starts_at: Annotated[When, Field(description="ISO 8601; without an offset it is Europe/Warsaw time.")]
    ends_at: When | None = None
    place: Annotated[str, Field(max_length=200)] = ""
    summary: Annotated[str, Field(max_length=500)] = ""
    body_md: Annotated[str, Field(max_length=20000, description="Markdown, sanitized when shown.")] = ""
    image_url: Annotated[str, Field(max_length=500)] = ""
    link: Annotated[str, Field(max_length=500)] = ""
    title_en: Annotated[str | None, Field(max_length=200, description=(
        "English title; null or empty: English readers see the Polish one."))] = None
    place_en: Annotated[str | None, Field(max_length=200)] = None
    summary_en: Annotated[str | None, Field(max_length=500)] = None
    body_md_en: Annotated[str | None, Field(max_length=20000)] = None
    category_ids: Annotated[Ids, Field(description="Categories of the event (interests subscribers choose).")] = []


class EventCreate(EventFields, Body):
    pass


class EventUpdate(Patch):
    title: Annotated[str, Field(max_length=200)] = None  # type: ignore[assignment]
    starts_at: When = None  # type: ignore[assignment]
    ends_at: When | None = None
    place: Annotated[str, Field(max_length=200)] = None  # type: ignore[assignment]
    summary: Annotated[str, Field(max_length=500)] = None  # type: ignore[assignment]
    body_md: Annotated[str, Field(max_length=20000)] = None  # type: ignore[assignment]
    image_url: Annotated[str, Field(max_length=500)] = None  # type: ignore[assignment]
    link: Annotated[str, Field(max_length=500)] = None  # type: ignore[assignment]
    title_en: Annotated[str | None, Field(max_length=200)] = None
    place_en: Annotated[str | None, Field(max_length=200)] = None
    summary_en: Annotated[str | None, Field(max_length=500)] = None
    body_md_en: Annotated[str | None, Field(max_length=20000)] = None
    category_ids: Ids = None  # type: ignore[assignment]


class CampaignCreate(Body):
    event_ids: SomeIds
    list_ids: Ids
    segment_ids: Annotated[Ids, Field(description="Only subscribers in one of these segments.")] = []
    template_id: Id | None = None
    subject: Annotated[str | None, Field(max_length=200, description="Made from the events when absent.")] = None
    preheader: Annotated[str | None, Field(max_length=200)] = None
    locale: Annotated[Locale, Field(description=(
        "The campaign's language: of subject and preheader, and what readers of a language "
        "it has no version in get."))] = "pl"
    subject_en: Annotated[str | None, Field(max_length=200, description=(
        "With it, English readers get an English version."))] = None
    preheader_en: Annotated[str | None, Field(max_length=200)] = None


class CampaignUpdate(Patch):
    event_ids: SomeIds = None  # type: ignore[assignment]
    list_ids: Ids = None  # type: ignore[assignment]
    segment_ids: Ids = None  # type: ignore[assignment]
    template_id: Id | None = None
    subject: Annotated[str, Field(max_length=200)] = None  # type: ignore[assignment]
    preheader: Annotated[str, Field(max_length=200)] = None  # type: ignore[assignment]
    locale: Locale = None  # type: ignore[assignment]
    subject_en: Annotated[str | None, Field(max_length=200, description=(
        "Empty or null: no English version."))] = None
    preheader_en: Annotated[str | None, Field(max_length=200)] = None
    archived: Annotated[bool, Field(description="Shown in the public archive once sent.")] = None  # type: ignore[assignment]


class TokenCreate(Body):
    name: Annotated[str, Field(max_length=120, description="What the token is for.")]
    scope: Annotated[Literal["read", "write", "admin"] | None, Field(
        description="read: GET only; write: what the owner's role allows; admin: everything (admins). "
                    "Default: the calling token's scope.")] = None
    days: Annotated[int, Field(ge=1, le=366, description="Days until it expires.")] = 90


class CampaignSchedule(Body):
    at: Annotated[When, Field(description="When to send, ISO 8601; without an offset it is Europe/Warsaw time.")]


# --- Query parameters ------------------------------------------------------------------------

class Query(BaseModel):
    """Query parameters: text converted to the declared types; an empty one is absent."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_is_absent(cls, data: Any) -> Any:
        return {key: value for key, value in data.items() if value != ""} if isinstance(data, dict) else data


class SubscriberSearch(Query):
    query: Annotated[str, Field(max_length=200, description=(
        "Part of an address or name; case and Polish diacritics do not matter.")), ] = ""
    list_id: Annotated[Id | None, Field(description="Only subscribers of this list.")] = None
    status: Annotated[Status | None, Field(description="Only subscriptions in this state.")] = None
    tag: Annotated[str | None, Field(max_length=64, description="Only subscribers with this tag.")] = None
    segment_id: Annotated[Id | None, Field(description="Only subscribers in this segment.")] = None
    after: Annotated[Id | None, Field(description=(
        "The next page: the `next_after` of the previous answer (fast at any depth).")), ] = None
    page: Annotated[int, Field(ge=1, le=100_000, description=(
        "From 1, an offset: slow deep down in a large audience, use `after`.")), ] = 1
    per_page: Annotated[int, Field(ge=1, le=200, description="Default 50.")] = 50


class SubscriberCreate(Body):
    email: Annotated[str, Field(max_length=254)]
    name: Annotated[str, Field(max_length=200)] = ""
    locale: Annotated[Locale, Field(description="Language of their mail.")] = "pl"
    list_ids: Annotated[SomeIds, Field(description="Lists (public or private, not archived).")]
    confirmation_mail: Annotated[bool, Field(description=(
        "Send a confirmation mail (double opt-in): the subscriptions wait for the person. "
        "False: confirmed at once on `basis`, with `consent_confirmed`."))] = True
    basis: Annotated[str, Field(max_length=200, description=(
        "Where the person's consent is recorded; required without a confirmation mail."))] = ""
    consent_confirmed: Annotated[bool, Field(description=(
        "The token's owner vouches for the consent; required without a confirmation mail."))] = False


class SubscriberProfile(Patch):
    name: Annotated[str, Field(max_length=200)] = None  # type: ignore[assignment]
    locale: Locale = None  # type: ignore[assignment]
    attributes: Annotated[dict[str, str | int | float | bool | None], Field(
        max_length=50, description="Merged into the subscriber's attributes; null removes one.")] = None  # type: ignore[assignment]
    tags: Annotated[list[Annotated[str, Field(max_length=64)]], Field(
        max_length=50, description="The subscriber's tags become these.")] = None  # type: ignore[assignment]


class Condition(BaseModel):
    """One condition of a segment (see the segments documentation for fields and operators)."""

    model_config = ConfigDict(extra="forbid")

    field: Annotated[str, Field(max_length=32, description=(
        "list, status, language, tag, attribute, signed_up, bounced, complained, last_sent"))]
    op: Annotated[str, Field(max_length=32)]
    key: Annotated[str | None, Field(max_length=64, description="The attribute's name.")] = None
    value: Annotated[str | int | float | None, Field(description="What the field is compared with.")] = None
    status: Annotated[str | None, Field(max_length=16, description=(
        "For list: any, pending, confirmed, unsubscribed."))] = None


class SegmentCreate(Body):
    name: Annotated[str, Field(max_length=120)]
    description: Annotated[str, Field(max_length=2000)] = ""
    match: Literal["all", "any"] = "all"
    conditions: Annotated[list[Condition], Field(max_length=20)]


class SegmentUpdate(Patch):
    name: Annotated[str, Field(max_length=120)] = None  # type: ignore[assignment]
    description: Annotated[str, Field(max_length=2000)] = None  # type: ignore[assignment]
    match: Literal["all", "any"] = None  # type: ignore[assignment]
    conditions: Annotated[list[Condition], Field(max_length=20)] = None  # type: ignore[assignment]


class BulkAction(Body):
    action: Literal["add_to_list", "tag", "untag", "unsubscribe", "erase"]
    query: Annotated[str, Field(max_length=200)] = ""
    list_id: Annotated[Id | None, Field(description="Selection: subscribers of this list.")] = None
    status: Status | None = None
    tag: Annotated[str | None, Field(max_length=64, description="Selection: subscribers with this tag.")] = None
    segment_id: Id | None = None
    params: Annotated[dict[str, str | int | bool | None], Field(max_length=10, description=(
        "tag / untag: {tag}; add_to_list: {list_id, basis}; unsubscribe: {list_id} (absent: all lists); "
        "erase: {confirm: true}."))] = {}


class EventFilter(Query):
    upcoming: Annotated[Literal["true", "false", "1", "0"] | None, Field(
        description="Only events that have not ended, soonest first.")] = None


# --- Answers (documented; the serializers build them) -------------------------------------

class Error(BaseModel):
    error: Annotated[str, Field(description="What is wrong, in the request's language.")]
    field: Annotated[str | None, Field(description="The field at fault, when there is one.")] = None


class ListCounts(BaseModel):
    confirmed: int
    pending: int
    unsubscribed: int


class MailingList(BaseModel):
    id: Id
    name: str
    slug: str
    description: str
    public: bool
    archived: bool = False
    created_at: datetime | None = None
    counts: ListCounts | None = Field(None, description="Subscriptions by status (in the listing).")


class MailingLists(BaseModel):
    items: list[MailingList]
    counted_at: Annotated[str | None, Field(description=(
        "When the counts were made: null, now; with a large audience, by the background summary."))] = None


class Category(BaseModel):
    id: Id
    slug: str
    name_pl: str
    name_en: str


class Categories(BaseModel):
    items: list[Category]


class Subscription(BaseModel):
    list_id: Id
    status: Status
    created_at: datetime | None = None
    confirmed_at: datetime | None = None
    unsubscribed_at: datetime | None = None


class Subscriber(BaseModel):
    id: Id
    email: str
    name: str
    locale: str
    created_at: datetime | None = None
    attributes: dict[str, Any] = {}
    tags: list[str] = []
    subscriptions: list[Subscription]


class SubscriberPage(BaseModel):
    items: list[Subscriber]
    total: Annotated[int, Field(description="Exact when `total_exact`, else an estimate or a lower bound.")]
    total_exact: bool = True
    next_after: Annotated[int | None, Field(description="Pass as `after` for the next page; null on the last.")] = None
    scanned_to: Annotated[int | None, Field(description=(
        "A filtered page is searched for a bounded time: when that ran out before the page was full, "
        "the id it reached (the page holds every match above it; `next_after` goes on from it)."))] = None
    page: int
    per_page: int


class ExportedSubscription(BaseModel):
    list_id: Id
    list: Annotated[str, Field(description="The list's name.")]
    list_slug: str
    status: Status
    created_at: datetime | None = None
    confirmed_at: datetime | None = None
    unsubscribed_at: datetime | None = None


class ConsentEntry(BaseModel):
    action: Annotated[str, Field(description="subscribe, confirm, unsubscribe, import, complaint …")]
    source: Annotated[str, Field(description="form, api, import, admin, one-click, bounce …")]
    list_id: Annotated[Id | None, Field(description="The list it was about; null: every list.")] = None
    list: Annotated[str | None, Field(description="The list's name; null: every list.")] = None
    consent_version: str
    ip: Annotated[str | None, Field(description="Only for administrators' admin-scope tokens.")] = None
    user_agent: Annotated[str | None, Field(description="Only for administrators' admin-scope tokens.")] = None
    created_at: datetime | None = None


class ExportedMessage(BaseModel):
    campaign: Annotated[str, Field(description="The campaign's subject.")]
    status: str
    sent_at: datetime | None = None


class ReturnedMail(BaseModel):
    kind: str
    source: str
    status: str
    diagnostic: str
    feedback_type: str
    received_at: datetime | None = None


class SuppressionState(BaseModel):
    reason: str
    since: datetime | None = None


class SubscriberExport(BaseModel):
    """Everything kept about the subscriber, with the consent history."""

    model_config = ConfigDict(extra="forbid")

    id: Id
    email: str
    name: str
    locale: str
    attributes: dict[str, Any] = {}
    created_at: datetime | None = None
    subscriptions: list[ExportedSubscription]
    consent_history: list[ConsentEntry]
    messages: list[ExportedMessage]
    returned_mail: list[ReturnedMail]
    interests: Annotated[list[str], Field(description="Slugs of the categories of events chosen as interests.")] = []
    suppressed: Annotated[SuppressionState | None,
                          Field(description="Why mail to the address is held back, if it is.")] = None


class Segment(BaseModel):
    id: Id
    name: str
    description: str
    match: str
    conditions: list[dict[str, Any]]
    subscribers: Annotated[int | None, Field(description="How many it holds (an estimate past 1,000).")] = None
    subscribers_exact: bool | None = None


class Segments(BaseModel):
    items: list[Segment]


class BulkActionState(BaseModel):
    id: Id
    action: str
    status: Annotated[str, Field(description="queued, running or done.")]
    affected: int
    selection: dict[str, Any]
    created_at: datetime | None = None
    finished_at: datetime | None = None


class Metrics(BaseModel):
    notices_waiting: Annotated[int, Field(description="Confirmation and welcome mails waiting to be sent.")]
    notices_capped: Annotated[int, Field(description="Of them, confirmations held back by PENDING_MAX_PER_HOUR.")]


class Accepted(BaseModel):
    status: Literal["accepted"]
    message: str


class Event(EventFields):
    id: Id
    starts_at: datetime
    ends_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Events(BaseModel):
    items: list[Event]


class Progress(BaseModel):
    status: CampaignState
    total: int
    queued: int | None = None
    sent: int
    failed: int
    skipped: Annotated[int | None, Field(description="Not sent: cancelled or suppressed.")] = None
    doubtful: Annotated[int | None, Field(
        description="Messages that may have reached their recipient twice (a worker died or a "
                    "connection was lost before the server's answer was recorded).")] = None
    rate: Annotated[float | None, Field(description="Messages per second.")] = None
    eta_seconds: float | None = None
    reason: str | None = None
    percent: Annotated[int | None, Field(
        description="The progress bar: the share dealt with (sent, failed or skipped); of a "
                    "cancelled campaign, the share sent.")] = None


DeliveryState = Literal["queued", "sent", "failed", "bounced", "skipped"]


class DeliverySearch(Query):
    status: Annotated[DeliveryState | None, Field(description="Only deliveries in this state.")] = None
    after: Annotated[int | None, Field(ge=0, le=2**63 - 1, description=(
        "The next page: the `next_after` of the previous answer."))] = None


class Delivery(BaseModel):
    id: int
    subscriber_id: int
    email: str
    name: str
    status: DeliveryState
    attempts: int
    sent_at: datetime | None = None
    error: str = ""


class DeliveryPage(BaseModel):
    items: list[Delivery]
    next_after: int | None = None


class Campaign(BaseModel):
    id: Id
    name: str
    subject: str
    preheader: str
    subject_en: str | None = None
    preheader_en: str | None = None
    template_id: int | None = None
    locale: str
    status: CampaignState
    archived: bool
    event_ids: list[Id]
    list_ids: list[Id]
    segment_ids: list[Id] = []
    recipients: Annotated[int | None, Field(description=(
        "Draft or scheduled: how many would receive it if sent now (null while being counted).")), ] = None
    recipient_languages: Annotated[dict[str, int] | None, Field(description=(
        "Draft or scheduled: those recipients by their language.")), ] = None
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    created_at: datetime | None = None
    bounce_count: Annotated[int, Field(description="Messages that came back (once per message).")] = 0
    complaint_count: Annotated[int, Field(description="Recipients who marked it as spam.")] = 0
    bounce_rate: Annotated[float | None, Field(description="Bounces per message sent (0-1).")] = None
    complaint_rate: Annotated[float | None, Field(description="Complaints per message sent (0-1).")] = None
    progress: Progress | None = None


class Campaigns(BaseModel):
    items: list[Campaign]


class Token(BaseModel):
    id: Id
    name: str
    prefix: Annotated[str, Field(description="The token's first characters, to tell it apart.")]
    scope: Literal["read", "write", "admin"]
    owner: str
    created_at: datetime | None = None
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class Tokens(BaseModel):
    items: list[Token]


class NewToken(Token):
    token: Annotated[str, Field(description="The token itself: shown only in this answer.")]


class Document(BaseModel):
    """The OpenAPI document."""

    model_config = ConfigDict(extra="allow")

    openapi: str
