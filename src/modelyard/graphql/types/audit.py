"""Audit events (also what subscribers receive), alias moves and tokens."""

from __future__ import annotations

from datetime import datetime

import strawberry

from modelyard.catalog import audit, policy
from modelyard.catalog.audit import EventKind
from modelyard.catalog.tokens import Scope
from modelyard.db.tables import AliasMoveRow, AuditEventRow, TokenRow
from modelyard.graphql.context import Info
from modelyard.graphql.scalars import JSON, Long
from modelyard.graphql.types.version import ModelVersion

EventKindEnum = strawberry.enum(EventKind, name="EventKind", description="What an audit event records.")
ScopeEnum = strawberry.enum(Scope, name="TokenScope", description="read < write < admin.")


@strawberry.type(description="One immutable change: who did what to which object, when, before → after.")
class AuditEvent:
    row: strawberry.Private[AuditEventRow]

    @strawberry.field(description="Increasing: resume a subscription with `since` set to the last one seen.")
    def id(self) -> Long:  # type: ignore[valid-type]
        return self.row.id

    @strawberry.field
    def kind(self) -> EventKindEnum:  # type: ignore[valid-type]
        return EventKind(self.row.kind)

    @strawberry.field
    def at(self) -> datetime:
        return self.row.at

    @strawberry.field(description="The token name that made the change (`anonymous` without one).")
    def actor(self) -> str:
        return self.row.actor

    @strawberry.field(description="The model concerned, when there is one.")
    def model(self) -> str | None:
        return self.row.model

    @strawberry.field
    def object_type(self) -> str:
        return self.row.object_type

    @strawberry.field(description="`name`, `name:3`, `name@alias`, `dataset@version` or a token name.")
    def object_ref(self) -> str:
        return self.row.object_ref

    @strawberry.field(description='What changed: `{field: {"before": …, "after": …}}`. With private '
                      "reads, lineage outside the reader's namespace shows its relation only.")
    def changes(self, info: Info) -> JSON:
        reader = policy.read_namespace(info.context.caller, info.context.settings.public_read)
        return JSON(audit.visible_changes(EventKind(self.row.kind), self.row.changes, reader))


@strawberry.type(description="One move of an alias; `version` is null when the alias was deleted.")
class AliasMove:
    row: strawberry.Private[AliasMoveRow]

    @strawberry.field
    def alias(self) -> str:
        return self.row.alias

    @strawberry.field
    async def version(self, info: Info) -> ModelVersion | None:
        if self.row.version_id is None:
            return None
        return ModelVersion(row=await info.context.loaders.version.load(self.row.version_id))

    @strawberry.field
    def at(self) -> datetime:
        return self.row.at

    @strawberry.field
    def actor(self) -> str:
        return self.row.actor


@strawberry.type(description="A bearer token, without its secret (only a hash is stored).")
class Token:
    row: strawberry.Private[TokenRow]

    @strawberry.field
    def name(self) -> str:
        return self.row.name

    @strawberry.field
    def scope(self) -> ScopeEnum:  # type: ignore[valid-type]
        return Scope(self.row.scope)

    @strawberry.field
    def namespace(self) -> str | None:
        return self.row.namespace

    @strawberry.field(description="The first characters of the secret, to recognise it.")
    def prefix(self) -> str:
        return self.row.prefix

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.created_at

    @strawberry.field
    def created_by(self) -> str | None:
        return self.row.created_by

    @strawberry.field
    def revoked_at(self) -> datetime | None:
        return self.row.revoked_at

    @strawberry.field(description="When the token stops working; null: never.")
    def expires_at(self) -> datetime | None:
        return self.row.expires_at

    @strawberry.field(description="When the token was last presented (to the minute); null: never.")
    def last_used_at(self) -> datetime | None:
        return self.row.last_used_at


@strawberry.type(description="A new token and its secret, shown this once.")
class CreatedToken:
    secret: str
    token: Token
