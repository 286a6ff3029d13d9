"""The typed per-request context every resolver receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import strawberry

from modelyard.catalog.events import EventBus
from modelyard.catalog.policy import Caller, caller_for
from modelyard.config import Settings
from modelyard.graphql.loaders import Loaders
from modelyard.storage import BlobStore


@dataclass
class Context:
    """What a request carries: settings, credentials, fresh loaders, the event bus.

    The token is looked up only when a permission check first asks who is calling, so a query
    refused by the limits (or introspection) never touches the database.
    """

    settings: Settings
    events: EventBus | None = None
    store: BlobStore | None = None
    authorization: str | None = None
    loaders: Loaders = field(default_factory=Loaders)
    request: object | None = None
    host: str = "unknown"
    # Set by Strawberry from a WebSocket's connection_init payload.
    connection_params: dict[str, Any] | None = None
    _caller: Caller | None = None

    async def caller(self) -> Caller:
        """Who is calling (resolved once per request)."""
        if self._caller is None:
            self._caller = await caller_for(self.authorization)
        return self._caller

    @property
    def actor(self) -> str:
        """The name audit events record; permission checks have resolved the caller by now."""
        assert self._caller is not None, "actor read before any permission check"
        return self._caller.actor

    @property
    def client(self) -> str:
        """Whose subscription slots a request uses: its token, or its address when anonymous."""
        principal = self._caller.principal if self._caller else None
        return f"token {principal.name!r}" if principal else f"anonymous client {self.host}"


Info = strawberry.Info[Context, None]
