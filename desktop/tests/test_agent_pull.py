"""Pull against a real server: layout, sharing, resume after SIGKILL, a dying server, bad input."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from conftest import Agent, Publisher, Relay, Server, digest


def test_pull_caches_every_file_under_its_digest(agent: Agent, publisher: Publisher) -> None:
    name = publisher.model()
    files = {"model.bin": os.urandom(300_000), "tokenizer/vocab.txt": os.urandom(5_000)}
    pub = publisher.version(name, files)
    done = agent("pull", name, "--json")
    assert done.code == 0, done.err
    assert done.json()["bytes_fetched"] == sum(len(d) for d in files.values())
    for data in files.values():
        assert agent.blob(data).read_bytes() == data
    manifest = (agent.home / "manifests" / name / "1.json").read_text()
    assert pub.ref in manifest and digest(files["model.bin"]) in manifest
    assert not list((agent.home / "blobs" / "sha256").glob("*.partial"))


def test_second_version_fetches_only_new_blobs(agent: Agent, publisher: Publisher, server: Server,
                                              relay_factory: Callable[..., Relay]) -> None:
    name = publisher.model()
    shared, old, new = os.urandom(400_000), os.urandom(1000), os.urandom(50_000)
    publisher.version(name, {"weights.bin": shared, "config.json": old})
    publisher.version(name, {"weights.bin": shared, "config.json": new})
    assert agent("pull", f"{name}:1").code == 0
    relay = relay_factory(server.port)
    done = agent("pull", f"{name}:2", "--json", server=relay.url)
    assert done.code == 0, done.err
    assert done.json()["bytes_fetched"] == len(new)
    assert done.json()["blobs_cached"] == 1
    assert relay.down < len(new) + 20_000  # headers and the GraphQL answer, never the shared blob


def test_pull_killed_with_sigkill_resumes(agent: Agent, publisher: Publisher, server: Server,
                                          relay_factory: Callable[..., Relay]) -> None:
    name = publisher.model()
    data = os.urandom(3 * 1024 * 1024)
    publisher.version(name, {"model.bin": data})
    slow = relay_factory(server.port, rate=1024 * 1024)
    proc = agent.spawn("pull", name, server=slow.url)
    partial = agent.blob(data).with_suffix(".partial")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (partial.exists() and partial.stat().st_size > 512 * 1024):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    have = partial.stat().st_size
    assert 0 < have < len(data)
    relay = relay_factory(server.port)
    done = agent("pull", name, "--json", server=relay.url)
    assert done.code == 0, done.err
    assert done.json()["bytes_resumed"] == have
    assert done.json()["bytes_fetched"] == len(data) - have
    assert relay.down < len(data) - have + 20_000
    assert agent.blob(data).read_bytes() == data


def test_server_dying_mid_pull_is_a_clear_error_and_the_next_pull_completes(
        agent: Agent, own_server: Server, relay_factory: Callable[..., Relay]) -> None:
    pub = Publisher(own_server.url)
    name = pub.model()
    # Larger than the loopback socket buffers, so killing the server really cuts the transfer.
    data = os.urandom(24 * 1024 * 1024)
    pub.version(name, {"model.bin": data})
    slow = relay_factory(own_server.port, rate=4 * 1024 * 1024)
    result: dict[str, object] = {}
    thread = threading.Thread(target=lambda: result.update(done=agent("pull", name, server=slow.url)))
    thread.start()
    partial = agent.blob(data).with_suffix(".partial")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (partial.exists() and partial.stat().st_size > 0):
        time.sleep(0.05)
    own_server.kill()
    thread.join(30)
    done = result["done"]
    assert done.code == 2  # type: ignore[attr-defined]
    assert "run the pull again to resume" in done.err  # type: ignore[attr-defined]
    assert not (agent.home / "manifests").exists() or not list((agent.home / "manifests").rglob("*.json"))
    assert not agent.blob(data).exists()
    own_server.start()
    again = agent("pull", name, "--json", server=own_server.url)
    assert again.code == 0, again.err
    assert again.json()["bytes_resumed"] > 0
    assert agent.blob(data).read_bytes() == data


def test_unknown_and_malformed_refs_exit_2(agent: Agent, publisher: Publisher) -> None:
    name = publisher.model()
    for ref in ("no-such-model", f"{name}:7", f"{name}@nowhere", "Bad Name!", f"{name}@sha256:zz"):
        done = agent("pull", ref)
        assert done.code == 2, ref
        assert done.err.startswith("modelyard-agent: ") and ref in done.err
        assert done.err.count("\n") == 1


def test_unreachable_server_is_a_clear_error(agent: Agent) -> None:
    done = agent("pull", "anything", server="http://127.0.0.1:9")
    assert done.code == 2 and "cannot reach" in done.err


def test_full_disk_is_refused_before_fetching(tmp_path: Path, tiny_fs: Path, publisher: Publisher,
                                             agent: Agent) -> None:
    name = publisher.model()
    publisher.version(name, {"model.bin": os.urandom(2 * 1024 * 1024)})
    agent.home = tiny_fs
    done = agent("pull", name)
    assert done.code == 2 and "not enough disk space" in done.err
    assert list((tiny_fs / "blobs" / "sha256").iterdir()) == []
    assert not (tiny_fs / "manifests").exists()


def test_corrupt_blob_is_reported_and_refetched(agent: Agent, publisher: Publisher) -> None:
    name = publisher.model()
    good, other = os.urandom(100_000), os.urandom(10_000)
    publisher.version(name, {"model.bin": good, "extra.bin": other})
    assert agent("pull", name).code == 0
    path = agent.blob(good)
    broken = bytearray(path.read_bytes())
    broken[500] ^= 0xFF
    path.write_bytes(bytes(broken))
    checked = agent("verify")
    assert checked.code == 1
    assert f"CORRUPT {digest(good)}" in checked.out and digest(other) not in checked.out
    assert not path.exists()
    again = agent("pull", name, "--json")
    assert again.json()["bytes_fetched"] == len(good)
    assert path.read_bytes() == good
    assert agent("verify").code == 0


def test_offline_pull_uses_the_cache_only(agent: Agent, publisher: Publisher) -> None:
    name = publisher.model()
    publisher.version(name, {"model.bin": os.urandom(1000)})
    assert agent("pull", f"{name}:1").code == 0
    # A server address nothing listens on: any network use would fail the command.
    done = agent("pull", f"{name}:1", "--offline", "--json", server="http://127.0.0.1:9")
    assert done.code == 0 and done.json()["offline"] is True
    missing = agent("pull", f"{name}:2", "--offline", server="http://127.0.0.1:9")
    assert missing.code == 2 and "not in the cache" in missing.err
    assert agent("outdated", "--offline").code == 2


def test_two_pulls_at_once_fetch_each_blob_once(agent: Agent, publisher: Publisher, server: Server,
                                                relay_factory: Callable[..., Relay]) -> None:
    name = publisher.model()
    data = os.urandom(2 * 1024 * 1024)
    publisher.version(name, {"model.bin": data})
    relay = relay_factory(server.port, rate=4 * 1024 * 1024)
    procs = [agent.spawn("pull", name, server=relay.url) for _ in range(2)]
    assert [p.wait(60) for p in procs] == [0, 0]
    assert agent.blob(data).read_bytes() == data
    assert relay.down < len(data) * 1.5
