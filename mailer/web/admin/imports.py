"""Staff pages: imports."""

from . import bp  # noqa: F401
