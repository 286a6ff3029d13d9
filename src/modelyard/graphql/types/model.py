"""The `Model` type."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from modelyard.catalog import aliases
from modelyard.catalog.models import Task
from modelyard.db.tables import AliasRow, ModelRow
from modelyard.graphql.context import Info
from modelyard.graphql.execution import pure
from modelyard.graphql.pagination import page_args
from modelyard.graphql.prefetch import prefetch
from modelyard.graphql.types.common import Tag, tags_of
from modelyard.graphql.types.connection import Connection
from modelyard.graphql.types.enums import TaskEnum
from modelyard.graphql.types.node import Node
from modelyard.graphql.types.version import ModelVersion

if TYPE_CHECKING:
    from modelyard.graphql.types.audit import AliasMove

AliasMoveT = Annotated["AliasMove", strawberry.lazy("modelyard.graphql.types.audit")]


@strawberry.type(description="A param or metric key and how many of a model's versions carry it.")
class KeyUse:
    key: str
    versions: int


@strawberry.type(description="A movable name pointing at one version of a model.")
class Alias:
    name: str
    updated_at: datetime
    updated_by: str | None
    version_id: strawberry.Private[int]

    @classmethod
    def of(cls, row: AliasRow) -> Alias:
        return cls(name=row.name, updated_at=row.updated_at, updated_by=row.updated_by, version_id=row.version_id)

    @strawberry.field
    async def version(self, info: Info) -> ModelVersion:
        row = await info.context.loaders.version.load(self.version_id)
        return ModelVersion(row=row)


@strawberry.type(description="A named series of versions: `name` or `namespace/name`.")
class Model(Node):
    row: strawberry.Private[ModelRow]

    @property
    def pk(self) -> int:
        return self.row.id

    @strawberry.field(description="Full name, with the namespace when there is one.")
    @pure
    def name(self) -> str:
        return self.row.full_name

    @strawberry.field
    @pure
    def namespace(self) -> str | None:
        return self.row.namespace or None

    @strawberry.field(description="Markdown model card.")
    @pure
    def description(self) -> str:
        return self.row.description

    @strawberry.field
    @pure
    def task(self) -> TaskEnum:  # type: ignore[valid-type]
        return Task(self.row.task)

    @strawberry.field
    def tags(self) -> list[Tag]:
        return tags_of(self.row.tags)

    @strawberry.field
    @pure
    def created_at(self) -> datetime:
        return self.row.created_at

    @strawberry.field
    @pure
    def updated_at(self) -> datetime:
        return self.row.updated_at

    @strawberry.field
    @pure
    def created_by(self) -> str | None:
        return self.row.created_by

    @strawberry.field(description="Versions, newest first; archived ones too unless `includeArchived` is false.")
    async def versions(
        self, info: Info, first: int | None = None, after: str | None = None, include_archived: bool = True
    ) -> Connection[ModelVersion]:
        limit, offset = page_args(first, after, info.context.settings.max_page_size)
        loaders = info.context.loaders
        rows, has_next = await loaders.version_pages.load((self.row.id, limit, offset, include_archived))
        loaders.prime_versions(rows)
        await prefetch(info, rows)
        key = (self.row.id, include_archived)

        async def count() -> int:
            return await loaders.version_counts.load(key)

        return Connection.page([ModelVersion(row=r) for r in rows], offset, has_next, count)

    @strawberry.field(description="The param keys this model's versions carry, most common first: "
                      "what a versions table can show as columns.")
    async def param_keys(self, info: Info) -> list[KeyUse]:
        return [KeyUse(key=k, versions=n) for k, n in await info.context.loaders.param_keys.load(self.row.id)]

    @strawberry.field(description="The metric keys this model's versions carry, most common first.")
    async def metric_keys(self, info: Info) -> list[KeyUse]:
        return [KeyUse(key=k, versions=n) for k, n in await info.context.loaders.metric_keys.load(self.row.id)]

    @strawberry.field(description="The newest READY version.")
    async def latest_version(self, info: Info) -> ModelVersion | None:
        row = await info.context.loaders.latest_ready.load(self.row.id)
        return ModelVersion(row=row) if row else None

    @strawberry.field(description="Every move of an alias, newest first, with who moved it and when.")
    async def alias_history(self, alias: str) -> list[AliasMoveT]:
        from modelyard.graphql.types.audit import AliasMove

        return [AliasMove(row=r) for r in await aliases.alias_history(self.row.id, alias)]

    @strawberry.field
    async def aliases(self, info: Info) -> list[Alias]:
        return [Alias.of(r) for r in await info.context.loaders.model_aliases.load(self.row.id)]
