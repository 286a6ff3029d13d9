"""Models: create, read, update and delete the named series that versions belong to."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from modelyard.catalog import audit
from modelyard.catalog.locks import lock_lineage, lock_model
from modelyard.catalog.refs import check_key, parse_name
from modelyard.catalog.text import check_text
from modelyard.db.tables import AliasRow, LineageEdgeRow, ModelRow, VersionRow
from modelyard.errors import ConflictError, InvalidError, LimitError, NotFoundError

MAX_DESCRIPTION = 100_000
MAX_TAGS = 100


class Task(enum.Enum):
    TEXT_GENERATION = "text-generation"
    FEATURE_EXTRACTION = "feature-extraction"
    TEXT_CLASSIFICATION = "text-classification"
    IMAGE_CLASSIFICATION = "image-classification"
    TABULAR_CLASSIFICATION = "tabular-classification"
    TABULAR_REGRESSION = "tabular-regression"
    OTHER = "other"


@dataclass
class ModelChanges:
    """Fields of a model that `update_model` may change; None leaves a field as it is."""

    description: str | None = None
    task: Task | None = None
    tags: dict[str, str] | None = None


def check_description(text: str) -> str:
    """Bound the size of markdown descriptions."""
    return check_text(text, "description", MAX_DESCRIPTION)


def check_tags(tags: dict[str, str]) -> dict[str, str]:
    """Tags are at most 100 string pairs with valid keys."""
    if len(tags) > MAX_TAGS:
        raise LimitError(f"at most {MAX_TAGS} tags")
    for key, value in tags.items():
        check_key(key, "tag")
        if not isinstance(value, str):
            raise InvalidError(f"tag {key!r} must be a string")
        check_text(value, f"tag {key!r}", 512)
    return tags


async def get_model(name: str) -> ModelRow:
    """The model called `name`, or NOT_FOUND."""
    full = parse_name(name).full
    row = await ModelRow.get_or_none(full_name=full)
    if row is None:
        raise missing_model(full)
    return row


def missing_model(full: str) -> NotFoundError:
    """The error for a model name (`parse_name(...).full`) that no model has."""
    return NotFoundError(f"model {full!r} does not exist")


async def create_model(
    name: str,
    *,
    description: str = "",
    task: Task = Task.OTHER,
    tags: dict[str, str] | None = None,
    actor: str,
) -> ModelRow:
    """Create a model; CONFLICT when the name is taken."""
    parsed = parse_name(name)
    check_description(description)
    tags = check_tags(tags or {})
    try:
        async with in_transaction():
            row = await ModelRow.create(
                namespace=parsed.namespace,
                name=parsed.name,
                full_name=parsed.full,
                description=description,
                task=task.value,
                tags=tags,
                created_by=actor,
            )
            await audit.record(
                actor, audit.EventKind.MODEL_CREATED, "Model", row.full_name, model=row.full_name,
                changes=audit.diff({}, _state(row)),
            )
            return row
    except IntegrityError as exc:
        raise ConflictError(f"model {parsed.full!r} already exists") from exc


def _state(row: ModelRow) -> dict[str, Any]:
    return {"description": row.description, "task": row.task, "tags": row.tags}


async def update_model(name: str, changes: ModelChanges, *, actor: str) -> ModelRow:
    """Change a model's description, task or tags."""
    async with in_transaction():
        row = await get_model(name)
        before = _state(row)
        if changes.description is not None:
            row.description = check_description(changes.description)
        if changes.task is not None:
            row.task = changes.task.value
        if changes.tags is not None:
            row.tags = check_tags(changes.tags)
        await row.save()
        await audit.record(
            actor, audit.EventKind.MODEL_UPDATED, "Model", row.full_name, model=row.full_name,
            changes=audit.diff(before, _state(row)),
        )
        return row


async def delete_model(name: str, *, actor: str) -> ModelRow:
    """Delete a model and all its versions; CONFLICT while another model descends from it."""
    async with in_transaction():
        # Lineage writers first, then the model: a version being created from one of ours either
        # committed its edge before (CONFLICT below) or finds its parent gone (NOT_FOUND).
        await lock_lineage()
        row = await lock_model((await get_model(name)).id)
        version_ids = await VersionRow.filter(model_id=row.id).values_list("id", flat=True)
        outside = (
            await LineageEdgeRow.filter(parent_version_id__in=version_ids)
            .exclude(child__model_id=row.id)
            .prefetch_related("child__model")
            .first()
        )
        if outside is not None:
            child = outside.child
            raise ConflictError(
                f"cannot delete model {row.full_name!r}: {child.model.full_name}:{child.number} "
                "descends from one of its versions"
            )
        await LineageEdgeRow.filter(child_id__in=version_ids).delete()
        await AliasRow.filter(model_id=row.id).delete()
        await VersionRow.filter(model_id=row.id).delete()
        await row.delete()
        await audit.record(
            actor, audit.EventKind.MODEL_DELETED, "Model", row.full_name, model=row.full_name,
            changes={"versions": {"before": len(version_ids), "after": 0}},
        )
        return row
