"""What a caller bound to a namespace may see of lineage that crosses into other namespaces.

When reads are private, a namespaced token reads only its namespace; lineage edges whose other
end lies outside are left out rather than showing the outside version or dataset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelyard.catalog import policy
from modelyard.graphql.context import Info

if TYPE_CHECKING:
    from modelyard.graphql.types.lineage import LineageEdge


def _namespace(full_name: str) -> str:
    return full_name.split("/", 1)[0] if "/" in full_name else ""


async def visible_edges(info: Info, edges: list[LineageEdge]) -> list[LineageEdge]:
    """`edges` without those reaching outside the caller's namespace (all, for most callers)."""
    namespace = policy.read_namespace(info.context.caller, info.context.settings.public_read)
    if namespace is None or not edges:
        return edges
    loaders = info.context.loaders
    version_ids = sorted({i for e in edges for i in (e.child_id, e.parent_version_id) if i is not None})
    versions = await loaders.version.load_many(version_ids)
    models = await loaders.model.load_many(sorted({v.model_id for v in versions}))
    model_ns = {m.id: _namespace(m.full_name) for m in models}
    version_ns = {v.id: model_ns[v.model_id] for v in versions}
    dataset_ids = sorted({e.parent_dataset_id for e in edges if e.parent_dataset_id is not None})
    dataset_versions = await loaders.dataset_version.load_many(dataset_ids)
    owners = await loaders.dataset.load_many(sorted({d.dataset_id for d in dataset_versions}))
    owner_ns = {d.id: _namespace(d.full_name) for d in owners}
    dataset_ns = {d.id: owner_ns[d.dataset_id] for d in dataset_versions}

    def inside(edge: LineageEdge) -> bool:
        parent = (
            version_ns[edge.parent_version_id] if edge.parent_version_id is not None
            else dataset_ns[edge.parent_dataset_id]  # type: ignore[index]
        )
        return version_ns[edge.child_id] == namespace and parent == namespace

    return [e for e in edges if inside(e)]
