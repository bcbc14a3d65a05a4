"""The OpenAPI document, public so that clients can be generated from it."""

from flask import jsonify
from spectree import Response

from . import bp, public, schemas
from .spec import document, spec


@bp.get("/openapi.json")
@public
@spec.validate(resp=Response(HTTP_200=(schemas.Document, "The OpenAPI document.")), security={})
def openapi_document():
    """This document."""
    return jsonify(document())
