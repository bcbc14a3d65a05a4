"""WTForms of the staff pages for accounts, lists and imports (labels in English msgids)."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    PasswordField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from ..errors import DomainError
from .errors import error_text
from .form_errors import AccessibleForm
from .forms import ADDRESS_INPUT


def add_error(form: FlaskForm, exc: DomainError) -> None:
    """Show a domain error (every mistake it carries) next to the form field each names, or
    above the form."""
    for one in getattr(exc, "errors", [exc]):
        field = getattr(form, one.field or "", None)
        (field.errors if field is not None else form.form_errors).append(error_text(one))


class LoginForm(AccessibleForm):
    email = StringField(_l("Email address"), validators=[DataRequired(), Length(max=320)], render_kw=ADDRESS_INPUT)
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=1000)])


ROLE_CHOICES = [SelectChoice("editor", _l("Editor")), SelectChoice("admin", _l("Administrator"))]


class TwoFactorForm(AccessibleForm):
    code = StringField(_l("Code from the app, or a recovery code"), validators=[DataRequired(), Length(max=32)])


class PasswordResetForm(AccessibleForm):
    password = PasswordField(_l("New password (at least 10 characters)"),
                             validators=[DataRequired(), Length(max=1000)])


class PasswordChangeForm(AccessibleForm):
    current_password = PasswordField(_l("Current password"), validators=[DataRequired(), Length(max=1000)])
    new_password = PasswordField(_l("New password (at least 10 characters)"),
                                 validators=[DataRequired(), Length(max=1000)])


SCOPE_CHOICES = [SelectChoice("read", _l("Read only")), SelectChoice("write", _l("Read and write")),
                 SelectChoice("admin", _l("Administration"))]


class TokenForm(AccessibleForm):
    name = StringField(_l("What the token is for"), validators=[DataRequired(), Length(max=120)])
    scope = SelectField(_l("Scope"), choices=SCOPE_CHOICES)
    days = SelectField(_l("Expires after"), choices=[
        SelectChoice("30", _l("30 days")), SelectChoice("90", _l("90 days")),
        SelectChoice("180", _l("180 days")), SelectChoice("366", _l("a year"))], default="90")


class UserForm(AccessibleForm):
    email = StringField(_l("Email address"), validators=[DataRequired(), Length(max=320)], render_kw=ADDRESS_INPUT)
    role = SelectField(_l("Role"), choices=ROLE_CHOICES)
    password = PasswordField(_l("Password (at least 10 characters)"),
                             validators=[DataRequired(), Length(max=1000)])


class RoleForm(AccessibleForm):
    role = SelectField(_l("Role"), choices=ROLE_CHOICES)


class ListForm(AccessibleForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    description = TextAreaField(_l("Description"), validators=[Optional(), Length(max=2000)])
    public = BooleanField(_l("Public: offered on the subscription form"), default=True)


class UploadForm(AccessibleForm):
    file = FileField(_l("CSV file (UTF-8)"), validators=[FileRequired()])


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


STATUS_CHOICES = [SelectChoice("pending", _l("Pending (not yet confirmed)")),
                  SelectChoice("confirmed", _l("Confirmed (consent recorded elsewhere)"))]


class MappingForm(AccessibleForm):
    email_col = SelectField(_l("Email address column"), validate_choice=False)
    name_col = SelectField(_l("Name column"), validate_choice=False)
    locale_col = SelectField(_l("Language column"), validate_choice=False)
    list_ids = MultiCheckboxField(_l("Add to lists"), coerce=int, validate_choice=False)
    status = SelectField(_l("Status to assign"), choices=STATUS_CHOICES)
    consent_source = StringField(_l("Where the consent is recorded (required for confirmed)"),
                                 validators=[Optional(), Length(max=200)])
    attributes = TextAreaField(_l("Other columns kept as attributes: one \"column number = attribute name\" a line"),
                               validators=[Optional(), Length(max=4000)])
