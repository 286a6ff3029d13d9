"""A server killed while it finishes an upload (issue 11, item 2), on the local and the S3 store.

The store makes a blob visible only whole and verified, then the catalog records it. A kill -9
between the two leaves bytes without a record: such a blob must be usable (HEAD, GET and
`createVersion` agree), a retried push must complete, and no kill may ever expose a partial
blob. The state a kill leaves is built directly first (deterministic), then a bounded loop
kills real `modelyard serve` processes at three points of a single PUT and of a finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelyard.client import Registry
from modelyard.db.tables import BlobRow
from modelyard.storage import BlobStore
from tests.conftest import ADMIN_SECRET, S3_KEYS, GraphQLClient, free_port, fresh_database, running

MiB = 1024 * 1024
AUTH = {"Authorization": f"Bearer {ADMIN_SECRET}"}
CREATE = ("mutation($m: String!, $d: String!) { createVersion(input: {model: $m, "
          "artifacts: [{path: \"w.bin\", digest: $d}]}) { ref artifacts { digest size } } }")


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def stream(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 64 * 1024):
        yield data[start : start + 64 * 1024]
        await asyncio.sleep(0)


async def test_a_blob_stored_but_not_recorded_is_usable(store_client: httpx.AsyncClient, blob_store: BlobStore) -> None:
    """The state a kill leaves between the store's rename (or S3 commit) and the catalog's row."""
    data = os.urandom(300_000)
    digest = digest_of(data)
    await blob_store.put(stream(data), digest)
    assert not await BlobRow.exists(digest=digest)
    head = await store_client.head(f"/api/blobs/{digest}")
    assert head.status_code == 200 and head.headers["content-length"] == str(len(data))
    gql = GraphQLClient(store_client)
    await gql.ok('mutation { createModel(input: {name: "m"}) { name } }')
    created = (await gql.ok(CREATE, {"m": "m", "d": digest}))["createVersion"]
    assert created["artifacts"] == [{"digest": digest, "size": len(data)}]
    assert (await store_client.get(f"/api/blobs/{digest}")).content == data


async def test_a_finish_retried_after_the_blob_was_stored_completes(
    store_client: httpx.AsyncClient, blob_store: BlobStore
) -> None:
    """S3 commits the blob, then ends the upload: killed in between, the retry finds both."""
    data = os.urandom(200_000)
    digest = digest_of(data)
    location = (await store_client.post("/api/uploads")).headers["location"]
    await store_client.patch(location, content=data, headers={"Upload-Offset": "0"})
    await blob_store.put(stream(data), digest)  # committed, not recorded, upload still open
    done = await store_client.put(f"{location}?digest={digest}")
    assert done.status_code == 201 and done.json() == {"digest": digest, "size": len(data)}
    assert (await store_client.head(location)).status_code == 404
    assert await BlobRow.exists(digest=digest)


# -- real processes, killed ------------------------------------------------------------------

class Server:
    """`modelyard serve` on one data dir (SQLite) and one blob store, started again and again."""

    def __init__(self, tmp: Path, storage: dict[str, str]) -> None:
        self.tmp = tmp
        self.env = {**os.environ, "MODELYARD_DATA_DIR": str(tmp / "data"), "MODELYARD_ADMIN_TOKEN": ADMIN_SECRET,
                    **storage}
        self.env.pop("MODELYARD_DATABASE_URL", None)
        self.starts = 0

    def start(self) -> Any:
        """A context manager: the process, up, with its URL in `self.url`."""
        self.starts += 1
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {**self.env, "MODELYARD_PORT": str(port)}
        return running([sys.executable, "-m", "modelyard.cli", "serve"], env, f"{self.url}/healthz",
                       self.tmp / f"server{self.starts}.log")


def send(url: str, method: str, path: str, body: bytes) -> socket.socket:
    """Send a whole request on a raw socket and return it, without waiting for the answer."""
    port = int(url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port))
    head = (f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_SECRET}\r\n"
            f"Content-Length: {len(body)}\r\nContent-Type: application/octet-stream\r\n\r\n")
    sock.sendall(head.encode() + body)
    sock.setblocking(False)
    return sock


def answered(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) != b""
    except BlockingIOError:
        return False


def wait_for(sock: socket.socket, holds: Callable[[str], bool], digest: str) -> None:
    """Until the store shows the blob or the server answers: the crash window opens there."""
    while not holds(digest) and not answered(sock):
        pass


def check_consistent(url: str, digest: str, data: bytes) -> None:
    """Visible means whole: HEAD 200 only for the complete, verified bytes."""
    head = httpx.head(f"{url}/api/blobs/{digest}")
    assert head.status_code in (200, 404), head.text
    if head.status_code == 200:
        assert int(head.headers["content-length"]) == len(data)
        assert httpx.get(f"{url}/api/blobs/{digest}", follow_redirects=True).content == data


@dataclass
class Backend:
    """A fresh database and store for `modelyard serve`, and looks at the store from outside."""

    env: dict[str, str]
    holds: Callable[[str], bool]  # whether the store shows a digest's blob
    leftovers: Callable[[], list[str]]  # temp data and staged uploads


@contextlib.contextmanager
def backend(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Backend]:
    """SQLite with a local folder, or PostgreSQL with a bucket on moto."""
    if kind == "local":
        root = tmp_path / "blobs"
        yield Backend(
            {"MODELYARD_STORAGE_URL": str(root)},
            lambda digest: (root / "blobs" / "sha256" / digest.removeprefix("sha256:")).exists(),
            lambda: [str(p) for p in [*root.joinpath("tmp").iterdir(), *root.joinpath("uploads").rglob("*")]
                     if p.is_file()],
        )
        return
    admin = request.getfixturevalue("s3_admin")
    bucket = f"crash-{uuid.uuid4().hex[:12]}"
    admin.create_bucket(Bucket=bucket)

    def keys(prefix: str) -> list[str]:
        return [item["Key"] for item in admin.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]

    def leftovers() -> list[str]:
        multipart = admin.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        return keys("registry/tmp/") + keys("registry/uploads/") + [u["Key"] for u in multipart]

    with fresh_database("modelyard_crash") as database:
        yield Backend(
            {"MODELYARD_DATABASE_URL": database, "MODELYARD_STORAGE_URL": f"s3://{bucket}/registry",
             "MODELYARD_S3_ENDPOINT_URL": request.getfixturevalue("s3_endpoint"),
             "MODELYARD_S3_REGION": S3_KEYS["region"], "MODELYARD_S3_ACCESS_KEY": S3_KEYS["access_key"],
             "MODELYARD_S3_SECRET_KEY": S3_KEYS["secret_key"]},
            lambda digest: bool(keys(f"registry/blobs/sha256/{digest.removeprefix('sha256:')}")),
            leftovers,
        )


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_kill_9_while_storing_never_exposes_a_partial_blob_and_push_recovers(
    tmp_path: Path, request: pytest.FixtureRequest, kind: str
) -> None:
    """Six kills per store (local folder on SQLite, S3 on PostgreSQL): {single PUT, finish of a
    resumable upload} x {as the request is sent, as soon as the blob shows in the store, after
    the answer}. After each, the restarted server shows the blob whole or not at all, and
    `push` of the same file succeeds; `gc` then removes what the kills left half-written."""
    with backend(kind, tmp_path, request) as store:
        server = Server(tmp_path, store.env)
        kills = [(path, point) for path in ("single", "resumable") for point in ("sent", "visible", "answered")]
        with server.start():
            httpx.post(f"{server.url}/graphql", headers=AUTH,
                       json={"query": 'mutation { createModel(input: {name: "m"}) { name } }'}).raise_for_status()
        for number, (path, point) in enumerate(kills, start=1):
            # Over one S3 part for the single PUT: a multipart upload is under way when killed.
            data = os.urandom(9 * MiB + number if path == "single" else 3 * MiB + number)
            digest = digest_of(data)
            with server.start() as proc:
                if path == "single":
                    sock = send(server.url, "PUT", f"/api/blobs/{digest}", data)
                else:
                    location = httpx.post(f"{server.url}/api/uploads", headers=AUTH).headers["location"]
                    patched = httpx.patch(f"{server.url}{location}", content=data,
                                          headers={**AUTH, "Upload-Offset": "0"})
                    assert patched.status_code == 204
                    sock = send(server.url, "PUT", f"{location}?digest={digest}", b"")
                if point == "visible":
                    wait_for(sock, store.holds, digest)
                elif point == "answered":
                    sock.setblocking(True)
                    assert sock.recv(12).startswith(b"HTTP/1.1 201")
                proc.kill()
                proc.wait()
                sock.close()
            folder = tmp_path / f"push{number}"
            folder.mkdir()
            (folder / "w.bin").write_bytes(data)
            with server.start():
                check_consistent(server.url, digest, data)
                with Registry(server.url, ADMIN_SECRET, large_file=MiB, part_size=MiB) as registry:
                    pushed = registry.push(folder, "m", progress=False)
                assert pushed.number == number, (path, point)
                check_consistent(server.url, digest, data)
                assert httpx.head(f"{server.url}/api/blobs/{digest}").status_code == 200
        gc = subprocess.run([sys.executable, "-m", "modelyard.cli", "gc"], capture_output=True, text=True,
                            check=False, env={**server.env, "MODELYARD_UPLOAD_GRACE_SECONDS": "0"})
        assert gc.returncode == 0, gc.stderr
        assert store.leftovers() == []
        with server.start():
            for number in range(1, len(kills) + 1):
                version = httpx.post(f"{server.url}/graphql", json={
                    "query": "query($r: String!) { version(ref: $r) { artifacts { digest } } }",
                    "variables": {"r": f"m:{number}"}}).json()["data"]["version"]
                (artifact,) = version["artifacts"]
                assert httpx.head(f"{server.url}/api/blobs/{artifact['digest']}").status_code == 200
