"""Aliases: movable names (`production`, `champion`) pointing at one version of a model."""

from __future__ import annotations

from tortoise.transactions import in_transaction

from modelyard.catalog import audit
from modelyard.catalog.models import get_model, lock_model
from modelyard.catalog.refs import check_alias, parse_ref
from modelyard.catalog.resolve import resolve_version
from modelyard.db.tables import AliasMoveRow, AliasRow, VersionRow
from modelyard.errors import ConflictError, InvalidError, NotFoundError


async def set_alias(model: str, alias: str, version: str, *, actor: str) -> AliasRow:
    """Point `alias` of `model` at `version` (a number or a ref of the same model)."""
    check_alias(alias)
    async with in_transaction():
        # Concurrent moves of one alias queue up instead of racing the insert, and an archive
        # of the target waits (or is seen): see `lock_model`.
        row = await lock_model((await get_model(model)).id)
        ref = parse_ref(f"{row.full_name}:{version}" if version.isascii() and version.isdigit() else version)
        if ref.model.full != row.full_name:
            raise InvalidError(f"version {version!r} is not a version of model {row.full_name!r}")
        target = await resolve_version(ref)
        if target.status == "ARCHIVED":
            raise ConflictError(f"version {ref} is archived; restore it before pointing an alias at it")
        existing = await AliasRow.get_or_none(model_id=row.id, name=alias)
        before: int | None = None
        if existing is None:
            existing = await AliasRow.create(
                model_id=row.id, name=alias, version_id=target.id, updated_by=actor
            )
        else:
            before = (await VersionRow.get(id=existing.version_id)).number
            existing.version_id = target.id
            existing.updated_by = actor
            await existing.save()
        await AliasMoveRow.create(model_id=row.id, alias=alias, version_id=target.id, actor=actor)
        await audit.record(
            actor, audit.EventKind.ALIAS_SET, "Alias", f"{row.full_name}@{alias}", model=row.full_name,
            changes={"version": {"before": before, "after": target.number}},
        )
        existing.version = target
        return existing


async def delete_alias(model: str, alias: str, *, actor: str) -> AliasRow:
    """Remove an alias; NOT_FOUND when the model has no such alias."""
    check_alias(alias)
    async with in_transaction():
        row = await lock_model((await get_model(model)).id)
        existing = await AliasRow.get_or_none(model_id=row.id, name=alias)
        if existing is None:
            raise NotFoundError(f"model {row.full_name!r} has no alias {alias!r}")
        before = (await VersionRow.get(id=existing.version_id)).number
        await existing.delete()
        await AliasMoveRow.create(model_id=row.id, alias=alias, version_id=None, actor=actor)
        await audit.record(
            actor, audit.EventKind.ALIAS_DELETED, "Alias", f"{row.full_name}@{alias}", model=row.full_name,
            changes={"version": {"before": before, "after": None}},
        )
        return existing


async def alias_history(model_id: int, alias: str) -> list[AliasMoveRow]:
    """Every move of an alias, newest first (a move to no version is a deletion)."""
    check_alias(alias)
    return await AliasMoveRow.filter(model_id=model_id, alias=alias).order_by("-at", "-id")
