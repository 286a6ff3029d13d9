"""Turning a parsed ref into the one version it names."""

from __future__ import annotations

from datetime import datetime

from modelyard.catalog.refs import VersionRef
from modelyard.catalog.times import filter_time
from modelyard.db.tables import AliasMoveRow, AliasRow, ModelRow, VersionRow
from modelyard.errors import NotFoundError

READY = "READY"


async def resolve_version(ref: VersionRef, at: datetime | None = None) -> VersionRow:
    """The version `ref` names (as of `at`, when given; a time without a zone is UTC, as in every
    filter), or NOT_FOUND saying what is missing.

    As of a past moment an alias resolves to where it pointed then, the bare name to the newest
    READY version created by then; a number or digest must have existed by then.
    """
    if at is not None:
        at = filter_time(at)
    full = ref.model.full
    row: VersionRow | None
    if at is not None and ref.alias is not None and ref.alias != "latest":
        move = (
            await AliasMoveRow.filter(model__full_name=full, alias=ref.alias, at__lte=at)
            .order_by("-at", "-id")
            .select_related("version")
            .first()
        )
        row = move.version if move else None
    elif ref.number is not None:
        row = await VersionRow.get_or_none(model__full_name=full, number=ref.number)
    elif ref.alias is not None and ref.alias != "latest":
        alias = await AliasRow.get_or_none(model__full_name=full, name=ref.alias).select_related(
            "version"
        )
        row = alias.version if alias else None
    elif ref.digest is not None:
        row = (
            await VersionRow.filter(model__full_name=full, manifest_digest=ref.digest)
            .order_by("number")
            .first()
        )
    else:
        latest = VersionRow.filter(model__full_name=full, status=READY)
        if at is not None:
            latest = latest.filter(created_at__lte=at)
        row = await latest.order_by("-number").first()
    if row is not None and at is not None and row.created_at > at:
        row = None
    if row is None:
        if not await ModelRow.exists(full_name=full):
            raise NotFoundError(f"model {full!r} does not exist")
        when = f" at {at.isoformat()}" if at is not None else ""
        if ref.alias is not None and ref.alias != "latest":
            raise NotFoundError(f"model {full!r} has no alias {ref.alias!r}{when}")
        if at is not None:
            raise NotFoundError(f"no version {ref} existed{when}")
        if ref.number is None and ref.digest is None:
            raise NotFoundError(f"model {full!r} has no READY version")
        raise NotFoundError(f"no version {ref} exists")
    return row
