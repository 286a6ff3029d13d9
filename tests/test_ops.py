"""Operations endpoints: `/healthz` follows the database, `/metrics` tells what was served."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families
from tortoise import connections

from modelyard.config import Settings
from tests.conftest import PG_ADMIN_URL, GraphQLClient

LIST = "query ListModels { models { totalCount } }"
CREATE = 'mutation CreateModel { createModel(input: {name: "ops"}) { name } }'


async def scrape(client: httpx.AsyncClient) -> dict[str, dict[tuple[str, ...], float]]:
    """`/metrics` parsed: sample name → label values (in label-name order) → value."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    samples: dict[str, dict[tuple[str, ...], float]] = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples.setdefault(s.name, {})[tuple(v for _, v in sorted(s.labels.items()))] = s.value
    return samples


def nonzero(series: dict[tuple[str, ...], float]) -> dict[tuple[str, ...], float]:
    return {labels: value for labels, value in series.items() if value}


async def test_healthz_ok_when_the_database_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_healthz_reopens_a_dropped_sqlite_connection(client: httpx.AsyncClient) -> None:
    await connections.close_all()
    assert (await client.get("/healthz")).status_code == 200


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_healthz_503_when_the_sqlite_file_is_gone(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    # SQLite fails only when opening the file: lose the connection, then the folder holding it.
    folder = Path(settings.database_url.removeprefix("sqlite://")).parent
    away = folder.with_name(f"{folder.name}-away")
    await connections.close_all()
    folder.rename(away)
    try:
        response = await client.get("/healthz")
    finally:
        away.rename(folder)
        # Tortoise 1.1.9 keeps its lock after a failed connect: drop that client before teardown.
        await connections.close_all()
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "OperationalError"}


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_healthz_503_while_postgres_refuses_then_200(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    database = settings.database_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", database
        )
        down = await client.get("/healthz")
        again = await client.get("/healthz")
    finally:
        await admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS true')
        await admin.close()
    assert (down.status_code, again.status_code) == (503, 503)
    body = again.json()
    assert body["status"] == "unavailable"
    assert body["database"] and "127.0.0.1" not in body["database"] and database not in body["database"]
    back = await client.get("/healthz")
    assert (back.status_code, back.json()) == (200, {"status": "ok", "database": "ok"})


async def test_metrics_count_requests_operations_and_error_codes(
    client: httpx.AsyncClient, gql: GraphQLClient
) -> None:
    await gql.ok(LIST)
    await gql.ok(CREATE)
    assert (await gql.error(CREATE))["extensions"]["code"] == "CONFLICT"
    assert (await gql.error("{ models {"))["extensions"]["code"] == "INVALID"

    metrics = await scrape(client)
    # The scrape itself is counted once it has been answered, so it is not in its own numbers.
    assert metrics["modelyard_http_requests_total"] == {("POST", "/graphql", "200"): 4}
    assert metrics["modelyard_http_request_duration_seconds_count"] == {("POST", "/graphql"): 4}
    assert metrics["modelyard_graphql_operations_total"] == {
        ("ListModels", "query"): 1, ("CreateModel", "mutation"): 2, ("unknown", "unknown"): 1,
    }
    assert nonzero(metrics["modelyard_graphql_errors_total"]) == {("CONFLICT",): 1, ("INVALID",): 1}
    assert metrics["modelyard_graphql_errors_total"][("NOT_FOUND",)] == 0
    assert nonzero(metrics["modelyard_graphql_operation_duration_seconds_count"]) == {
        ("query",): 1, ("mutation",): 2, ("unknown",): 1,
    }

    after = await scrape(client)
    assert after["modelyard_http_requests_total"][("GET", "/metrics", "200")] == 1


async def test_metrics_label_routes_by_template_never_by_raw_path(client: httpx.AsyncClient) -> None:
    asset = await client.get("/static/graphiql/raw-4f1d.js")  # 404 unless such a file ships
    assert (await client.get("/no/such/page/42")).status_code == 404
    assert (await client.request("BREW", "/healthz")).status_code == 405

    text = (await client.get("/metrics")).text
    assert "raw-4f1d" not in text and "/no/such" not in text and "BREW" not in text
    requests = (await scrape(client))["modelyard_http_requests_total"]
    assert requests == {
        ("GET", "/static/graphiql/{path}", str(asset.status_code)): 1,
        ("GET", "unmatched", "404"): 1,
        ("other", "/healthz", "405"): 1,
        ("GET", "/metrics", "200"): 1,
    }


async def test_metrics_operation_names_are_capped(client: httpx.AsyncClient, gql: GraphQLClient) -> None:
    for i in range(120):
        await gql.ok(f"query Invented{i} {{ __typename }}")

    operations = (await scrape(client))["modelyard_graphql_operations_total"]
    assert len(operations) == 101
    assert operations[("other", "query")] == 20
    assert sum(operations.values()) == 120


async def test_metrics_speak_prometheus_and_openmetrics(client: httpx.AsyncClient) -> None:
    plain = await client.get("/metrics")
    assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")

    om = await client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert om.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    names = {family.name for family in parse_openmetrics(om.text)}
    assert {"modelyard_http_requests", "modelyard_graphql_errors", "process_resident_memory_bytes"} <= names
