"""Provider webhooks for bounces and complaints: POST /webhooks/<provider>.

No session, no CSRF (each provider signs its requests instead), a bounded body. Parse, one
domain call (``bounces.webhooks.receive``), answer (``web.transaction`` commits); a refusal is
a JSON 4xx with the reason and nothing written. Answers are for machines, so they are in
English.
"""

from flask import Blueprint, current_app, jsonify, request

from ..bounces import webhooks
from ..extensions import csrf, db_session

bp = Blueprint("webhooks", __name__)
csrf.exempt(bp)


@bp.before_request
def bound_body():
    request.max_content_length = current_app.config["WEBHOOK_MAX_BODY_KB"] * 1024


@bp.post("/webhooks/<any(ses, postmark, sendgrid, mailgun):provider>")
def receive(provider: str):
    try:
        result = webhooks.receive(db_session, provider, request.get_data(cache=False),
                                  dict(request.headers))
    except webhooks.Refused as exc:
        response = jsonify({"error": exc.message})
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="webhooks"' if provider == "postmark" \
                else 'Signature realm="webhooks"'
        return response, exc.status
    return jsonify(result)


@bp.errorhandler(413)
def too_large(exc):
    return jsonify({"error": "the body is too large"}), 413
