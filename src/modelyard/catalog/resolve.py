"""Turning a parsed ref into the one version it names."""

from __future__ import annotations

from modelyard.catalog.refs import VersionRef
from modelyard.db.tables import AliasRow, ModelRow, VersionRow
from modelyard.errors import NotFoundError

READY = "READY"


async def resolve_version(ref: VersionRef) -> VersionRow:
    """The version `ref` names, or NOT_FOUND saying whether the model or the version is missing."""
    full = ref.model.full
    row: VersionRow | None
    if ref.number is not None:
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
        row = (
            await VersionRow.filter(model__full_name=full, status=READY)
            .order_by("-number")
            .first()
        )
    if row is None:
        if not await ModelRow.exists(full_name=full):
            raise NotFoundError(f"model {full!r} does not exist")
        if ref.alias is not None and ref.alias != "latest":
            raise NotFoundError(f"model {full!r} has no alias {ref.alias!r}")
        if ref.number is None and ref.digest is None:
            raise NotFoundError(f"model {full!r} has no READY version")
        raise NotFoundError(f"no version {ref} exists")
    return row
