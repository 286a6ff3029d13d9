"""Look-ahead on version pages: fields the page prefetched answer without a task per row, and
what they answer is what the ordinary path answers."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.conftest import GraphQLClient
from tests.helpers import model, version

FIELDS = 'ref model { name } param(key: "lr") { value } metric(key: "acc") { value } params { key value } ' \
         'metrics { key value } tags { key value } aliases { name } ' \
         'parents { relation parent { ... on ModelVersion { ref model { name } } } } children { relation child { number } }'
SEARCH = '{ versions(first: %d, orderBy: [{field: MODEL_NAME, descending: false}, {field: NUMBER, descending: false}]) ' \
         '{ nodes { %s } } }'
PAGE = '{ model(name: "m") { versions(first: %d) { edges { node { %s } } } } }'


@pytest.fixture
async def catalog(gql: GraphQLClient) -> None:
    for name in ("m", "n"):
        await model(gql, name)
        for i in range(12):
            lineage = [{"parent": f"{name}:{i}", "relation": "FINE_TUNED_FROM"}] if i else []
            await version(gql, name, lineage=lineage, params=[{"key": "lr", "value": i / 100}, {"key": "opt", "value": "adam"}],
                          metrics=[{"key": "acc", "value": i / 12}] if i % 3 else [],
                          tags=[{"key": "i", "value": str(i)}])
    await gql.ok('mutation { setAlias(input: {model: "m", alias: "prod", version: "3"}) { name } }')


@contextmanager
def counted_tasks() -> Iterator[list[int]]:
    """How many asyncio tasks the loop creates meanwhile."""
    loop = asyncio.get_running_loop()
    count = [0]
    previous = loop.get_task_factory()

    def factory(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kw: Any) -> asyncio.Task[Any]:
        count[0] += 1
        return asyncio.Task(coro, loop=loop, **kw)

    loop.set_task_factory(factory)  # type: ignore[arg-type]
    try:
        yield count
    finally:
        loop.set_task_factory(previous)


@pytest.mark.parametrize("doc", [SEARCH, PAGE], ids=["search", "model page"])
async def test_prefetched_fields_take_no_task_per_row(gql: GraphQLClient, catalog: None, doc: str) -> None:
    tasks = []
    for first in (2, 12):
        with counted_tasks() as count:
            data = await gql.ok(doc % (first, FIELDS))
        tasks.append(count[0])
        rows = data["versions"]["nodes"] if "versions" in data else data["model"]["versions"]["edges"]
        assert len(rows) == first
    # a task per row would add 10 for each such field; loaders' own tasks vary by one or two
    assert tasks[1] <= tasks[0] + 2, f"tasks for 2 rows, 12 rows: {tasks}"


async def test_prefetched_answers_equal_the_ordinary_path(gql: GraphQLClient, catalog: None) -> None:
    """The ordinary path: the same fields reached through `version(ref)` one at a time, and
    through a fragment the look-ahead has to follow."""
    data = await gql.ok(SEARCH % (24, "...F") + f" fragment F on ModelVersion {{ {FIELDS} }}")
    nodes = data["versions"]["nodes"]
    assert [n["ref"] for n in nodes] == [f"{m}:{i}" for m in "mn" for i in range(1, 13)]
    for node in nodes:
        one = await gql.ok(f"query($r: String!) {{ version(ref: $r) {{ {FIELDS} }} }}", {"r": node["ref"]})
        assert one["version"] == node
    assert nodes[2]["aliases"] == [{"name": "prod"}] and nodes[0]["metric"] is None


async def test_a_bad_key_still_fails_its_own_field(gql: GraphQLClient, catalog: None) -> None:
    body = await gql.raw(SEARCH % (3, 'ref param(key: "no spaces") { value }'))
    assert body["errors"][0]["extensions"]["code"] == "INVALID" and "no spaces" in body["errors"][0]["message"]


async def test_light_version_rows_read_what_the_orm_reads(gql: GraphQLClient) -> None:
    """Pages read versions without the ORM; a version answered from the ORM row that
    createVersion wrote has the same times, run and signature-less facts."""
    await model(gql, "t")
    fields = "ref number status description manifestDigest createdAt updatedAt createdBy run { runId startedAt } modelInfo { opset }"
    created = (await gql.ok(f"""mutation {{ createVersion(input: {{model: "t", description: "d",
        run: {{runId: "r1", startedAt: "2026-01-02T03:04:05.678901+02:00"}}}}) {{ {fields} }} }}"""))["createVersion"]
    page = (await gql.ok(f'{{ versions(filter: {{model: "t"}}) {{ nodes {{ {fields} }} }} }}'))["versions"]["nodes"]
    listed = (await gql.ok(f'{{ model(name: "t") {{ versions {{ nodes {{ {fields} }} }} }} }}'))["model"]["versions"]["nodes"]
    assert page == listed == [created]
    assert created["run"] == {"runId": "r1", "startedAt": "2026-01-02T03:04:05.678901+02:00"}
