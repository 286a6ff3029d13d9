"""The audit log: one immutable event per change, written in the change's own transaction.

Events are also what subscribers receive. Their ids must become visible in order, or a
subscriber resuming after id 11 would miss an id 10 committed later: on PostgreSQL writers take
a transaction-scoped lock just before inserting, so events commit in id order, and `NOTIFY`
(delivered at commit) wakes every replica. SQLite serialises writers anyway.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tortoise.expressions import Q

from modelyard.catalog.refs import namespace_of
from modelyard.catalog.text import check_text
from modelyard.catalog.times import filter_time
from modelyard.db.sql import Sql
from modelyard.db.tables import AuditEventRow

CHANNEL = "modelyard_events"
_EVENTS_LOCK = 0x6D6F_6479_6576
ANONYMOUS = "anonymous"
ACTOR_MAX = 128  # the actor column's width


class EventKind(enum.Enum):
    MODEL_CREATED = "MODEL_CREATED"
    MODEL_UPDATED = "MODEL_UPDATED"
    MODEL_DELETED = "MODEL_DELETED"
    VERSION_CREATED = "VERSION_CREATED"
    VERSION_UPDATED = "VERSION_UPDATED"
    VERSION_STATUS_CHANGED = "VERSION_STATUS_CHANGED"
    METRICS_LOGGED = "METRICS_LOGGED"
    ALIAS_SET = "ALIAS_SET"
    ALIAS_DELETED = "ALIAS_DELETED"
    LINEAGE_ADDED = "LINEAGE_ADDED"
    LINEAGE_REMOVED = "LINEAGE_REMOVED"
    DATASET_REGISTERED = "DATASET_REGISTERED"
    TOKEN_CREATED = "TOKEN_CREATED"
    TOKEN_REVOKED = "TOKEN_REVOKED"

    @property
    def is_token(self) -> bool:
        """Token events are shown to admins only."""
        return self in (EventKind.TOKEN_CREATED, EventKind.TOKEN_REVOKED)


_LINEAGE_KINDS = {EventKind.VERSION_CREATED, EventKind.LINEAGE_ADDED, EventKind.LINEAGE_REMOVED}


def visible_changes(kind: EventKind, changes: dict[str, Any], reader_namespace: str | None) -> dict[str, Any]:
    """An event's changes as a reader confined to `reader_namespace` may see them (None: all).

    Lineage entries ("RELATION ref") naming a version or dataset outside the namespace keep their
    relation and lose the ref, as the lineage views drop such edges: the event stays (its object
    is the reader's), what it pointed at does not show.
    """
    entry = changes.get("lineage")
    if reader_namespace is None or kind not in _LINEAGE_KINDS or not isinstance(entry, dict):
        return changes

    def hide(item: Any) -> Any:
        if not isinstance(item, str) or " " not in item:
            return item
        relation, ref = item.split(" ", 1)
        if namespace_of(ref) == reader_namespace:
            return item
        return f"{relation} (outside namespace {reader_namespace!r})"

    shown = {side: [hide(i) for i in v] if isinstance(v, list) else hide(v) for side, v in entry.items()}
    return {**changes, "lineage": shown}


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """`{field: {"before": x, "after": y}}` for the fields that differ."""
    return {
        k: {"before": before.get(k), "after": after.get(k)}
        for k in sorted(set(before) | set(after))
        if before.get(k) != after.get(k)
    }


@dataclass(frozen=True)
class Event:
    """One event to append (`record_many`): the arguments of `record`."""

    actor: str
    kind: EventKind
    object_type: str
    object_ref: str
    model: str | None = None
    changes: dict[str, Any] | None = None
    scope: str | None = None

    def row(self) -> AuditEventRow:
        """The unsaved row; `scope` is the model or dataset name whose namespace the event
        belongs to (default `model`)."""
        owner = self.scope or self.model
        namespace = owner.split("/", 1)[0] if owner and "/" in owner else ""
        return AuditEventRow(
            actor=self.actor, kind=self.kind.value, model=self.model, namespace=namespace,
            object_type=self.object_type, object_ref=self.object_ref[:300], changes=self.changes or {},
        )


async def record(
    actor: str,
    kind: EventKind,
    object_type: str,
    object_ref: str,
    *,
    model: str | None = None,
    changes: dict[str, Any] | None = None,
    scope: str | None = None,
) -> AuditEventRow:
    """Append one event. Call inside the transaction of the change it records, last.

    `scope` is the model or dataset name whose namespace the event belongs to (default `model`).
    """
    sql = await _lock()
    row = Event(actor, kind, object_type, object_ref, model, changes, scope).row()
    await row.save()
    await _notify(sql, row.id)
    return row


async def record_many(events: list[Event]) -> None:
    """Append events in list order (their ids ascend in it), as `record` appends one: under the
    same lock, in one INSERT, with one notification. Call inside the change's transaction, last."""
    if not events:
        return
    sql = await _lock()
    await AuditEventRow.bulk_create([e.row() for e in events])
    await _notify(sql, None)


async def _lock() -> Sql:
    """On PostgreSQL, the lock that makes events commit in id order (see the module docstring)."""
    sql = Sql()
    if sql.dialect == "postgres":
        await sql.rows(f"SELECT pg_advisory_xact_lock({sql.p(_EVENTS_LOCK)})")
    return sql


async def _notify(locked: Sql, event_id: int | None) -> None:
    """Wake every replica at commit (PostgreSQL); the payload is the newest event's id. None: the
    newest id in the table, which under the lock is the last one this transaction inserted."""
    if locked.dialect != "postgres":
        return
    sql = Sql()
    channel = sql.p(CHANNEL)
    newest = sql.p(str(event_id)) if event_id is not None else "(SELECT max(id) FROM audit_event)::text"
    await sql.rows(f"SELECT pg_notify({channel}, {newest})")


@dataclass
class AuditFilter:
    """Events about a model, of some kinds, by an actor, after an id, or in a time range."""

    model: str | None = None
    kinds: list[EventKind] = field(default_factory=list)
    actor: str | None = None
    after_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    namespace: str | None = None
    include_tokens: bool = True


def events_query(f: AuditFilter) -> Any:
    """Events matching `f` (unordered, unpaged)."""
    query = AuditEventRow.all()
    if f.model is not None:
        query = query.filter(model=f.model)
    if f.kinds:
        query = query.filter(kind__in=[k.value for k in f.kinds])
    if f.actor is not None:
        query = query.filter(actor=check_text(f.actor, "actor filter", ACTOR_MAX))
    if f.after_id is not None:
        query = query.filter(id__gt=f.after_id)
    if f.since is not None:
        query = query.filter(at__gte=filter_time(f.since))
    if f.until is not None:
        query = query.filter(at__lt=filter_time(f.until))
    if f.namespace is not None:
        query = query.filter(namespace=f.namespace)
    if not f.include_tokens:
        query = query.filter(~Q(kind__in=[EventKind.TOKEN_CREATED.value, EventKind.TOKEN_REVOKED.value]))
    return query


async def latest_id() -> int:
    """The id of the newest event, 0 when there is none."""
    row = await AuditEventRow.all().order_by("-id").first()
    return row.id if row else 0
