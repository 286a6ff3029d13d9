"""Versions: numbered atomically per model, with typed params, metrics, tags, run and lineage."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from modelyard.catalog import audit, lineage
from modelyard.catalog.artifacts import Artifact, ArtifactSpec, resolve_artifacts
from modelyard.catalog.locks import lock_lineage
from modelyard.catalog.manifest import manifest, manifest_digest
from modelyard.catalog.models import check_description, check_tags, lock_model, missing_model
from modelyard.catalog.params import TypedParam, check_metric, check_params
from modelyard.catalog.refs import parse_name, parse_ref
from modelyard.catalog.resolve import resolve_version
from modelyard.catalog.text import check_text
from modelyard.db.database import analyze_if_grown
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
from modelyard.errors import ConflictError, InvalidError, LimitError, ModelyardError, NotFoundError

MAX_METRICS = 10_000
MAX_BATCH = 500  # versions in one createVersions
# From this many versions in one batch, PostgreSQL's statistics of the tables it wrote may be
# refreshed at once (`analyze_if_grown`); smaller writes are autovacuum's.
ANALYZE_AFTER = 200
_WRITTEN = ("model_version", "param", "metric", "metric_point", "version_tag", "lineage_edge",
            "artifact", "audit_event")


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


@contextlib.contextmanager
def batch_item(index: int | None) -> Iterator[None]:
    """Errors raised inside name item `index` (from 0) of a `createVersions` batch and keep their
    class and code; None (a lone `createVersion`) leaves them as they are."""
    try:
        yield
    except ModelyardError as exc:
        if index is not None:
            exc.message = f"createVersions item {index + 1}: {exc.message}"
            exc.args = (exc.message,)
        raise


def check_batch(count: int) -> int:
    """A batch holds 1 to MAX_BATCH versions."""
    if count < 1:
        raise InvalidError("createVersions needs at least one version")
    if count > MAX_BATCH:
        raise LimitError(f"createVersions takes at most {MAX_BATCH} versions at once, got {count}")
    return count


@dataclass
class _Item:
    """One version being created: its checked spec, then what the transaction finds for it."""

    index: int | None  # in the batch, for errors; None for a lone createVersion
    spec: NewVersion
    run: dict[str, Any] | None
    files: list[Artifact]
    facts: dict[str, Any] | None
    full: str  # the model's name, parsed
    model: ModelRow | None = None
    number: int = 0
    parents: list[lineage.ResolvedParent] = field(default_factory=list)
    row: VersionRow | None = None


async def create_version(spec: NewVersion, *, actor: str, inspect: Inspector | None = None,
                         namespace: str | None = None) -> VersionRow:
    """Create the next version of a model with everything it carries, all or nothing.
    `namespace`: the writer may read only there (private reads), so it may use only blobs its
    namespace holds or sent (`blobs.usable_digests`)."""
    (row,) = await _create([spec], batch=False, actor=actor, inspect=inspect, namespace=namespace)
    return row


async def create_versions(specs: list[NewVersion], *, actor: str, inspect: Inspector | None = None,
                          namespace: str | None = None) -> list[VersionRow]:
    """Create versions in one transaction, in order, all or nothing: each as `create_version`
    would, one after the other, so a later one may name an earlier one as a lineage parent.
    An error names the item it is about (`createVersions item 3: …`)."""
    check_batch(len(specs))
    rows = await _create(specs, batch=True, actor=actor, inspect=inspect, namespace=namespace)
    if len(rows) >= ANALYZE_AFTER:
        await analyze_if_grown("model_version", len(rows), _WRITTEN)
    return rows


async def _create(specs: list[NewVersion], *, batch: bool, actor: str, inspect: Inspector | None,
                  namespace: str | None) -> list[VersionRow]:
    """The one path of `create_version` (a batch of one) and `create_versions`.

    Per-batch work is done once: the models in one query, their numbers in one UPDATE per model,
    the blobs held in one query, the rows of all versions in one INSERT per table (the versions
    too, unless an item names an earlier one other than by number: `_insert_versions`), the
    events in one.
    """
    items = [await _checked(i if batch else None, spec, inspect, namespace) for i, spec in enumerate(specs)]
    async with in_transaction():
        if any(item.spec.lineage for item in items):
            # Before the model rows, as deleting a model takes them: parents resolved under it
            # cannot be deleted before this commits (`lineage.insert_new_edges`).
            await lock_lineage()
        await _number(items)
        await _insert_versions(items, actor)
        await _hold_blobs(items)
        await _insert_contents(items)
        await audit.record_many([_event(actor, item) for item in items])
    return [_row(item) for item in items]


async def _checked(index: int | None, spec: NewVersion, inspect: Inspector | None,
                   namespace: str | None) -> _Item:
    """Everything about one version that needs no transaction: checks, blobs, ONNX facts."""
    with batch_item(index):
        check_description(spec.description)
        check_params(spec.params)
        check_metrics(spec.metrics)
        check_tags(spec.tags)
        run = spec.run.as_json() if spec.run else None
        files = await resolve_artifacts(spec.artifacts, namespace)
        facts = await inspect(files) if inspect is not None and files else None
        return _Item(index, spec, run, files, facts, parse_name(spec.model).full)


async def _number(items: list[_Item]) -> None:
    """Find every model (one query) and give each item the next number of its model, taking a
    model's numbers in one row update, which serialises concurrent creators."""
    found = {m.full_name: m for m in await ModelRow.filter(full_name__in=sorted({i.full for i in items}))}
    for item in items:
        with batch_item(item.index):
            item.model = found.get(item.full)
            if item.model is None:
                raise missing_model(item.full)
    counts = Counter(item.full for item in items)
    following: dict[str, int] = {}
    for full in sorted(counts):  # the same order in every batch: no deadlock between two
        following[full] = await _take_numbers(found[full], counts[full]) - counts[full] + 1
    for item in items:
        item.number = following[item.full]
        following[item.full] += 1


async def _take_numbers(model: ModelRow, count: int) -> int:
    """Take the model's next `count` version numbers; the last of them."""
    sql = Sql()
    rows = await sql.rows(
        f"UPDATE model SET version_seq = version_seq + {sql.p(count)} WHERE id = {sql.p(model.id)} "
        "RETURNING version_seq"
    )
    if not rows:
        raise NotFoundError(f"model {model.full_name!r} was deleted meanwhile")
    return int(rows[0]["version_seq"])


async def _insert_versions(items: list[_Item], actor: str) -> None:
    """Resolve each item's parents, as separate calls one after the other would, and insert the
    version rows in order, as few INSERTs as that allows.

    A `name:N` parent that is an earlier item is that item's row, inserted or not; any other ref
    naming a model whose rows wait to be inserted (`m`, `m@sha256:…`, `m@alias`) first has them
    inserted, so it resolves against every earlier item. Later items do not exist yet.
    """
    known: dict[tuple[str, int], VersionRow] = {}  # this batch's versions and the parents found
    waiting: list[_Item] = []
    for item in items:
        with batch_item(item.index):
            if _needs_rows(item.spec.lineage, {w.full for w in waiting}):
                await _flush(waiting, known)
                waiting = []
            item.parents = await lineage.resolve_parents(item.spec.lineage, known)
        model = _model(item)
        item.row = VersionRow(
            model_id=model.id,
            number=item.number,
            description=item.spec.description,
            status=Status.READY.value,
            manifest_digest=manifest_digest(
                manifest(model.full_name, item.spec.params, [f.manifest_entry() for f in item.files])
            ),
            run=item.run,
            onnx=item.facts,
            created_by=actor,
        )
        known[(item.full, item.number)] = item.row
        waiting.append(item)
    await _flush(waiting, known)
    stored = {(_row(i).model_id, i.number): _row(i) for i in items}
    for item in items:  # parents that were still waiting when named: now their inserted rows
        item.parents = [
            dataclasses.replace(p, version=stored[(p.version.model_id, p.version.number)])
            if p.version is not None and p.version.id is None else p
            for p in item.parents
        ]


def _needs_rows(parents: list[lineage.ParentSpec], waiting: set[str]) -> bool:
    """Whether a version parent names a model of `waiting` other than by number (a ref that does
    not parse is `resolve_parents`'s to refuse, in its order of checks)."""
    for spec in parents:
        if spec.relation.to_dataset:
            continue
        with contextlib.suppress(InvalidError):
            ref = parse_ref(spec.parent)
            if ref.number is None and ref.model.full in waiting:
                return True
    return False


async def _flush(items: list[_Item], known: dict[tuple[str, int], VersionRow]) -> None:
    """Insert the version rows of `items`: one INSERT, and for several one query for their ids."""
    if not items:
        return
    if len(items) == 1:
        await _row(items[0]).save()
    else:
        await VersionRow.bulk_create([_row(i) for i in items])
        # An item's numbers are its own since the row update: (model, number) finds its row.
        spans: dict[int, list[int]] = {}
        for item in items:
            spans.setdefault(_model(item).id, []).append(item.number)
        wanted = [Q(model_id=m, number__gte=min(n), number__lte=max(n)) for m, n in spans.items()]
        stored = {(r.model_id, r.number): r for r in await VersionRow.filter(Q(*wanted, join_type="OR"))}
        for item in items:
            item.row = stored[(_model(item).id, item.number)]
    for item in items:
        row = _row(item)
        row.model = _model(item)
        known[(item.full, item.number)] = row


def _model(item: _Item) -> ModelRow:
    assert item.model is not None, "numbered first"
    return item.model


def _row(item: _Item) -> VersionRow:
    assert item.row is not None, "inserted first"
    return item.row


async def _hold_blobs(items: list[_Item]) -> None:
    """Re-check, under lock, that every blob is still recorded: GC may have removed one since
    `resolve_artifacts` looked. Runs after the transaction's first write (SQLite then holds its
    write lock); PostgreSQL locks the rows FOR SHARE, so a GC deleting one waits for this commit.
    """
    digests = sorted({f.digest for item in items for f in item.files})
    if not digests:
        return
    sql = Sql()
    lock = " FOR SHARE" if sql.dialect == "postgres" else ""
    rows = await sql.rows(f"SELECT digest FROM blob WHERE digest IN ({sql.many(digests)}){lock}")
    gone = set(digests) - {r["digest"] for r in rows}
    for item in items:
        lost = sorted(gone & {f.digest for f in item.files})
        if lost:
            with batch_item(item.index):
                raise NotFoundError(
                    "upload these blobs again, garbage collection removed them meanwhile: "
                    + ", ".join(lost[:5])
                )


async def _insert_contents(items: list[_Item]) -> None:
    """Artifacts, params, tags, metrics and lineage edges of every item: one INSERT per table."""
    rows = [(_row(item), item) for item in items]
    await ArtifactRow.bulk_create(
        [ArtifactRow(version_id=v.id, path=f.path, digest=f.digest, size=f.size, media_type=f.media_type)
         for v, item in rows for f in item.files]
    )
    await ParamRow.bulk_create(
        [
            ParamRow(
                version_id=v.id,
                key=p.key,
                kind=p.kind.value,
                num_value=p.num_value,
                text_value=p.text_value,
                value_json=p.value_json,
            )
            for v, item in rows
            for p in item.spec.params
        ]
    )
    await VersionTagRow.bulk_create(
        [VersionTagRow(version_id=v.id, key=k, value=t) for v, item in rows for k, t in item.spec.tags.items()]
    )
    await MetricPointRow.bulk_create([r for v, item in rows for r in _point_rows(v.id, item.spec.metrics)])
    await MetricRow.bulk_create(
        [MetricRow(version_id=v.id, key=key, value=p.value, step=p.step)
         for v, item in rows for key, p in _latest(item.spec.metrics).items()]
    )
    await lineage.insert_new_edges([(v, item.parents) for v, item in rows if item.parents])


def _event(actor: str, item: _Item) -> audit.Event:
    """What `createVersion` records about a new version."""
    model = _model(item).full_name
    return audit.Event(
        actor, audit.EventKind.VERSION_CREATED, "ModelVersion", f"{model}:{item.number}", model=model,
        changes={
            "status": {"before": None, "after": _row(item).status},
            "params": {"before": None, "after": {p.key: p.value for p in item.spec.params}},
            "artifacts": {"before": None, "after": [f.path for f in item.files]},
            "lineage": {"before": None, "after": [f"{p.relation.value} {p.label}" for p in item.parents]},
        },
    )


def _point_rows(version_id: int, points: list[MetricPoint]) -> list[MetricPointRow]:
    return [MetricPointRow(version_id=version_id, key=p.key, value=p.value, step=p.step) for p in points]


def _latest(points: list[MetricPoint]) -> dict[str, MetricPoint]:
    """Each key's current value: the last point of the highest step; unstepped points are "now"."""
    latest: dict[str, MetricPoint] = {}
    for p in points:
        current = latest.get(p.key)
        if current is None or p.step is None or current.step is None or p.step >= current.step:
            latest[p.key] = p
    return latest


async def _record_metrics(version_id: int, points: list[MetricPoint]) -> None:
    """Append points to an existing version's history and move each key's current value to its
    latest point."""
    await MetricPointRow.bulk_create(_point_rows(version_id, points))
    latest = _latest(points)
    existing = {m.key: m for m in await MetricRow.filter(version_id=version_id, key__in=list(latest))}
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
