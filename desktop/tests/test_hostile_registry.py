"""A registry that lies: every name, number, digest and path it answers is untrusted input, and
nothing it sends may write outside the cache or exhaust the agent's memory."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from conftest import Agent, Jail, Outcome
from hostile import FakeRegistry, Running, refused, sha, version_doc
from modelyard_agent.cache import Cache
from modelyard_agent.client import Client
from modelyard_agent.errors import InvalidInputError, TransferError, UsageError
from modelyard_agent.refs import parse
from modelyard_agent.registry import forget, materialise
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

FILES = {"model.onnx": b"not really onnx", "cfg/config.json": b"{}"}
MiB = 1 << 20


def offer(registry: FakeRegistry, doc: dict[str, Any], files: dict[str, bytes] = FILES) -> None:
    registry.version = doc
    registry.blobs.update({sha(d): d for d in files.values()})


def test_a_traversal_name_is_refused_before_anything_is_written(jailed: Agent, jail: Jail,
                                                                fake_registry: FakeRegistry) -> None:
    offer(fake_registry, version_doc("../../../../x/pull", FILES, ref="evil:1"))
    refused(jailed("pull", "evil"), "model name", "../../../../x/pull")
    jail.check()
    assert fake_registry.sent == 0, "no blob is fetched for a version that was refused"


@pytest.mark.parametrize("name", ["../../x", "/abs/x", "Evil", "a/b/c", "", "a/", 5, None, ["m"]])
def test_names_outside_the_registry_grammar_are_refused(jailed: Agent, jail: Jail,
                                                        fake_registry: FakeRegistry, name: Any) -> None:
    offer(fake_registry, version_doc(name, FILES, ref="evil:1"))
    refused(jailed("pull", "evil"), "model name")
    jail.check()


def test_the_name_answered_must_be_the_name_asked(jailed: Agent, jail: Jail,
                                                  fake_registry: FakeRegistry) -> None:
    offer(fake_registry, version_doc("other", FILES))
    refused(jailed("pull", "wanted@prod"), "'other'", "wanted")
    jail.check()
    assert not (jail.home / "manifests" / "other").exists()


@pytest.mark.parametrize("number", ["../../x/num", "3", 0, -1, True, 1.5, None, 2**70])
def test_numbers_must_be_positive_integers(jailed: Agent, jail: Jail, fake_registry: FakeRegistry,
                                           number: Any) -> None:
    offer(fake_registry, version_doc("evil", FILES, number=number, ref="evil:1"))
    refused(jailed("pull", "evil"), "number")
    jail.check()


def test_a_pinned_ref_must_come_back_as_asked(jailed: Agent, jail: Jail,
                                              fake_registry: FakeRegistry) -> None:
    offer(fake_registry, version_doc("evil", FILES, number=4))
    refused(jailed("pull", "evil:3"), "evil:4", "evil:3")
    pinned = "sha256:" + "1" * 64
    refused(jailed("pull", f"evil@{pinned}"), "manifest digest")
    offer(fake_registry, version_doc("evil", FILES, number=3, ref="../../x"))
    refused(jailed("pull", "evil:3"), "ref")
    jail.check()


@pytest.mark.parametrize("field", ["manifestDigest", "artifact"])
@pytest.mark.parametrize("bad", ["sha256:../../x", "sha256:" + "A" * 64, "md5:" + "0" * 32, 7])
def test_digests_must_be_sha256_hex(jailed: Agent, jail: Jail, fake_registry: FakeRegistry,
                                    field: str, bad: Any) -> None:
    doc = version_doc("evil", FILES)
    if field == "manifestDigest":
        doc["manifestDigest"] = bad
    else:
        doc["artifacts"][0]["digest"] = bad
    offer(fake_registry, doc)
    refused(jailed("pull", "evil"), "digest")
    jail.check()


@pytest.mark.parametrize("paths", [
    ["../../../../x/evil.onnx"], ["/etc/evil"], ["a/../../b"], ["a\\..\\b"], ["a//b"], ["./a"],
    ["C:evil"], [""], ["a\nb"], ["x" * 600], ["a", "a"], ["a", "a/b"], [5],
])
def test_artifact_paths_must_stay_inside_the_version(jailed: Agent, jail: Jail,
                                                     fake_registry: FakeRegistry, paths: list[Any]) -> None:
    doc = version_doc("evil", {})
    doc["artifacts"] = [{"path": p, "digest": sha(b"x%d" % i), "size": 2, "mediaType": ""}
                        for i, p in enumerate(paths)]
    offer(fake_registry, doc, {f"f{i}": b"x%d" % i for i in range(len(paths))})
    refused(jailed("pull", "evil"), "artifact path")
    jail.check()
    assert fake_registry.sent == 0


@pytest.mark.parametrize("size", [-1, "2", True, 1.5, None])
def test_sizes_must_be_byte_counts(jailed: Agent, jail: Jail, fake_registry: FakeRegistry,
                                   size: Any) -> None:
    doc = version_doc("evil", FILES)
    doc["artifacts"][0]["size"] = size
    offer(fake_registry, doc)
    refused(jailed("pull", "evil"), "size")
    jail.check()


@pytest.mark.parametrize(("version", "words"), [
    ([1, 2], ("version",)),
    ({"number": 1}, ("version",)),
    ({**version_doc("evil", FILES), "artifacts": {"a": 1}}, ("artifacts",)),
    ({**version_doc("evil", FILES), "artifacts": ["a"]}, ("artifact",)),
    ({**version_doc("evil", FILES), "model": {"name": "evil", "task": ["x"]}}, ("task",)),
    ({**version_doc("evil", FILES), "signature": {"inputs": [{"name": "x", "shape": ["a"]}]}},
     ("signature",)),
])
def test_malformed_answers_get_one_line(jailed: Agent, jail: Jail, fake_registry: FakeRegistry,
                                        version: Any, words: tuple[str, ...]) -> None:
    fake_registry.version = version
    refused(jailed("pull", "evil"), *words)
    jail.check()


def test_too_many_artifacts_are_refused(jailed: Agent, jail: Jail, fake_registry: FakeRegistry) -> None:
    doc = version_doc("evil", {})
    doc["artifacts"] = [{"path": f"f{i}", "digest": sha(b"%d" % i), "size": 1, "mediaType": ""}
                        for i in range(10_001)]
    offer(fake_registry, doc, {})
    refused(jailed("pull", "evil"), "10001 artifacts")
    jail.check()


def test_follow_refuses_a_traversal_name_and_serves_nothing(jail: Jail, fake_registry: FakeRegistry,
                                                            tmp_path: Any) -> None:
    """`serve --follow followtrav@prod` with a registry answering `../../../../x/follow`."""
    offer(fake_registry, version_doc("../../../../x/follow", FILES, ref="followtrav:1"))
    env = {**os.environ, "MODELYARD_AGENT_HOME": str(jail.home), "MODELYARD_SERVER": fake_registry.url,
           "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    env.pop("MODELYARD_TOKEN", None)
    done = subprocess.run([sys.executable, "-m", "modelyard_agent", "serve", "--port", "0",
                           "--follow", "followtrav@prod"], env=env, capture_output=True, text=True,
                          timeout=60)
    refused(Outcome(done.returncode, done.stdout, done.stderr), "model name")
    jail.check()


def _peak_while(fn: Any) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_an_endless_graphql_answer_is_cut_at_the_cap(jailed: Agent, jail: Jail,
                                                     fake_registry: FakeRegistry) -> None:
    fake_registry.version = fake_registry.endless(first=b'{"data": {"version": {"ref": "', limit=256 * MiB)
    outcome: list[Outcome] = []
    peak = _peak_while(lambda: outcome.append(jailed("pull", "evil")))
    refused(outcome[0], "larger than")
    assert peak < 64 * MiB, f"the agent held {peak / MiB:.0f} MiB of an endless answer"
    assert fake_registry.sent < 128 * MiB
    jail.check()


def test_an_endless_error_body_for_a_blob_is_not_read(jailed: Agent, jail: Jail,
                                                      fake_registry: FakeRegistry) -> None:
    offer(fake_registry, version_doc("evil", FILES))
    fake_registry.blobs[sha(FILES["model.onnx"])] = fake_registry.endless(status=500, limit=256 * MiB)
    outcome: list[Outcome] = []
    peak = _peak_while(lambda: outcome.append(jailed("pull", "evil")))
    refused(outcome[0], "HTTP 500")
    assert peak < 64 * MiB, f"the agent held {peak / MiB:.0f} MiB of an error body"
    jail.check()
    assert not list((jail.home / "manifests").glob("**/*.json"))


def test_an_endless_blob_is_read_to_its_declared_size_only(jailed: Agent, jail: Jail,
                                                           fake_registry: FakeRegistry) -> None:
    offer(fake_registry, version_doc("evil", FILES))
    fake_registry.blobs[sha(FILES["model.onnx"])] = fake_registry.endless(limit=256 * MiB)
    refused(jailed("pull", "evil"), "do not hash")
    assert fake_registry.sent < 128 * MiB
    jail.check()
    # The endless blob leaves nothing behind (a sibling cut off by the failure may keep its
    # .partial to resume from: that is the pull's contract).
    assert not (jail.home / "blobs" / "sha256" / f"{sha(FILES['model.onnx'])[7:]}.partial").exists()


def test_bytes_that_do_not_match_their_digest_never_enter_the_cache(jailed: Agent, jail: Jail,
                                                                    fake_registry: FakeRegistry) -> None:
    offer(fake_registry, version_doc("evil", FILES))
    fake_registry.blobs[sha(FILES["model.onnx"])] = b"X" * len(FILES["model.onnx"])
    refused(jailed("pull", "evil"), "do not hash")
    jail.check()
    assert not (jail.home / "blobs" / "sha256" / sha(FILES["model.onnx"])[7:]).exists()
    assert not list((jail.home / "manifests").glob("**/*.json"))


def test_a_redirect_to_another_port_gets_no_token(jailed: Agent, jail: Jail,
                                                  fake_registry: FakeRegistry) -> None:
    elsewhere = FakeRegistry()
    running = Running(elsewhere.app())
    try:
        offer(fake_registry, version_doc("evil", FILES))
        offer(elsewhere, version_doc("evil", FILES))
        for data in FILES.values():
            digest = sha(data)

            def moved(request: Request, digest: str = digest) -> Response:
                return RedirectResponse(f"{running.url}/api/blobs/{digest}", 307)

            fake_registry.blobs[digest] = moved
        done = jailed("pull", "evil", "--token", "myd_" + "s" * 43)
        assert done.code == 0, done.err
        assert len(elsewhere.seen) == 2
        assert all("authorization" not in h for h in elsewhere.seen), elsewhere.seen
        assert any("authorization" in h for h in fake_registry.seen)
        for data in FILES.values():
            assert (jail.home / "blobs" / "sha256" / sha(data)[7:]).read_bytes() == data
        jail.check()
    finally:
        running.stop()


def test_a_redirect_loop_ends(jailed: Agent, jail: Jail, fake_registry: FakeRegistry) -> None:
    offer(fake_registry, version_doc("evil", FILES))
    digest = sha(FILES["model.onnx"])
    fake_registry.blobs[digest] = lambda request: RedirectResponse(f"/api/blobs/{digest}", 302)
    refused(jailed("pull", "evil"), "redirects")
    jail.check()


def test_a_huge_declared_size_is_refused_before_any_byte(jailed: Agent, jail: Jail,
                                                         fake_registry: FakeRegistry) -> None:
    doc = version_doc("evil", FILES)
    doc["artifacts"][0]["size"] = 1 << 60
    offer(fake_registry, doc)
    refused(jailed("pull", "evil"), "disk space")
    assert fake_registry.sent == 0
    jail.check()


def test_an_answer_that_is_not_json_is_one_line(jailed: Agent, jail: Jail,
                                                fake_registry: FakeRegistry) -> None:
    fake_registry.version = lambda request: Response(b"<html>oops</html>", 502)
    refused(jailed("pull", "evil"), "HTTP 502")
    fake_registry.version = lambda request: JSONResponse({"errors": "not a list"})
    refused(jailed("pull", "evil"))
    jail.check()


def test_a_trickling_answer_is_cut_at_the_deadline(fake_registry: FakeRegistry) -> None:
    def trickle(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            for _ in range(100):
                yield b" "
                await anyio.sleep(0.1)

        return StreamingResponse(body(), media_type="application/json")

    fake_registry.version = trickle
    with Client(fake_registry.url, None, deadline=1.0) as client, \
            pytest.raises(TransferError, match="took more than 1 s"):
        client.version(parse("evil"))


def test_a_symlink_in_the_cache_does_not_lead_writes_out(jailed: Agent, jail: Jail,
                                                         fake_registry: FakeRegistry) -> None:
    """Paths are resolved before writing: a folder of the cache replaced by a link to elsewhere
    (by another program, or an older agent) is refused, not followed."""
    offer(fake_registry, version_doc("good", FILES))
    assert jailed("pull", "good").code == 0
    manifest = Cache(jail.home).require(parse("good"))
    elsewhere = jail.root / "l1" / "elsewhere"
    elsewhere.mkdir()
    (jail.home / "versions").symlink_to(elsewhere)
    with pytest.raises(InvalidInputError, match="outside the cache"):
        materialise(Cache(jail.home), manifest)
    with pytest.raises(InvalidInputError, match="outside the cache"):
        forget(Cache(jail.home), manifest)
    (jail.home / "manifests" / "good").rename(jail.home / "good-manifests")
    (jail.home / "manifests" / "good").symlink_to(elsewhere)
    refused(jailed("pull", "good"), "outside the cache")
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("text", ["m\n", "m:1\n", "m@prod\n", "m:１", "m:٣", "m:01", "m@sha256:" + "a" * 64 + "\n"])
def test_refs_match_as_a_whole_with_ascii_digits(text: str) -> None:
    with pytest.raises(UsageError):
        parse(text)


@pytest.mark.parametrize("name", ["evil\n", "evil\x00"])
def test_a_name_with_a_trailing_control_character_is_not_a_name(jailed: Agent, jail: Jail,
                                                                fake_registry: FakeRegistry, name: str) -> None:
    offer(fake_registry, version_doc(name, FILES, ref="evil:1"))
    refused(jailed("pull", "evil"), "model name")
    jail.check()
