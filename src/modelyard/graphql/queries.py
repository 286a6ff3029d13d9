"""Query root: thin resolvers over the catalog."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.permission import BasePermission

from modelyard.catalog import audit, datasets, policy, search, tokens, versions
from modelyard.catalog.compare import compare_versions
from modelyard.catalog.lineage import Direction, walk
from modelyard.catalog.models import get_model
from modelyard.catalog.refs import parse_ref
from modelyard.catalog.resolve import resolve_version
from modelyard.catalog.suggest import suggest_models
from modelyard.catalog.tokens import Scope
from modelyard.db.tables import DatasetRow, DatasetVersionRow, ModelRow, VersionRow
from modelyard.errors import ForbiddenError, NotFoundError
from modelyard.graphql.context import Info
from modelyard.graphql.inputs import AuditFilter, ModelFilter, VersionFilter, VersionOrder
from modelyard.graphql.pagination import decode_position, encode_position, page_args, page_size
from modelyard.graphql.permissions import CanRead, CanReadEach, CanSearch, IsAdmin
from modelyard.graphql.prefetch import prefetch
from modelyard.graphql.types.audit import AuditEvent, Token
from modelyard.graphql.types.compare import VersionComparison
from modelyard.graphql.types.connection import Connection
from modelyard.graphql.types.dataset import Dataset, DatasetVersion
from modelyard.graphql.types.enums import DirectionEnum
from modelyard.graphql.types.lineage import LineageEdge, LineageGraph
from modelyard.graphql.types.model import Model
from modelyard.graphql.types.node import Node, parse_global_id
from modelyard.graphql.types.version import ModelVersion, check_depth
from modelyard.graphql.visibility import visible_edges

READ: list[type[BasePermission]] = [CanRead]
_NODES = {
    "Model": (ModelRow, Model),
    "ModelVersion": (VersionRow, ModelVersion),
    "Dataset": (DatasetRow, Dataset),
    "DatasetVersion": (DatasetVersionRow, DatasetVersion),
}


async def _or_none(coro: object) -> object:
    try:
        return await coro  # type: ignore[misc]
    except NotFoundError:
        return None


@strawberry.type
class Query:
    @strawberry.field(permission_classes=READ, description="Any object by its global id.")
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        type_name, pk = parse_global_id(id)
        if type_name not in _NODES or pk == 0:
            return None
        table, view = _NODES[type_name]
        row = await table.get_or_none(id=pk)
        if row is None:
            return None
        if policy.read_namespace(info.context.caller, info.context.settings.public_read) is not None:
            policy.check_read(info.context.caller, False, await _name_of(row))
        return view(row=row)  # type: ignore[call-arg]

    @strawberry.field(permission_classes=READ, description="A model by name; null when there is none.")
    async def model(self, info: Info, name: str) -> Model | None:
        row = await _or_none(get_model(name))
        if row is None:
            return None
        info.context.loaders.prime_model(row)  # type: ignore[arg-type]
        return Model(row=row)  # type: ignore[arg-type]

    @strawberry.field(permission_classes=READ, description="Models by name.")
    async def models(
        self, info: Info, first: int | None = None, after: str | None = None,
        filter: ModelFilter | None = None,
    ) -> Connection[Model]:
        limit, offset = page_args(first, after, info.context.settings.max_page_size)
        spec = filter.to_catalog() if filter else search.ModelFilter()
        spec.namespace = _narrow(info, spec.namespace)
        rows, has_next = await search.search_models(spec, limit, offset)
        for row in rows:
            info.context.loaders.prime_model(row)

        async def count() -> int:
            return await search.model_query(spec).count()

        return Connection.page([Model(row=r) for r in rows], offset, has_next, count)

    @strawberry.field(
        permission_classes=READ,
        description="The version a ref names: `name`, `name:3`, `name@alias`, `name@sha256:…`; "
        "with `at`, what it named at that moment (an alias's target then).",
    )
    async def version(self, info: Info, ref: str, at: datetime | None = None) -> ModelVersion | None:
        row = await _or_none(resolve_version(parse_ref(ref), at))
        return ModelVersion(row=row) if row else None  # type: ignore[arg-type]

    @strawberry.field(
        permission_classes=[CanReadEach],
        description="Two versions side by side (refs as in `version`, of one model or of two): params, "
        "latest metrics and artifacts marked SAME, CHANGED, ADDED (only in b) or REMOVED (only in a), with "
        "b − a for numbers, and the lineage parents of each. NOT_FOUND names a ref that names no version.",
    )
    async def compare(self, info: Info, a: str, b: str) -> VersionComparison:
        return await VersionComparison.of(info, await compare_versions(a, b))

    @strawberry.field(
        permission_classes=[CanSearch],
        description="The models whose names are closest to `name` (free text, at most 200 characters; "
        "a ref's version is ignored), best first: what a \"not found\" page suggests. At most 20.",
    )
    async def suggest_models(self, info: Info, name: str, first: int | None = 5) -> list[Model]:
        rows = await suggest_models(name, 5 if first is None else first, _narrow(info, None))
        for row in rows:
            info.context.loaders.prime_model(row)
        return [Model(row=r) for r in rows]

    @strawberry.field(
        permission_classes=READ,
        description="Versions across all models matching a typed filter, sorted by `orderBy`: up to 4 keys "
        "(model name, number, created time, a metric, a numeric param), each ascending or descending, then "
        "by version id; newest first when not given. Versions lacking a metric or param key sort last. "
        "Cursors are positions in that order: the next page starts right after `after`, whatever was "
        "created meanwhile, and a cursor only works with the ordering that handed it out.",
    )
    async def versions(
        self, info: Info, first: int | None = None, after: str | None = None,
        filter: VersionFilter | None = None, order_by: list[VersionOrder] | None = None,
    ) -> Connection[ModelVersion]:
        limit = page_size(first, info.context.settings.max_page_size)
        spec = filter.to_catalog() if filter else search.VersionFilter()
        namespace = _narrow(info, None)
        if namespace is not None:
            spec = search.VersionFilter(namespace=namespace, status=spec.status, and_=[spec])
        order = [o.to_catalog() for o in order_by] if order_by else None
        page = await search.search_versions(spec, order, limit, decode_position(after), reader_namespace=namespace)
        rows = await info.context.loaders.version.load_many(page.ids)
        await prefetch(info, rows)

        async def count() -> int:
            return await search.count(page)

        return Connection.of([ModelVersion(row=r) for r in rows], [encode_position(p) for p in page.positions],
                             page.has_next, after is not None, count)

    @strawberry.field(
        permission_classes=READ, description="The lineage graph around a version, one recursive query per direction."
    )
    async def lineage(
        self, info: Info, ref: str, direction: DirectionEnum = Direction.BOTH,  # type: ignore[valid-type]
        depth: int = 3,
    ) -> LineageGraph:
        check_depth(info, depth)
        root = await versions.get_version(ref)
        info.context.loaders.prime_versions([root])
        edges = (await walk([root.id], Direction(direction), depth))[root.id]
        visible = await visible_edges(info, [LineageEdge.from_walk(e) for e in edges])
        return LineageGraph(root=ModelVersion(row=root), edges=visible)

    @strawberry.field(permission_classes=READ, description="A dataset by name; null when there is none.")
    async def dataset(self, name: str) -> Dataset | None:
        row = await _or_none(datasets.get_dataset(name))
        return Dataset(row=row) if row else None  # type: ignore[arg-type]

    @strawberry.field(permission_classes=READ, description="The audit log, newest first. Token events: admins only.")
    async def audit_log(
        self, info: Info, first: int | None = None, after: str | None = None,
        filter: AuditFilter | None = None,
    ) -> Connection[AuditEvent]:
        limit, offset = page_args(first, after, info.context.settings.max_page_size)
        spec = filter.to_catalog() if filter else audit.AuditFilter()
        spec.namespace = _narrow(info, spec.namespace)
        spec.include_tokens = _is_admin(info)
        query = audit.events_query(spec)
        rows = await query.order_by("-id").offset(offset).limit(limit + 1)

        async def count() -> int:
            return int(await query.count())

        return Connection.page([AuditEvent(row=r) for r in rows[:limit]], offset, len(rows) > limit, count)

    @strawberry.field(permission_classes=[IsAdmin], description="Every token (admin). Secrets are never stored.")
    async def tokens(self) -> list[Token]:
        return [Token(row=r) for r in await tokens.list_tokens()]


def _narrow(info: Info, asked: str | None) -> str | None:
    """The namespace a list must stay in for this caller (theirs when reads are private)."""
    forced = policy.read_namespace(info.context.caller, info.context.settings.public_read)
    if forced is None:
        return asked
    if asked is not None and asked != forced:
        raise ForbiddenError(f"this token reads only namespace {forced!r}, not {asked!r}")
    return forced


def _is_admin(info: Info) -> bool:
    principal = info.context.caller.principal
    return principal is not None and principal.scope is Scope.ADMIN and principal.namespace is None


async def _name_of(row: object) -> str:
    """The model or dataset name an object belongs to, for namespace checks."""
    if isinstance(row, ModelRow | DatasetRow):
        return row.full_name
    if isinstance(row, VersionRow):
        return (await ModelRow.get(id=row.model_id)).full_name
    assert isinstance(row, DatasetVersionRow)
    return (await DatasetRow.get(id=row.dataset_id)).full_name
