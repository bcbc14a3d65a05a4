"""Public WTForms: they render the fields and carry the CSRF token. The rules on the
values (address, name, consent, lists) live in mailer.subscriptions, so the form, the
JSON endpoint and the API apply the same ones."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, SelectMultipleField, StringField, SubmitField
from wtforms.widgets import CheckboxInput, ListWidget

HONEYPOT = "website"


class SubscribeForm(FlaskForm):
    email = EmailField(_l("Email address"), render_kw={"autocomplete": "email", "required": True,
                                                       "maxlength": 254})
    name = StringField(_l("Name (optional)"), render_kw={"autocomplete": "name", "maxlength": 200})
    lists = SelectMultipleField(_l("Newsletters"), coerce=int, validate_choice=False,
                                widget=ListWidget(prefix_label=False), option_widget=CheckboxInput())
    consent = BooleanField(default=False)
    website = StringField(_l("Leave this field empty"), render_kw={"autocomplete": "off", "tabindex": "-1"})
    submit = SubmitField(_l("Subscribe"))


class ButtonForm(FlaskForm):
    """A page with one button (confirm, send a new link): only the CSRF token."""


class UnsubscribeForm(FlaskForm):
    lists = SelectMultipleField(_l("Newsletters"), coerce=int, validate_choice=False,
                                widget=ListWidget(prefix_label=False), option_widget=CheckboxInput())


class ManageLinkForm(FlaskForm):
    """Asks for a link to the preference centre by address (with the sign-up's honeypot)."""

    email = EmailField(_l("Email address"), render_kw={"autocomplete": "email", "required": True,
                                                       "maxlength": 254})
    website = StringField(_l("Leave this field empty"), render_kw={"autocomplete": "off", "tabindex": "-1"})


class PreferencesForm(FlaskForm):
    """The preference centre's forms: only the CSRF token (the page renders its fields)."""
