"""Input types, and their conversion to the catalog's own dataclasses."""

from __future__ import annotations

from datetime import datetime

import strawberry

from modelyard.catalog import audit, datasets, lineage, models, ordering, search, versions
from modelyard.catalog.artifacts import ArtifactSpec
from modelyard.catalog.params import ParamKind, TypedParam, typed_param
from modelyard.catalog.refs import parse_name
from modelyard.catalog.versions import Status
from modelyard.errors import InvalidError
from modelyard.graphql.scalars import JSON, Long
from modelyard.graphql.types.audit import EventKindEnum, ScopeEnum
from modelyard.graphql.types.enums import (
    OrderFieldEnum,
    ParamTypeEnum,
    RelationEnum,
    StatusEnum,
    TaskEnum,
)


@strawberry.input(description="A key → value label.")
class TagInput:
    key: str
    value: str


def tag_dict(tags: list[TagInput] | None) -> dict[str, str] | None:
    """Tags as a dict; INVALID when a key repeats."""
    if tags is None:
        return None
    out: dict[str, str] = {}
    for t in tags:
        if t.key in out:
            raise InvalidError(f"tag {t.key!r} is given twice")
        out[t.key] = t.value
    return out


@strawberry.input(description="A typed param. Without `type`, the JSON value decides it.")
class ParamInput:
    key: str
    value: JSON
    type: ParamTypeEnum | None = None  # type: ignore[valid-type]

    def typed(self) -> TypedParam:
        return typed_param(self.key, self.value, ParamKind(self.type) if self.type else None)


@strawberry.input(description="A metric value, optionally at a training step.")
class MetricInput:
    key: str
    value: float
    step: Long | None = None  # type: ignore[valid-type]

    def point(self) -> versions.MetricPoint:
        return versions.MetricPoint(self.key, self.value, self.step)


@strawberry.input(description="The external run and code that produced a version.")
class RunInput:
    run_id: str | None = None
    uri: str | None = None
    code_repository: str | None = None
    commit: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None

    def info(self) -> versions.RunInfo:
        return versions.RunInfo(**vars(self))


@strawberry.input(
    description="A lineage parent: a version ref (`base:2`, `base@prod`) or, for TRAINED_ON and "
    "EVALUATED_ON, a dataset ref (`imagenet@2024-06`)."
)
class LineageInput:
    parent: str
    relation: RelationEnum  # type: ignore[valid-type]

    def spec(self) -> lineage.ParentSpec:
        return lineage.ParentSpec(self.parent, lineage.Relation(self.relation))


@strawberry.input
class CreateModelInput:
    name: str
    description: str = ""
    task: TaskEnum = models.Task.OTHER  # type: ignore[valid-type]
    tags: list[TagInput] | None = None

    def target(self) -> str:
        """What this input changes, for the permission check."""
        return self.name


@strawberry.input(description="Fields left out stay as they are.")
class UpdateModelInput:
    name: str
    description: str | None = None
    task: TaskEnum | None = None  # type: ignore[valid-type]
    tags: list[TagInput] | None = strawberry.field(default=None, description="Replaces all tags.")

    def changes(self) -> models.ModelChanges:
        return models.ModelChanges(self.description, models.Task(self.task) if self.task else None,
                                   tag_dict(self.tags))

    def target(self) -> str:
        """What this input changes, for the permission check."""
        return self.name


@strawberry.input(description="A file of the new version: its path and the digest of its uploaded blob.")
class ArtifactInput:
    path: str
    digest: str


@strawberry.input(description="A new version with everything it carries, created in one transaction.")
class CreateVersionInput:
    model: str
    description: str = ""
    params: list[ParamInput] = strawberry.field(default_factory=list)
    metrics: list[MetricInput] = strawberry.field(default_factory=list)
    tags: list[TagInput] = strawberry.field(default_factory=list)
    run: RunInput | None = None
    lineage: list[LineageInput] = strawberry.field(default_factory=list)
    artifacts: list[ArtifactInput] = strawberry.field(
        default_factory=list, description="Every blob must already be uploaded (NOT_FOUND otherwise)."
    )

    def spec(self) -> versions.NewVersion:
        return versions.NewVersion(
            model=self.model,
            description=self.description,
            params=[p.typed() for p in self.params],
            metrics=[m.point() for m in self.metrics],
            tags=tag_dict(self.tags) or {},
            run=self.run.info() if self.run else None,
            lineage=[x.spec() for x in self.lineage],
            artifacts=[ArtifactSpec(a.path, a.digest) for a in self.artifacts],
        )

    def target(self) -> str:
        """What this input changes, for the permission check."""
        return self.model


@strawberry.input(description="Fields left out stay as they are; params never change.")
class UpdateVersionInput:
    ref: str
    description: str | None = None
    tags: list[TagInput] | None = strawberry.field(default=None, description="Replaces all tags.")
    run: RunInput | None = None

    def changes(self) -> versions.VersionChanges:
        return versions.VersionChanges(self.description, tag_dict(self.tags),
                                       self.run.info() if self.run else None)

    def target(self) -> str:
        """What this input changes, for the permission check."""
        return self.ref


@strawberry.input
class LogMetricsInput:
    ref: str
    metrics: list[MetricInput]

    def target(self) -> str:
        """What this input changes, for the permission check."""
        return self.ref


@strawberry.input
class SetAliasInput:
    model: str
    alias: str
    version: str = strawberry.field(description="A version number (`3`) or a ref of this model.")

    def target(self) -> str:
        """What this input changes, for the permission check."""
        return self.model


@strawberry.input
class DeleteAliasInput:
    model: str
    alias: str

    def target(self) -> str:
        """What this input changes, for the permission check."""
        return self.model


@strawberry.input
class AddLineageInput:
    ref: str = strawberry.field(description="The child version.")
    parent: str
    relation: RelationEnum  # type: ignore[valid-type]

    def spec(self) -> lineage.ParentSpec:
        return lineage.ParentSpec(self.parent, lineage.Relation(self.relation))

    def target(self) -> str:
        """What this input changes, for the permission check."""
        return self.ref


@strawberry.input
class RegisterDatasetInput:
    name: str
    version: str
    uri: str = ""
    digest: str | None = None
    size: Long | None = None  # type: ignore[valid-type]
    description: str = ""

    def spec(self) -> datasets.NewDatasetVersion:
        return datasets.NewDatasetVersion(**vars(self))

    def target(self) -> str:
        """What this input changes, for the permission check."""
        return self.name


@strawberry.input(description="Compare a param or a metric; every operator given must hold.")
class CompareInput:
    key: str
    eq: JSON | None = None
    ne: JSON | None = None
    lt: float | None = None
    lte: float | None = None
    gt: float | None = None
    gte: float | None = None
    in_: list[JSON] | None = strawberry.field(default=None, name="in")

    def compare(self) -> search.Compare:
        return search.Compare(self.key, self.eq, self.ne, self.lt, self.lte, self.gt, self.gte, self.in_)


@strawberry.input(description="A tag with this key, and this value when given.")
class TagFilterInput:
    key: str
    value: str | None = None


@strawberry.input(description="Every condition given must hold; `or` holds when any of its filters does.")
class VersionFilter:
    model: str | None = None
    namespace: str | None = None
    status: list[StatusEnum] | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Default: everything but ARCHIVED."
    )
    params: list[CompareInput] | None = None
    metrics: list[CompareInput] | None = None
    tags: list[TagFilterInput] | None = None
    alias: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    derived_from: str | None = strawberry.field(default=None, description="A ref: descendants at any depth.")
    trained_on: str | None = strawberry.field(default=None, description="`dataset` or `dataset@version`.")
    and_: list[VersionFilter] | None = strawberry.field(default=None, name="and")
    or_: list[VersionFilter] | None = strawberry.field(default=None, name="or")
    not_: VersionFilter | None = strawberry.field(default=None, name="not")

    def to_catalog(self) -> search.VersionFilter:
        return search.VersionFilter(
            model=self.model,
            namespace=self.namespace,
            status=[Status(s) for s in self.status] if self.status else None,
            params=[c.compare() for c in self.params or []],
            metrics=[c.compare() for c in self.metrics or []],
            tags=[search.TagMatch(t.key, t.value) for t in self.tags or []],
            alias=self.alias,
            created_after=self.created_after,
            created_before=self.created_before,
            derived_from=self.derived_from,
            trained_on=self.trained_on,
            and_=[f.to_catalog() for f in self.and_ or []],
            or_=[f.to_catalog() for f in self.or_ or []],
            not_=self.not_.to_catalog() if self.not_ else None,
        )


@strawberry.input(
    description="One sort key of `versions`: a column (MODEL_NAME, NUMBER, CREATED_AT) or, with `key`, a metric "
    "or a numeric param (METRIC, PARAM); versions lacking that key sort last in both directions."
)
class VersionOrder:
    field: OrderFieldEnum = ordering.OrderField.CREATED_AT  # type: ignore[valid-type]
    key: str | None = None
    descending: bool = True

    def to_catalog(self) -> ordering.VersionOrder:
        return ordering.VersionOrder(ordering.OrderField(self.field), self.key, self.descending)


@strawberry.input
class ModelFilter:
    namespace: str | None = None
    task: TaskEnum | None = None  # type: ignore[valid-type]
    name_contains: str | None = None

    def to_catalog(self) -> search.ModelFilter:
        return search.ModelFilter(self.namespace, models.Task(self.task) if self.task else None,
                                  self.name_contains)


@strawberry.input(description="A new token: its name, scope and optional namespace.")
class CreateTokenInput:
    name: str
    scope: ScopeEnum  # type: ignore[valid-type]
    namespace: str | None = strawberry.field(
        default=None, description="Bind the token to one namespace: it writes (and, when reads are private, reads) only there."
    )
    expires_at: datetime | None = strawberry.field(
        default=None, description="When the token stops working (with a time zone; in the future). "
        "Null: never. Used after it, the token answers TOKEN_EXPIRED."
    )


@strawberry.input(description="Events about a model, of some kinds, by an actor, or in a range.")
class AuditFilter:
    model: str | None = None
    kinds: list[EventKindEnum] | None = None  # type: ignore[valid-type]
    actor: str | None = None
    after_id: Long | None = strawberry.field(default=None, description="Only events with a larger id.")  # type: ignore[valid-type]
    since: datetime | None = None
    until: datetime | None = None

    def to_catalog(self) -> audit.AuditFilter:
        return audit.AuditFilter(
            model=parse_name(self.model).full if self.model else None,
            kinds=[audit.EventKind(k) for k in self.kinds or []],
            actor=self.actor, after_id=self.after_id, since=self.since, until=self.until,
        )
