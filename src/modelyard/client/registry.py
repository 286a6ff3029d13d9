"""`Registry`: the typed Python client of a modelyard server (GraphQL + the blob API).

Synchronous, for scripts and notebooks; transfers run on a few threads (hashing and socket I/O
release the GIL), sharing one httpx connection pool.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from modelyard.client.connection import Connection
from modelyard.client.download import Downloader, Fetched
from modelyard.client.errors import ModelyardError, NotFoundError, UsageError
from modelyard.client.files import scan
from modelyard.client.inputs import (
    Metrics,
    Params,
    lineage_input,
    metrics_input,
    params_input,
    tags_input,
)
from modelyard.client.progress import Progress
from modelyard.client.push import LARGE, PART, check_paths, upload_folder
from modelyard.client.workers import run_all

DEFAULT_URL = "http://127.0.0.1:8000"

VERSION_FIELDS = """
  ref number status description manifestDigest totalSize createdAt createdBy
  model { name }
  params { key type value }
  metrics { key value step }
  tags { key value }
  aliases { name }
  artifacts { path digest size mediaType }
  signature { inputs { name datatype shape } outputs { name datatype shape } }
  modelInfo { file irVersion opset producerName producerVersion parameterCount externalDataFiles }
  run { runId uri codeRepository commit startedAt endedAt }
  parents { relation parent { __typename ... on ModelVersion { ref } ... on DatasetVersion { ref } } }
"""
GET_VERSION = f"query($ref: String!) {{ version(ref: $ref) {{ {VERSION_FIELDS} }} }}"
SEARCH = f"""
query($filter: VersionFilter, $orderBy: [VersionOrder!], $first: Int, $after: String) {{
  versions(filter: $filter, orderBy: $orderBy, first: $first, after: $after) {{
    pageInfo {{ hasNextPage endCursor }}
    nodes {{ {VERSION_FIELDS} }}
  }}
}}"""
MODEL_EXISTS = "query($name: String!) { model(name: $name) { name } }"
CREATE_VERSION = """
mutation($input: CreateVersionInput!) {
  createVersion(input: $input) { ref number manifestDigest totalSize }
}"""
SET_ALIAS = """
mutation($input: SetAliasInput!) {
  setAlias(input: $input) { name version { ref number } }
}"""
PAGE = 100
"""Versions per search request (the server's default MODELYARD_MAX_PAGE_SIZE)."""


@dataclass(frozen=True)
class PushResult:
    """The version a push created and what it cost. Byte counts are per unique blob."""

    ref: str
    number: int
    manifest_digest: str
    files: int
    total_bytes: int
    bytes_sent: int
    """Bytes put on the wire (a retried part counts again)."""
    bytes_skipped: int
    """Bytes of blobs the server already held."""
    bytes_resumed: int
    """Bytes of interrupted uploads the server already held and that were not sent again."""
    blobs_uploaded: int
    blobs_skipped: int
    seconds: float
    alias: str | None = None


@dataclass(frozen=True)
class DownloadResult:
    """The files a download wrote and where their bytes came from."""

    ref: str
    manifest_digest: str
    files: list[Path]
    bytes_fetched: int
    bytes_reused: int
    """Bytes kept from `.partial` files and from files already in place with the right digest."""
    refetched: list[str]
    """Artifacts whose `.partial` held wrong bytes and were fetched again from the start."""
    seconds: float


class Registry:
    """A modelyard server at `url`, with a bearer `token` (writes need one)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = 60.0,
        retries: int = 5,
        backoff: float = 0.5,
        large_file: int = LARGE,
        part_size: int = PART,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """`timeout` bounds each network wait in seconds; failed requests are retried `retries`
        times with exponential `backoff`. Blobs of `large_file` bytes or more upload resumably in
        parts of `part_size`. `transport` replaces httpx's (tests, proxies)."""
        if part_size <= 0 or large_file <= 0:
            raise UsageError("large_file and part_size must be positive")
        self._conn = Connection(url, token, timeout=timeout, retries=retries, backoff=backoff, transport=transport)
        self.url = self._conn.url
        self.large_file = large_file
        self.part_size = part_size

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._conn.close()

    def push(
        self,
        folder: str | Path,
        model: str,
        *,
        params: Params | None = None,
        metrics: Metrics | None = None,
        tags: Mapping[str, str] | None = None,
        parents: Iterable[tuple[str, str]] = (),
        datasets: Iterable[str] = (),
        alias: str | None = None,
        description: str | None = None,
        run: Mapping[str, Any] | None = None,
        parallel: int = 4,
        progress: bool = True,
    ) -> PushResult:
        """Upload the folder's files the server lacks and create the next version of `model`.

        `parents` are `(ref, relation)` pairs (`("base:2", "fine_tuned_from")`); `datasets` are
        `NAME@VERSION` refs recorded as TRAINED_ON. Progress bars go to stderr when it is a TTY.
        """
        started = time.monotonic()
        folder = Path(folder)
        version: dict[str, Any] = {
            "model": model, "params": params_input(params), "metrics": metrics_input(metrics),
            "tags": tags_input(tags), "lineage": lineage_input(parents, datasets),
        }
        if description is not None:
            version["description"] = description
        if run is not None:
            version["run"] = dict(run)
        files = scan(folder)
        if not files:
            raise UsageError(f"{folder} holds no files to push (hidden files and *.partial are skipped)")
        check_paths(files)
        if self._conn.graphql(MODEL_EXISTS, {"name": model})["model"] is None:
            raise NotFoundError(f"NOT_FOUND: model {model!r} does not exist on {self.url}: create it first")
        uploaded = upload_folder(self._conn, folder, files, parallel=parallel, progress=_tty(progress),
                                 large=self.large_file, part=self.part_size)
        version["artifacts"] = [{"path": path, "digest": digest} for path, digest in uploaded.artifacts]
        created = self._conn.graphql(CREATE_VERSION, {"input": version}, mutation=True)["createVersion"]
        if alias is not None:
            try:
                self.set_alias(model, alias, created["number"])
            except ModelyardError as exc:
                raise type(exc)(f"created {created['ref']}, but {exc.message}") from exc
        sent = uploaded.sent
        return PushResult(
            ref=created["ref"], number=created["number"], manifest_digest=created["manifestDigest"],
            files=len(files), total_bytes=sum(f.size for f in files), bytes_sent=sent.bytes_sent,
            bytes_skipped=sent.bytes_skipped, bytes_resumed=sent.bytes_resumed,
            blobs_uploaded=sent.blobs_uploaded, blobs_skipped=sent.blobs_skipped,
            seconds=time.monotonic() - started, alias=alias,
        )

    def get(self, ref: str) -> dict[str, Any]:
        """The version `ref` names (`name`, `name:3`, `name@alias`, `name@sha256:…`), as GraphQL
        returns it: params, metrics, tags, aliases, artifacts, signature, modelInfo, run, parents."""
        found: dict[str, Any] | None = self._conn.graphql(GET_VERSION, {"ref": ref})["version"]
        if found is None:
            raise NotFoundError(f"NOT_FOUND: no version {ref!r} on {self.url}")
        return found

    def search(self, filter: Mapping[str, Any] | None = None, order_by: Mapping[str, Any] | None = None,
               first: int = PAGE) -> list[dict[str, Any]]:
        """Up to `first` versions matching a `VersionFilter` (`{"metrics": [{"key": "accuracy",
        "gt": 0.9}]}`), sorted by a `VersionOrder` (`{"field": "METRIC", "key": "accuracy"}`)."""
        found: list[dict[str, Any]] = []
        after: str | None = None
        while len(found) < first:
            page = self._conn.graphql(SEARCH, {
                "filter": dict(filter) if filter else None, "orderBy": dict(order_by) if order_by else None,
                "first": min(PAGE, first - len(found)), "after": after,
            })["versions"]
            found.extend(page["nodes"])
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        return found

    def set_alias(self, model: str, alias: str, version: int | str) -> dict[str, Any]:
        """Point `model@alias` at a version (a number, or a ref of this model)."""
        data = self._conn.graphql(SET_ALIAS, {"input": {"model": model, "alias": alias, "version": str(version)}},
                                  mutation=True)
        result: dict[str, Any] = data["setAlias"]
        return result

    def download(self, ref: str, dest_dir: str | Path, *, parallel: int = 4, progress: bool = True) -> DownloadResult:
        """Fetch every artifact of `ref` into `dest_dir`, resuming `.partial` files, each checked
        against its digest and renamed into place only when whole."""
        started = time.monotonic()
        version = self.get(ref)
        dest = Path(dest_dir)
        try:
            dest.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create {dest}: {exc.strerror or exc}") from exc
        artifacts: list[dict[str, Any]] = version["artifacts"]
        fetched = Fetched()
        stop = threading.Event()
        total = sum(int(a["size"]) for a in artifacts)
        with Progress("download", total, enabled=_tty(progress) and total > 0) as bar:
            downloader = Downloader(self._conn, fetched, bar, stop)
            files = run_all(lambda artifact: downloader.fetch(artifact, dest), artifacts, parallel, stop)
        return DownloadResult(
            ref=version["ref"], manifest_digest=version["manifestDigest"], files=files,
            bytes_fetched=fetched.bytes_fetched, bytes_reused=fetched.bytes_reused,
            refetched=fetched.refetched, seconds=time.monotonic() - started,
        )


def _tty(progress: bool) -> bool:
    return progress and sys.stderr.isatty()
