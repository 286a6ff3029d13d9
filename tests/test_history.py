"""Alias history and time travel: who moved `production`, when, and what it pointed at then."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.conftest import GraphQLClient
from tests.helpers import model, version

SET = 'mutation($v: String!) { setAlias(input: {model: "m", alias: "production", version: $v}) { name } }'
AT = 'query($at: DateTime) { version(ref: "m@production", at: $at) { number } }'
HISTORY = '{ model(name: "m") { aliasHistory(alias: "production") { version { number } at actor } } }'


async def test_alias_history_and_time_travel(gql: GraphQLClient) -> None:
    await model(gql, "m")
    for _ in range(3):
        await version(gql, "m")
    await gql.ok(SET, {"v": "1"})
    await gql.ok(SET, {"v": "3"})
    await gql.ok('mutation { deleteAlias(input: {model: "m", alias: "production"}) { name } }')
    await gql.ok(SET, {"v": "2"})

    moves = (await gql.ok(HISTORY))["model"]["aliasHistory"]
    assert [m["version"]["number"] if m["version"] else None for m in moves] == [2, None, 3, 1]
    assert {m["actor"] for m in moves} == {"admin-env"}
    times = [datetime.fromisoformat(m["at"]) for m in reversed(moves)]  # oldest first
    assert times == sorted(times)

    async def at(moment: datetime) -> int | None:
        found = (await gql.ok(AT, {"at": moment.isoformat()}))["version"]
        return found["number"] if found else None

    assert await at(times[0] - timedelta(seconds=1)) is None  # before the alias existed
    assert await at(times[0]) == 1
    assert await at(times[1]) == 3
    assert await at(times[2]) is None  # deleted then
    assert await at(times[3]) == 2
    assert (await gql.ok(AT, {"at": None}))["version"]["number"] == 2


async def test_time_travel_on_numbers_and_latest(gql: GraphQLClient) -> None:
    await model(gql, "m")
    await version(gql, "m")
    first = (await gql.ok('{ version(ref: "m:1") { createdAt } }'))["version"]["createdAt"]
    await version(gql, "m")
    q = 'query($r: String!, $at: DateTime) { version(ref: $r, at: $at) { number } }'
    assert (await gql.ok(q, {"r": "m", "at": first}))["version"] == {"number": 1}
    assert (await gql.ok(q, {"r": "m:2", "at": first}))["version"] is None  # did not exist yet
    assert (await gql.ok(q, {"r": "m", "at": None}))["version"] == {"number": 2}


async def test_alias_events_record_actor_and_move(gql: GraphQLClient) -> None:
    await model(gql, "m")
    await version(gql, "m")
    await version(gql, "m")
    await gql.ok(SET, {"v": "1"})
    await gql.ok(SET, {"v": "2"})
    log = await gql.ok('{ auditLog(first: 2, filter: {model: "m", kinds: [ALIAS_SET]}) { nodes { actor objectRef changes } } }')
    assert log["auditLog"]["nodes"] == [
        {"actor": "admin-env", "objectRef": "m@production", "changes": {"version": {"before": 1, "after": 2}}},
        {"actor": "admin-env", "objectRef": "m@production", "changes": {"version": {"before": None, "after": 1}}},
    ]
