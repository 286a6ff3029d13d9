"""Access control: who may call which mutation and read what, with which token (issue 3).

Every mutation of the schema is run by every kind of principal on a freshly seeded catalog; a
refusal must carry the right code, say why, and leave every table exactly as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from tortoise import connections

from modelyard.app import create_app
from modelyard.config import Settings
from tests.conftest import ADMIN_SECRET, GraphQLClient
from tests.test_audit import (
    CASES,
    INSIDE,
    MUTATIONS,
    OUTSIDE,
    PRINCIPALS,
    Principal,
    namespace_of,
    newest_event_id,
    seed,
    snapshot,
)

ADMIN_ONLY = {"createToken", "revokeToken", "deleteModel"}
SCOPES = ["READ", "WRITE", "ADMIN"]
MATRIX_PRINCIPALS = [p for p in PRINCIPALS if p != "vision-read"]


def refusal(mutation: str, principal: Principal, model: str) -> tuple[str, list[str]] | None:
    """The code `principal` must get for `mutation` on `model` and what its message must name;
    None when the call is allowed."""
    if principal.token is None:
        return "UNAUTHENTICATED", ["token", "Bearer"]
    token = f"'{principal.token}'"
    needed = "admin" if mutation in ADMIN_ONLY else "write"
    if SCOPES.index(principal.scope) < SCOPES.index(needed.upper()):
        return "FORBIDDEN", [token, f"scope {principal.scope.lower()}", needed]
    if principal.namespace is not None and mutation in ADMIN_ONLY:
        return "FORBIDDEN", [token, f"'{principal.namespace}'", "namespace"]
    if principal.namespace is not None and namespace_of(model) != principal.namespace:
        return "FORBIDDEN", [token, f"'{principal.namespace}'", f"'{model}"]
    return None


@pytest.mark.parametrize("who", MATRIX_PRINCIPALS)
@pytest.mark.parametrize("mutation", MUTATIONS)
async def test_auth_matrix(gql: GraphQLClient, mutation: str, who: str) -> None:
    """`mutation` run by `who` on a model inside the namespace `vision`, then on one outside it."""
    if mutation not in CASES:
        pytest.fail(f"mutation {mutation} has no case in CASES: add one")
    secrets = await seed(gql)
    principal = PRINCIPALS[who]
    caller = gql.as_token(secrets.get(principal.token or ""))
    for model in (INSIDE, OUTSIDE):  # each case touches only its own model (or token)
        call = CASES[mutation](model)
        before = await snapshot()

        body = await caller.raw(call.document, call.variables)

        expected = refusal(mutation, principal, model)
        after = await snapshot()
        if expected is None:
            assert not body.get("errors"), (model, body["errors"])
            assert after != before, model
            events = [e for e in after["audit_event"] if e["id"] > newest_event_id(before)]
            assert {e["actor"] for e in events} == {principal.token}, model
            continue
        assert body.get("errors"), f"{who} was allowed to run {mutation} on {model}: {body}"
        error = body["errors"][0]
        code, named = expected
        assert error["extensions"]["code"] == code, (model, error)
        assert body["data"] == {mutation: None}, model  # mutation results are nullable (issue 11 item 9)
        assert after == before, f"a refused {mutation} on {model} changed the catalog"
        assert all(word in error["message"] for word in named), f"{error['message']!r} should name {named}"


# --- bad credentials are refused everywhere, even where no token is needed ----------------------

REQUESTS = {
    "public query": ("{ models { nodes { name } } }", {}),
    "query of a model": ("query($n: String!) { model(name: $n) { name } }", {"n": OUTSIDE}),
    "mutation": ("mutation { createModel(input: {name: \"intruder\"}) { name } }", {}),
    "admin mutation": ("mutation { revokeToken(name: \"root\") { name } }", {}),
}
UNKNOWN_SECRET = "myd_" + "b" * 43
BAD_HEADERS = {
    "basic scheme": "Basic x",
    "bearer without token": "Bearer",
    "bearer with blank": "Bearer   ",
    "not a token": "Bearer not-a-token",
    "token one char short": "Bearer " + UNKNOWN_SECRET[:-1],
    "unknown token": f"Bearer {UNKNOWN_SECRET}",
    "other scheme with a good token": "Token {root}",
    "revoked token": "Bearer {other-spare}",
}


async def post(client: httpx.AsyncClient, headers: dict[str, str], query: str, variables: dict[str, Any]) -> Any:
    response = await client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
    assert response.status_code in (200, 400), response.text
    return response.json()


@pytest.mark.parametrize("header", BAD_HEADERS)
async def test_bad_credentials_are_unauthenticated_and_change_nothing(
    gql: GraphQLClient, client: httpx.AsyncClient, header: str
) -> None:
    secrets = await seed(gql)
    await gql.ok('mutation { revokeToken(name: "other-spare") { name } }')
    bad = {"Authorization": BAD_HEADERS[header].format(**secrets)}
    before = await snapshot()
    for kind, (query, variables) in REQUESTS.items():
        body = await post(client, bad, query, variables)

        assert not any((body["data"] or {}).values()), kind
        assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"], kind
        message = body["errors"][0]["message"]
        assert all(s not in message for s in secrets.values())
        if header == "revoked token":
            assert "'other-spare'" in message and "revoked" in message
    blob = f"/api/blobs/sha256:{hashlib.sha256(b'weights').hexdigest()}"
    for response in (await client.get(blob, headers=bad), await client.put(blob, content=b"weights", headers=bad)):
        assert (response.status_code, response.json()["code"]) == (401, "UNAUTHENTICATED"), response.request
    assert await snapshot() == before


async def test_the_bearer_scheme_is_case_insensitive(gql: GraphQLClient, client: httpx.AsyncClient) -> None:
    secrets = await seed(gql)
    body = await post(client, {"Authorization": f"bearer {secrets['writer']}"},
                      'mutation { createModel(input: {name: "fine"}) { createdBy } }', {})
    assert body == {"data": {"createModel": {"createdBy": "writer"}}}


# --- reads ------------------------------------------------------------------------------------

READS = {
    "models": ("{ models { totalCount nodes { name } } }", {}),
    "model": ("query($n: String!) { model(name: $n) { name } }", {"n": OUTSIDE}),
    "version": ("query($r: String!) { version(ref: $r) { ref } }", {"r": f"{OUTSIDE}@production"}),
    "versions": ("{ versions { nodes { ref } } }", {}),
    "lineage": ("query($r: String!) { lineage(ref: $r) { root { ref } } }", {"r": f"{OUTSIDE}:2"}),
    "dataset": ("query($n: String!) { dataset(name: $n) { name } }", {"n": f"{OUTSIDE}-data"}),
    "auditLog": ("{ auditLog(first: 5) { nodes { kind } } }", {}),
}


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[GraphQLClient]:
    """The app for `settings`, running, with a client (as the env admin token)."""
    application = create_app(settings)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield GraphQLClient(http)


@pytest.mark.parametrize("read", READS)
async def test_reads_are_anonymous_by_default(gql: GraphQLClient, read: str) -> None:
    await seed(gql)
    data = await gql.as_token(None).ok(*READS[read])
    assert all(value is not None for value in data.values())


async def test_private_reads_need_a_read_token(settings: Settings) -> None:
    async with serve(dataclasses.replace(settings, public_read=False)) as gql:
        secrets = await seed(gql)
        for read, (query, variables) in READS.items():
            error = await gql.as_token(None).error(query, variables)
            assert error["extensions"]["code"] == "UNAUTHENTICATED", read
            assert "read" in error["message"] and "Bearer" in error["message"], read
            for reader in ("reader", "writer"):
                data = await gql.as_token(secrets[reader]).ok(query, variables)
                assert all(value is not None for value in data.values()), (read, reader)


async def test_introspection_is_open_even_when_reads_are_private(settings: Settings) -> None:
    """The schema is public (schema.graphql is in the repo; GraphiQL needs it before any login)."""
    async with serve(dataclasses.replace(settings, public_read=False)) as gql:
        data = await gql.as_token(None).ok("{ __schema { mutationType { fields { name } } } }")
    assert sorted(f["name"] for f in data["__schema"]["mutationType"]["fields"]) == MUTATIONS


ID_OF = """query($m: String!, $r: String!, $d: String!) {
  model(name: $m) { id } version(ref: $r) { id } dataset(name: $d) { id versions { id } }
}"""
NODE = "query($id: ID!) { node(id: $id) { id } }"


async def test_a_namespaced_token_reads_only_its_namespace_when_reads_are_private(settings: Settings) -> None:
    async with serve(dataclasses.replace(settings, public_read=False)) as admin:
        secrets = await seed(admin)
        ids = {}
        for m in (INSIDE, OUTSIDE):
            data = await admin.ok(ID_OF, {"m": m, "r": f"{m}:1", "d": f"{m}-data"})
            ids[m] = [data["model"]["id"], data["version"]["id"], data["dataset"]["id"],
                      data["dataset"]["versions"][0]["id"]]
        gql = admin.as_token(secrets["vision-reader"])

        listed = await gql.ok("{ models { totalCount nodes { name } } }")
        assert listed["models"] == {"totalCount": 1, "nodes": [{"name": INSIDE}]}
        found = await gql.ok("{ versions(first: 50) { totalCount nodes { ref } } }")
        assert found["versions"]["totalCount"] == 3
        assert {v["ref"] for v in found["versions"]["nodes"]} == {f"{INSIDE}:{n}" for n in (1, 2, 3)}
        other = await gql.ok('{ versions(filter: {model: "other"}) { nodes { ref } } }')
        assert other["versions"]["nodes"] == []
        assert (await gql.ok(READS["model"][0], {"n": INSIDE}))["model"] == {"name": INSIDE}
        for node_id in ids[INSIDE]:
            assert (await gql.ok(NODE, {"id": node_id}))["node"] == {"id": node_id}

        refused = [
            (READS["model"][0], {"n": OUTSIDE}),
            (READS["model"][0], {"n": "missing"}),  # refused before it is looked up: no existence leak
            (READS["version"][0], {"r": f"{OUTSIDE}:1"}),
            (READS["lineage"][0], {"r": f"{OUTSIDE}:2"}),
            (READS["dataset"][0], {"n": f"{OUTSIDE}-data"}),
            ('{ models(filter: {namespace: "elsewhere"}) { nodes { name } } }', {}),
            *[(NODE, {"id": node_id}) for node_id in ids[OUTSIDE]],
        ]
        for query, variables in refused:
            error = await gql.error(query, variables)
            assert error["extensions"]["code"] == "FORBIDDEN", (query, variables, error)
            assert "'vision-reader'" in error["message"] or "'vision'" in error["message"], error

        log = await gql.ok("{ auditLog(first: 100) { nodes { objectRef } } }")
        refs = {e["objectRef"] for e in log["auditLog"]["nodes"]}
        assert refs == {INSIDE, f"{INSIDE}-data@2024-01", f"{INSIDE}@production",
                        *(f"{INSIDE}:{n}" for n in (1, 2, 3, 4))}


LINEAGE_OF = """query($r: String!) {
  version(ref: $r) { parents { parent { ... on ModelVersion { ref description model { name } } } } }
  lineage(ref: $r) { nodes { ... on ModelVersion { ref } } }
}"""


async def test_a_namespaced_token_sees_no_outside_version_through_lineage(settings: Settings) -> None:
    """Reads are private: `vision/resnet:5` came from `other:1`, which the vision token may not read."""
    async with serve(dataclasses.replace(settings, public_read=False)) as admin:
        secrets = await seed(admin)
        await admin.ok('mutation { updateVersion(input: {ref: "other:1", description: "secret recipe"}) { ref } }')
        await admin.ok('mutation { createVersion(input: {model: "vision/resnet", '
                       'lineage: [{parent: "other:1", relation: FINE_TUNED_FROM}]}) { ref } }')

        body = await admin.as_token(secrets["vision-reader"]).raw(LINEAGE_OF, {"r": f"{INSIDE}:5"})

    shown = json.dumps(body.get("data"))
    assert "other:1" not in shown and "secret recipe" not in shown, body
    for error in body.get("errors") or []:
        assert error["extensions"]["code"] == "FORBIDDEN", error


async def test_a_namespaced_token_reads_everything_when_reads_are_public(gql: GraphQLClient) -> None:
    secrets = await seed(gql)
    reader = gql.as_token(secrets["vision-reader"])
    listed = await reader.ok("{ models { nodes { name } } }")
    assert {m["name"] for m in listed["models"]["nodes"]} == {INSIDE, OUTSIDE}
    assert (await reader.ok(READS["model"][0], {"n": OUTSIDE}))["model"] == {"name": OUTSIDE}


# --- tokens -----------------------------------------------------------------------------------

CREATE_TOKEN = """mutation($i: CreateTokenInput!) {
  createToken(input: $i) { secret token { name scope namespace prefix createdBy revokedAt } }
}"""
TOKENS = "{ tokens { name scope namespace prefix createdBy revokedAt } }"
WHO_AM_I = 'mutation { createModel(input: {name: "probe"}) { createdBy } }'


async def test_create_token_shows_the_secret_once_and_stores_only_its_hash(
    gql: GraphQLClient, client: httpx.AsyncClient
) -> None:
    data = await gql.ok(CREATE_TOKEN, {"i": {"name": "ci", "scope": "WRITE", "namespace": "vision"}})
    secret = data["createToken"]["secret"]
    assert secret.startswith("myd_") and len(secret) == 47
    assert data["createToken"]["token"] == {
        "name": "ci", "scope": "WRITE", "namespace": "vision", "prefix": secret[:10],
        "createdBy": "admin-env", "revokedAt": None,
    }

    shape = await gql.ok('{ __type(name: "Token") { fields { name } } }')
    assert "secret" not in {f["name"] for f in shape["__type"]["fields"]}  # shown once, never again
    listing = await client.post("/graphql", json={"query": TOKENS},
                                headers={"Authorization": f"Bearer {ADMIN_SECRET}"})
    assert secret not in listing.text and ADMIN_SECRET not in listing.text
    tokens = {t["name"]: t for t in listing.json()["data"]["tokens"]}
    assert tokens["ci"]["prefix"] == secret[:10] and tokens["admin-env"]["scope"] == "ADMIN"

    db = connections.get("default")
    rows = await db.execute_query_dict("SELECT * FROM token WHERE name = 'ci'")
    assert rows[0]["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    for table, content in (await snapshot()).items():
        assert secret not in repr(content), f"the secret is stored in {table}"
        assert ADMIN_SECRET not in repr(content), f"the admin secret is stored in {table}"

    assert (await gql.as_token(secret).ok('mutation { createModel(input: {name: "vision/a"}) { createdBy } }')) == {
        "createModel": {"createdBy": "ci"}
    }


async def test_revoked_token_stops_working_at_once(gql: GraphQLClient) -> None:
    secret = (await gql.ok(CREATE_TOKEN, {"i": {"name": "ci", "scope": "WRITE"}}))["createToken"]["secret"]
    assert (await gql.as_token(secret).ok(WHO_AM_I))["createModel"]["createdBy"] == "ci"

    revoked = await gql.ok('mutation { revokeToken(name: "ci") { name revokedAt } }')
    assert revoked["revokeToken"]["revokedAt"] is not None

    for query in (WHO_AM_I, "{ models { totalCount } }"):
        error = await gql.as_token(secret).error(query)
        assert error["extensions"]["code"] == "UNAUTHENTICATED"
        assert "'ci'" in error["message"] and "revoked" in error["message"]
    listing = {t["name"]: t for t in (await gql.ok(TOKENS))["tokens"]}
    assert listing["ci"]["revokedAt"] == revoked["revokeToken"]["revokedAt"]
    again = await gql.error('mutation { revokeToken(name: "ci") { name } }')
    assert again["extensions"]["code"] == "CONFLICT"


async def test_duplicate_token_name_is_conflict_and_keeps_the_first(gql: GraphQLClient) -> None:
    first = (await gql.ok(CREATE_TOKEN, {"i": {"name": "ci", "scope": "WRITE"}}))["createToken"]["secret"]
    before = await snapshot()
    error = await gql.error(CREATE_TOKEN, {"i": {"name": "ci", "scope": "ADMIN"}})
    assert error["extensions"]["code"] == "CONFLICT" and "'ci'" in error["message"]
    assert await snapshot() == before
    assert (await gql.as_token(first).ok(WHO_AM_I))["createModel"]["createdBy"] == "ci"


async def test_tokens_list_is_for_admins_only(gql: GraphQLClient) -> None:
    secrets = await seed(gql)
    names = [t["name"] for t in (await gql.as_token(secrets["root"]).ok(TOKENS))["tokens"]]
    assert names == sorted(["admin-env", "other-spare", "vision-resnet-spare",
                            *(p.token for p in PRINCIPALS.values() if p.token)])
    assert (await gql.as_token(None).error(TOKENS))["extensions"]["code"] == "UNAUTHENTICATED"
    for name in ("reader", "writer", "vision-admin"):
        error = await gql.as_token(secrets[name]).error(TOKENS)
        assert error["extensions"]["code"] == "FORBIDDEN" and f"'{name}'" in error["message"], error


async def test_admin_token_setting_seeds_a_working_admin_and_rotates(settings: Settings) -> None:
    new_secret = "myd_" + "N" * 43
    env = {"MODELYARD_ADMIN_TOKEN": ADMIN_SECRET, "MODELYARD_DATABASE_URL": settings.database_url,
           "MODELYARD_DATA_DIR": str(settings.data_dir)}
    loaded = Settings.load(env=env)
    assert ADMIN_SECRET not in repr(loaded)
    async with serve(loaded) as gql:
        assert (await gql.ok(WHO_AM_I))["createModel"]["createdBy"] == "admin-env"
        listing = (await gql.ok(TOKENS))["tokens"]
        assert [(t["name"], t["scope"]) for t in listing] == [("admin-env", "ADMIN")]
    async with serve(loaded) as gql:  # a restart with the same secret keeps the same token
        assert [t["name"] for t in (await gql.ok(TOKENS))["tokens"]] == ["admin-env"]
    async with serve(Settings.load(env={**env, "MODELYARD_ADMIN_TOKEN": new_secret})) as gql:
        error = await gql.error(TOKENS)
        assert error["extensions"]["code"] == "UNAUTHENTICATED"
        assert [t["name"] for t in (await gql.as_token(new_secret).ok(TOKENS))["tokens"]] == ["admin-env"]


async def cli(*args: str, data: list[str]) -> tuple[int, str, str]:
    """`python -m modelyard.cli token …` as a user would run it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "modelyard.cli", "token", *args, *data, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_cli_tokens_end_to_end(settings: Settings, db_url: str, tmp_path: Path) -> None:
    if db_url.startswith("sqlite"):
        data = ["--data-dir", str(tmp_path / "cli")]
        served = Settings(data_dir=tmp_path / "cli")
    else:
        data = ["--database-url", db_url]
        served = dataclasses.replace(settings, admin_token="")

    code, out, err = await cli("create", "--name", "ci", "--scope", "write", "--namespace", "vision", data=data)
    assert code == 0, err
    secret = out.strip()
    assert secret.startswith("myd_") and len(secret) == 47
    assert secret not in err and "shown only now" in err

    code, out, err = await cli("list", data=data)
    assert code == 0, err
    assert secret not in out
    assert out.split()[:4] == ["ci", "write", "vision", f"{secret[:10]}…"] and "active" in out

    async with serve(served) as gql:
        ci = gql.as_token(secret)
        created = await ci.ok('mutation { createModel(input: {name: "vision/a"}) { createdBy } }')
        assert created == {"createModel": {"createdBy": "ci"}}
        error = await ci.error('mutation { createModel(input: {name: "b"}) { name } }')
        assert error["extensions"]["code"] == "FORBIDDEN"

        code, _, err = await cli("revoke", "ci", data=data)
        assert code == 0 and "revoked token 'ci'" in err
        assert (await ci.error("{ models { totalCount } }"))["extensions"]["code"] == "UNAUTHENTICATED"

    code, out, _ = await cli("list", data=data)
    assert "revoked" in out
    code, _, err = await cli("revoke", "ci", data=data)
    assert code == 2 and "already revoked" in err


async def test_secrets_never_reach_the_logs(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("tortoise", "tortoise.db_client", "modelyard", "httpx"):
        caplog.set_level(logging.DEBUG, logger=name)
    async with serve(settings) as gql:  # seeding MODELYARD_ADMIN_TOKEN is logged too
        secrets = await seed(gql)
        for secret in secrets.values():
            await gql.as_token(secret).raw("{ models { totalCount } }")
            await gql.as_token(secret).raw(WHO_AM_I)
        await gql.ok('mutation { revokeToken(name: "other-spare") { name } }')
        await gql.as_token(secrets["other-spare"]).raw("{ models { totalCount } }")
        await gql.as_token(secrets["other-spare"] + "x").raw("{ models { totalCount } }")
        await gql.ok(TOKENS)
    logged = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
    assert any(r.name.startswith("tortoise.db_client") for r in caplog.records), "SQL was not logged"
    for secret in [ADMIN_SECRET, *secrets.values()]:
        assert secret not in logged
