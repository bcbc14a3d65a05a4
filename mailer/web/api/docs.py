"""The OpenAPI document, public so that clients can be generated from it."""

from flask import jsonify

from .. import openapi
from . import bp, public


@bp.get("/openapi.json")
@public
def openapi_document():
    return jsonify(openapi.document())
