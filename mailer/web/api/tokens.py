"""API tokens: list, create and revoke them through the API itself (each caller its own; an
admin-scope token of an admin sees and revokes everyone's)."""

from flask import g, jsonify

from ... import audit, users
from ...extensions import db_session
from ...models import Role, Scope
from ..auth import actor
from . import bp, schemas, serializers
from .spec import answers, spec

ID = "<int(min=1, max=2147483647):token_id>"


def _sees_all() -> bool:
    return g.api_user.role == Role.ADMIN and g.api_token.scope == Scope.ADMIN


@bp.get("/tokens")
@spec.validate(resp=answers(200, schemas.Tokens, "The tokens."))
def list_tokens():
    """The caller's tokens (an admin-scope token of an administrator: everyone's), revoked
    and expired ones too. Tokens themselves are never shown again, only their first characters."""
    owner = None if _sees_all() else g.api_user.id
    return jsonify({"items": [serializers.token(item) for item in users.list_tokens(db_session, owner)]})


@bp.post("/tokens")
@spec.validate(resp=answers(201, schemas.NewToken, "The new token, shown this once.", 413))
def create_token(json: schemas.TokenCreate):
    """A new token for the caller, with a scope no wider than the calling token's."""
    created, token = users.issue_token(db_session, g.api_user, json.name, json.scope, json.days,
                                       limit=g.api_token.scope)
    audit.record(db_session, actor(), "token.create", str(created.id), name=created.name, scope=str(created.scope),
                 owner=g.api_user.email)
    return jsonify({**serializers.token(created), "token": token}), 201


@bp.delete(f"/tokens/{ID}")
@spec.validate(resp=answers(204, None, "Revoked.", 404))
def revoke_token(token_id: int):
    """Revoke a token: the caller's own, or (an admin-scope token of an administrator) anyone's."""
    revoked = users.revoke_token(db_session, token_id, g.api_user if not _sees_all() else None)
    audit.record(db_session, actor(), "token.revoke", str(token_id), owner=revoked.user.email)
    return "", 204
