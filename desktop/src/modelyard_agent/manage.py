"""Managing the cache: ls, rm, gc, verify, outdated (export and import: `archive`)."""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass

from modelyard_agent import serving
from modelyard_agent.cache import Cache, Manifest, sha256_file
from modelyard_agent.config import Settings
from modelyard_agent.errors import UsageError
from modelyard_agent.refs import parse

PARTIAL_STALE_SECONDS = 7 * 86400


@dataclass(frozen=True)
class Listed:
    """One line of `ls`."""

    ref: str
    pulled_as: list[str]
    manifest_digest: str
    size: int
    shared: int
    pulled_at: str
    complete: bool
    loaded: bool = False


def ls(cache: Cache) -> list[Listed]:
    """Every pulled version, with the bytes it shares with other pulled versions and whether a
    running local server holds its session now."""
    manifests = list(cache.manifests())
    held = serving.loaded(cache.home)
    users: Counter[str] = Counter()
    for m in manifests:
        users.update({a.digest for a in m.artifacts})
    rows = []
    for m in manifests:
        sizes = {a.digest: a.size for a in m.artifacts}
        shared = sum(size for d, size in sizes.items() if users[d] > 1)
        rows.append(Listed(m.ref, m.pulled_as, m.manifest_digest, m.size, shared, m.pulled_at,
                           cache.complete(m), f"{m.name}:{m.number}" in held))
    return rows


def rm(cache: Cache, text: str) -> Manifest:
    """Forget a pulled version; `gc` frees its blobs once nothing else uses them."""
    manifest = cache.require(parse(text))
    cache.remove(manifest)
    return manifest


@dataclass(frozen=True)
class Collected:
    """What `gc` removed (or would remove)."""

    blobs: list[str]
    partials: list[str]
    bytes_freed: int


def gc(cache: Cache, *, dry_run: bool, stale_seconds: float = PARTIAL_STALE_SECONDS) -> Collected:
    """Remove blobs no manifest references and partial downloads nothing wants or nobody touched lately."""
    wanted = {a.digest.removeprefix("sha256:") for m in cache.manifests() for a in m.artifacts}
    blobs: list[str] = []
    partials: list[str] = []
    freed = 0
    now = time.time()
    if cache.blob_dir.is_dir():
        for path in sorted(cache.blob_dir.iterdir()):
            stem = path.name.removesuffix(".partial")
            if path.name.endswith(".partial"):
                # A partial of a version being pulled right now has no manifest yet: only old ones go.
                if now - path.stat().st_mtime < stale_seconds:
                    continue
                partials.append(path.name)
            elif stem in wanted:
                continue
            else:
                blobs.append(f"sha256:{stem}")
            freed += path.stat().st_size
            if not dry_run:
                path.unlink()
    return Collected(blobs, partials, freed)


def verify(cache: Cache) -> list[str]:
    """Re-hash every cached blob; corrupt ones move to quarantine so the next pull refetches them."""
    bad: list[str] = []
    if not cache.blob_dir.is_dir():
        return bad
    for path in sorted(cache.blob_dir.iterdir()):
        if path.name.endswith(".partial"):
            continue
        digest = f"sha256:{path.name}"
        if sha256_file(path) != digest:
            cache.quarantine_dir.mkdir(parents=True, exist_ok=True)
            os.replace(path, cache.quarantine_dir / path.name)
            bad.append(digest)
    return bad


@dataclass(frozen=True)
class Moved:
    """A movable ref that now names another version on the server."""

    pulled_as: str
    cached: str
    server: str | None


def outdated(cache: Cache, settings: Settings) -> list[Moved]:
    """For versions pulled as `name` or `name@alias`: which refs the server now answers differently."""
    if settings.offline:
        raise UsageError("outdated asks the server; it cannot run with --offline")
    # The HTTP client: imported only by commands that use the network.
    from modelyard_agent.client import Client

    moved = []
    with Client(settings.server, settings.token) as client:
        for m in cache.manifests():
            for text in m.pulled_as:
                ref = parse(text)
                if not ref.movable:
                    continue
                now = client.version(ref)
                if now is None or now.manifest_digest != m.manifest_digest:
                    moved.append(Moved(text, m.ref, now.ref if now else None))
    return moved
