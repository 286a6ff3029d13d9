"""Subscription root: live registry events over graphql-transport-ws."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Iterator

import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from modelyard.catalog import audit, policy, tokens
from modelyard.catalog.refs import parse_name
from modelyard.errors import LimitError
from modelyard.graphql.context import Info
from modelyard.graphql.loaders import Loaders
from modelyard.graphql.permissions import CanRead
from modelyard.graphql.scalars import Long
from modelyard.graphql.types.audit import AuditEvent, EventKindEnum


@strawberry.type
class Subscription:
    @strawberry.subscription(
        permission_classes=[CanRead],
        description="Registry events as they happen. With `since` (an event id), first every "
        "event after it, so a client that reconnects misses nothing. Token events: admins only.",
    )
    async def events(
        self, info: Info, model: str | None = None,
        kinds: list[EventKindEnum] | None = None,  # type: ignore[valid-type]
        since: Long | None = None,  # type: ignore[valid-type]
    ) -> AsyncGenerator[AuditEvent, None]:
        bus = info.context.events
        if bus is None:
            raise LimitError("live events are not available on this server")
        caller, settings = info.context.caller, info.context.settings
        principal = caller.principal
        spec = audit.AuditFilter(
            model=parse_name(model).full if model else None,
            kinds=[audit.EventKind(k) for k in kinds or []],
            namespace=policy.read_namespace(caller, settings.public_read),
            include_tokens=principal is not None and principal.scope.value == "admin" and principal.namespace is None,
        )
        with bus.slot(info.context.client):
            async for row in bus.stream(spec, since):
                # A revoked or expired token stops working at once, open subscriptions included.
                if principal is not None:
                    await tokens.check_active(principal.name)
                info.context.loaders = Loaders()  # each event sees the catalog as it is now
                yield AuditEvent(row=row)


class WakeSubscribers(SchemaExtension):
    """After a mutation, wake this process's subscribers (other replicas hear PostgreSQL NOTIFY)."""

    def on_operation(self) -> Iterator[None]:
        yield
        ctx = self.execution_context
        events = getattr(ctx.context, "events", None)
        if events is None or ctx.graphql_document is None or ctx.pre_execution_errors:
            return  # nothing ran
        with contextlib.suppress(RuntimeError):  # no such operation in the document
            if ctx.operation_type is OperationType.MUTATION:
                events.wake()
