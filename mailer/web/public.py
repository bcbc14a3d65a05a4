"""Public pages: upcoming events with the subscribe box, confirm and unsubscribe."""

from flask import Blueprint, render_template

bp = Blueprint("public", __name__)


@bp.get("/")
def index():
    return render_template("web/public/index.html")
