"""Public pages about what was sent and announced: view in browser, archive, calendar files."""

from flask import Blueprint

bp = Blueprint("archive", __name__)
