"""The typed per-request context every resolver receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import strawberry

from modelyard.catalog.events import EventBus
from modelyard.catalog.policy import Caller
from modelyard.config import Settings
from modelyard.graphql.loaders import Loaders
from modelyard.storage import BlobStore


@dataclass
class Context:
    """What a request carries: settings, who is asking, fresh loaders, the store and event bus.

    The caller is resolved once, when the request arrives (one token lookup when a token is
    presented), so permission checks only read it.
    """

    settings: Settings
    events: EventBus | None = None
    store: BlobStore | None = None
    caller: Caller = field(default_factory=Caller)
    loaders: Loaders = field(default_factory=Loaders)
    request: object | None = None
    host: str = "unknown"
    # Set by Strawberry from a WebSocket's connection_init payload.
    connection_params: dict[str, Any] | None = None

    @property
    def actor(self) -> str:
        """The name audit events record for this request."""
        return self.caller.actor

    @property
    def client(self) -> str:
        """Whose subscription slots a request uses: its token, or its address when anonymous."""
        principal = self.caller.principal
        return f"token {principal.name!r}" if principal else f"anonymous client {self.host}"


Info = strawberry.Info[Context, None]
