"""Managing the cache: ls, rm, gc, outdated, export/import, login and the config file."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
from pathlib import Path

from conftest import Agent, Publisher


def test_ls_reports_sizes_and_shared_bytes(agent: Agent, publisher: Publisher) -> None:
    name = publisher.model()
    shared = os.urandom(20_000)
    v1 = publisher.version(name, {"w.bin": shared, "a.txt": b"one"})
    v2 = publisher.version(name, {"w.bin": shared, "a.txt": b"two!"})
    assert agent("pull", v1.ref).code == 0
    assert agent("pull", f"{name}@sha256:{'0' * 64}").code == 2
    assert agent("pull", name).code == 0
    rows = {r["ref"]: r for r in agent("ls", "--json").json()}
    assert rows[v1.ref]["size"] == 20_003 and rows[v1.ref]["shared"] == 20_000
    assert rows[v2.ref]["size"] == 20_004 and rows[v2.ref]["pulled_as"] == [name]
    assert rows[v2.ref]["pulled_at"] and rows[v2.ref]["complete"] is True
    assert v2.ref in agent("ls").out


def test_rm_then_gc_frees_only_unshared_blobs(agent: Agent, publisher: Publisher) -> None:
    name = publisher.model()
    shared, only1, only2 = os.urandom(5000), os.urandom(3000), os.urandom(4000)
    v1 = publisher.version(name, {"w.bin": shared, "x.bin": only1})
    v2 = publisher.version(name, {"w.bin": shared, "x.bin": only2})
    assert agent("pull", v1.ref).code == 0 and agent("pull", v2.ref).code == 0
    assert agent("rm", v1.ref).code == 0
    assert agent("rm", v1.ref).code == 2
    dry = agent("gc", "--dry-run")
    assert "would free 3000 bytes (1 blob(s)" in dry.out
    assert agent.blob(only1).exists()
    done = agent("gc")
    assert "freed 3000 bytes" in done.out
    assert not agent.blob(only1).exists() and agent.blob(shared).exists() and agent.blob(only2).exists()
    assert agent("verify").code == 0
    assert agent("pull", v2.ref, "--offline").code == 0


def test_gc_removes_stale_partials(agent: Agent, publisher: Publisher) -> None:
    name = publisher.model()
    publisher.version(name, {"w.bin": os.urandom(100)})
    assert agent("pull", name).code == 0
    stale = agent.home / "blobs" / "sha256" / f"{'ab' * 32}.partial"
    fresh = agent.home / "blobs" / "sha256" / f"{'cd' * 32}.partial"
    stale.write_bytes(b"x" * 10)
    fresh.write_bytes(b"y" * 7)
    os.utime(stale, (0, 0))
    out = agent("gc").out
    assert stale.name in out and "freed 10 bytes" in out
    assert not stale.exists() and fresh.exists()


def test_outdated_names_aliases_that_moved(agent: Agent, publisher: Publisher) -> None:
    name = publisher.model()
    publisher.version(name, {"w.bin": b"first"})
    publisher.version(name, {"w.bin": b"second"})
    publisher.alias(name, "prod", "1")
    assert agent("pull", f"{name}@prod").code == 0
    assert agent("pull", f"{name}:2").code == 0
    assert agent("outdated").out == ""
    publisher.alias(name, "prod", "2")
    assert agent("outdated").out == f"{name}@prod: cached {name}:1, server {name}:2\n"
    assert agent("pull", f"{name}@prod").code == 0
    assert agent("outdated").out == ""


def test_export_import_into_another_home(agent: Agent, publisher: Publisher, tmp_path: Path) -> None:
    name = publisher.model()
    files = {"w.bin": os.urandom(30_000), "cfg.json": b"{}"}
    v = publisher.version(name, files)
    assert agent("pull", v.ref).code == 0
    tar = tmp_path / "model.tar"
    assert agent("export", v.ref, str(tar)).code == 0
    agent.home = tmp_path / "laptop-without-network"
    done = agent("import", str(tar))
    assert done.code == 0, done.err
    assert agent("pull", v.ref, "--offline").code == 0
    for data in files.values():
        assert agent.blob(data).read_bytes() == data


def test_import_refuses_a_tampered_tar(agent: Agent, publisher: Publisher, tmp_path: Path) -> None:
    name = publisher.model()
    data = os.urandom(1000)
    v = publisher.version(name, {"w.bin": data})
    assert agent("pull", v.ref).code == 0
    good, bad = tmp_path / "good.tar", tmp_path / "bad.tar"
    assert agent("export", v.ref, str(good)).code == 0
    with tarfile.open(good) as src, tarfile.open(bad, "w") as dst:
        for member in src.getmembers():
            body = src.extractfile(member)
            assert body is not None
            content = body.read()
            if member.name.startswith("blobs/"):
                content = bytes([content[0] ^ 1]) + content[1:]
            dst.addfile(member, io.BytesIO(content))
    agent.home = tmp_path / "other"
    done = agent("import", str(bad))
    assert done.code == 2 and "do not hash" in done.err
    assert not list((agent.home / "blobs" / "sha256").iterdir())
    assert agent("ls", "--json").json() == []


def test_login_writes_a_private_config_and_flags_win(agent: Agent, tmp_path: Path) -> None:
    assert agent("login", "--server", "http://registry.example", "--token", "myd_secret").code == 0
    config = agent.home / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert json.loads(config.read_text()) == {"server": "http://registry.example", "token": "myd_secret"}
    agent.monkeypatch.delenv("MODELYARD_SERVER")
    from modelyard_agent import config as cfg
    loaded = cfg.load({"MODELYARD_AGENT_HOME": str(agent.home)})
    assert (loaded.server, loaded.token) == ("http://registry.example", "myd_secret")
    env = cfg.load({"MODELYARD_AGENT_HOME": str(agent.home), "MODELYARD_TOKEN": "myd_env"})
    assert env.token == "myd_env"
    flag = cfg.load({"MODELYARD_AGENT_HOME": str(agent.home), "MODELYARD_SERVER": "http://env"},
                    server="http://flag")
    assert flag.server == "http://flag"
    xdg = cfg.load({"XDG_CACHE_HOME": str(tmp_path / "c"), "XDG_CONFIG_HOME": str(tmp_path / "k")})
    assert xdg.home == tmp_path / "c" / "modelyard-agent"
    assert xdg.config_file == tmp_path / "k" / "modelyard-agent" / "config.json"
