"""Mailing lists: create, rename, describe, public or private; slugs from names."""

import re
import unicodedata

from sqlalchemy import select
from sqlalchemy.orm import Session

from .errors import Conflict, InvalidInput
from .lookups import get_or_404
from .mail.message import check_header_value
from .models import MailingList

MAX_NAME = 120
MAX_SLUG = 80
MAX_DESCRIPTION = 2000
_POLISH = str.maketrans("ąćęłńóśźżĄĆĘŁŃÓŚŹŻ", "acelnoszzACELNOSZZ")


def slugify(text: str) -> str:
    """ASCII slug: Polish letters transliterated (ł → l), other marks dropped."""
    text = unicodedata.normalize("NFKD", (text or "").translate(_POLISH))
    text = text.encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:MAX_SLUG].strip("-")


def _clean(name: str, description: str) -> tuple[str, str]:
    name = (name or "").strip()
    description = (description or "").strip()
    if not name:
        raise InvalidInput("Enter a name.", "name")
    if len(name) > MAX_NAME:
        raise InvalidInput("The name is too long.", "name")
    try:
        check_header_value(name)  # list names can end up in List-Id headers
    except InvalidInput as exc:
        raise InvalidInput("The name must be a single line.", "name") from exc
    if len(description) > MAX_DESCRIPTION:
        raise InvalidInput("The description is too long.", "description")
    return name, description


def _unique_slug(session: Session, base: str, exclude_id: int | None = None) -> str:
    base = base or "lista"
    slug, n = base, 2
    while True:
        query = select(MailingList.id).where(MailingList.slug == slug)
        if exclude_id is not None:
            query = query.where(MailingList.id != exclude_id)
        if session.scalar(query) is None:
            return slug
        suffix = f"-{n}"
        slug, n = base[: MAX_SLUG - len(suffix)] + suffix, n + 1


def create_list(session: Session, *, name: str, slug: str | None = None, description: str = "",
                public: bool = True) -> MailingList:
    """A new list; slug derived from the name when not given (made unique with -2, -3...).
    Raises InvalidInput (missing/overlong name, bad slug) or Conflict (slug given and taken)."""
    name, description = _clean(name, description)
    if slug:
        wanted = slugify(slug)
        if not wanted:
            raise InvalidInput("The short name may contain only letters, digits and hyphens.", "slug")
        if session.scalar(select(MailingList.id).where(MailingList.slug == wanted)) is not None:
            raise Conflict("A list with this short name exists.", "slug")
    else:
        wanted = _unique_slug(session, slugify(name))
    mailing_list = MailingList(name=name, slug=wanted, description=description, public=bool(public))
    session.add(mailing_list)
    session.flush()
    return mailing_list


def update_list(session: Session, list_id: int, *, name: str, description: str,
                public: bool) -> MailingList:
    """Rename, describe, make public or private (the slug stays, links keep working).
    Raises NotFound, InvalidInput."""
    mailing_list = get_or_404(session, MailingList, list_id)
    mailing_list.name, mailing_list.description = _clean(name, description)
    mailing_list.public = bool(public)
    session.flush()
    return mailing_list


def all_lists(session: Session) -> list[MailingList]:
    return list(session.scalars(select(MailingList).order_by(MailingList.name, MailingList.id)))


def public_lists(session: Session) -> list[MailingList]:
    """The lists a visitor may choose on the subscribe form, by name."""
    return list(session.scalars(select(MailingList).where(MailingList.public.is_(True))
                                .order_by(MailingList.name, MailingList.id)))
