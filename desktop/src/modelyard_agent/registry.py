"""The pulled versions as a ModelRegistry for the local server and `run`.

A model name's versions are its pulled version numbers (the default is the highest pulled); a
version may also be asked for by an alias it was pulled as (`name@production` -> `production`).
A followed alias (`serve --follow name@production`) wins over both: the name without a version,
and the alias as a version, mean the version the server switched to last (`follow(...)`), which
moves only once that version is loaded, not when a pull rewrites the manifests.
Blobs are stored by digest only, so at first use a version is materialised, lazily, as a folder of
hard links (copies where links fail) to its blobs under the original artifact paths:

    <home>/versions/<name>/<number>/<path>

ONNX Runtime then finds `model.onnx` and its external data files by their relative paths.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard_agent.cache import Cache
from modelyard_agent.errors import UsageError
from modelyard_agent.manifest import Artifact, Manifest
from modelyard_agent.refs import Ref

if TYPE_CHECKING:
    # `oip` loads starlette and ONNX Runtime: only `local_model` needs it, not `rm` or `chat`.
    from modelyard_agent.oip import LocalModel, LocalTensor

_LOCK = threading.Lock()


def main_onnx(artifacts: list[Artifact]) -> Artifact | None:
    """The version's ONNX model: `model.onnx` nearest the root, else the first `.onnx` by path."""
    candidates = [a for a in artifacts if a.path.lower().endswith(".onnx")]
    if not candidates:
        return None
    named = [a for a in candidates if posixpath.basename(a.path) == "model.onnx"]
    return min(named or candidates, key=lambda a: (a.path.count("/"), a.path))


def version_dir(cache: Cache, manifest: Manifest) -> Path:
    """The folder a version is materialised in."""
    return cache.home.joinpath("versions", *manifest.name.split("/"), str(manifest.number))


def materialise(cache: Cache, manifest: Manifest) -> Path:
    """Link the version's blobs under their artifact paths (once); returns its folder."""
    root = version_dir(cache, manifest)
    with _LOCK:
        for art in manifest.artifacts:
            # Names and paths were checked when the manifest was read; this checks the result.
            dest = cache.inside(root.joinpath(*art.path.split("/")))
            blob = cache.blob(art.digest)
            if not cache.has(art.digest, art.size):
                raise UsageError(f"{manifest.ref}: blob {art.digest} is missing; pull it again")
            if _current(dest, blob):
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
            tmp.unlink(missing_ok=True)
            try:
                os.link(blob, tmp)
            except OSError:
                shutil.copyfile(blob, tmp)
            os.replace(tmp, dest)
    return root


def _current(dest: Path, blob: Path) -> bool:
    """Whether `dest` is the blob itself (a link) or a copy made after it (a re-pulled blob is not)."""
    try:
        if os.path.samefile(dest, blob):
            return True
        have, want = dest.stat(), blob.stat()
    except FileNotFoundError:
        return False
    return have.st_size == want.st_size and have.st_mtime >= want.st_mtime


def forget(cache: Cache, manifest: Manifest) -> None:
    """Remove a version's materialised folder (its blobs stay until `gc`)."""
    root = cache.inside(version_dir(cache, manifest))
    with _LOCK, contextlib.suppress(FileNotFoundError):
        shutil.rmtree(root)


def _tensors(items: Any) -> list[LocalTensor]:
    from modelyard_agent.oip import LocalTensor

    return [
        LocalTensor(str(t["name"]), str(t["datatype"]), [int(d) for d in t.get("shape") or []])
        for t in items or []
    ]


def find(cache: Cache, ref: Ref) -> Manifest | None:
    """The pulled version a ref names; a bare name means its highest pulled number."""
    found = cache.find(ref)
    if found is not None or ref.alias is not None or ref.number is not None or ref.digest is not None:
        return found
    pulled = [m for m in cache.manifests() if m.name == ref.name]
    return max(pulled, key=lambda m: m.number) if pulled else None


def local_model(cache: Cache, manifest: Manifest) -> LocalModel:
    """The version as the runtime sees it, materialised; UsageError without an ONNX model."""
    from modelyard_agent.oip import LocalModel

    onnx = main_onnx(manifest.artifacts)
    if onnx is None:
        raise UsageError(f"{manifest.ref} holds no .onnx model to run")
    root = materialise(cache, manifest)
    sig = manifest.signature or {}
    return LocalModel(
        name=manifest.name,
        version=str(manifest.number),
        path=root.joinpath(*onnx.path.split("/")),
        inputs=_tensors(sig.get("inputs")),
        outputs=_tensors(sig.get("outputs")),
    )


class CacheRegistry:
    """The ModelRegistry of the agent's cache. Pulls show up live: the manifests are read again
    whenever the cache's stamp changed (one stat per request otherwise), and a version's folder
    is materialised once and then only checked."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self._followed: dict[tuple[str, str], Manifest] = {}
        self._stamp: tuple[int, int] | None = None
        self._pulled: list[Manifest] = []
        self._models: dict[tuple[str, int, str], LocalModel] = {}

    def pulled(self) -> list[Manifest]:
        """Every pulled version (a snapshot kept while the cache's stamp stays the same)."""
        stamp = self.cache.stamp()  # read before the manifests: a write in between shows next time
        if stamp is None or stamp != self._stamp:
            self._pulled = list(self.cache.manifests())
            self._models.clear()  # a re-pull (after `verify`) may bring new blobs to link
            self._stamp = stamp
        return self._pulled

    def follow(self, name: str, alias: str, manifest: Manifest) -> Manifest | None:
        """From now on `name` (and `name` version `alias`) means this version; returns the one it
        replaces. One assignment: a request sees the old version or the new, nothing between."""
        previous = self._followed.get((name, alias))
        self._followed[(name, alias)] = manifest
        return previous

    def current(self, name: str, version: str | None = None) -> Manifest | None:
        """The followed version `name` (without a version, or with a followed alias) stands for;
        None when that is not followed. Without a version: the first alias followed for the name."""
        if version is None:
            return next((m for (n, _), m in self._followed.items() if n == name), None)
        return self._followed.get((name, version))

    def followed(self) -> dict[str, Manifest]:
        """Every followed `name@alias` and the version it means now."""
        return {f"{n}@{a}": m for (n, a), m in self._followed.items()}

    def names(self) -> list[str]:
        """Names with at least one pulled ONNX version."""
        pulled = {m.name for m in self.pulled() if main_onnx(m.artifacts)}
        return sorted(pulled | {n for n, _ in self._followed})

    def _pick(self, name: str, version: str | None) -> Manifest | None:
        followed = self.current(name, version)
        if followed is not None:
            return followed
        pulled = [m for m in self.pulled() if m.name == name and main_onnx(m.artifacts)]
        if not pulled:
            return None
        if version is None:
            return max(pulled, key=lambda m: m.number)
        if version.isdigit():
            return next((m for m in pulled if m.number == int(version)), None)
        hits = [m for m in pulled if f"{name}@{version}" in m.pulled_as]
        return max(hits, key=lambda m: m.pulled_at) if hits else None

    def manifest(self, name: str, version: str | None) -> Manifest | None:
        """The complete pulled version `name` and `version` (number, alias, None) stand for."""
        manifest = self._pick(name, version)
        if manifest is None or not self.cache.complete(manifest):
            return None
        return manifest

    def folder(self, manifest: Manifest) -> Path:
        """The version's folder of files under their artifact paths."""
        return materialise(self.cache, manifest)

    def resolve(self, name: str, version: str | None) -> LocalModel | None:
        """The pulled version (number, alias it was pulled as, or None for the highest)."""
        manifest = self.manifest(name, version)
        if manifest is None:
            return None
        key = (manifest.name, manifest.number, manifest.manifest_digest)
        model = self._models.get(key)
        if model is None or not model.path.is_file():
            model = self._models[key] = local_model(self.cache, manifest)
        return model
