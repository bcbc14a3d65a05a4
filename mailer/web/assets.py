"""The site's icon: one small SVG, cached for a year (it is the same for every page)."""

from flask import Flask, Response, current_app, send_from_directory

ICON_MAX_AGE = 365 * 24 * 3600


def favicon() -> Response:
    response = send_from_directory(current_app.static_folder or "static", "favicon.svg",
                                   mimetype="image/svg+xml", max_age=ICON_MAX_AGE)
    response.cache_control.public = True
    response.cache_control.immutable = True
    return response


def init_app(app: Flask) -> None:
    # /favicon.ico too: browsers ask for it before (or without) reading the page's <link>.
    app.add_url_rule("/favicon.svg", "favicon", favicon)
    app.add_url_rule("/favicon.ico", "favicon_ico", favicon)
