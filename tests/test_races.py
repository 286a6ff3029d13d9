"""Rules hold under any interleaving (issue 11, items 1 and 3): concurrent requests on one app
(SQLite and PostgreSQL) and on two replicas of one PostgreSQL catalog. Every race ends in a
state the rules allow, and every loser gets CONFLICT or NOT_FOUND, never INTERNAL."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_SECRET, GraphQLClient

ROUNDS = 15
Post = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]

SET_ALIAS = "mutation($m: String!, $v: String!) { setAlias(input: {model: $m, alias: \"prod\", version: $v}) { name } }"
ARCHIVE = "mutation($r: String!) { archiveVersion(ref: $r) { status } }"
CREATE = "mutation($m: String!, $l: [LineageInput!]!) { createVersion(input: {model: $m, lineage: $l}) { ref } }"
LOG = "mutation($r: String!, $k: String!, $v: Float!) { logMetrics(input: {ref: $r, metrics: [{key: $k, value: $v}]}) { ref } }"
DELETE = "mutation($m: String!) { deleteModel(name: $m) { name } }"
ADD_EDGE = ("mutation($r: String!, $p: String!) { addLineage(input: {ref: $r, parent: $p, "
            "relation: DERIVED_FROM}) { ref } }")


def codes(body: dict[str, Any]) -> list[str]:
    return [e.get("extensions", {}).get("code", "?") for e in body.get("errors") or []]


def succeeded(body: dict[str, Any]) -> bool:
    assert "INTERNAL" not in codes(body), body
    return not body.get("errors")


@pytest.fixture
def posts(gql: GraphQLClient) -> list[Post]:
    """Two ways in to the same catalog: here, both the in-process app."""
    return [gql.raw, gql.raw]


def _remote(url: str, http: httpx.AsyncClient) -> Post:
    async def post(query: str, variables: dict[str, Any]) -> dict[str, Any]:
        r = await http.post(f"{url}/graphql", json={"query": query, "variables": variables},
                            headers={"Authorization": f"Bearer {ADMIN_SECRET}"})
        assert r.status_code in (200, 400), r.text
        return dict(r.json())
    return post


async def _alias_against_archive(a: Post, b: Post, model: str) -> None:
    assert succeeded(await a('mutation($m: String!) { createModel(input: {name: $m}) { name } }', {"m": model}))
    for n in range(1, ROUNDS + 1):
        assert succeeded(await a(CREATE, {"m": model, "l": []}))
        ref = f"{model}:{n}"
        moved, archived = await asyncio.gather(a(SET_ALIAS, {"m": model, "v": str(n)}), b(ARCHIVE, {"r": ref}))
        assert succeeded(moved) != succeeded(archived), (n, moved, archived)
        assert set(codes(moved) + codes(archived)) <= {"CONFLICT"}
        state = await a('query($r: String!, $p: String!) { version(ref: $r) { status } '
                        'prod: version(ref: $p) { ref status } }', {"r": ref, "p": f"{model}@prod"})
        prod = state["data"]["prod"]
        assert prod is None or prod["status"] != "ARCHIVED", (n, state)


async def test_set_alias_racing_archive_never_leaves_an_alias_on_an_archived_version(posts: list[Post]) -> None:
    await _alias_against_archive(posts[0], posts[1], "race")


async def _metrics_with_one_new_key(post: Post, model: str) -> None:
    assert succeeded(await post('mutation($m: String!) { createModel(input: {name: $m}) { name } }', {"m": model}))
    assert succeeded(await post(CREATE, {"m": model, "l": []}))
    for n in range(5):
        key = f"new-{n}"
        bodies = await asyncio.gather(*(post(LOG, {"r": f"{model}:1", "k": key, "v": float(i)}) for i in range(12)))
        assert all(succeeded(b) for b in bodies), bodies
        data = await post('query($r: String!, $k: String!) { version(ref: $r) { metric(key: $k) { value } '
                          'metricHistory(key: $k) { value } } }', {"r": f"{model}:1", "k": key})
        version = data["data"]["version"]
        assert sorted(p["value"] for p in version["metricHistory"]) == [float(i) for i in range(12)]
        assert version["metric"]["value"] in range(12)


async def test_concurrent_new_metric_keys_are_all_stored(gql: GraphQLClient) -> None:
    await _metrics_with_one_new_key(gql.raw, "metrics")


async def _delete_against_child(a: Post, b: Post, prefix: str) -> None:
    outcomes = set()
    for n in range(ROUNDS):
        base, child = f"{prefix}-base-{n}", f"{prefix}-child-{n}"
        for m in (base, child):
            assert succeeded(await a('mutation($m: String!) { createModel(input: {name: $m}) { name } }', {"m": m}))
        assert succeeded(await a(CREATE, {"m": base, "l": []}))
        lineage = [{"parent": f"{base}:1", "relation": "FINE_TUNED_FROM"}]
        created, deleted = await asyncio.gather(b(CREATE, {"m": child, "l": lineage}), a(DELETE, {"m": base}))
        made, gone = succeeded(created), succeeded(deleted)
        assert made != gone, (created, deleted)  # one wins; the other is told why
        assert set(codes(created) + codes(deleted)) <= {"CONFLICT", "NOT_FOUND"}
        outcomes.add("created" if made else "deleted")
        state = await a('query($c: String!, $b: String!) { version(ref: $c) { parents { relation } } '
                        'model(name: $b) { name } }', {"c": f"{child}:1", "b": base})
        if made:
            assert state["data"]["model"] is not None
            assert [p["relation"] for p in state["data"]["version"]["parents"]] == ["FINE_TUNED_FROM"]
        else:
            assert state["data"]["model"] is None and state["data"]["version"] is None


async def test_delete_model_racing_a_child_version_is_conflict_or_not_found(posts: list[Post]) -> None:
    await _delete_against_child(posts[0], posts[1], "del")


async def _edges_both_ways(a: Post, b: Post, prefix: str) -> None:
    for n in range(ROUNDS):
        x, y = f"{prefix}-x-{n}", f"{prefix}-y-{n}"
        for m in (x, y):
            assert succeeded(await a('mutation($m: String!) { createModel(input: {name: $m}) { name } }', {"m": m}))
            assert succeeded(await a(CREATE, {"m": m, "l": []}))
        one, two = await asyncio.gather(a(ADD_EDGE, {"r": f"{x}:1", "p": f"{y}:1"}),
                                        b(ADD_EDGE, {"r": f"{y}:1", "p": f"{x}:1"}))
        assert succeeded(one) != succeeded(two), (one, two)  # both would close a cycle
        assert set(codes(one) + codes(two)) == {"CONFLICT"}


async def test_opposite_lineage_edges_at_once_never_make_a_cycle(posts: list[Post]) -> None:
    await _edges_both_ways(posts[0], posts[1], "cyc")


async def test_races_across_two_replicas(pg_replicas: list[str]) -> None:
    """The same races with each side on another replica of one PostgreSQL catalog."""
    async with httpx.AsyncClient(timeout=60) as http:
        a, b = (_remote(url, http) for url in pg_replicas)
        await _alias_against_archive(a, b, "rep-race")
        await _metrics_with_one_new_key(b, "rep-metrics")
        await _delete_against_child(a, b, "rep-del")
        await _edges_both_ways(a, b, "rep-cyc")
