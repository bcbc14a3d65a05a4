"""One commit point per request: views call the domain and never commit or roll back.

After the view, a request that may change something (POST, PUT, PATCH, DELETE) is committed
when its answer is a success or a redirect, and rolled back otherwise (a refused form, a
domain error mapped to 4xx, a 500). A GET, HEAD or OPTIONS is always rolled back: reading
never writes, whatever a view does by mistake. Jobs queued by the request are sent after
the commit (mailer.jobs), so a rolled-back request mails nobody.
"""

from flask import Flask, Response, g, request

from ..extensions import db_session

WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def discard() -> None:
    """Roll this request's changes back even though its answer will be a redirect (a view
    that reports a refused action on the next page)."""
    db_session.rollback()
    g.discarded = True


def init_app(app: Flask) -> None:
    @app.after_request
    def end_transaction(response: Response) -> Response:
        if (request.method in WRITES and response.status_code < 400
                and not g.get("discarded", False)):
            db_session.commit()
        else:
            db_session.rollback()
        return response
