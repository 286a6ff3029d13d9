"""Two versions side by side: what changed in params, metrics, artifacts and lineage parents.

Any two refs compare, of one model or of two. Both refs are parsed before either is looked up (a
malformed one is INVALID whatever the other names), and the whole comparison is six statements
however many params, metrics, artifacts and parents the versions hold.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from modelyard.catalog.lineage import Relation
from modelyard.catalog.params import ParamKind
from modelyard.catalog.refs import VersionRef, parse_ref
from modelyard.catalog.resolve import resolve_version
from modelyard.db.tables import ArtifactRow, LineageEdgeRow, MetricRow, ParamRow, VersionRow
from modelyard.errors import NotFoundError


class _OfVersion(Protocol):
    version_id: int


R = TypeVar("R", bound=_OfVersion)
NUMERIC = (ParamKind.INT.value, ParamKind.FLOAT.value)
RELATION_ORDER = {r.value: i for i, r in enumerate(Relation)}


class Change(enum.Enum):
    """How an entry of version b differs from the same entry of version a."""

    SAME = "SAME"
    CHANGED = "CHANGED"
    ADDED = "ADDED"
    REMOVED = "REMOVED"


class Side(enum.Enum):
    """Which of the two versions has a lineage parent."""

    A_ONLY = "A_ONLY"
    B_ONLY = "B_ONLY"
    BOTH = "BOTH"


@dataclass(frozen=True)
class ParamChange:
    key: str
    change: Change
    a: ParamRow | None
    b: ParamRow | None
    delta: float | None
    """b − a when both are INT or FLOAT params."""


@dataclass(frozen=True)
class MetricChange:
    key: str
    change: Change
    a: MetricRow | None
    b: MetricRow | None
    delta: float | None
    """b − a of the latest values, when both versions have the metric."""


@dataclass(frozen=True)
class ArtifactChange:
    path: str
    change: Change
    a: ArtifactRow | None
    b: ArtifactRow | None

    @property
    def size_delta(self) -> int | None:
        return self.b.size - self.a.size if self.a is not None and self.b is not None else None


@dataclass(frozen=True)
class ParentChange:
    """A lineage parent (a version or a dataset version) with its relation, and who has it."""

    relation: Relation
    side: Side
    parent_version_id: int | None
    parent_dataset_id: int | None


@dataclass(frozen=True)
class Comparison:
    a: VersionRow
    b: VersionRow
    params: list[ParamChange]
    metrics: list[MetricChange]
    artifacts: list[ArtifactChange]
    parents: list[ParentChange]


async def compare_versions(ref_a: str, ref_b: str) -> Comparison:
    """Compare the versions `ref_a` and `ref_b` name; NOT_FOUND names the ref that names none."""
    parsed = (parse_ref(ref_a), parse_ref(ref_b))
    a = await _resolve(ref_a, parsed[0])
    b = await _resolve(ref_b, parsed[1])
    ids = [a.id, b.id]
    params = await ParamRow.filter(version_id__in=ids)
    metrics = await MetricRow.filter(version_id__in=ids)
    files = await ArtifactRow.filter(version_id__in=ids)
    edges = await LineageEdgeRow.filter(child_id__in=ids).order_by("id")
    return Comparison(
        a=a, b=b,
        params=[_param(k, pa, pb) for k, pa, pb in _pairs(params, a, b, lambda r: r.key)],
        metrics=[_metric(k, ma, mb) for k, ma, mb in _pairs(metrics, a, b, lambda r: r.key)],
        artifacts=[_artifact(p, fa, fb) for p, fa, fb in _pairs(files, a, b, lambda r: r.path)],
        parents=_parents(edges, a, b),
    )


async def _resolve(raw: str, ref: VersionRef) -> VersionRow:
    try:
        return await resolve_version(ref)
    except NotFoundError as exc:
        raise NotFoundError(f"{raw!r} names no version: {exc.message}") from exc


def _pairs(rows: Iterable[R], a: VersionRow, b: VersionRow,
           key: Callable[[R], str]) -> list[tuple[str, R | None, R | None]]:
    """Rows of a and of b matched by key, sorted by key (a version compared with itself is on both sides)."""
    left = {key(r): r for r in rows if r.version_id == a.id}
    right = {key(r): r for r in rows if r.version_id == b.id}
    return [(k, left.get(k), right.get(k)) for k in sorted(left.keys() | right.keys())]


def _one_sided(a: object | None) -> Change:
    return Change.ADDED if a is None else Change.REMOVED


def _param(key: str, a: ParamRow | None, b: ParamRow | None) -> ParamChange:
    if a is None or b is None:
        return ParamChange(key, _one_sided(a), a, b, None)
    same = (a.kind, a.value_json) == (b.kind, b.value_json)
    delta = None
    if a.kind in NUMERIC and b.kind in NUMERIC:
        # From the exact JSON values: two 64-bit ints subtract exactly before becoming a float.
        before: Any = json.loads(a.value_json)
        after: Any = json.loads(b.value_json)
        delta = float(after - before)
    return ParamChange(key, Change.SAME if same else Change.CHANGED, a, b, delta)


def _metric(key: str, a: MetricRow | None, b: MetricRow | None) -> MetricChange:
    if a is None or b is None:
        return MetricChange(key, _one_sided(a), a, b, None)
    return MetricChange(key, Change.SAME if a.value == b.value else Change.CHANGED, a, b, b.value - a.value)


def _artifact(path: str, a: ArtifactRow | None, b: ArtifactRow | None) -> ArtifactChange:
    if a is None or b is None:
        return ArtifactChange(path, _one_sided(a), a, b)
    return ArtifactChange(path, Change.SAME if a.digest == b.digest else Change.CHANGED, a, b)


def _parents(edges: list[LineageEdgeRow], a: VersionRow, b: VersionRow) -> list[ParentChange]:
    """Parents of either version by (relation, parent), in relation order, then oldest edge first."""
    found: dict[tuple[str, int | None, int | None], set[int]] = {}
    for e in edges:
        found.setdefault((e.relation, e.parent_version_id, e.parent_dataset_id), set()).add(e.child_id)

    def side(children: set[int]) -> Side:
        if a.id in children and b.id in children:
            return Side.BOTH
        return Side.A_ONLY if a.id in children else Side.B_ONLY

    ordered = sorted(found.items(), key=lambda item: RELATION_ORDER.get(item[0][0], len(RELATION_ORDER)))
    return [ParentChange(Relation(relation), side(children), version_id, dataset_id)
            for (relation, version_id, dataset_id), children in ordered]
