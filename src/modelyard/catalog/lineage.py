"""Lineage: typed edges from a version to the versions and datasets it came from.

The graph is a DAG; an edge that would close a cycle is refused. Every walk is one
`WITH RECURSIVE` statement, batched over many start versions at once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from modelyard.catalog import audit, datasets
from modelyard.catalog.locks import lock_lineage
from modelyard.catalog.refs import parse_dataset_ref, parse_ref
from modelyard.catalog.resolve import resolve_version
from modelyard.db.sql import Sql
from modelyard.db.tables import DatasetVersionRow, LineageEdgeRow, ModelRow, VersionRow
from modelyard.errors import ConflictError, InvalidError, NotFoundError

MAX_PARENTS = 100


class Relation(enum.Enum):
    FINE_TUNED_FROM = "FINE_TUNED_FROM"
    DISTILLED_FROM = "DISTILLED_FROM"
    QUANTIZED_FROM = "QUANTIZED_FROM"
    CONVERTED_FROM = "CONVERTED_FROM"
    DERIVED_FROM = "DERIVED_FROM"
    TRAINED_ON = "TRAINED_ON"
    EVALUATED_ON = "EVALUATED_ON"

    @property
    def to_dataset(self) -> bool:
        """TRAINED_ON and EVALUATED_ON point at dataset versions; the others at model versions."""
        return self in (Relation.TRAINED_ON, Relation.EVALUATED_ON)


class Direction(enum.Enum):
    UP = "UP"
    DOWN = "DOWN"
    BOTH = "BOTH"


@dataclass(frozen=True)
class ParentSpec:
    """A parent as the user names it: a version ref, or `dataset@version` for dataset relations."""

    parent: str
    relation: Relation


@dataclass(frozen=True)
class ResolvedParent:
    relation: Relation
    label: str
    version: VersionRow | None = None
    dataset_version: DatasetVersionRow | None = None

    @property
    def key(self) -> tuple[str, str, int]:
        if self.version is not None:
            return (self.relation.value, "v", self.version.id)
        assert self.dataset_version is not None
        return (self.relation.value, "d", self.dataset_version.id)


@dataclass(frozen=True)
class Edge:
    """One lineage edge found by a walk, with its distance from the start."""

    id: int
    child_id: int
    parent_version_id: int | None
    parent_dataset_id: int | None
    relation: Relation
    depth: int


async def resolve_parents(
    specs: list[ParentSpec], known: dict[tuple[str, int], VersionRow] | None = None
) -> list[ResolvedParent]:
    """Resolve every parent ref; refuse duplicates and too many parents.

    `known`: versions by (model name, number), for resolving the parents of many versions in one
    transaction. A `name:N` ref found there costs no query (the caller's new versions may be in
    it before they are inserted), and what `name:N` refs find is added (a number names the same
    version for good; the caller holds `lock_lineage`, so it stays).
    """
    if len(specs) > MAX_PARENTS:
        raise InvalidError(f"a version may have at most {MAX_PARENTS} lineage parents")
    out: list[ResolvedParent] = []
    seen: set[tuple[Relation, str]] = set()  # labels, not ids: a `known` version may have none yet
    for spec in specs:
        # Labels name what the ref resolved to (`base:2`, not `base@prod`): audit entries stay true
        # after an alias moves.
        if spec.relation.to_dataset:
            dv = await datasets.resolve_dataset_version(spec.parent)
            label = f"{parse_dataset_ref(spec.parent).dataset.full}@{dv.version}"
            parent = ResolvedParent(spec.relation, label, dataset_version=dv)
        else:
            ref = parse_ref(spec.parent)
            key = (ref.model.full, ref.number) if ref.number is not None else None
            version = known.get(key) if known is not None and key is not None else None
            if version is None:
                version = await resolve_version(ref)
                if known is not None and key is not None:
                    known[key] = version
            parent = ResolvedParent(spec.relation, f"{ref.model.full}:{version.number}", version=version)
        if (parent.relation, parent.label) in seen:
            raise InvalidError(f"lineage parent {spec.parent!r} ({spec.relation.value}) is given twice")
        seen.add((parent.relation, parent.label))
        out.append(parent)
    return out


async def add_edges(child: VersionRow, parents: list[ResolvedParent]) -> None:
    """Insert edges from an existing `child`, refusing self-edges, duplicates and cycles. Call in a
    transaction."""
    if not parents:
        return
    await lock_lineage()
    await _check_parents_exist(parents)
    await _check_new_edges(child, parents)
    await insert_new_edges([(child, parents)])


async def insert_new_edges(children: list[tuple[VersionRow, list[ResolvedParent]]]) -> None:
    """Insert the edges of versions created in this transaction, all in one statement.

    Nothing to check: a new version has no edges and no descendants yet (its parents existed
    before it), and the caller resolved the parents after taking `lock_lineage`, which deleting a
    model takes first too, so they still exist.
    """
    await LineageEdgeRow.bulk_create(
        [
            LineageEdgeRow(
                child_id=child.id,
                parent_version_id=p.version.id if p.version else None,
                parent_dataset_id=p.dataset_version.id if p.dataset_version else None,
                relation=p.relation.value,
            )
            for child, parents in children
            for p in parents
        ]
    )


async def _check_parents_exist(parents: list[ResolvedParent]) -> None:
    """Under the lineage lock: parents resolved before it may have been deleted with their model."""
    ids = {p.version.id: p for p in parents if p.version is not None}
    if not ids:
        return
    found = set(await VersionRow.filter(id__in=list(ids)).values_list("id", flat=True))
    gone = [ids[i].label for i in ids if i not in found]
    if gone:
        raise NotFoundError(f"lineage parent {gone[0]} was deleted meanwhile")


async def _check_new_edges(child: VersionRow, parents: list[ResolvedParent]) -> None:
    """Refuse self-edges, edges that exist and cycles: two queries for any number of parents."""
    by_version = {p.version.id: p for p in parents if p.version is not None}
    if child.id in by_version:
        raise ConflictError("a version cannot be its own lineage parent")
    existing = {
        (e.relation, "v" if e.parent_version_id is not None else "d",
         e.parent_version_id if e.parent_version_id is not None else e.parent_dataset_id)
        for e in await LineageEdgeRow.filter(child_id=child.id)
    }
    for parent in parents:
        if parent.key in existing:
            raise ConflictError(f"lineage edge {parent.relation.value} {parent.label} already exists")
    culprit = await _descending_from(child.id, list(by_version))
    if culprit is not None:
        label = by_version[culprit].label
        raise ConflictError(
            f"lineage edge to {label} would close a cycle: {label} already descends from this version"
        )


async def remove_edge(child: VersionRow, parent: ResolvedParent) -> None:
    """Delete one edge; NOT_FOUND when there is none."""
    if not await _edge_query(child, parent).delete():
        raise NotFoundError("no such lineage edge")


def _edge_query(child: VersionRow, parent: ResolvedParent) -> QuerySet[LineageEdgeRow]:
    return LineageEdgeRow.filter(
        child_id=child.id,
        parent_version_id=parent.version.id if parent.version else None,
        parent_dataset_id=parent.dataset_version.id if parent.dataset_version else None,
        relation=parent.relation.value,
    )


async def _descending_from(candidate: int, starts: list[int]) -> int | None:
    """The first of `starts` that is `candidate` or descends from it, at any depth (one query)."""
    if not starts:
        return None
    sql = Sql()
    roots = sql.many(starts)
    target = sql.p(candidate)
    rows = await sql.rows(
        f"""
        WITH RECURSIVE up(root, vid) AS (
            SELECT id, id FROM model_version WHERE id IN ({roots})
            UNION
            SELECT up.root, e.parent_version_id FROM lineage_edge e JOIN up ON e.child_id = up.vid
            WHERE e.parent_version_id IS NOT NULL
        )
        SELECT root FROM up WHERE vid = {target} LIMIT 1
        """
    )
    return int(rows[0]["root"]) if rows else None


def descendants_sql(sql: Sql, version_id: int) -> str:
    """A subquery of the ids of every version descending from `version_id`, at any depth."""
    return f"""
        WITH RECURSIVE down(vid) AS (
            SELECT e.child_id FROM lineage_edge e WHERE e.parent_version_id = {sql.p(version_id)}
            UNION
            SELECT e.child_id FROM lineage_edge e JOIN down d ON e.parent_version_id = d.vid
        )
        SELECT vid FROM down"""


async def walk(
    start_ids: list[int], direction: Direction, depth: int
) -> dict[int, list[Edge]]:
    """Edges within `depth` steps of each start version, up or down: one statement for all."""
    if direction is Direction.BOTH:
        up = await walk(start_ids, Direction.UP, depth)
        down = await walk(start_ids, Direction.DOWN, depth)
        return {i: up.get(i, []) + down.get(i, []) for i in start_ids}
    sql = Sql()
    if direction is Direction.UP:
        step, follow, join_on = "e.parent_version_id", "e.child_id", "e.child_id"
        not_null = "AND e.parent_version_id IS NOT NULL"
    else:
        step, follow, join_on = "e.child_id", "e.parent_version_id", "e.parent_version_id"
        not_null = ""
    ids = sql.many(start_ids)
    max_depth = sql.p(depth)
    rows = await sql.rows(
        f"""
        WITH RECURSIVE walk(root, vid, depth) AS (
            SELECT id, id, 0 FROM model_version WHERE id IN ({ids})
            UNION
            SELECT w.root, {step}, w.depth + 1 FROM lineage_edge e JOIN walk w ON {follow} = w.vid
            WHERE w.depth < {max_depth} {not_null}
        )
        SELECT w.root AS root, e.id AS id, e.child_id AS child_id,
               e.parent_version_id AS parent_version_id, e.parent_dataset_id AS parent_dataset_id,
               e.relation AS relation, MIN(w.depth) + 1 AS depth
        FROM walk w JOIN lineage_edge e ON {join_on} = w.vid
        WHERE w.depth < {max_depth}
        GROUP BY w.root, e.id, e.child_id, e.parent_version_id, e.parent_dataset_id, e.relation
        ORDER BY depth, e.id
        """
    ) if start_ids else []
    out: dict[int, list[Edge]] = {i: [] for i in start_ids}
    for r in rows:
        out[r["root"]].append(
            Edge(r["id"], r["child_id"], r["parent_version_id"], r["parent_dataset_id"],
                 Relation(r["relation"]), int(r["depth"]))
        )
    return out



async def link(ref: str, spec: ParentSpec, *, actor: str) -> VersionRow:
    """Add one lineage edge to an existing version."""
    async with in_transaction():
        child = await resolve_version(parse_ref(ref))
        parents = await resolve_parents([spec])
        await add_edges(child, parents)
        await _audit(actor, audit.EventKind.LINEAGE_ADDED, child, parents[0], added=True)
        return child


async def unlink(ref: str, spec: ParentSpec, *, actor: str) -> VersionRow:
    """Remove one lineage edge from a version."""
    async with in_transaction():
        child = await resolve_version(parse_ref(ref))
        (parent,) = await resolve_parents([spec])
        await remove_edge(child, parent)
        await _audit(actor, audit.EventKind.LINEAGE_REMOVED, child, parent, added=False)
        return child


async def _audit(actor: str, kind: audit.EventKind, child: VersionRow, parent: ResolvedParent, added: bool) -> None:
    model = await ModelRow.get(id=child.model_id)
    edge = f"{parent.relation.value} {parent.label}"
    await audit.record(
        actor, kind, "ModelVersion", f"{model.full_name}:{child.number}", model=model.full_name,
        changes={"lineage": {"before": None if added else edge, "after": edge if added else None}},
    )
