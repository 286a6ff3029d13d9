"""Tokens that expire (issue 11, item 10): `expiresAt` on createToken, refused after it with
TOKEN_EXPIRED (HTTP 401), `lastUsedAt` shown to admins, both in the CLI."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from modelyard.catalog import tokens
from modelyard.catalog.tokens import Scope
from tests.conftest import GraphQLClient
from tests.helpers import replay

CREATE = ("mutation($n: String!, $e: DateTime) { createToken(input: {name: $n, scope: WRITE, expiresAt: $e}) "
          "{ secret token { name expiresAt lastUsedAt } } }")


async def test_a_token_works_until_it_expires(gql: GraphQLClient, client: httpx.AsyncClient) -> None:
    soon = datetime.now(UTC) + timedelta(hours=1)
    made = (await gql.ok(CREATE, {"n": "ci", "e": soon.isoformat()}))["createToken"]
    assert datetime.fromisoformat(made["token"]["expiresAt"]) == soon
    assert made["token"]["lastUsedAt"] is None
    as_ci = gql.as_token(made["secret"])
    await as_ci.ok('mutation { createModel(input: {name: "before-expiry"}) { name } }')
    listed = {t["name"]: t for t in (await gql.ok("{ tokens { name expiresAt lastUsedAt } }"))["tokens"]}
    assert listed["ci"]["lastUsedAt"] is not None
    # The clock is the database's and ours: move the expiry into the past, as time would.
    await tokens.TokenRow.filter(name="ci").update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    error = await as_ci.error('mutation { createModel(input: {name: "after-expiry"}) { name } }')
    assert error["extensions"]["code"] == "TOKEN_EXPIRED" and "ci" in error["message"]
    r = await client.put("/api/blobs/sha256:" + "0" * 64, content=b"x",
                         headers={"Authorization": f"Bearer {made['secret']}"})
    assert r.status_code == 401 and r.json()["code"] == "TOKEN_EXPIRED"
    names = [m["name"] for m in (await gql.ok("{ models { nodes { name } } }"))["models"]["nodes"]]
    assert names == ["before-expiry"]


async def test_a_token_without_expiry_never_expires(gql: GraphQLClient) -> None:
    made = (await gql.ok(CREATE, {"n": "forever", "e": None}))["createToken"]
    assert made["token"]["expiresAt"] is None
    await gql.as_token(made["secret"]).ok("{ models { nodes { name } } }")


@pytest.mark.parametrize("when", ["2001-01-01T00:00:00+00:00", "2999-01-01T00:00:00"])
async def test_an_expiry_in_the_past_or_without_a_zone_is_invalid(gql: GraphQLClient, when: str) -> None:
    error = await gql.error(CREATE, {"n": "bad", "e": when})
    assert error["extensions"]["code"] == "INVALID"
    assert [t["name"] for t in (await gql.ok("{ tokens { name } }"))["tokens"]] == ["admin-env"]


async def test_last_used_is_written_at_most_once_a_minute(gql: GraphQLClient) -> None:
    secret, _ = await tokens.create_token("reader", Scope.READ, actor="test")
    for _ in range(5):
        await tokens.authenticate(secret)
    first = (await tokens.TokenRow.get(name="reader")).last_used_at
    assert first is not None
    await tokens.authenticate(secret)
    assert (await tokens.TokenRow.get(name="reader")).last_used_at == first
    await tokens.TokenRow.filter(name="reader").update(last_used_at=first - timedelta(minutes=2))
    await tokens.authenticate(secret)
    assert (await tokens.TokenRow.get(name="reader")).last_used_at > first - timedelta(minutes=1)


def test_cli_creates_expiring_tokens_and_lists_expiry(tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "modelyard.cli", "token", *args, "--data-dir", str(tmp_path)],
                              capture_output=True, text=True)

    made = cli("create", "--name", "ci", "--scope", "write", "--expires-in", "30d")
    assert made.returncode == 0, made.stderr
    assert "expires" in made.stderr
    listed = cli("list")
    assert "ci" in listed.stdout and "expires " in listed.stdout and "never used" in listed.stdout
    bad = cli("create", "--name", "x", "--scope", "write", "--expires-in", "soon")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "--expires-in" in bad.stderr


async def test_an_open_subscription_ends_when_its_token_expires(live_server: str) -> None:
    async with httpx.AsyncClient(base_url=live_server) as http:
        admin = GraphQLClient(http)
        expires = datetime.now(UTC) + timedelta(seconds=2)
        made = (await admin.ok(CREATE, {"n": "short-lived", "e": expires.isoformat()}))["createToken"]
        name = f"expiry-{made['secret'][-6:].lower().replace('_', 'x').replace('-', 'x')}"

        async def change_after_expiry() -> None:
            await asyncio.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.5)
            await admin.ok("mutation($n: String!) { createModel(input: {name: $n}) { name } }", {"n": name})

        query = "subscription { events { kind objectRef } }"
        messages, _ = await asyncio.gather(replay(live_server, made["secret"], query, quiet=10),
                                           change_after_expiry())
    assert messages, "the subscription ended without a word"
    last = messages[-1]
    assert last.get("errors"), messages
    assert last["errors"][0]["extensions"]["code"] == "TOKEN_EXPIRED", last
    assert all(name not in str(m.get("data")) for m in messages)
