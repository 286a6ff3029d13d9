"""Permission classes on fields: each reads only the request context and the field's arguments.

The rules themselves live in `modelyard.catalog.policy`; a refusal raises UNAUTHENTICATED or
FORBIDDEN with a message saying what was missing.
"""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission

from modelyard.catalog.policy import check_admin, check_read, check_write
from modelyard.graphql.context import Info


def target_of(kwargs: dict[str, Any]) -> str | None:
    """The model, dataset or version a field's arguments name, if any."""
    value = kwargs.get("input")
    if value is not None and hasattr(value, "target"):
        return str(value.target())
    for key in ("ref", "name", "model"):
        if isinstance(kwargs.get(key), str):
            return str(kwargs[key])
    return None


class CanRead(BasePermission):
    """Reads: anonymous unless reads are private; namespaced tokens stay in their namespace."""

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        check_read(info.context.caller, info.context.settings.public_read, target_of(kwargs))
        return True


class CanReadEach(BasePermission):
    """Reads of two versions at once (`compare(a, b)`): each ref is checked as `CanRead` checks
    its target, so a namespaced token is refused before either is looked up."""

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        for key in ("a", "b"):
            check_read(info.context.caller, info.context.settings.public_read, str(kwargs[key]))
        return True


class CanSearch(BasePermission):
    """Reads whose text is something to look for, not a target (`suggestModels(name)`): the
    resolver narrows what it finds to a namespaced reader's namespace instead of refusing."""

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        check_read(info.context.caller, info.context.settings.public_read, None)
        return True


def parents_of(kwargs: dict[str, Any]) -> list[str]:
    """The lineage parents (version or dataset refs) a field's input names."""
    value = kwargs.get("input")
    if value is None:
        return []
    if isinstance(getattr(value, "parent", None), str):
        return [value.parent]
    return [p.parent for p in getattr(value, "lineage", None) or []]


class CanWrite(BasePermission):
    """Writes: a `write` token, inside its namespace when it has one. A lineage parent is read,
    so with private reads it must be readable too (FORBIDDEN before it is looked up)."""

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        batch = kwargs.get("input")
        if isinstance(batch, list):  # `createVersions`: every item as if it came alone
            check_write(info.context.caller, None)  # an empty batch needs a write token too
            for item in batch:
                self.has_permission(source, info, **{**kwargs, "input": item})
            return True
        check_write(info.context.caller, target_of(kwargs))
        for parent in parents_of(kwargs):
            check_read(info.context.caller, info.context.settings.public_read, parent)
        return True


class IsAdmin(BasePermission):
    """Tokens and hard deletes: an `admin` token not bound to a namespace."""

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        check_admin(info.context.caller, info.field_name)
        return True
