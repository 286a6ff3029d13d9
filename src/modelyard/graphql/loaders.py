"""Per-request DataLoaders: every list field is one query per request, whatever the row count."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from strawberry.dataloader import DataLoader
from tortoise.expressions import Subquery
from tortoise.functions import Count, Max

from modelyard.catalog import lineage
from modelyard.db import records
from modelyard.db.records import VersionLike
from modelyard.db.sql import Sql
from modelyard.db.tables import (
    AliasRow,
    ArtifactRow,
    DatasetRow,
    DatasetVersionRow,
    LineageEdgeRow,
    MetricRow,
    ModelRow,
    ParamRow,
    VersionRow,
    VersionTagRow,
)
from modelyard.errors import NotFoundError
from modelyard.graphql.types.common import MetricLike, ParamLike

K = TypeVar("K")
V = TypeVar("V")


def _by_id(table: Any) -> Callable[[Sequence[int]], Awaitable[list[Any]]]:
    """Rows by primary key; a key that vanished (deleted meanwhile) fails only its own field."""

    async def load(ids: Sequence[int]) -> list[Any]:
        rows = {r.id: r for r in await table.filter(id__in=list(ids))}
        gone = NotFoundError(f"{table._meta.db_table} was deleted while the request ran")
        return [rows.get(i, gone) for i in ids]

    return load


async def _versions_by_id(ids: Sequence[int]) -> list[Any]:
    """Light version rows by id; an id that vanished (deleted meanwhile) fails only its own field."""
    sql = Sql()
    found = {r.id: r for r in records.versions(
        await sql.tuples(f"SELECT {records.VERSION_COLUMNS} FROM model_version WHERE id IN ({sql.many(sorted(set(ids)))})"))}
    gone = NotFoundError("model_version was deleted while the request ran")
    return [found.get(i, gone) for i in ids]


def _grouped(table: Any, column: str, order: str = "id") -> Callable[[Sequence[int]], Awaitable[list[list[Any]]]]:
    async def load(ids: Sequence[int]) -> list[list[Any]]:
        groups: dict[int, list[Any]] = defaultdict(list)
        for row in await table.filter(**{f"{column}__in": list(ids)}).order_by(order):
            groups[getattr(row, column)].append(row)
        return [groups.get(i, []) for i in ids]

    return load


async def _version_pages(keys: Sequence[tuple[int, int, int, bool]]) -> list[tuple[list[VersionLike], bool]]:
    """Newest-first pages of several models' versions (model id, first, offset, with archived
    ones): one windowed query per archived/not, whatever the number of models."""
    found: dict[tuple[int, int, int, bool], tuple[list[VersionLike], bool]] = {}
    for archived in {k[3] for k in keys}:
        group = [k for k in keys if k[3] is archived]
        for key, page in zip(group, await _pages_of(group, archived), strict=True):
            found[key] = page
    return [found[k] for k in keys]


async def _pages_of(keys: Sequence[tuple[int, int, int, bool]], archived: bool) -> list[tuple[list[VersionLike], bool]]:
    sql = Sql()
    model_ids = sorted({k[0] for k in keys})
    start = min(k[2] for k in keys)
    end = max(k[1] + k[2] for k in keys) + 1
    models = sql.many(model_ids)  # placeholders in the order they appear in the text
    status = "" if archived else f" AND v.status <> {sql.p('ARCHIVED')}"
    rows = await sql.tuples(
        f"""
        SELECT {", ".join(f"v.{c}" for c in records.VERSION_COLUMNS.split(", "))}, ranked.rn FROM (
            SELECT v.id, ROW_NUMBER() OVER (PARTITION BY v.model_id ORDER BY v.number DESC) AS rn
            FROM model_version v WHERE v.model_id IN ({models}){status}
        ) ranked JOIN model_version v ON v.id = ranked.id
        WHERE ranked.rn > {int(start)} AND ranked.rn <= {int(end)} ORDER BY v.model_id, ranked.rn
        """
    )
    by_model: dict[int, dict[int, VersionLike]] = defaultdict(dict)
    for r in rows:
        by_model[r[1]][int(r[-1])] = records.VersionRecord(r[:-1])
    out = []
    for model_id, first, offset, _ in keys:
        ranked = by_model.get(model_id, {})
        page = [ranked[rn] for rn in range(offset + 1, offset + first + 2) if rn in ranked]
        out.append((page[:first], len(page) > first))
    return out


async def _version_counts(keys: Sequence[tuple[int, bool]]) -> list[int]:
    """Versions per (model id, with archived ones): one grouped query."""
    rows = (
        await VersionRow.filter(model_id__in=list({k[0] for k in keys}))
        .group_by("model_id", "status")
        .annotate(n=Count("id"))
        .values("model_id", "status", "n")
    )
    counts: dict[tuple[int, bool], int] = defaultdict(int)
    for r in rows:
        counts[(r["model_id"], True)] += r["n"]
        if r["status"] != "ARCHIVED":
            counts[(r["model_id"], False)] += r["n"]
    return [counts[k] for k in keys]


def _key_uses(table: Any) -> Callable[[Sequence[int]], Awaitable[list[list[tuple[str, int]]]]]:
    """Per model id: the param (or metric) keys its versions carry and on how many versions,
    most common first, then by key; one grouped query."""

    async def load(model_ids: Sequence[int]) -> list[list[tuple[str, int]]]:
        rows = (
            await table.filter(version__model_id__in=list(model_ids))
            .group_by("version__model_id", "key")
            .annotate(n=Count("id"))
            .values("version__model_id", "key", "n")
        )
        uses: dict[int, list[tuple[str, int]]] = defaultdict(list)
        for r in rows:
            uses[r["version__model_id"]].append((r["key"], r["n"]))
        return [sorted(uses.get(i, []), key=lambda u: (-u[1], u[0])) for i in model_ids]

    return load


async def _latest_ready(model_ids: Sequence[int]) -> list[VersionRow | None]:
    newest = (
        VersionRow.filter(status="READY", model_id__in=list(model_ids))
        .group_by("model_id")
        .annotate(newest=Max("id"))
        .values("newest")
    )
    by_model = {v.model_id: v for v in await VersionRow.filter(id__in=Subquery(newest))}
    return [by_model.get(i) for i in model_ids]


async def _walks(keys: Sequence[tuple[int, str, int]]) -> list[list[lineage.Edge]]:
    """Lineage walks grouped by (direction, depth): one recursive query per group."""
    groups: dict[tuple[str, int], list[int]] = defaultdict(list)
    for vid, direction, depth in keys:
        groups[(direction, depth)].append(vid)
    found: dict[tuple[int, str, int], list[lineage.Edge]] = {}
    for (direction, depth), ids in groups.items():
        edges = await lineage.walk(ids, lineage.Direction(direction), depth)
        for vid in ids:
            found[(vid, direction, depth)] = edges.get(vid, [])
    return [found[k] for k in keys]


def _records(table: str, columns: str, convert: Callable[[list[Any]], list[Any]], order: str,
             keyed: bool) -> Callable[[Sequence[Any]], Awaitable[list[list[Any]]]]:
    """Light rows of `table` (one statement, no ORM instances) per version id, or per
    (version id, key) when `keyed`: `param(key)` without loading the version's other params."""

    async def load(keys: Sequence[Any]) -> list[list[Any]]:
        sql = Sql()
        where = f"version_id IN ({sql.many(sorted({k[0] if keyed else k for k in keys}))})"
        if keyed:
            where += f" AND key IN ({sql.many(sorted({k[1] for k in keys}))})"
        groups: dict[Any, list[Any]] = defaultdict(list)
        for r in convert(await sql.tuples(f"SELECT {columns} FROM {table} WHERE {where} ORDER BY {order}")):
            groups[(r.version_id, r.key) if keyed else r.version_id].append(r)
        return [groups.get(k, []) for k in keys]

    return load


async def _one_each(load: Callable[[Sequence[Any]], Awaitable[list[list[Any]]]],
                    keys: Sequence[tuple[int, str]]) -> list[Any]:
    return [rows[0] if rows else None for rows in await load(keys)]


_P, _M = records.PARAM_COLUMNS, records.METRIC_COLUMNS
_params_by_version = _records("param", _P, records.params, "version_id, key", keyed=False)
_metrics_by_version = _records("metric", _M, records.metrics, "version_id, key", keyed=False)
_points_by_version = _records("metric_point", _M, records.metrics, "id", keyed=False)
_param_by_key = _records("param", _P, records.params, "version_id", keyed=True)
_metric_by_key = _records("metric", _M, records.metrics, "version_id", keyed=True)
_history_by_key = _records("metric_point", _M, records.metrics, "id", keyed=True)


def _loader(fn: Callable[[Any], Awaitable[Any]]) -> DataLoader[Any, Any]:
    return DataLoader(load_fn=fn)


@dataclass
class Loaders:
    """Fresh loaders for one request; results come back in key order."""

    model: DataLoader[int, ModelRow] = field(default_factory=lambda: _loader(_by_id(ModelRow)))
    version: DataLoader[int, VersionLike] = field(default_factory=lambda: _loader(_versions_by_id))
    dataset: DataLoader[int, DatasetRow] = field(default_factory=lambda: _loader(_by_id(DatasetRow)))
    dataset_version: DataLoader[int, DatasetVersionRow] = field(
        default_factory=lambda: _loader(_by_id(DatasetVersionRow))
    )
    params: DataLoader[int, list[ParamLike]] = field(default_factory=lambda: _loader(_params_by_version))
    metrics: DataLoader[int, list[MetricLike]] = field(default_factory=lambda: _loader(_metrics_by_version))
    param: DataLoader[tuple[int, str], ParamLike | None] = field(
        default_factory=lambda: _loader(partial(_one_each, _param_by_key))
    )
    metric: DataLoader[tuple[int, str], MetricLike | None] = field(
        default_factory=lambda: _loader(partial(_one_each, _metric_by_key))
    )
    metric_history: DataLoader[tuple[int, str], list[MetricLike]] = field(
        default_factory=lambda: _loader(_history_by_key)
    )
    metric_points: DataLoader[int, list[MetricLike]] = field(default_factory=lambda: _loader(_points_by_version))
    artifacts: DataLoader[int, list[ArtifactRow]] = field(
        default_factory=lambda: _loader(_grouped(ArtifactRow, "version_id", "path"))
    )
    tags: DataLoader[int, list[VersionTagRow]] = field(
        default_factory=lambda: _loader(_grouped(VersionTagRow, "version_id", "key"))
    )
    version_aliases: DataLoader[int, list[AliasRow]] = field(
        default_factory=lambda: _loader(_grouped(AliasRow, "version_id", "name"))
    )
    model_aliases: DataLoader[int, list[AliasRow]] = field(
        default_factory=lambda: _loader(_grouped(AliasRow, "model_id", "name"))
    )
    parent_edges: DataLoader[int, list[LineageEdgeRow]] = field(
        default_factory=lambda: _loader(_grouped(LineageEdgeRow, "child_id"))
    )
    child_edges: DataLoader[int, list[LineageEdgeRow]] = field(
        default_factory=lambda: _loader(_grouped(LineageEdgeRow, "parent_version_id"))
    )
    dataset_children: DataLoader[int, list[LineageEdgeRow]] = field(
        default_factory=lambda: _loader(_grouped(LineageEdgeRow, "parent_dataset_id"))
    )
    dataset_versions: DataLoader[int, list[DatasetVersionRow]] = field(
        default_factory=lambda: _loader(_grouped(DatasetVersionRow, "dataset_id", "-id"))
    )
    version_pages: DataLoader[tuple[int, int, int, bool], tuple[list[VersionLike], bool]] = field(
        default_factory=lambda: _loader(_version_pages)
    )
    version_counts: DataLoader[tuple[int, bool], int] = field(default_factory=lambda: _loader(_version_counts))
    param_keys: DataLoader[int, list[tuple[str, int]]] = field(default_factory=lambda: _loader(_key_uses(ParamRow)))
    metric_keys: DataLoader[int, list[tuple[str, int]]] = field(default_factory=lambda: _loader(_key_uses(MetricRow)))
    latest_ready: DataLoader[int, VersionRow] = field(default_factory=lambda: _loader(_latest_ready))
    walks: DataLoader[tuple[int, str, int], list[lineage.Edge]] = field(
        default_factory=lambda: _loader(_walks)
    )

    def prime_model(self, row: ModelRow) -> None:
        """Share a model row a resolver already fetched with the loaders."""
        self.model.prime(row.id, row)

    def prime_versions(self, rows: Iterable[VersionLike]) -> None:
        """Share rows a resolver already fetched with the loaders."""
        for r in rows:
            self.version.prime(r.id, r)
