"""Tortoise tables of the catalog. Rules about them live in `modelyard.catalog`, not here."""

from __future__ import annotations

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model


class ModelRow(Model):
    """A model: a named series of versions."""

    id = fields.IntField(primary_key=True)
    namespace = fields.CharField(max_length=64, default="")
    name = fields.CharField(max_length=64)
    full_name = fields.CharField(max_length=129, unique=True)
    description = fields.TextField(default="")
    task = fields.CharField(max_length=32, default="other")
    tags: fields.Field[dict[str, str]] = fields.JSONField(default=dict)
    version_seq = fields.IntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    created_by = fields.CharField(max_length=128, null=True)

    class Meta:
        table = "model"
        indexes = (Index(fields=("namespace", "name")),)


class VersionRow(Model):
    """One numbered version of a model."""

    id = fields.IntField(primary_key=True)
    model: fields.ForeignKeyRelation[ModelRow] = fields.ForeignKeyField(
        "modelyard.ModelRow", related_name="versions", on_delete=fields.CASCADE
    )
    model_id: int
    number = fields.IntField()
    description = fields.TextField(default="")
    status = fields.CharField(max_length=16, default="READY", db_index=True)
    manifest_digest = fields.CharField(max_length=71, db_index=True)
    run: fields.Field[dict[str, str] | None] = fields.JSONField(null=True)
    onnx: fields.Field[dict[str, object] | None] = fields.JSONField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)
    updated_at = fields.DatetimeField(auto_now=True)
    created_by = fields.CharField(max_length=128, null=True)

    class Meta:
        table = "model_version"
        unique_together = (("model", "number"),)


class ParamRow(Model):
    """A typed param: numbers (and bools) compare in `num_value`, strings in `text_value`."""

    id = fields.IntField(primary_key=True)
    version: fields.ForeignKeyRelation[VersionRow] = fields.ForeignKeyField(
        "modelyard.VersionRow", related_name="params", on_delete=fields.CASCADE
    )
    version_id: int
    key = fields.CharField(max_length=128)
    kind = fields.CharField(max_length=8)
    num_value = fields.FloatField(null=True)
    text_value = fields.CharField(max_length=512, null=True)
    value_json = fields.TextField()

    class Meta:
        table = "param"
        unique_together = (("version", "key"),)
        indexes = (Index(fields=("key", "num_value")), Index(fields=("key", "text_value")))


class MetricRow(Model):
    """The latest value of a metric of a version (what filters and ordering compare)."""

    id = fields.IntField(primary_key=True)
    version: fields.ForeignKeyRelation[VersionRow] = fields.ForeignKeyField(
        "modelyard.VersionRow", related_name="metrics", on_delete=fields.CASCADE
    )
    version_id: int
    key = fields.CharField(max_length=128)
    value = fields.FloatField()
    step = fields.BigIntField(null=True)
    logged_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "metric"
        unique_together = (("version", "key"),)
        indexes = (Index(fields=("key", "value")),)


class MetricPointRow(Model):
    """Every logged value of a metric, for its history."""

    id = fields.BigIntField(primary_key=True)
    version: fields.ForeignKeyRelation[VersionRow] = fields.ForeignKeyField(
        "modelyard.VersionRow", related_name="metric_points", on_delete=fields.CASCADE
    )
    version_id: int
    key = fields.CharField(max_length=128)
    value = fields.FloatField()
    step = fields.BigIntField(null=True)
    logged_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "metric_point"
        indexes = (Index(fields=("version_id", "key")),)


class VersionTagRow(Model):
    """A key → value tag of a version."""

    id = fields.IntField(primary_key=True)
    version: fields.ForeignKeyRelation[VersionRow] = fields.ForeignKeyField(
        "modelyard.VersionRow", related_name="tags", on_delete=fields.CASCADE
    )
    version_id: int
    key = fields.CharField(max_length=128)
    value = fields.CharField(max_length=512)

    class Meta:
        table = "version_tag"
        unique_together = (("version", "key"),)
        indexes = (Index(fields=("key", "value")),)


class AliasRow(Model):
    """A movable name pointing at one version of a model."""

    id = fields.IntField(primary_key=True)
    model: fields.ForeignKeyRelation[ModelRow] = fields.ForeignKeyField(
        "modelyard.ModelRow", related_name="aliases", on_delete=fields.CASCADE
    )
    model_id: int
    name = fields.CharField(max_length=64)
    version: fields.ForeignKeyRelation[VersionRow] = fields.ForeignKeyField(
        "modelyard.VersionRow", related_name="aliases", on_delete=fields.CASCADE
    )
    version_id: int
    updated_at = fields.DatetimeField(auto_now=True)
    updated_by = fields.CharField(max_length=128, null=True)

    class Meta:
        table = "alias"
        unique_together = (("model", "name"),)
        indexes = (Index(fields=("version_id",)),)  # a version's aliases: every model and search page


class DatasetRow(Model):
    """A dataset: a named series of dataset versions."""

    id = fields.IntField(primary_key=True)
    full_name = fields.CharField(max_length=129, unique=True)
    description = fields.TextField(default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    created_by = fields.CharField(max_length=128, null=True)

    class Meta:
        table = "dataset"


class DatasetVersionRow(Model):
    """One version of a dataset, named by its owner (`2024-06`, `v3`)."""

    id = fields.IntField(primary_key=True)
    dataset: fields.ForeignKeyRelation[DatasetRow] = fields.ForeignKeyField(
        "modelyard.DatasetRow", related_name="versions", on_delete=fields.CASCADE
    )
    dataset_id: int
    version = fields.CharField(max_length=64)
    uri = fields.CharField(max_length=2048, default="")
    digest = fields.CharField(max_length=71, null=True)
    size = fields.BigIntField(null=True)
    description = fields.TextField(default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    created_by = fields.CharField(max_length=128, null=True)

    class Meta:
        table = "dataset_version"
        unique_together = (("dataset", "version"),)


class LineageEdgeRow(Model):
    """child version → parent (a model version or a dataset version), with a relation."""

    id = fields.IntField(primary_key=True)
    child: fields.ForeignKeyRelation[VersionRow] = fields.ForeignKeyField(
        "modelyard.VersionRow", related_name="parent_edges", on_delete=fields.CASCADE
    )
    child_id: int
    parent_version: fields.ForeignKeyNullableRelation[VersionRow] = fields.ForeignKeyField(
        "modelyard.VersionRow", related_name="child_edges", null=True, on_delete=fields.RESTRICT
    )
    parent_version_id: int | None
    parent_dataset: fields.ForeignKeyNullableRelation[DatasetVersionRow] = fields.ForeignKeyField(
        "modelyard.DatasetVersionRow", related_name="child_edges", null=True,
        on_delete=fields.RESTRICT,
    )
    parent_dataset_id: int | None
    relation = fields.CharField(max_length=32)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "lineage_edge"
        indexes = (Index(fields=("child_id",)), Index(fields=("parent_version_id",)),
                   Index(fields=("parent_dataset_id",)))


class TokenRow(Model):
    """A bearer token: only the SHA-256 of its secret is kept."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=64, unique=True)
    scope = fields.CharField(max_length=8)
    namespace = fields.CharField(max_length=64, null=True)
    secret_hash = fields.CharField(max_length=64, unique=True)
    prefix = fields.CharField(max_length=16)
    created_at = fields.DatetimeField(auto_now_add=True)
    created_by = fields.CharField(max_length=128, null=True)
    revoked_at = fields.DatetimeField(null=True)
    expires_at = fields.DatetimeField(null=True)
    # Written at most once a minute per token (see catalog/tokens.py): a read does not write.
    last_used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "token"


class AuditEventRow(Model):
    """An immutable record of one change: who, what, to which object, before → after, when.

    Its id orders events: subscribers resume with `since: <last id>`.
    """

    id = fields.BigIntField(primary_key=True)
    at = fields.DatetimeField(auto_now_add=True, db_index=True)
    actor = fields.CharField(max_length=128)
    kind = fields.CharField(max_length=32, db_index=True)
    model = fields.CharField(max_length=129, null=True, db_index=True)
    namespace = fields.CharField(max_length=64, default="")
    object_type = fields.CharField(max_length=32)
    object_ref = fields.CharField(max_length=300)
    changes: fields.Field[dict[str, object]] = fields.JSONField(default=dict)

    class Meta:
        table = "audit_event"


class AliasMoveRow(Model):
    """Where an alias pointed from `at` on (no version: deleted), for history and time travel."""

    id = fields.BigIntField(primary_key=True)
    model: fields.ForeignKeyRelation[ModelRow] = fields.ForeignKeyField(
        "modelyard.ModelRow", related_name="alias_moves", on_delete=fields.CASCADE
    )
    model_id: int
    alias = fields.CharField(max_length=64)
    version: fields.ForeignKeyNullableRelation[VersionRow] = fields.ForeignKeyField(
        "modelyard.VersionRow", related_name="alias_moves", null=True, on_delete=fields.CASCADE
    )
    version_id: int | None
    at = fields.DatetimeField(auto_now_add=True)
    actor = fields.CharField(max_length=128)

    class Meta:
        table = "alias_move"
        indexes = (Index(fields=("model_id", "alias", "at")),)


class BlobRow(Model):
    """A blob the store holds whole and verified: content-addressed, immutable, shared."""

    digest = fields.CharField(max_length=71, primary_key=True)
    size = fields.BigIntField()
    media_type = fields.CharField(max_length=128, default="application/octet-stream")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "blob"


class BlobClaimRow(Model):
    """A namespace proved it holds a blob's bytes by sending them (PUT or an upload): with private
    reads, a token bound to that namespace may then name the blob in `createVersion`."""

    id = fields.IntField(primary_key=True)
    digest = fields.CharField(max_length=71, db_index=True)
    namespace = fields.CharField(max_length=64)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "blob_claim"
        unique_together = (("digest", "namespace"),)


class ArtifactRow(Model):
    """A file of a version: its path inside the version and the blob holding its bytes."""

    id = fields.IntField(primary_key=True)
    version: fields.ForeignKeyRelation[VersionRow] = fields.ForeignKeyField(
        "modelyard.VersionRow", related_name="artifacts", on_delete=fields.CASCADE
    )
    version_id: int
    path = fields.CharField(max_length=512)
    digest = fields.CharField(max_length=71, db_index=True)
    size = fields.BigIntField()
    media_type = fields.CharField(max_length=128)

    class Meta:
        table = "artifact"
        unique_together = (("version", "path"),)
