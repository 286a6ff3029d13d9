"""The cache registry keeps its snapshot of the manifests until a pull, `rm` or import changes
them, and a version's folder is linked once."""

from __future__ import annotations

from pathlib import Path

from models import linear_model
from modelyard_agent.cache import Cache, sha256_file
from modelyard_agent.manifest import Artifact, Manifest
from modelyard_agent.registry import CacheRegistry


def _cached_model(cache: Cache, tmp_path: Path) -> Artifact:
    source = linear_model(tmp_path / "src" / "model.onnx")
    digest = sha256_file(source)
    blob = cache.blob(digest)
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(source.read_bytes())
    return Artifact("model.onnx", digest, blob.stat().st_size)


def _manifest(name: str, number: int, art: Artifact) -> Manifest:
    return Manifest(name=name, number=number, ref=f"{name}:{number}", manifest_digest="sha256:" + "1" * 64,
                    artifacts=[art], pulled_as=[name], pulled_at="2026-11-29T00:00:00+00:00")


def test_manifests_are_read_again_only_after_a_change(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "home")
    art = _cached_model(cache, tmp_path)
    cache.save(_manifest("m", 1, art))
    registry = CacheRegistry(cache)
    first = registry.pulled()
    assert [m.ref for m in first] == ["m:1"]
    assert registry.pulled() is first  # nothing changed: the same snapshot, no file read
    model = registry.resolve("m", None)
    assert model is not None and model.version == "1"
    assert registry.resolve("m", None) is model  # linked once
    cache.save(_manifest("m", 2, art))  # a pull in another process
    assert registry.resolve("m", None).version == "2"  # type: ignore[union-attr]
    cache.remove(_manifest("m", 2, art))  # `rm m:2`
    assert [m.ref for m in registry.pulled()] == ["m:1"]
    assert registry.resolve("m", None).version == "1"  # type: ignore[union-attr]


def test_a_cache_from_before_the_stamp_gets_one(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "home")
    assert cache.stamp() is None  # nothing pulled yet
    art = _cached_model(cache, tmp_path)
    cache.save(_manifest("m", 1, art))
    (cache.manifest_dir / ".changed").unlink()
    registry = CacheRegistry(cache)
    assert [m.ref for m in registry.pulled()] == ["m:1"]
    assert (cache.manifest_dir / ".changed").is_file()
