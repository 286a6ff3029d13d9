"""Search: typed version filters compiled to one SQL statement over indexed columns.

Param comparisons use `param.num_value` (numbers and bools) or `param.text_value` (strings),
metric comparisons `metric.value` (the latest value of each key); `and`/`or`/`not` nest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modelyard.catalog import datasets, lineage
from modelyard.catalog.models import Task
from modelyard.catalog.ordering import Ordering, Position, VersionOrder
from modelyard.catalog.refs import check_alias, check_key, namespace_of, parse_name, parse_ref
from modelyard.catalog.resolve import resolve_version
from modelyard.catalog.text import check_text
from modelyard.catalog.times import filter_time
from modelyard.catalog.versions import Status
from modelyard.db.sql import Sql
from modelyard.db.tables import ModelRow, VersionRow
from modelyard.errors import ForbiddenError, InvalidError, LimitError

MAX_FILTER_TERMS = 50
MAX_FILTER_DEPTH = 8  # and/or/not levels; SQLite's parser overflows around 60
MAX_IN_VALUES = 1_000  # one bound parameter each; SQLite and asyncpg cap a statement's
_OPS = {"eq": "=", "ne": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


@dataclass
class Compare:
    """A comparison on one param or metric key; every operator given must hold."""

    key: str
    eq: Any = None
    ne: Any = None
    lt: float | None = None
    lte: float | None = None
    gt: float | None = None
    gte: float | None = None
    in_: list[Any] | None = None


@dataclass
class TagMatch:
    """A tag with this key (and this value, when given)."""

    key: str
    value: str | None = None


@dataclass
class VersionFilter:
    """Every condition given must hold; `or_` holds when any of its filters does."""

    model: str | None = None
    namespace: str | None = None
    status: list[Status] | None = None
    params: list[Compare] = field(default_factory=list)
    metrics: list[Compare] = field(default_factory=list)
    tags: list[TagMatch] = field(default_factory=list)
    alias: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    derived_from: str | None = None
    trained_on: str | None = None
    and_: list[VersionFilter] = field(default_factory=list)
    or_: list[VersionFilter] = field(default_factory=list)
    not_: VersionFilter | None = None


@dataclass
class Page:
    """A page of ids, where each sits in the ordering, and the means to count all matches."""

    ids: list[int]
    positions: list[Position]
    has_next: bool
    sql_count: tuple[str, list[Any]]


class _Compiler:
    def __init__(self, sql: Sql, reader_namespace: str | None = None) -> None:
        self.sql = sql
        self.terms = 0
        self.reader_namespace = reader_namespace

    def _readable(self, what: str, ref: str) -> str:
        if self.reader_namespace is not None and namespace_of(ref) != self.reader_namespace:
            raise ForbiddenError(f"this token reads only namespace {self.reader_namespace!r}; "
                                 f"{what} {ref!r} is outside it")
        return ref

    def _count(self) -> None:
        self.terms += 1
        if self.terms > MAX_FILTER_TERMS:
            raise LimitError(f"a filter may hold at most {MAX_FILTER_TERMS} conditions")

    async def compile(self, f: VersionFilter, top: bool = False, depth: int = 0) -> str:
        if depth > MAX_FILTER_DEPTH:
            raise LimitError(f"filters nest at most {MAX_FILTER_DEPTH} levels (and, or, not)")
        sql, parts = self.sql, []
        if f.model is not None:
            self._count()
            full = parse_name(f.model).full
            parts.append(f"v.model_id = (SELECT id FROM model WHERE full_name = {sql.p(full)})")
        if f.namespace is not None:
            self._count()
            namespace = parse_name(f.namespace, "namespace").name
            parts.append(f"v.model_id IN (SELECT id FROM model WHERE namespace = {sql.p(namespace)})")
        if f.status:
            self._count()
            parts.append(f"v.status IN ({sql.many([s.value for s in f.status])})")
        elif top:
            parts.append(f"v.status <> {sql.p(Status.ARCHIVED.value)}")
        for cmp in f.params:
            self._count()
            parts.append(self._param(cmp))
        for cmp in f.metrics:
            self._count()
            parts.append(self._metric(cmp))
        for tag in f.tags:
            self._count()
            check_key(tag.key, "tag")
            cond = f"t.key = {sql.p(tag.key)}"
            if tag.value is not None:
                cond += f" AND t.value = {sql.p(check_text(tag.value, f'tag {tag.key!r}', 512))}"
            parts.append(f"EXISTS (SELECT 1 FROM version_tag t WHERE t.version_id = v.id AND {cond})")
        if f.alias is not None:
            self._count()
            check_alias(f.alias)
            parts.append(
                f"EXISTS (SELECT 1 FROM alias a WHERE a.version_id = v.id AND a.name = {sql.p(f.alias)})"
            )
        if f.created_after is not None:
            self._count()
            parts.append(f"v.created_at >= {sql.p(_db_time(f.created_after))}")
        if f.created_before is not None:
            self._count()
            parts.append(f"v.created_at < {sql.p(_db_time(f.created_before))}")
        if f.derived_from is not None:
            self._count()
            origin = await resolve_version(parse_ref(self._readable("derivedFrom", f.derived_from)))
            parts.append(f"v.id IN ({lineage.descendants_sql(sql, origin.id)})")
        if f.trained_on is not None:
            self._count()
            parts.append(await self._trained_on(self._readable("trainedOn", f.trained_on)))
        for sub in f.and_:
            parts.append(f"({await self.compile(sub, depth=depth + 1)})")
        if f.or_:
            alternatives = [f"({await self.compile(sub, depth=depth + 1)})" for sub in f.or_]
            parts.append("(" + " OR ".join(alternatives) + ")")
        if f.not_ is not None:
            parts.append(f"NOT ({await self.compile(f.not_, depth=depth + 1)})")
        return " AND ".join(parts) if parts else "1 = 1"

    def _param(self, cmp: Compare) -> str:
        sql = self.sql
        check_key(cmp.key, "param")
        conds = [f"p.key = {sql.p(cmp.key)}"]
        if cmp.eq is not None:
            conds.append(self._param_eq(cmp.eq))
        if cmp.ne is not None:
            conds.append(f"NOT ({self._param_eq(cmp.ne)})")
        for op in ("lt", "lte", "gt", "gte"):
            value = getattr(cmp, op)
            if value is not None:
                conds.append(f"p.kind IN ('int', 'float') AND p.num_value {_OPS[op]} {sql.p(float(value))}")
        if cmp.in_ is not None:
            _check_in("param", cmp)
            conds.append(self._param_in(cmp.in_))
        where = " AND ".join(conds)
        return f"EXISTS (SELECT 1 FROM param p WHERE p.version_id = v.id AND {where})"

    def _param_eq(self, value: Any) -> str:
        sql = self.sql
        if isinstance(value, bool):
            return f"p.kind = 'bool' AND p.num_value = {sql.p(1.0 if value else 0.0)}"
        if isinstance(value, (int, float)):
            return f"p.kind IN ('int', 'float') AND p.num_value = {sql.p(float(value))}"
        if isinstance(value, str):
            return f"p.kind = 'string' AND p.text_value = {sql.p(check_text(value, 'param value', 512))}"
        raise InvalidError(f"params compare with a string, number or boolean, got {value!r:.60}")

    def _param_in(self, values: list[Any]) -> str:
        """One IN list per stored kind (not an OR per value: SQLite caps expression depth)."""
        sql = self.sql
        numbers = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        flags = [1.0 if v else 0.0 for v in values if isinstance(v, bool)]
        texts = [check_text(v, "param value", 512) for v in values if isinstance(v, str)]
        if len(numbers) + len(flags) + len(texts) != len(values):
            bad = next(v for v in values if not isinstance(v, bool | int | float | str))
            raise InvalidError(f"params compare with a string, number or boolean, got {bad!r:.60}")
        ors = []
        if numbers:
            ors.append(f"p.kind IN ('int', 'float') AND p.num_value IN ({sql.many(numbers)})")
        if flags:
            ors.append(f"p.kind = 'bool' AND p.num_value IN ({sql.many(flags)})")
        if texts:
            ors.append(f"p.kind = 'string' AND p.text_value IN ({sql.many(texts)})")
        return "(" + " OR ".join(f"({o})" for o in ors) + ")"

    def _metric(self, cmp: Compare) -> str:
        sql = self.sql
        check_key(cmp.key, "metric")
        conds = [f"m.key = {sql.p(cmp.key)}"]
        for op in ("eq", "ne", "lt", "lte", "gt", "gte"):
            value = getattr(cmp, op)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise InvalidError(f"metric {cmp.key!r} compares with numbers, got {value!r:.60}")
                conds.append(f"m.value {_OPS[op]} {sql.p(float(value))}")
        if cmp.in_ is not None:
            _check_in("metric", cmp)
            conds.append(f"m.value IN ({sql.many([float(v) for v in cmp.in_])})")
        where = " AND ".join(conds)
        return f"EXISTS (SELECT 1 FROM metric m WHERE m.version_id = v.id AND {where})"

    async def _trained_on(self, raw: str) -> str:
        sql = self.sql
        ref = raw  # matched whole by the dataset grammar: no trimming
        rel = f"e.relation = {sql.p(lineage.Relation.TRAINED_ON.value)}"
        if "@" in ref:
            dv = await datasets.resolve_dataset_version(ref)
            target = f"e.parent_dataset_id = {sql.p(dv.id)}"
        else:
            ds = await datasets.get_dataset(ref)
            target = (
                f"e.parent_dataset_id IN (SELECT id FROM dataset_version WHERE dataset_id = {sql.p(ds.id)})"
            )
        return f"EXISTS (SELECT 1 FROM lineage_edge e WHERE e.child_id = v.id AND {rel} AND {target})"


def _check_in(what: str, cmp: Compare) -> None:
    if not cmp.in_:
        raise InvalidError(f"{what} {cmp.key!r}: 'in' needs at least one value")
    if len(cmp.in_) > MAX_IN_VALUES:
        raise LimitError(f"{what} {cmp.key!r}: 'in' holds at most {MAX_IN_VALUES} values, "
                         f"not {len(cmp.in_)}")


def _db_time(value: datetime) -> Any:
    """A datetime encoded as Tortoise stores it, so raw comparisons match on both databases."""
    return VersionRow._meta.fields_map["created_at"].to_db_value(filter_time(value), VersionRow)


async def search_versions(
    f: VersionFilter | None, order: list[VersionOrder] | None, first: int, after: Position | int = 0,
    reader_namespace: str | None = None,
) -> Page:
    """One page of version ids matching `f`, in `order`, after a position (or an offset: the
    older cursors); archived versions only when asked.

    `reader_namespace`: the one namespace the caller may read (private reads); a filter naming a
    version or dataset outside it is FORBIDDEN before it is looked up, as reading it would be,
    so the answer says nothing about whether it exists."""
    sql = Sql()
    where = await _Compiler(sql, reader_namespace).compile(f or VersionFilter(), top=True)
    # The count reuses WHERE and its parameters, which come first.
    count_sql = (f"SELECT COUNT(*) AS n FROM model_version v WHERE {where}", list(sql.params))
    ordering = Ordering(sql, order)
    offset = 0
    if isinstance(after, Position):
        where = f"{where} AND {ordering.after(after)}"
    else:
        offset = after
    rows = await sql.tuples(
        f"SELECT {ordering.columns} FROM {ordering.source} WHERE {where} "
        f"ORDER BY {ordering.order_by} LIMIT {int(first) + 1} OFFSET {int(offset)}"
    )
    page = rows[:first]
    return Page([int(r[0]) for r in page], [ordering.position(r) for r in page], len(rows) > first, count_sql)


async def count(page: Page) -> int:
    """How many versions match the filter of `page`, across all pages."""
    text, params = page.sql_count
    sql = Sql()
    sql.params = params
    rows = await sql.rows(text)
    return int(rows[0]["n"])


@dataclass
class ModelFilter:
    """Models in a namespace, of a task, or whose name contains a text."""

    namespace: str | None = None
    task: Task | None = None
    name_contains: str | None = None


def model_query(f: ModelFilter | None) -> Any:
    """Models matching `f`, unpaged, ordered by name."""
    query = ModelRow.all()
    if f is not None:
        if f.namespace is not None:
            query = query.filter(namespace=parse_name(f.namespace, "namespace").name)
        if f.task is not None:
            query = query.filter(task=f.task.value)
        if f.name_contains:
            query = query.filter(full_name__icontains=check_text(f.name_contains, "nameContains", 200))
    return query.order_by("full_name")


async def search_models(f: ModelFilter | None, first: int, offset: int) -> tuple[list[ModelRow], bool]:
    """A page of models by name and whether more follow."""
    rows = await model_query(f).offset(offset).limit(first + 1)
    return rows[:first], len(rows) > first
