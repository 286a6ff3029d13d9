"""`follow NAME@ALIAS` and `serve --follow`: a real registry, real moves, requests that never fail."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Agent, Publisher, Server, free_port
from follow_helpers import TIMEOUT, Gate, Hammer, Served, X, scaled_model, wait_until
from modelyard_agent.follow import Backoff


def _publish(publisher: Publisher, tmp_path: Path, versions: int) -> str:
    """A model whose version N answers y = x * N; alias `production` on version 1."""
    name = publisher.model("follow")
    for n in range(1, versions + 1):
        data = scaled_model(tmp_path / "src" / f"{n}.onnx", float(n))
        publisher.version(name, {"model.onnx": data})
    publisher.alias(name, "production", "1")
    return name


def test_reconnect_delays_double_up_to_the_cap_with_jitter() -> None:
    highest = Backoff(initial=0.5, cap=5.0, rng=lambda: 1.0)
    assert [highest.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    lowest = Backoff(initial=0.5, cap=5.0, rng=lambda: 0.0)
    assert [lowest.next() for _ in range(6)] == [0.25, 0.5, 1.0, 2.0, 2.5, 2.5]
    lowest.reset()
    assert lowest.next() == 0.25


def _loaded(agent: Agent) -> dict[str, bool]:
    return {row["ref"]: row["loaded"] for row in agent("ls", "--json").json()}


@pytest.fixture
def gate(server: Server) -> Iterator[Gate]:
    g = Gate(server.port)
    yield g
    g.close()


def test_serve_follow_switches_without_a_failed_request_and_catches_up_after_a_cut(
    agent: Agent, publisher: Publisher, gate: Gate, tmp_path: Path
) -> None:
    name = _publish(publisher, tmp_path, 3)
    served = Served(agent.home, gate.url, free_port(), "--follow", f"{name}@production")
    try:
        served.wait_ready()  # pulled at start: nothing was in the cache
        hammer, other = Hammer(served.url, name), Hammer(served.url, name)  # two in flight at once
        wait_until(lambda: hammer.count() >= 20, "answers from version 1")
        assert hammer.latest() == "1"
        assert _loaded(agent)[f"{name}:1"] is True

        publisher.alias(name, "production", "2")
        wait_until(lambda: hammer.latest() == "2" and other.latest() == "2", "the switch to version 2")

        # The agent cannot hear of this move: the network to the registry is cut first.
        gate.cut()
        publisher.alias(name, "production", "3")
        mark = hammer.count()
        wait_until(lambda: hammer.count() >= mark + 20, "answers while cut off")
        assert {a.version for a in hammer.answers[mark:]} == {"2"}

        gate.restore()  # reconnects, resumes with `since`, sees the move it missed
        wait_until(lambda: hammer.latest() == "3", "the switch to version 3 after reconnecting")
        mark = hammer.count()
        wait_until(lambda: hammer.count() >= mark + 20, "answers from version 3")
        for h in (hammer, other):
            h.finish()
            assert h.failures == []
            versions = [int(a.version) for a in h.answers]
            assert versions == sorted(versions)  # never back
            for a in h.answers:
                assert a.y == [x * int(a.version) for x in X]
        assert {a.version for a in hammer.answers} == {"1", "2", "3"}

        wait_until(lambda: _loaded(agent) == {f"{name}:1": False, f"{name}:2": False,
                                              f"{name}:3": True}, "old versions unloaded")
        header, *lines = agent("ls").out.splitlines()
        assert header.split()[:2] == ["REF", "LOADED"]
        column = {line.split()[0]: line.split()[1] for line in lines}
        assert column == {f"{name}:1": "-", f"{name}:2": "-", f"{name}:3": "yes"}
        for path in (name, f"{name}/versions/production"):  # the alias as a version: same answer
            assert httpx.get(f"{served.url}/v2/models/{path}").json()["versions"] == ["3"]
        assert httpx.get(f"{served.url}/v2/models/{name}/versions/1").json()["versions"] == ["1"]
    finally:
        code = served.stop()
    out = served.output()
    assert code == 0, out
    assert f"{name}@production → v1" in out
    assert f"{name}@production → v2" in out and f"{name}@production → v3" in out
    assert set(_loaded(agent).values()) == {False}  # no server holds anything now


def test_serve_follow_starts_from_the_cache_while_the_registry_is_down(
    agent: Agent, own_server: Server, tmp_path: Path
) -> None:
    publisher = Publisher(own_server.url)
    name = _publish(publisher, tmp_path, 2)
    assert agent("pull", f"{name}@production", server=own_server.url).code == 0
    own_server.kill()

    served = Served(agent.home, own_server.url, free_port(), "--follow", f"{name}@production")
    try:
        served.wait_ready()
        hammer = Hammer(served.url, name)
        wait_until(lambda: hammer.count() >= 5, "answers from the cached version")
        assert hammer.latest() == "1"
        assert "unreachable" in served.output()

        own_server.start()
        publisher.alias(name, "production", "2")
        wait_until(lambda: hammer.latest() == "2", "the switch once the registry is back")
        hammer.finish()
        assert hammer.failures == []
        versions = [int(a.version) for a in hammer.answers]
        assert versions == sorted(versions)
    finally:
        assert served.stop() == 0, served.output()


def test_follow_prints_each_move_until_sigterm(
    agent: Agent, publisher: Publisher, tmp_path: Path
) -> None:
    name = _publish(publisher, tmp_path, 2)
    log = tmp_path / "follow.log"
    env = {**os.environ, "MODELYARD_AGENT_HOME": str(agent.home), "MODELYARD_SERVER": agent.server}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "modelyard_agent", "follow", f"{name}@production"],
                                env=env, stdout=out, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: f"{name}@production → v1" in log.read_text(), "the first line")
        publisher.alias(name, "production", "2")
        wait_until(lambda: f"{name}@production → v2 (pulled" in log.read_text(), "the move")
        assert agent("ls", "--json").json()[1]["pulled_as"] == [f"{name}@production"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 0
    lines = log.read_text().splitlines()
    assert len(lines) == 2, lines


def test_follow_refuses_unknown_models_aliases_and_fixed_refs(
    agent: Agent, publisher: Publisher, tmp_path: Path
) -> None:
    name = _publish(publisher, tmp_path, 1)
    done = agent("follow", f"{name}@nope")
    assert done.code == 2 and f"model {name!r} has no alias 'nope'" in done.err, done.err
    assert done.err.count("\n") == 1
    done = agent("follow", f"x{name}@production")
    assert done.code == 2 and "no model" in done.err, done.err
    done = agent("follow", f"{name}:1")
    assert done.code == 2 and "NAME@ALIAS" in done.err, done.err
    done = agent("serve", "--port", "0", "--follow", f"{name}@nope")
    assert done.code == 2 and "has no alias" in done.err, done.err
    assert not list((agent.home / "serving").glob("*.json"))


def test_follow_with_a_refused_token_says_so(
    agent: Agent, publisher: Publisher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _publish(publisher, tmp_path, 1)
    monkeypatch.setenv("MODELYARD_TOKEN", "myd_" + "b" * 43)
    done = agent("follow", f"{name}@production")
    assert done.code == 2 and "token" in done.err.lower(), done.err
    assert httpx.get(f"{agent.server}/v2/health/ready").status_code == 200


def test_follow_ends_with_one_line_when_its_token_is_revoked(
    agent: Agent, publisher: Publisher, tmp_path: Path
) -> None:
    name = _publish(publisher, tmp_path, 2)
    token_name = f"follow-{name}"
    secret = publisher.gql("mutation($n: String!) { createToken(input: {name: $n, scope: READ}) "
                           "{ secret } }", n=token_name)["createToken"]["secret"]
    log = tmp_path / "follow.log"
    env = {**os.environ, "MODELYARD_AGENT_HOME": str(agent.home), "MODELYARD_SERVER": agent.server,
           "MODELYARD_TOKEN": secret}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "modelyard_agent", "follow", f"{name}@production"],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: f"{name}@production → v1" in log.read_text(), "the first line")
        publisher.gql("mutation($n: String!) { revokeToken(name: $n) { name } }", n=token_name)
        publisher.alias(name, "production", "2")  # the next event finds the token revoked
        assert proc.wait(TIMEOUT) == 2
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = log.read_text().splitlines()
    assert lines[-1].startswith("modelyard-agent: ") and "token" in lines[-1], lines
    assert not any("→ v2" in line for line in lines)


def test_serve_follow_keeps_the_old_version_when_the_new_one_does_not_load(
    agent: Agent, publisher: Publisher, tmp_path: Path
) -> None:
    name = publisher.model("follow-broken")
    publisher.version(name, {"model.onnx": scaled_model(tmp_path / "1.onnx", 1.0)})
    publisher.version(name, {"weights.bin": b"no ONNX model in this version"})
    publisher.version(name, {"model.onnx": scaled_model(tmp_path / "3.onnx", 3.0)})
    publisher.alias(name, "production", "1")
    served = Served(agent.home, agent.server, free_port(), "--follow", f"{name}@production")
    try:
        served.wait_ready()
        hammer = Hammer(served.url, name)
        wait_until(lambda: hammer.count() >= 5, "answers from version 1")
        publisher.alias(name, "production", "2")
        wait_until(lambda: "did not load" in served.output(), "the failed load to be reported")
        mark = hammer.count()
        wait_until(lambda: hammer.count() >= mark + 5, "answers after the failed load")
        publisher.alias(name, "production", "3")
        wait_until(lambda: hammer.latest() == "3", "the switch to version 3")
        hammer.finish()
    finally:
        assert served.stop() == 0, served.output()
    assert hammer.failures == []
    assert {a.version for a in hammer.answers} == {"1", "3"}
    assert "still serving v1" in served.output()
