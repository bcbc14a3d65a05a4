"""Staff-editable email templates: the built-in defaults, and compiling a campaign with them."""

import re
from datetime import datetime, time, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from flask import current_app
from jinja2 import TemplateSyntaxError
from sqlalchemy import Connection, Table, event, select
from sqlalchemy.orm import Session

from config import ROOT

from . import languages
from .errors import FieldErrors, InvalidInput
from .events import by_date, event_context, upcoming
from .lookups import get_or_404, parse_id
from .mail import render, template_errors
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
            html_en=_source(f"{stem}.en", "html"), text_en=_source(f"{stem}.en", "txt"), builtin=True,
            layout_id=ids.get(layout_name) if layout_name else None, subject="",
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


def compile_for(session: Session, campaign: Campaign, locale: str | None = None) -> CompiledCampaign:
    """Render ``campaign``'s version in ``locale`` (None, or a language it has no version
    in: its own language's) once with its template and events; raises InvalidInput when a
    template is broken."""
    found = languages.versions(campaign)
    version = found[languages.pick(found, locale, campaign.locale)]
    events = by_date(ce.event for ce in campaign.campaign_events)  # in date order, whatever their positions
    template = campaign.template or default_content_template(session, len(events) > 1)
    layout = template.layout
    content_html, content_text, _ = languages.template_source(template, version.locale)
    layout_html, layout_text, _ = languages.template_source(layout, version.locale) if layout \
        else ("{{ content }}", "{{ content }}", False)
    context = {
        "locale": version.locale,
        "organisation": current_app.config["ORGANISATION_NAME"],
        "events": [event_context(event, version.locale) for event in events],
        "campaign": {"id": campaign.id, "subject": version.subject},
    }
    return safe_compile(
        subject=version.subject, preheader=version.preheader,
        layout_html=layout_html, layout_text=layout_text,
        content_html=content_html, content_text=content_text, context=context,
    )


def compile_versions(session: Session, campaign: Campaign) -> dict[str, CompiledCampaign]:
    """Every language version of ``campaign``, rendered; raises InvalidInput (a broken template)."""
    return {locale: compile_for(session, campaign, locale) for locale in languages.versions(campaign)}


def untranslated(session: Session, campaign: Campaign, locale: str) -> dict:
    """What ``campaign``'s ``locale`` readers get in the default language for want of a
    translation: {"version": no version in that language at all, "template": the template
    (or its layout) has no version in it, "events": [(title, [fields])]}."""
    if locale == campaign.locale:
        return {"version": False, "template": False, "events": []}
    events = [ce.event for ce in campaign.campaign_events]
    template = campaign.template or default_content_template(session, len(events) > 1)
    return {
        "version": locale not in languages.versions(campaign),
        "template": any(languages.template_source(item, locale)[2]
                        for item in (template, template.layout) if item is not None),
        "events": [(event.title, missing) for event in events
                   if (missing := languages.event_missing(event, locale))],
    }


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


def _parts(layout: Template | None, html: str, text: str, kind: TemplateKind, locale: str = "pl") -> dict:
    """compile_campaign's template sources for a template being edited (its layout's
    version in ``locale``)."""
    if kind == TemplateKind.LAYOUT:
        return {"layout_html": html, "layout_text": text,
                "content_html": "<p>{{ organisation }}</p>",
                "content_text": "{{ organisation }}" if text.strip() else ""}
    layout_html, layout_text, _ = languages.template_source(layout, locale) if layout \
        else ("{{ content }}", "{{ content }}", False)
    return {"layout_html": layout_html, "layout_text": layout_text,
            "content_html": html, "content_text": text}


def render_sample(session: Session, *, kind: TemplateKind, html: str, text: str,
                  layout: Template | None, locale: str = "pl") -> Rendered:
    """The template rendered with sample events for a sample recipient; raises InvalidInput."""
    compiled = safe_compile(subject="Najbliższe wydarzenia", preheader="Podgląd szablonu",
                            context=sample_context(session, locale),
                            **_parts(layout, html, text, kind, locale))
    return compiled.personalize(name=SAMPLE_NAME, email=SAMPLE_EMAIL, unsubscribe_url="#unsubscribe",
                                view_url="#view", manage_url="#manage")


def _clean_name(session: Session, template: Template | None, name: str) -> str:
    name = name.strip()
    if not name:
        raise InvalidInput("Give the template a name.", "name")
    if len(name) > 120 or re.search(r"[\x00-\x1f\x7f]", name):
        raise InvalidInput("The name must be a single line of at most 120 characters.", "name")
    if template is not None and template.builtin and name != template.name:
        raise InvalidInput("Built-in templates keep their name.", "name")
    clash = session.scalar(select(Template.id).where(Template.name == name))
    if clash is not None and (template is None or clash != template.id):
        raise InvalidInput("Another template already has this name.", "name")
    return name


def _clean_layout_choice(session: Session, layout_id: Any) -> Template:
    try:
        layout = session.get(Template, parse_id(layout_id)) if layout_id not in (None, "") else None
    except InvalidInput:
        layout = None
    if layout is None or layout.kind != TemplateKind.LAYOUT:
        raise InvalidInput("Choose the layout this content is placed in.", "layout_id")
    return layout


def _layout_placeholders(html: str, text: str, suffix: str = "") -> list[InvalidInput]:
    """What a layout's parts lack: the content and unsubscribe placeholders (``suffix`` names
    the fields of a language version: "_en")."""
    missing = []
    if not _UNSUBSCRIBE.search(html):
        missing.append(InvalidInput("A layout must contain the unsubscribe link {{ unsubscribe_url }} "
                                    "in the HTML part.", "html" + suffix))
    if not _CONTENT.search(html):
        missing.append(InvalidInput("A layout must place the message content with {{ content }}.", "html" + suffix))
    if text.strip() and not _CONTENT.search(text):
        missing.append(InvalidInput("A layout must place the message content with {{ content }}.", "text" + suffix))
    if text.strip() and not _UNSUBSCRIBE.search(text):
        missing.append(InvalidInput("A layout must contain the unsubscribe link {{ unsubscribe_url }} "
                                    "in the text part.", "text" + suffix))
    return missing


def _syntax_errors(html: str, text: str, suffix: str = "") -> list[InvalidInput]:
    """Each part's Jinja syntax error, with its line, found by parsing alone (nothing runs)."""
    found = []
    for field, source in (("html" + suffix, html), ("text" + suffix, text)):
        try:
            render.sandbox.parse(source)
        except TemplateSyntaxError as exc:  # in words staff can act on, translatable
            found.append(template_errors.invalid_input(exc, field))
    return found


def _clean(session: Session, template: Template | None, values: dict) -> dict:
    """The template's fields, checked all at once (the first InvalidInput raised carries
    every mistake found); the sample render only once the fields themselves are right."""
    if not isinstance(values, dict):
        raise InvalidInput("Send the template's fields.")
    name = values.get("name", template.name if template else "")
    html = values.get("html", "")
    text = values.get("text", "")
    if not all(isinstance(v, str) for v in (name, html, text)):
        raise InvalidInput("Template fields must be text.")
    if len(html) > _MAX_SOURCE or len(text) > _MAX_SOURCE:
        raise InvalidInput("The template is too long.", "html")
    problems = FieldErrors()
    name = problems.check(_clean_name, session, template, name)
    html, text = html.replace("\r\n", "\n"), text.replace("\r\n", "\n")
    if not html.strip():
        problems.add(InvalidInput("The HTML part is required.", "html"))
    try:
        kind = TemplateKind(template.kind if template else str(values.get("kind")))
    except ValueError:
        problems.add(InvalidInput("Choose whether this is a layout or content.", "kind"))
        problems.raise_if_any()
        raise  # (unreachable: the line above raised)
    # The English version: optional; no HTML part, no English version (the Polish one is used).
    html_en, text_en = values.get("html_en") or "", values.get("text_en") or ""
    if not isinstance(html_en, str) or not isinstance(text_en, str):
        raise InvalidInput("Template fields must be text.")
    if len(html_en) > _MAX_SOURCE or len(text_en) > _MAX_SOURCE:
        raise InvalidInput("The template is too long.", "html_en")
    html_en, text_en = html_en.replace("\r\n", "\n"), text_en.replace("\r\n", "\n")
    if text_en.strip() and not html_en.strip():
        problems.add(InvalidInput("The English version needs its HTML part.", "html_en"))
    english: str | None = html_en if html_en.strip() else None
    for mistake in _syntax_errors(html, text) + _syntax_errors(html_en, text_en, "_en"):
        problems.add(mistake)
    layout = None
    if kind == TemplateKind.CONTENT:
        layout = problems.check(_clean_layout_choice, session, values.get("layout_id"))
    else:
        if html.strip():
            for missing in _layout_placeholders(html, text):
                problems.add(missing)
        if english is not None:
            for missing in _layout_placeholders(english, text_en, "_en"):
                problems.add(missing)
    if not problems.found:
        for locale in current_app.config["LANGUAGES"]:
            if locale == languages.TRANSLATED and english is not None:
                render_sample(session, kind=kind, html=english, text=text_en, layout=layout, locale=locale)
            else:
                render_sample(session, kind=kind, html=html, text=text, layout=layout, locale=locale)
    problems.raise_if_any()
    return {"name": name, "kind": kind, "html": html, "text": text, "layout": layout,
            "html_en": english, "text_en": text_en if english is not None else None}


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
            for locale in current_app.config["LANGUAGES"]:
                html, text, _ = languages.template_source(content, locale)
                render_sample(session, kind=content.kind, html=html, text=text, layout=template,
                              locale=locale)
    return template


def clone_template(session: Session, template_id: int, *, prefix: str = "Kopia: ") -> Template:
    """A new template (never built-in) with the same kind, layout, subject and source, named
    ``prefix`` + the name, made unique with " (2)", " (3)"… Raises NotFound."""
    original = get_or_404(session, Template, template_id)
    base = (prefix + original.name)[:110]
    taken = set(session.scalars(select(Template.name).where(Template.name.startswith(base, autoescape=True))))
    name, n = base, 2
    while name in taken:
        name, n = f"{base} ({n})", n + 1
    copy = Template(name=name, kind=original.kind, layout_id=original.layout_id, subject=original.subject,
                    html=original.html, text=original.text, html_en=original.html_en,
                    text_en=original.text_en, builtin=False)
    session.add(copy)
    session.flush()
    return copy


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
    template.html_en, template.text_en = _source(f"{stem}.en", "html"), _source(f"{stem}.en", "txt")
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
                  "html_en": template.html_en or "", "text_en": template.text_en or "",
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
    html_en, text_en = values.get("html_en") or "", values.get("text_en") or ""
    if not all(isinstance(v, str) for v in (html, text, html_en, text_en)):
        raise InvalidInput("Template fields must be text.")
    if locale == languages.TRANSLATED and html_en.strip():  # else the Polish source, in English
        html, text = html_en, text_en
    return render_sample(session, kind=kind, html=html, text=text, layout=layout, locale=locale)
