"""Datasets and their versions: what lineage says a model was trained or evaluated on."""

from __future__ import annotations

from dataclasses import dataclass

from tortoise.transactions import in_transaction

from modelyard.catalog import audit
from modelyard.catalog.models import check_description
from modelyard.catalog.refs import (
    check_dataset_version,
    check_digest,
    parse_dataset_ref,
    parse_name,
)
from modelyard.catalog.text import check_text
from modelyard.db.tables import DatasetRow, DatasetVersionRow
from modelyard.errors import ConflictError, InvalidError, NotFoundError


@dataclass
class NewDatasetVersion:
    """What `register_dataset` records."""

    name: str
    version: str
    uri: str = ""
    digest: str | None = None
    size: int | None = None
    description: str = ""


async def get_dataset(name: str) -> DatasetRow:
    """The dataset called `name`, or NOT_FOUND."""
    full = parse_name(name, "dataset").full
    row = await DatasetRow.get_or_none(full_name=full)
    if row is None:
        raise NotFoundError(f"dataset {full!r} does not exist")
    return row


async def register_dataset(spec: NewDatasetVersion, *, actor: str) -> DatasetVersionRow:
    """Record a dataset version, creating the dataset on first use; CONFLICT if the version exists."""
    full = parse_name(spec.name, "dataset").full
    check_dataset_version(spec.version)
    check_description(spec.description)
    if spec.digest is not None:
        check_digest(spec.digest)
    if spec.size is not None and spec.size < 0:
        raise InvalidError("dataset size must not be negative")
    check_text(spec.uri, "dataset uri", 2048)
    async with in_transaction():
        dataset, _ = await DatasetRow.get_or_create(
            full_name=full, defaults={"created_by": actor, "description": spec.description}
        )
        if await DatasetVersionRow.exists(dataset_id=dataset.id, version=spec.version):
            raise ConflictError(f"dataset version {full}@{spec.version} already exists")
        row = await DatasetVersionRow.create(
            dataset=dataset,
            version=spec.version,
            uri=spec.uri,
            digest=spec.digest,
            size=spec.size,
            description=spec.description,
            created_by=actor,
        )
        await audit.record(
            actor, audit.EventKind.DATASET_REGISTERED, "DatasetVersion", f"{full}@{spec.version}",
            changes=audit.diff({}, {"uri": spec.uri, "digest": spec.digest, "size": spec.size}),
            scope=full,
        )
        return row


async def resolve_dataset_version(raw: str) -> DatasetVersionRow:
    """`dataset@version`, or the newest version of `dataset`; NOT_FOUND otherwise."""
    ref = parse_dataset_ref(raw)
    query = DatasetVersionRow.filter(dataset__full_name=ref.dataset.full)
    row = await (
        query.filter(version=ref.version).first() if ref.version else query.order_by("-id").first()
    )
    if row is None:
        if not await DatasetRow.exists(full_name=ref.dataset.full):
            raise NotFoundError(f"dataset {ref.dataset.full!r} does not exist")
        raise NotFoundError(f"dataset version {ref} does not exist")
    return row
