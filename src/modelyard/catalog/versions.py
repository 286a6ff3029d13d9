"""Versions: numbered atomically per model, with typed params, metrics, tags, run and lineage."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tortoise.transactions import in_transaction

from modelyard.catalog import audit, lineage
from modelyard.catalog.artifacts import Artifact, ArtifactSpec, resolve_artifacts
from modelyard.catalog.manifest import manifest, manifest_digest
from modelyard.catalog.models import check_description, check_tags, get_model, lock_model
from modelyard.catalog.params import TypedParam, check_metric, check_params
from modelyard.catalog.refs import parse_ref
from modelyard.catalog.resolve import resolve_version
from modelyard.catalog.text import check_text
from modelyard.db.sql import Sql
from modelyard.db.tables import (
    AliasRow,
    ArtifactRow,
    MetricPointRow,
    MetricRow,
    ModelRow,
    ParamRow,
    VersionRow,
    VersionTagRow,
)
from modelyard.errors import ConflictError, InvalidError, LimitError, NotFoundError

MAX_METRICS = 10_000


class Status(enum.Enum):
    PENDING = "PENDING"
    READY = "READY"
    ARCHIVED = "ARCHIVED"


@dataclass(frozen=True)
class MetricPoint:
    """One logged metric value, optionally at a training step."""

    key: str
    value: float
    step: int | None = None


@dataclass
class RunInfo:
    """Where a version came from: an external run and the code that produced it."""

    run_id: str | None = None
    uri: str | None = None
    code_repository: str | None = None
    commit: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        for name in ("run_id", "uri", "code_repository", "commit"):
            value = getattr(self, name)
            if value is not None:
                check_text(value, f"run {name}", 2048)
        for name in ("started_at", "ended_at"):
            value = getattr(self, name)
            if value is not None and value.utcoffset() is None:
                raise InvalidError(f"run {name} {value.isoformat()} needs a time zone, e.g. "
                                   "2026-01-01T10:00:00Z")
        if self.started_at and self.ended_at and self.ended_at < self.started_at:
            raise InvalidError("run ended_at is before started_at")
        return {
            k: (v.isoformat() if isinstance(v, datetime) else v)
            for k, v in vars(self).items()
            if v is not None
        }


@dataclass
class NewVersion:
    """Everything `create_version` records in one transaction."""

    model: str
    description: str = ""
    params: list[TypedParam] = field(default_factory=list)
    metrics: list[MetricPoint] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    run: RunInfo | None = None
    lineage: list[lineage.ParentSpec] = field(default_factory=list)
    artifacts: list[ArtifactSpec] = field(default_factory=list)


# Reads what the artifacts say about the model (ONNX signature and facts), off the event loop.
Inspector = Callable[[list[Artifact]], Awaitable[dict[str, Any] | None]]


@dataclass
class VersionChanges:
    """Mutable fields of a version; None leaves a field as it is."""

    description: str | None = None
    tags: dict[str, str] | None = None
    run: RunInfo | None = None


def check_metrics(points: list[MetricPoint]) -> list[MetricPoint]:
    if len(points) > MAX_METRICS:
        raise LimitError(f"at most {MAX_METRICS} metric values in one request")
    for p in points:
        check_metric(p.key, p.value)
    return points


async def _next_number(model_id: int) -> int:
    """Take the model's next version number; the row update serialises concurrent creators."""
    sql = Sql()
    rows = await sql.rows(
        f"UPDATE model SET version_seq = version_seq + 1 WHERE id = {sql.p(model_id)} "
        "RETURNING version_seq"
    )
    return int(rows[0]["version_seq"])


async def _hold_blobs(files: list[Artifact]) -> None:
    """Re-check, under lock, that every blob is still recorded: GC may have removed one since
    `resolve_artifacts` looked. Runs after the transaction's first write (SQLite then holds its
    write lock); PostgreSQL locks the rows FOR SHARE, so a GC deleting one waits for this commit.
    """
    digests = sorted({f.digest for f in files})
    if not digests:
        return
    sql = Sql()
    lock = " FOR SHARE" if sql.dialect == "postgres" else ""
    rows = await sql.rows(f"SELECT digest FROM blob WHERE digest IN ({sql.many(digests)}){lock}")
    gone = set(digests) - {r["digest"] for r in rows}
    if gone:
        raise NotFoundError(
            "upload these blobs again, garbage collection removed them meanwhile: "
            + ", ".join(sorted(gone)[:5])
        )


async def create_version(spec: NewVersion, *, actor: str, inspect: Inspector | None = None,
                         namespace: str | None = None) -> VersionRow:
    """Create the next version of a model with everything it carries, all or nothing.
    `namespace`: the writer may read only there (private reads), so it may use only blobs its
    namespace holds or sent (`blobs.usable_digests`)."""
    check_description(spec.description)
    check_params(spec.params)
    check_metrics(spec.metrics)
    check_tags(spec.tags)
    run = spec.run.as_json() if spec.run else None
    files = await resolve_artifacts(spec.artifacts, namespace)
    facts = await inspect(files) if inspect is not None and files else None
    async with in_transaction():
        model = await get_model(spec.model)
        parents = await lineage.resolve_parents(spec.lineage)
        number = await _next_number(model.id)
        await _hold_blobs(files)
        version = await VersionRow.create(
            model_id=model.id,
            number=number,
            description=spec.description,
            status=Status.READY.value,
            manifest_digest=manifest_digest(
                manifest(model.full_name, spec.params, [f.manifest_entry() for f in files])
            ),
            run=run,
            onnx=facts,
            created_by=actor,
        )
        await ArtifactRow.bulk_create(
            [ArtifactRow(version_id=version.id, path=f.path, digest=f.digest, size=f.size,
                         media_type=f.media_type) for f in files]
        )
        await ParamRow.bulk_create(
            [
                ParamRow(
                    version_id=version.id,
                    key=p.key,
                    kind=p.kind.value,
                    num_value=p.num_value,
                    text_value=p.text_value,
                    value_json=p.value_json,
                )
                for p in spec.params
            ]
        )
        await VersionTagRow.bulk_create(
            [VersionTagRow(version_id=version.id, key=k, value=v) for k, v in spec.tags.items()]
        )
        await _record_metrics(version.id, spec.metrics, new=True)
        await lineage.add_edges(version, parents, new=True)
        await audit.record(
            actor, audit.EventKind.VERSION_CREATED, "ModelVersion", f"{model.full_name}:{number}",
            model=model.full_name,
            changes={
                "status": {"before": None, "after": version.status},
                "params": {"before": None, "after": {p.key: p.value for p in spec.params}},
                "artifacts": {"before": None, "after": [f.path for f in files]},
                "lineage": {"before": None, "after": [f"{p.relation.value} {p.label}" for p in parents]},
            },
        )
        version.model = model
        return version


async def _record_metrics(version_id: int, points: list[MetricPoint], new: bool = False) -> None:
    """Append points to the history and move each key's current value to its latest point."""
    if not points:
        return
    await MetricPointRow.bulk_create(
        [MetricPointRow(version_id=version_id, key=p.key, value=p.value, step=p.step) for p in points]
    )
    latest: dict[str, MetricPoint] = {}
    for p in points:  # the last point of the highest step wins; unstepped points are "now"
        current = latest.get(p.key)
        if current is None or p.step is None or current.step is None or p.step >= current.step:
            latest[p.key] = p
    existing = {} if new else {
        m.key: m for m in await MetricRow.filter(version_id=version_id, key__in=list(latest))
    }
    new_rows, moved = [], []
    for key, p in latest.items():
        row = existing.get(key)
        if row is None:
            new_rows.append(MetricRow(version_id=version_id, key=key, value=p.value, step=p.step))
        elif p.step is None or row.step is None or p.step >= row.step:
            row.value, row.step, row.logged_at = p.value, p.step, datetime.now(UTC)
            moved.append(row)
    await MetricRow.bulk_create(new_rows)
    if moved:
        await MetricRow.bulk_update(moved, fields=["value", "step", "logged_at"])


async def get_version(ref: str) -> VersionRow:
    """The version a ref string names."""
    return await resolve_version(parse_ref(ref))


async def _named(ref: str) -> tuple[VersionRow, str, str]:
    """The version `ref` names, with its model's name and its `name:number` ref."""
    version = await get_version(ref)
    model = await ModelRow.get(id=version.model_id)
    return version, model.full_name, f"{model.full_name}:{version.number}"


async def _locked(ref: str) -> tuple[VersionRow, str, str]:
    """As `_named`, with the model's row locked (`lock_model`) and the version read after it."""
    version = await get_version(ref)
    model = await lock_model(version.model_id)
    fresh = await VersionRow.get_or_none(id=version.id)
    if fresh is None:
        raise NotFoundError(f"version {ref} was deleted meanwhile")
    return fresh, model.full_name, f"{model.full_name}:{fresh.number}"


async def _version_state(version: VersionRow) -> dict[str, Any]:
    tags = await VersionTagRow.filter(version_id=version.id).order_by("key")
    return {"description": version.description, "run": version.run, "tags": {t.key: t.value for t in tags}}


async def update_version(ref: str, changes: VersionChanges, *, actor: str) -> VersionRow:
    """Change a version's description, tags or run info (params and artifacts never change)."""
    if changes.description is not None:
        check_description(changes.description)
    if changes.tags is not None:
        check_tags(changes.tags)
    run = changes.run.as_json() if changes.run else None
    async with in_transaction():
        version, model, name = await _named(ref)
        before = await _version_state(version)
        if changes.description is not None:
            version.description = changes.description
        if run is not None:
            version.run = run
        await version.save()
        if changes.tags is not None:
            await VersionTagRow.filter(version_id=version.id).delete()
            await VersionTagRow.bulk_create(
                [VersionTagRow(version_id=version.id, key=k, value=v) for k, v in changes.tags.items()]
            )
        await audit.record(
            actor, audit.EventKind.VERSION_UPDATED, "ModelVersion", name, model=model,
            changes=audit.diff(before, await _version_state(version)),
        )
        return version


async def archive_version(ref: str, *, actor: str) -> VersionRow:
    """Soft-archive a version; CONFLICT while an alias points at it."""
    async with in_transaction():
        version, model, name = await _locked(ref)
        if version.status == Status.ARCHIVED.value:
            raise ConflictError(f"version {ref} is already archived")
        aliases: list[str] = await AliasRow.filter(version_id=version.id).values_list("name", flat=True)  # type: ignore[assignment]
        if aliases:
            raise ConflictError(
                f"version {ref} is the target of alias(es) {', '.join(sorted(aliases))}: "
                "move or delete them first"
            )
        await _set_status(version, Status.ARCHIVED, model, name, actor)
        return version


async def restore_version(ref: str, *, actor: str) -> VersionRow:
    """Bring an archived version back to READY."""
    async with in_transaction():
        version, model, name = await _locked(ref)
        if version.status != Status.ARCHIVED.value:
            raise ConflictError(f"version {ref} is not archived")
        await _set_status(version, Status.READY, model, name, actor)
        return version


async def _set_status(version: VersionRow, status: Status, model: str, name: str, actor: str) -> None:
    before = version.status
    version.status = status.value
    await version.save(update_fields=["status", "updated_at"])
    await audit.record(
        actor, audit.EventKind.VERSION_STATUS_CHANGED, "ModelVersion", name, model=model,
        changes={"status": {"before": before, "after": status.value}},
    )


async def log_metrics(ref: str, points: list[MetricPoint], *, actor: str) -> VersionRow:
    """Append metric values to a version (evaluation results arrive after training)."""
    check_metrics(points)
    if not points:
        raise InvalidError("no metrics given")
    async with in_transaction():
        version, model, name = await _named(ref)
        # Writers of one version's metrics queue up: two adding the same new key would both
        # insert it (a unique violation) if they read "absent" at the same time.
        await VersionRow.select_for_update().get(id=version.id)
        await _record_metrics(version.id, points)
        await audit.record(
            actor, audit.EventKind.METRICS_LOGGED, "ModelVersion", name, model=model,
            changes={"metrics": {"before": None, "after": [
                {"key": p.key, "value": p.value, "step": p.step} for p in points[:100]
            ]}},
        )
        return version
