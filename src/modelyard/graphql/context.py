"""The typed per-request context every resolver receives."""

from __future__ import annotations

from dataclasses import dataclass, field

import strawberry

from modelyard.config import Settings
from modelyard.graphql.loaders import Loaders


@dataclass
class Context:
    """What a request carries: settings, fresh loaders and who is asking."""

    settings: Settings
    actor: str | None = None
    request: object | None = None
    loaders: Loaders = field(default_factory=Loaders)


Info = strawberry.Info[Context, None]
