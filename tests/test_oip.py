"""Open Inference Protocol V2 (REST) on the server, read by a real OIP client (tritonclient)."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import tritonclient.http as triton
from asgi_lifespan import LifespanManager
from tortoise import connections
from tritonclient.utils import InferenceServerException

import modelyard
from modelyard.app import create_app
from modelyard.config import Settings
from tests.conftest import ADMIN_SECRET
from tests.onnx_models import mlp_model

AUTH = {"Authorization": f"Bearer {ADMIN_SECRET}"}


def _put_blob(http: httpx.Client, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert http.put(f"/api/blobs/{digest}", content=data).status_code == 201
    return digest


def _gql(http: httpx.Client, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = http.post("/graphql", json={"query": query, "variables": variables or {}}).json()
    assert not body.get("errors"), body["errors"]
    return body["data"]


def _version(http: httpx.Client, model: str, files: dict[str, bytes]) -> int:
    artifacts = [{"path": path, "digest": _put_blob(http, data)} for path, data in files.items()]
    created = _gql(
        http,
        "mutation($m: String!, $a: [ArtifactInput!]!) { createVersion(input: {model: $m, artifacts: $a}) { number } }",
        {"m": model, "a": artifacts},
    )
    return int(created["createVersion"]["number"])


def _model(http: httpx.Client, name: str) -> None:
    _gql(http, "mutation($n: String!) { createModel(input: {name: $n}) { name } }", {"n": name})


MLP8 = mlp_model(hidden=16, features=8, classes=3).SerializeToString()
MLP4 = mlp_model(hidden=16, features=4, classes=2, seed=1).SerializeToString()


@pytest.fixture(scope="module")
def catalog(live_server: str) -> Iterator[str]:
    """On the live server: `oip-clf` v1 (8 features, archived later) and v2 (4 features, alias
    `production`), `oip-card` with a model card only, `vision/oip-net` with one ONNX model."""
    with httpx.Client(base_url=live_server, headers=AUTH) as http:
        _model(http, "oip-clf")
        assert _version(http, "oip-clf", {"onnx/model.onnx": MLP8}) == 1
        assert _version(http, "oip-clf", {"model.onnx": MLP4, "README.md": b"# clf\n"}) == 2
        assert _version(http, "oip-clf", {"model.onnx": MLP8}) == 3
        _gql(http, 'mutation { archiveVersion(ref: "oip-clf:3") { status } }')
        _gql(http, 'mutation { setAlias(input: {model: "oip-clf", alias: "production", version: "1"}) { name } }')
        _model(http, "oip-card")
        _version(http, "oip-card", {"README.md": b"# no onnx here\n"})
        _model(http, "vision/oip-net")
        _version(http, "vision/oip-net", {"model.onnx": MLP4})
    yield live_server


@pytest.fixture
def oip(catalog: str) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(urlsplit(catalog).netloc)
    yield client
    client.close()


def tensor(name: str, shape: list[int]) -> dict[str, Any]:
    return {"name": name, "datatype": "FP32", "shape": shape}


def test_server_health_and_metadata(oip: triton.InferenceServerClient) -> None:
    assert oip.is_server_live() is True
    assert oip.is_server_ready() is True
    assert oip.get_server_metadata() == {"name": "modelyard", "version": modelyard.__version__, "extensions": []}


def test_model_metadata_latest_and_by_version(oip: triton.InferenceServerClient) -> None:
    latest = oip.get_model_metadata("oip-clf")
    # v3 is archived: the latest READY version is v2, and only READY versions are listed
    assert latest == {
        "name": "oip-clf", "versions": ["1", "2"], "platform": "onnx_onnxv1",
        "inputs": [tensor("x", [-1, 4])], "outputs": [tensor("logits", [-1, 2])],
    }
    first = oip.get_model_metadata("oip-clf", "1")
    assert first["inputs"] == [tensor("x", [-1, 8])] and first["outputs"] == [tensor("logits", [-1, 3])]
    assert oip.get_model_metadata("oip-clf", "2") == latest
    assert oip.get_model_metadata("oip-clf", "production")["inputs"] == first["inputs"]  # an alias
    assert oip.get_model_metadata("oip-clf", "latest") == latest
    archived = oip.get_model_metadata("oip-clf", "3")  # archive is soft: metadata still answers
    assert archived["inputs"] == first["inputs"] and archived["versions"] == ["1", "2"]


def test_model_ready(oip: triton.InferenceServerClient) -> None:
    assert oip.is_model_ready("oip-clf") is True
    assert oip.is_model_ready("oip-clf", "1") is True
    assert oip.is_model_ready("oip-clf", "3") is False  # archived
    assert oip.is_model_ready("oip-card") is False  # no ONNX model
    assert oip.is_model_ready("nope") is False
    assert oip.is_model_ready("oip-clf", "9") is False


def test_unknown_models_and_versions_raise_404(oip: triton.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as unknown:
        oip.get_model_metadata("nope")
    assert unknown.value.status() == "404" and "model 'nope' does not exist" in unknown.value.message()
    with pytest.raises(InferenceServerException) as missing:
        oip.get_model_metadata("oip-clf", "9")
    assert missing.value.status() == "404" and "oip-clf:9" in missing.value.message()
    with pytest.raises(InferenceServerException) as card:
        oip.get_model_metadata("oip-card")
    assert card.value.status() == "404" and "no ONNX model" in card.value.message()


def test_namespaced_model_names(oip: triton.InferenceServerClient, catalog: str) -> None:
    meta = oip.get_model_metadata("vision/oip-net")  # tritonclient sends the slash as is
    assert meta["name"] == "vision/oip-net" and meta["versions"] == ["1"]
    assert meta["inputs"] == [tensor("x", [-1, 4])]
    assert oip.get_model_metadata("vision/oip-net", "1") == meta
    assert oip.is_model_ready("vision/oip-net") is True
    assert oip.is_model_ready("vision/oip-net", "1") is True
    encoded = httpx.get(f"{catalog}/v2/models/vision%2Foip-net/versions/1")
    assert encoded.status_code == 200 and encoded.json() == meta


def test_plain_http_bodies_and_errors(catalog: str) -> None:
    with httpx.Client(base_url=catalog) as http:
        assert http.get("/v2/health/live").json() == {"live": True}
        assert http.get("/v2/health/ready").json() == {"ready": True}
        ready = http.get("/v2/models/oip-clf/versions/2/ready")
        assert (ready.status_code, ready.json()) == (200, {"name": "oip-clf", "ready": True})
        archived = http.get("/v2/models/oip-clf/versions/3/ready")
        assert archived.status_code == 503
        assert archived.json() == {"name": "oip-clf", "ready": False, "error": "oip-clf:3 is ARCHIVED, not READY"}
        card = http.get("/v2/models/oip-card/ready")
        assert card.status_code == 503 and card.json()["error"] == "oip-card:1 holds no ONNX model"
        unknown = http.get("/v2/models/nope/ready")
        assert unknown.status_code == 404
        assert unknown.json() == {"error": "model 'nope' does not exist", "code": "NOT_FOUND"}
        for bad in ("/v2/models/Not_A_Name", "/v2/models/a/b/c", "/v2/models/oip-clf/versions/x%20y"):
            answer = http.get(bad)
            assert answer.status_code == 400 and answer.json()["code"] == "INVALID", bad
        infer = http.post("/v2/models/oip-clf/infer", json={"inputs": []})
        assert infer.status_code == 501 and "desktop agent" in infer.json()["error"]
        assert http.post("/v2/models/nope/versions/1/infer", json={}).status_code == 404
        wrong = http.post("/v2/models/oip-clf", json={})
        assert wrong.status_code == 405 and wrong.headers["allow"] == "GET"


async def test_private_reads_need_a_token(settings: Settings) -> None:
    app = create_app(dataclasses.replace(settings, public_read=False))
    async with LifespanManager(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        anonymous = await http.get("/v2/models/anything")
        assert anonymous.status_code == 401 and anonymous.json()["code"] == "UNAUTHENTICATED"
        assert (await http.get("/v2/models/anything", headers=AUTH)).status_code == 404
        assert (await http.get("/v2/health/ready")).json() == {"ready": True}  # probes need no token
        assert (await http.get("/v2")).status_code == 200


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_server_not_ready_without_its_database(client: httpx.AsyncClient, settings: Settings) -> None:
    folder = Path(settings.database_url.removeprefix("sqlite://")).parent
    away = folder.with_name(f"{folder.name}-away")
    await connections.close_all()
    folder.rename(away)
    try:
        ready = await client.get("/v2/health/ready")
        live = await client.get("/v2/health/live")
    finally:
        away.rename(folder)
        await connections.close_all()  # Tortoise keeps its lock after a failed connect
    assert ready.status_code == 503
    assert ready.json() == {"ready": False, "error": "the catalog database is unavailable (OperationalError)"}
    assert (live.status_code, live.json()) == (200, {"live": True})
