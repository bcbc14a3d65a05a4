"""Public WTForms: they render the fields and carry the CSRF token. The rules on the
values (address, name, consent, lists) live in mailer.subscriptions, so the form, the
JSON endpoint and the API apply the same ones."""

from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, SelectMultipleField, StringField, SubmitField
from wtforms.widgets import CheckboxInput, ListWidget

from .form_errors import AccessibleForm

HONEYPOT = "website"
# An address input: text with the email keyboard (type=email refuses ł before the @).
ADDRESS_INPUT = {"inputmode": "email", "autocomplete": "email", "spellcheck": "false", "autocapitalize": "none"}


class SubscribeForm(AccessibleForm):
    # Not type=email: browsers refuse non-ASCII letters before the @ (RFC 6531 addresses,
    # which mailer.subscribers.normalize_email accepts); the keyboard is still the email one.
    email = StringField(_l("Email address"), render_kw=ADDRESS_INPUT | {"required": True, "maxlength": 254})
    name = StringField(_l("Name (optional)"), render_kw={"autocomplete": "name", "maxlength": 200})
    lists = SelectMultipleField(_l("Newsletters"), coerce=int, validate_choice=False,
                                widget=ListWidget(prefix_label=False), option_widget=CheckboxInput())
    consent = BooleanField(default=False)
    website = StringField(_l("Leave this field empty"), render_kw={"autocomplete": "off", "tabindex": "-1"})
    submit = SubmitField(_l("Subscribe"))


class ButtonForm(AccessibleForm):
    """A page with one button (confirm, send a new link): only the CSRF token."""


class UnsubscribeForm(AccessibleForm):
    lists = SelectMultipleField(_l("Newsletters"), coerce=int, validate_choice=False,
                                widget=ListWidget(prefix_label=False), option_widget=CheckboxInput())


class ManageLinkForm(AccessibleForm):
    """Asks for a link to the preference centre by address (with the sign-up's honeypot)."""

    email = StringField(_l("Email address"), render_kw=ADDRESS_INPUT | {"required": True, "maxlength": 254})
    website = StringField(_l("Leave this field empty"), render_kw={"autocomplete": "off", "tabindex": "-1"})


class PreferencesForm(AccessibleForm):
    """The preference centre's forms: only the CSRF token (the page renders its fields)."""
