"""Staff-editable email templates: the built-in defaults, and compiling a campaign with them."""

import re
from datetime import datetime, time, timedelta
from typing import cast
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import Connection, Table, event, select
from sqlalchemy.orm import Session

from config import ROOT

from .errors import InvalidInput
from .events import event_context, upcoming
from .lookups import get_or_404, parse_id
from .mail.render import CompiledCampaign, Limits, Rendered, compile_limited
from .models import Campaign, Event, Template, TemplateKind, utcnow

BUILTIN_DIR = ROOT / "templates" / "email" / "campaign"
# name, kind, file stem, layout name. The rows are put in by the migration 0003 (which reads
# the same files) or, where tables come from ``create_all``, by ``_insert_builtins``.
BUILTINS = [
    ("Układ podstawowy", TemplateKind.LAYOUT, "layout", None),
    ("Zapowiedź wydarzenia", TemplateKind.CONTENT, "announcement", "Układ podstawowy"),
    ("Przegląd wydarzeń", TemplateKind.CONTENT, "digest", "Układ podstawowy"),
]
ANNOUNCEMENT, DIGEST = BUILTINS[1][0], BUILTINS[2][0]


def _source(stem: str, suffix: str) -> str:
    return (BUILTIN_DIR / f"{stem}.{suffix}").read_text(encoding="utf-8")


def install_defaults(connection: Connection) -> None:
    """Insert the built-in templates that are missing (idempotent), on a connection: for
    databases made by ``create_all`` (tests, the bench) rather than by the migrations."""
    table = cast(Table, Template.__table__)
    ids: dict[str, int] = {name: id_ for name, id_ in connection.execute(select(table.c.name, table.c.id))}
    for name, kind, stem, layout_name in BUILTINS:
        if name in ids:
            continue
        now = utcnow()
        connection.execute(table.insert().values(
            name=name, kind=kind, html=_source(stem, "html"), text=_source(stem, "txt"),
            builtin=True, layout_id=ids.get(layout_name) if layout_name else None, subject="",
            created_at=now, updated_at=now))
        ids[name] = connection.execute(select(table.c.id).where(table.c.name == name)).scalar_one()


@event.listens_for(Template.__table__, "after_create")
def _insert_builtins(_table, connection: Connection, **_kwargs) -> None:
    install_defaults(connection)


def default_content_template(session: Session, several_events: bool) -> Template:
    """The built-in digest (several events) or announcement; raises InvalidInput if the
    database has none (it was made without the migrations or ``install_defaults``)."""
    name = DIGEST if several_events else ANNOUNCEMENT
    template = session.scalar(select(Template).where(Template.name == name))
    if template is None:
        raise InvalidInput("Choose a content template.", "template_id")
    return template


def compile_for(session: Session, campaign: Campaign) -> CompiledCampaign:
    """Render ``campaign`` once with its template and events; raises InvalidInput when
    a template is broken."""
    events = [ce.event for ce in campaign.campaign_events]
    template = campaign.template or default_content_template(session, len(events) > 1)
    layout = template.layout
    context = {
        "locale": campaign.locale,
        "organisation": current_app.config["ORGANISATION_NAME"],
        "events": [event_context(event, campaign.locale) for event in events],
        "campaign": {"id": campaign.id, "subject": campaign.subject},
    }
    return safe_compile(
        subject=campaign.subject, preheader=campaign.preheader,
        layout_html=layout.html if layout else "{{ content }}",
        layout_text=layout.text if layout else "{{ content }}",
        content_html=template.html, content_text=template.text, context=context,
    )


# --- Editing templates ----------------------------------------------------------------

SAMPLE_NAME = "Anna Kowalska"
SAMPLE_EMAIL = "anna.kowalska@example.org"
_UNSUBSCRIBE = re.compile(r"\{\{-?\s*unsubscribe_url\s*-?\}\}")
_CONTENT = re.compile(r"\{\{-?\s*content\b")
_MAX_SOURCE = 100_000


def all_templates(session: Session) -> list[Template]:
    return list(session.scalars(select(Template).order_by(Template.kind, Template.name)))


def layouts(session: Session) -> list[Template]:
    return [t for t in all_templates(session) if t.kind == TemplateKind.LAYOUT]


def content_templates(session: Session) -> list[Template]:
    return [t for t in all_templates(session) if t.kind == TemplateKind.CONTENT]


def _sample_events(session: Session) -> list[Event]:
    events = upcoming(session, limit=3)
    if events:
        return events
    warsaw = ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])
    day = (datetime.now(warsaw) + timedelta(days=7)).date()
    start = datetime.combine(day, time(18, 0), tzinfo=warsaw)
    return [
        Event(id=0, title="Koncert kolęd na Rynku", starts_at=start, ends_at=start + timedelta(hours=2),
              place="Rynek Główny", summary="Wspólne śpiewanie kolęd z chórem miejskim.",
              body_md="Wstęp **wolny**. Zażółć gęślą jaźń.", image_url="",
              link="https://example.org/wydarzenia"),
        Event(id=0, title="Wystawa fotografii", starts_at=start + timedelta(days=2), ends_at=None,
              place="Galeria Miejska", summary="Miasto sprzed stu lat.", body_md="", image_url="",
              link=""),
    ]


def sample_context(session: Session, locale: str) -> dict:
    events = _sample_events(session)
    return {
        "locale": locale,
        "organisation": current_app.config["ORGANISATION_NAME"],
        "events": [event_context(event, locale) for event in events],
        "campaign": {"id": 0, "subject": "Najbliższe wydarzenia"},
    }


def render_limits() -> Limits:
    """The limits every render of staff templates runs within (TEMPLATE_* settings)."""
    config = current_app.config
    return Limits(seconds=config["TEMPLATE_RENDER_SECONDS"], output=config["TEMPLATE_MAX_OUTPUT_KB"] * 1024,
                  memory=config["TEMPLATE_MEMORY_MB"] * 1024 * 1024)


def safe_compile(**kwargs) -> CompiledCampaign:
    """compile_campaign in a child process within ``render_limits``, with every failure of
    staff code (syntax, sandbox escape, a runtime error, a limit) as InvalidInput with a
    clear message (TemplateLimit when a limit was passed)."""
    return compile_limited(render_limits(), **kwargs)


def _parts(layout: Template | None, html: str, text: str, kind: TemplateKind) -> dict:
    """compile_campaign's template sources for a template being edited."""
    if kind == TemplateKind.LAYOUT:
        return {"layout_html": html, "layout_text": text,
                "content_html": "<p>{{ organisation }}</p>",
                "content_text": "{{ organisation }}" if text.strip() else ""}
    return {"layout_html": layout.html if layout else "{{ content }}",
            "layout_text": layout.text if layout else "{{ content }}",
            "content_html": html, "content_text": text}


def render_sample(session: Session, *, kind: TemplateKind, html: str, text: str,
                  layout: Template | None, locale: str = "pl") -> Rendered:
    """The template rendered with sample events for a sample recipient; raises InvalidInput."""
    compiled = safe_compile(subject="Najbliższe wydarzenia", preheader="Podgląd szablonu",
                            context=sample_context(session, locale),
                            **_parts(layout, html, text, kind))
    return compiled.personalize(name=SAMPLE_NAME, email=SAMPLE_EMAIL, unsubscribe_url="#unsubscribe",
                                view_url="#view", manage_url="#manage")


def _clean(session: Session, template: Template | None, values: dict) -> dict:
    if not isinstance(values, dict):
        raise InvalidInput("Send the template's fields.")
    name = values.get("name", template.name if template else "")
    html = values.get("html", "")
    text = values.get("text", "")
    if not all(isinstance(v, str) for v in (name, html, text)):
        raise InvalidInput("Template fields must be text.")
    name = name.strip()
    if not name:
        raise InvalidInput("Give the template a name.", "name")
    if len(name) > 120 or re.search(r"[\x00-\x1f\x7f]", name):
        raise InvalidInput("The name must be a single line of at most 120 characters.", "name")
    if template is not None and template.builtin and name != template.name:
        raise InvalidInput("Built-in templates keep their name.", "name")
    if len(html) > _MAX_SOURCE or len(text) > _MAX_SOURCE:
        raise InvalidInput("The template is too long.", "html")
    html, text = html.replace("\r\n", "\n"), text.replace("\r\n", "\n")
    if not html.strip():
        raise InvalidInput("The HTML part is required.", "html")
    try:
        kind = TemplateKind(template.kind if template else str(values.get("kind")))
    except ValueError:
        raise InvalidInput("Choose whether this is a layout or content.", "kind") from None
    clash = session.scalar(select(Template.id).where(Template.name == name))
    if clash is not None and (template is None or clash != template.id):
        raise InvalidInput("Another template already has this name.", "name")
    layout = None
    if kind == TemplateKind.CONTENT:
        layout_id = values.get("layout_id")
        try:
            layout = session.get(Template, parse_id(layout_id)) if layout_id not in (None, "") else None
        except InvalidInput:
            layout = None
        if layout is None or layout.kind != TemplateKind.LAYOUT:
            raise InvalidInput("Choose the layout this content is placed in.", "layout_id")
    else:
        if not _UNSUBSCRIBE.search(html):
            raise InvalidInput("A layout must contain the unsubscribe link {{ unsubscribe_url }} "
                               "in the HTML part.", "html")
        if not _CONTENT.search(html) or (text.strip() and not _CONTENT.search(text)):
            raise InvalidInput("A layout must place the message content with {{ content }}.",
                               "html" if not _CONTENT.search(html) else "text")
        if text.strip() and not _UNSUBSCRIBE.search(text):
            raise InvalidInput("A layout must contain the unsubscribe link {{ unsubscribe_url }} "
                               "in the text part.", "text")
    for locale in current_app.config["LANGUAGES"]:
        render_sample(session, kind=kind, html=html, text=text, layout=layout, locale=locale)
    return {"name": name, "kind": kind, "html": html, "text": text, "layout": layout}


def save_template(session: Session, template_id: int | None, values: dict) -> Template:
    """Create (``template_id`` None) or update a template after a test render with sample
    data. values: name, kind (new only), layout_id (content), html, text.
    Raises NotFound, InvalidInput (syntax errors with their line, a layout without the
    unsubscribe placeholder, sandbox escapes, a duplicate name)."""
    template = get_or_404(session, Template, template_id) if template_id is not None else None
    cleaned = _clean(session, template, values)
    if template is None:
        template = Template(builtin=False)
        session.add(template)
    for key, value in cleaned.items():
        setattr(template, key, value)
    session.flush()
    # Layouts used by content templates must keep the content valid too.
    if template.kind == TemplateKind.LAYOUT:
        for content in session.scalars(select(Template).where(Template.layout_id == template.id)):
            render_sample(session, kind=content.kind, html=content.html, text=content.text,
                          layout=template)
    return template


def builtin_stem(template: Template) -> str | None:
    for name, _kind, stem, _layout in BUILTINS:
        if name == template.name:
            return stem
    return None


def restore_default(session: Session, template_id: int) -> Template:
    """Put a built-in template's shipped source back; raises NotFound, InvalidInput."""
    template = get_or_404(session, Template, template_id)
    stem = builtin_stem(template) if template.builtin else None
    if stem is None:
        raise InvalidInput("Only built-in templates have a default to restore.")
    template.html, template.text = _source(stem, "html"), _source(stem, "txt")
    session.flush()
    return template


def delete_template(session: Session, template_id: int) -> None:
    """Raises NotFound; InvalidInput for built-ins and for layouts still in use."""
    template = get_or_404(session, Template, template_id)
    if template.builtin:
        raise InvalidInput("Built-in templates cannot be deleted; restore the default instead.")
    if session.scalar(select(Template.id).where(Template.layout_id == template.id).limit(1)):
        raise InvalidInput("This layout is used by content templates.")
    session.delete(template)
    session.flush()


def preview(session: Session, template_id: int | None, values: dict | None = None,
            locale: str = "pl") -> Rendered:
    """A stored template (``values`` None) or unsaved edits rendered with sample data.
    Raises NotFound, InvalidInput."""
    template = get_or_404(session, Template, template_id) if template_id is not None else None
    if values is None:
        if template is None:
            raise InvalidInput("Choose whether this is a layout or content.", "kind")
        values = {"kind": template.kind, "html": template.html, "text": template.text,
                  "layout_id": template.layout_id}
    try:
        kind = TemplateKind(template.kind if template else str(values.get("kind")))
    except ValueError:
        raise InvalidInput("Choose whether this is a layout or content.", "kind") from None
    layout = None
    if kind == TemplateKind.CONTENT:
        try:
            layout = session.get(Template, parse_id(values.get("layout_id")))
        except InvalidInput:
            layout = None
    html, text = values.get("html", ""), values.get("text", "")
    if not isinstance(html, str) or not isinstance(text, str):
        raise InvalidInput("Template fields must be text.")
    return render_sample(session, kind=kind, html=html, text=text, layout=layout, locale=locale)
