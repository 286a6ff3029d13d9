"""Look-ahead for pages of versions: run the loaders the page's fields will ask, before they ask.

A page of 100 versions selecting `ref`, `model`, `param(key: "lr")` and `metric(key: "acc")`
would otherwise await a DataLoader 400 times, and graphql-core makes a task of each. The page's
resolver calls `prefetch` with the rows it found; it loads what the selection names with the same
loaders, in the same statements (one per loader), and the fields then answer from the loaders'
caches through `soon`, synchronously. Fields it does not know, or selections it cannot read,
simply take the ordinary path: the look-ahead changes when rows are read, never what is answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar, cast

from strawberry.dataloader import DataLoader
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField, Selection

from modelyard.catalog.refs import check_key
from modelyard.db.records import VersionLike
from modelyard.errors import LimitError, ModelyardError
from modelyard.graphql.context import Info
from modelyard.graphql.loaders import Loaders

MAX_KEYS = 100  # keys one `params(keys:)` or `metrics(keys:)` may name
K = TypeVar("K")
V = TypeVar("V")
R = TypeVar("R")


def soon(loader: DataLoader[K, V], key: K, convert: Callable[[V], R]) -> R:
    """`convert` of what `loader` has for `key`: the value itself when the loader already holds
    it (a plain value costs graphql-core no task), else an awaitable of it, which graphql-core
    awaits as it would an async resolver's result. Typed as the value for the field's type."""
    future = loader.cache_map.get(key)
    if future is not None and future.done() and not future.cancelled() and future.exception() is None:
        return convert(future.result())

    async def later() -> R:
        return convert(await loader.load(key))

    return cast(R, later())


def soon_many(loader: DataLoader[K, V], keys: list[K], convert: Callable[[list[V]], R]) -> R:
    """As `soon`, for several keys: `convert` of their values in key order."""
    futures = [loader.cache_map.get(k) for k in keys]
    if all(f is not None and f.done() and not f.cancelled() and f.exception() is None for f in futures):
        return convert([f.result() for f in futures if f is not None])

    async def later() -> R:
        return convert(await loader.load_many(keys))

    return cast(R, later())


def _fields(selections: Iterable[Selection]) -> Iterable[SelectedField]:
    """The fields of a selection set, through fragments (whatever their type condition: a
    needless load is harmless, a missed one only slower)."""
    for s in selections:
        if isinstance(s, SelectedField):
            yield s
        elif isinstance(s, FragmentSpread | InlineFragment):
            yield from _fields(s.selections)


def _nodes(info: Info) -> list[SelectedField]:
    """The fields selected on each version of the connection `info` resolves (`nodes { … }`
    and `edges { node { … } }`)."""
    found: list[SelectedField] = []
    for conn in _fields(info.selected_fields):
        for f in _fields(conn.selections):
            if f.name == "nodes":
                found += _fields(f.selections)
            elif f.name == "edges":
                found += (n for e in _fields(f.selections) if e.name == "node" for n in _fields(e.selections))
    return found


def check_keys(keys: list[str], kind: str) -> list[str]:
    """`keys` of a `params(keys:)` or `metrics(keys:)` selection, checked, without repeats."""
    if len(keys) > MAX_KEYS:
        raise LimitError(f"at most {MAX_KEYS} {kind} keys may be selected, got {len(keys)}")
    return list(dict.fromkeys(check_key(k, kind) for k in keys))


def _keys(raw: list[Any], kind: str) -> list[str]:
    """The checked keys, or none when the field will refuse them itself."""
    try:
        return check_keys(raw, kind)
    except (ModelyardError, TypeError):
        return []


def selected_edge_fields(info: Info) -> list[SelectedField]:
    """The fields selected on each edge of the lineage list `info` resolves."""
    return [g for f in _fields(info.selected_fields) for g in _fields(f.selections)]


async def prefetch(info: Info, rows: Sequence[VersionLike]) -> None:
    """Load, for every row, what the page's fields will ask of the loaders. A loader's error is
    left in its cache for the field that asks to report, as it would without the look-ahead."""
    if not rows:
        return
    loaders: Loaders = info.context.loaders
    ids = [r.id for r in rows]
    jobs: list[Awaitable[Any]] = []
    names: set[str] = set()
    edge_fields: list[SelectedField] = []
    for f in _nodes(info):
        kind = f.name.removesuffix("s")
        if kind in ("param", "metric") and (f.name == kind or f.arguments.get("keys") is not None):
            keyed = loaders.param if kind == "param" else loaders.metric
            keys = _keys([f.arguments.get("key")] if f.name == kind else f.arguments["keys"], kind)
            jobs += [keyed.load_many([(i, k) for i in ids for k in keys])] if keys else []
            continue
        names.add(f.name)
        if f.name in ("parents", "children"):
            edge_fields.append(f)
    if names & {"ref", "model"}:
        jobs.append(loaders.model.load_many(sorted({r.model_id for r in rows})))
    whole: dict[str, DataLoader[int, Any]] = {
        "params": loaders.params, "metrics": loaders.metrics, "tags": loaders.tags,
        "aliases": loaders.version_aliases, "parents": loaders.parent_edges, "children": loaders.child_edges,
    }
    jobs += [whole[n].load_many(ids) for n in names & whole.keys()]
    await asyncio.gather(*jobs, return_exceptions=True)
    for f in edge_fields:
        edges = await asyncio.gather(*(whole[f.name].load(i) for i in ids), return_exceptions=True)
        found = [e for group in edges if isinstance(group, list) for e in group]
        await prefetch_ends(loaders, found, list(_fields(f.selections)))


async def prefetch_ends(loaders: Loaders, edges: list[Any], selected: list[SelectedField]) -> None:
    """Load the versions at the ends of lineage `edges` (rows or `LineageEdge`s) that `selected`
    (the edge's fields) names, and their models when those are asked for (`ref`, `model`)."""
    ends = {f.name: list(_fields(f.selections)) for f in selected if f.name in ("child", "parent")}
    if not ends or not edges:
        return
    version_ids: set[int] = set()
    if "child" in ends:
        version_ids.update(e.child_id for e in edges)
    if "parent" in ends:
        version_ids.update(e.parent_version_id for e in edges if e.parent_version_id is not None)
    found = await asyncio.gather(*(loaders.version.load(i) for i in sorted(version_ids)), return_exceptions=True)
    if any(g.name in ("ref", "model") for inner in ends.values() for g in inner):
        model_ids = sorted({v.model_id for v in found if not isinstance(v, BaseException)})
        await asyncio.gather(*(loaders.model.load(i) for i in model_ids), return_exceptions=True)
