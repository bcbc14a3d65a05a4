"""Staff pages: templates."""

from . import bp  # noqa: F401
