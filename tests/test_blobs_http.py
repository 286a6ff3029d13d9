"""Blobs and resumable uploads over HTTP, on the local and the S3 backend alike."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy
import onnxruntime
import pytest
from asgi_lifespan import LifespanManager

from modelyard.app import create_app
from modelyard.config import Settings
from modelyard.storage import BlobStore, LocalBlobStore
from tests.conftest import ADMIN_SECRET, GraphQLClient, free_port, running
from tests.onnx_models import mlp_model


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


DATA = os.urandom(3 * 1024 * 1024 + 17)
DIGEST = digest_of(DATA)


async def put(client: httpx.AsyncClient, data: bytes, digest: str | None = None) -> httpx.Response:
    return await client.put(f"/api/blobs/{digest or digest_of(data)}", content=data)


async def test_put_head_get_and_ranges(store_client: httpx.AsyncClient) -> None:
    created = await put(store_client, DATA)
    assert created.status_code == 201 and created.json() == {"digest": DIGEST, "size": len(DATA)}
    head = await store_client.head(f"/api/blobs/{DIGEST}")
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(DATA)
    assert head.headers["etag"] == f'"{DIGEST}"' and "immutable" in head.headers["cache-control"]
    full = await store_client.get(f"/api/blobs/{DIGEST}")
    assert full.status_code == 200 and full.content == DATA
    part = await store_client.get(f"/api/blobs/{DIGEST}", headers={"Range": "bytes=1000-2999999"})
    assert part.status_code == 206 and part.content == DATA[1000:3000000]
    assert part.headers["content-range"] == f"bytes 1000-2999999/{len(DATA)}"
    tail = await store_client.get(f"/api/blobs/{DIGEST}", headers={"Range": "bytes=-17"})
    assert tail.status_code == 206 and tail.content == DATA[-17:]
    beyond = await store_client.get(f"/api/blobs/{DIGEST}", headers={"Range": f"bytes={len(DATA)}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(DATA)}"
    cached = await store_client.get(f"/api/blobs/{DIGEST}", headers={"If-None-Match": f'"{DIGEST}"'})
    assert cached.status_code == 304 and cached.content == b""
    again = await put(store_client, DATA)  # an existing blob: a verified no-op
    assert again.status_code == 201


async def test_wrong_digest_stores_nothing(store_client: httpx.AsyncClient) -> None:
    claimed = digest_of(b"something else")
    refused = await put(store_client, DATA, claimed)
    assert refused.status_code == 400 and refused.json()["code"] == "INVALID"
    assert claimed in refused.json()["error"]
    for digest in (claimed, DIGEST):
        assert (await store_client.head(f"/api/blobs/{digest}")).status_code == 404


@pytest.mark.parametrize("bad", ["sha256:xyz", "md5:" + "0" * 32, "sha256:" + "A" * 64, "sha256:" + "0" * 63])
async def test_malformed_digests_are_invalid(store_client: httpx.AsyncClient, bad: str) -> None:
    for response in (await store_client.get(f"/api/blobs/{bad}"), await put(store_client, b"x", bad)):
        assert response.status_code == 400 and response.json()["code"] == "INVALID"


async def test_writes_need_a_write_token(store_client: httpx.AsyncClient) -> None:
    anonymous = await store_client.put(f"/api/blobs/{DIGEST}", content=DATA, headers={"Authorization": ""})
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "UNAUTHENTICATED"
    created = await store_client.post(
        "/graphql", json={"query": 'mutation { createToken(input: {name: "r", scope: READ}) { secret } }'}
    )
    secret = created.json()["data"]["createToken"]["secret"]
    reader = await store_client.put(f"/api/blobs/{DIGEST}", content=DATA, headers={"Authorization": f"Bearer {secret}"})
    assert reader.status_code == 403 and reader.json()["code"] == "FORBIDDEN"
    assert (await store_client.post("/api/uploads", headers={"Authorization": ""})).status_code == 401
    assert (await store_client.head(f"/api/blobs/{DIGEST}")).status_code == 404  # nothing stored


async def test_resumable_upload(store_client: httpx.AsyncClient) -> None:
    started = await store_client.post("/api/uploads")
    assert started.status_code == 201
    location = started.headers["location"]
    first = await store_client.patch(location, content=DATA[:1_000_000], headers={"Upload-Offset": "0"})
    assert first.status_code == 204 and first.headers["upload-offset"] == "1000000"
    status = await store_client.head(location)
    assert status.headers["upload-offset"] == "1000000"
    wrong = await store_client.patch(location, content=DATA[500:], headers={"Upload-Offset": "500"})
    assert wrong.status_code == 416 and wrong.headers["upload-offset"] == "1000000"
    rest = await store_client.patch(location, content=DATA[1_000_000:], headers={"Upload-Offset": "1000000"})
    assert rest.headers["upload-offset"] == str(len(DATA))
    assert (await store_client.head(f"/api/blobs/{DIGEST}")).status_code == 404  # not visible yet
    done = await store_client.put(f"{location}?digest={DIGEST}")
    assert done.status_code == 201 and done.json() == {"digest": DIGEST, "size": len(DATA)}
    assert (await store_client.get(f"/api/blobs/{DIGEST}")).content == DATA
    assert (await store_client.head(location)).status_code == 404  # the upload is gone


async def test_upload_with_wrong_digest_or_unknown_id(store_client: httpx.AsyncClient) -> None:
    location = (await store_client.post("/api/uploads")).headers["location"]
    await store_client.patch(location, content=DATA, headers={"Upload-Offset": "0"})
    claimed = digest_of(b"not these bytes")
    refused = await store_client.put(f"{location}?digest={claimed}")
    assert refused.status_code == 400 and refused.json()["code"] == "INVALID"
    assert (await store_client.head(f"/api/blobs/{claimed}")).status_code == 404
    assert (await store_client.head(f"/api/blobs/{DIGEST}")).status_code == 404
    for unknown in ("/api/uploads/" + "0" * 32, "/api/uploads/not-an-id"):
        answer = await store_client.patch(unknown, content=b"x", headers={"Upload-Offset": "0"})
        assert answer.status_code == 404 and answer.json()["code"] == "NOT_FOUND"
    no_offset = await store_client.patch((await store_client.post("/api/uploads")).headers["location"], content=b"x")
    assert no_offset.status_code == 400 and "Upload-Offset" in no_offset.json()["error"]


async def test_versions_take_uploaded_blobs(store_client: httpx.AsyncClient) -> None:
    gql = GraphQLClient(store_client, ADMIN_SECRET)
    await gql.ok('mutation { createModel(input: {name: "m"}) { name } }')
    create = "mutation($a: [ArtifactInput!]!) { createVersion(input: {model: \"m\", artifacts: $a}) { ref status manifestDigest totalSize artifacts { path digest size mediaType } } }"
    card = b"# model card\n"
    missing = await gql.error(create, {"a": [{"path": "weights.bin", "digest": DIGEST}]})
    assert missing["extensions"]["code"] == "NOT_FOUND" and "weights.bin" in missing["message"]
    await put(store_client, DATA)
    await put(store_client, card)
    for bad in ("../etc/passwd", "/abs", "a\\b", "a//b", "./a", ""):
        err = await gql.error(create, {"a": [{"path": bad, "digest": DIGEST}]})
        assert err["extensions"]["code"] == "INVALID"
    dup = await gql.error(create, {"a": [{"path": "x", "digest": DIGEST}, {"path": "x", "digest": DIGEST}]})
    assert dup["extensions"]["code"] == "INVALID"
    v = (await gql.ok(create, {"a": [{"path": "weights.bin", "digest": DIGEST}, {"path": "README.md", "digest": digest_of(card)}]}))["createVersion"]
    assert v["ref"] == "m:1" and v["status"] == "READY" and v["totalSize"] == len(DATA) + len(card)
    assert [a["path"] for a in v["artifacts"]] == ["README.md", "weights.bin"]
    assert v["artifacts"][0]["mediaType"] == "text/markdown"
    other = (await gql.ok(create, {"a": [{"path": "weights.bin", "digest": DIGEST}]}))["createVersion"]
    assert other["manifestDigest"] != v["manifestDigest"]
    pinned = await gql.ok('query($r: String!) { version(ref: $r) { number } }', {"r": f"m@{v['manifestDigest']}"})
    assert pinned["version"]["number"] == 1


def test_client_that_disconnects_mid_upload_leaves_nothing(live_server: str) -> None:
    """A real server, a real socket: half a body, then the connection drops."""
    data = os.urandom(4 * 1024 * 1024)
    digest = digest_of(data)
    parts = urlsplit(live_server)
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        head = (
            f"PUT /api/blobs/{digest} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_SECRET}\r\n"
            f"Content-Length: {len(data)}\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        sock.sendall(head.encode() + data[: len(data) // 2])
    answer = httpx.head(f"{live_server}/api/blobs/{digest}")
    assert answer.status_code == 404
    # and the same bytes uploaded whole afterwards are accepted
    done = httpx.put(f"{live_server}/api/blobs/{digest}", content=data, headers={"Authorization": f"Bearer {ADMIN_SECRET}"})
    assert done.status_code == 201


async def test_s3_downloads_redirect_to_presigned_urls(settings: Settings, blob_store: BlobStore) -> None:
    """With redirects on, S3 answers 307 to a presigned URL that serves ranges itself; local serves."""
    application = create_app(settings, store=blob_store)
    async with LifespanManager(application), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="http://test",
        headers={"Authorization": f"Bearer {ADMIN_SECRET}"},
    ) as client:
        await put(client, DATA)
        answer = await client.get(f"/api/blobs/{DIGEST}")
        if isinstance(blob_store, LocalBlobStore):
            assert answer.status_code == 200 and answer.content == DATA
            return
        assert answer.status_code == 307
        url = answer.headers["location"]
        async with httpx.AsyncClient() as outside:  # straight to the S3 server, no token
            whole = await outside.get(url)
            part = await outside.get(url, headers={"Range": "bytes=10-19"})
        assert whole.content == DATA
        assert part.status_code == 206 and part.content == DATA[10:20]


async def test_onnx_signature_and_facts_are_served(store_client: httpx.AsyncClient) -> None:
    """A version holding a real ONNX model shows its inputs, outputs and facts in GraphQL."""
    model = mlp_model(hidden=16, features=8, classes=3)
    data = model.SerializeToString()
    await put(store_client, data)
    gql = GraphQLClient(store_client, ADMIN_SECRET)
    await gql.ok('mutation { createModel(input: {name: "clf", task: TABULAR_CLASSIFICATION}) { name } }')
    v = (await gql.ok(
        "mutation($d: String!) { createVersion(input: {model: \"clf\", artifacts: [{path: \"onnx/model.onnx\", digest: $d}]}) {"
        " signature { inputs { name datatype shape } outputs { name datatype shape } }"
        " modelInfo { file irVersion opset producerName parameterCount externalDataFiles } } }",
        {"d": digest_of(data)},
    ))["createVersion"]
    session_inputs = [(i.name, i.shape) for i in onnx_inputs(data)]
    assert [(i["name"], i["shape"]) for i in v["signature"]["inputs"]] == [
        (name, [-1 if not isinstance(d, int) else d for d in shape]) for name, shape in session_inputs
    ]
    assert v["signature"]["inputs"][0]["datatype"] == "FP32"
    params = sum(int(numpy.prod(t.dims)) for t in model.graph.initializer)
    info = v["modelInfo"]
    assert info["file"] == "onnx/model.onnx" and info["parameterCount"] == params
    assert info["irVersion"] == model.ir_version and info["opset"]["ai.onnx"] == model.opset_import[0].version
    assert info["externalDataFiles"] == []


def onnx_inputs(data: bytes) -> list[onnxruntime.NodeArg]:
    """What ONNX Runtime itself reports: the oracle."""
    return onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"]).get_inputs()


async def test_a_broken_onnx_model_is_refused_and_nothing_is_created(store_client: httpx.AsyncClient) -> None:
    data = mlp_model().SerializeToString()[:200]  # cut short
    await put(store_client, data)
    gql = GraphQLClient(store_client, ADMIN_SECRET)
    await gql.ok('mutation { createModel(input: {name: "clf"}) { name } }')
    err = await gql.error(
        'mutation($d: String!) { createVersion(input: {model: "clf", artifacts: [{path: "model.onnx", digest: $d}]}) { ref } }',
        {"d": digest_of(data)},
    )
    assert err["extensions"]["code"] == "INVALID" and "model.onnx" in err["message"]
    assert (await gql.ok('{ model(name: "clf") { versions { totalCount } } }'))["model"]["versions"]["totalCount"] == 0


async def test_blobs_over_the_size_limit_are_refused(settings: Settings, blob_store: BlobStore) -> None:
    """A single PUT and a resumable upload past MODELYARD_MAX_BLOB_SIZE: LIMIT, nothing stored."""
    application = create_app(dataclasses.replace(settings, max_blob_size=1024 * 1024), store=blob_store)
    async with LifespanManager(application), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="http://test",
        headers={"Authorization": f"Bearer {ADMIN_SECRET}"},
    ) as client:
        big = DATA[: 1024 * 1024 + 1]
        refused = await put(client, big)
        assert refused.status_code == 400 and refused.json()["code"] == "LIMIT"
        location = (await client.post("/api/uploads")).headers["location"]
        over = await client.patch(location, content=big, headers={"Upload-Offset": "0"})
        assert over.status_code == 400 and over.json()["code"] == "LIMIT"
        assert (await client.head(location)).headers["upload-offset"] == "0"  # the refused bytes are dropped
        assert (await client.head(f"/api/blobs/{digest_of(big)}")).status_code == 404
        assert (await put(client, big[:-1])).status_code == 201  # exactly the limit is fine


def test_a_silent_client_does_not_hold_its_upload(tmp_path: Path) -> None:
    """A client stops mid-PATCH without closing: after the body timeout its bytes stay staged,
    the upload is free again and another request resumes it."""
    port = free_port()
    env = {**os.environ, "MODELYARD_DATA_DIR": str(tmp_path), "MODELYARD_PORT": str(port),
           "MODELYARD_ADMIN_TOKEN": ADMIN_SECRET, "MODELYARD_BODY_TIMEOUT_SECONDS": "1"}
    env.pop("MODELYARD_DATABASE_URL", None)
    url = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {ADMIN_SECRET}"}
    data = os.urandom(2 * 1024 * 1024)
    with running([sys.executable, "-m", "modelyard.cli", "serve"], env, f"{url}/healthz", tmp_path / "log"):
        location = httpx.post(f"{url}/api/uploads", headers=auth).headers["location"]
        with socket.create_connection(("127.0.0.1", port)) as sock:
            head = (f"PATCH {location} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_SECRET}\r\n"
                    f"Upload-Offset: 0\r\nContent-Length: {len(data)}\r\n\r\n")
            sock.sendall(head.encode() + data[: len(data) // 2])
            answer = sock.recv(4096).decode()  # the server gives up on the silent body
            assert answer.startswith("HTTP/1.1 408"), answer
            held = int(httpx.head(f"{url}{location}", headers=auth).headers["upload-offset"])
            assert 0 < held <= len(data) // 2
            rest = httpx.patch(f"{url}{location}", content=data[held:], headers={**auth, "Upload-Offset": str(held)})
            assert rest.status_code == 204, rest.text
        done = httpx.put(f"{url}{location}?digest={digest_of(data)}", headers=auth)
        assert done.status_code == 201
        assert httpx.get(f"{url}/api/blobs/{digest_of(data)}").content == data


async def test_a_full_disk_answers_503_and_leaves_nothing(settings: Settings, tiny_disk: Path) -> None:
    """The local store on a real 1 MiB filesystem: a 2 MiB blob cannot fit."""
    application = create_app(settings, store=LocalBlobStore(tiny_disk))
    async with LifespanManager(application), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="http://test",
        headers={"Authorization": f"Bearer {ADMIN_SECRET}"},
    ) as client:
        big = DATA[: 2 * 1024 * 1024]
        full = await put(client, big)
        assert full.status_code == 503 and full.json()["code"] == "UNAVAILABLE"
        assert "cannot write" in full.json()["error"]
        assert (await client.head(f"/api/blobs/{digest_of(big)}")).status_code == 404
        assert list((tiny_disk / "tmp").iterdir()) == []  # the partial file is gone
        assert (await put(client, DATA[:1000])).status_code == 201  # the store still works


async def test_abort_and_finish_without_digest(store_client: httpx.AsyncClient) -> None:
    location = (await store_client.post("/api/uploads")).headers["location"]
    await store_client.patch(location, content=b"abc", headers={"Upload-Offset": "0"})
    missing = await store_client.put(location)
    assert missing.status_code == 400 and "digest" in missing.json()["error"]
    assert (await store_client.delete(location)).status_code == 204
    assert (await store_client.head(location)).status_code == 404
    again = await store_client.delete(location)
    assert again.status_code == 404 and again.json()["code"] == "NOT_FOUND"


HUGE = "9" * 5000


@pytest.mark.parametrize("header", [f"bytes=0-{HUGE}", f"bytes={HUGE}-", f"bytes=-{HUGE}", f"bytes={HUGE}-{HUGE}",
                                    "bytes=0-99999999999999999999", "bytes=99999999999999999999-"])
async def test_range_numbers_past_64_bits_are_refused(store_client: httpx.AsyncClient, header: str) -> None:
    """Issue 11, item 7: a 5,000-digit Range position answered 500."""
    await put(store_client, DATA[:1000])
    answer = await store_client.get(f"/api/blobs/{digest_of(DATA[:1000])}", headers={"Range": header})
    assert answer.status_code in (400, 416) and answer.json()["code"] == "INVALID", answer.text
    assert (await store_client.get(f"/api/blobs/{digest_of(DATA[:1000])}")).content == DATA[:1000]


@pytest.mark.parametrize("offset", [HUGE.encode(), b"\xb2", b"-1", b"+1", b"0x0", b" ", b"1.0", b"\xd9\xa0"])
async def test_bad_upload_offsets_are_invalid(store_client: httpx.AsyncClient, offset: bytes) -> None:
    """Huge, negative, non-ASCII digits ('\xb2' is a superscript two) and garbage: 400, nothing lost."""
    location = (await store_client.post("/api/uploads")).headers["location"]
    assert (await store_client.patch(location, content=b"abc", headers={"Upload-Offset": "0"})).status_code == 204
    answer = await store_client.patch(location, content=b"def", headers=[(b"Upload-Offset", offset)])
    assert answer.status_code == 400 and answer.json()["code"] == "INVALID", answer.text
    assert "Upload-Offset" in answer.json()["error"]
    assert (await store_client.head(location)).headers["upload-offset"] == "3"
