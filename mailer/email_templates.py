"""Staff-editable email templates: the built-in defaults, and compiling a campaign with them."""

from pathlib import Path

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from config import ROOT

from .events import event_context
from .mail.render import CompiledCampaign, compile_campaign
from .models import Campaign, Template, TemplateKind

BUILTIN_DIR = ROOT / "templates" / "email" / "campaign"
# name, kind, file stem, layout name
BUILTINS = [
    ("Układ podstawowy", TemplateKind.LAYOUT, "layout", None),
    ("Zapowiedź wydarzenia", TemplateKind.CONTENT, "announcement", "Układ podstawowy"),
    ("Przegląd wydarzeń", TemplateKind.CONTENT, "digest", "Układ podstawowy"),
]


def _source(stem: str, suffix: str) -> str:
    return (BUILTIN_DIR / f"{stem}.{suffix}").read_text(encoding="utf-8")


def ensure_defaults(session: Session) -> None:
    """Create the built-in templates that are missing (idempotent)."""
    existing = {t.name: t for t in session.scalars(select(Template))}
    for name, kind, stem, layout_name in BUILTINS:
        if name in existing:
            continue
        template = Template(name=name, kind=kind, html=_source(stem, "html"),
                            text=_source(stem, "txt"), builtin=True,
                            layout=existing.get(layout_name) if layout_name else None)
        session.add(template)
        existing[name] = template
    session.flush()


def default_content_template(session: Session, several_events: bool) -> Template:
    ensure_defaults(session)
    name = "Przegląd wydarzeń" if several_events else "Zapowiedź wydarzenia"
    return session.scalar(select(Template).where(Template.name == name))


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
    return compile_campaign(
        subject=campaign.subject, preheader=campaign.preheader,
        layout_html=layout.html if layout else "{{ content }}",
        layout_text=layout.text if layout else "{{ content }}",
        content_html=template.html, content_text=template.text, context=context,
    )
