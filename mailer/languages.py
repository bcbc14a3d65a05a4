"""Every reader in their own language: which text of an event, a template and a campaign
each language gets, and what falls back to the default language.

The content is written in Polish, the default language (``DEFAULT``); English is optional.
Events and templates keep their English texts in nullable ``*_en`` columns (simple, and
queryable: "events not translated" is ``title_en IS NULL``); a missing one falls back to
the Polish text, and that fallback is reported so the editor and the preview can mark it.

A campaign has a version per language: its own language's (``Campaign.locale``, Polish by
default: ``subject``/``preheader``) and, when it has an English subject, an English one.
A recipient whose language has no version gets the campaign's own language's.
"""

from dataclasses import dataclass

DEFAULT = "pl"
TRANSLATED = "en"  # the one language with ``*_en`` columns
EVENT_FIELDS = ("title", "place", "summary", "body_md")  # fields with an English text


def event_text(event, field: str, locale: str) -> str:
    """``event``'s ``field`` in ``locale``; the Polish text when it is not translated."""
    if locale == TRANSLATED:
        value = getattr(event, f"{field}_en", None)
        if value:
            return value
    return getattr(event, field) or ""


def event_missing(event, locale: str) -> list[str]:
    """The fields of ``event`` shown in Polish to a ``locale`` reader for want of a
    translation (only fields that have a Polish text)."""
    if locale != TRANSLATED:
        return []
    return [field for field in EVENT_FIELDS
            if getattr(event, field) and not getattr(event, f"{field}_en", None)]


def template_source(template, locale: str) -> tuple[str, str, bool]:
    """(html, text, fallback) of ``template`` for ``locale``: its English version, or its
    Polish source (rendered with ``locale`` all the same) with fallback True."""
    if locale == TRANSLATED and template is not None:
        if template.html_en:
            return template.html_en, template.text_en or "", False
        return template.html, template.text, True
    return (template.html, template.text, False) if template is not None else ("", "", False)


@dataclass(frozen=True)
class Version:
    locale: str
    subject: str
    preheader: str


def versions(campaign) -> dict[str, Version]:
    """The campaign's versions by language: its own language's always, English too when it
    has an English subject (and its own language is not English)."""
    found = {campaign.locale: Version(campaign.locale, campaign.subject, campaign.preheader or "")}
    if campaign.locale != TRANSLATED and campaign.subject_en:
        found[TRANSLATED] = Version(TRANSLATED, campaign.subject_en, campaign.preheader_en or "")
    return found


def pick(available, locale: str | None, fallback: str) -> str:
    """``locale`` when it is among ``available``, else ``fallback`` (the campaign's language)."""
    return locale if locale is not None and locale in available else fallback
