"""`import` of archives built to harm: nothing lands outside the cache, nothing is written beyond
what the manifest declares, and every bad archive gets the agent's one-line error."""

from __future__ import annotations

import gzip
import os
import resource
import subprocess
import sys
import tarfile
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from conftest import Agent, Jail, Outcome, Publisher
from hostile import archive, bytes_under, manifest_json, member, refused, sha

DATA = b"real weights"
HEX = sha(DATA)[7:]
MiB = 1 << 20


def blob_member(data: bytes = DATA, name: str | None = None) -> tuple[tarfile.TarInfo, bytes]:
    return member(name or f"blobs/sha256/{sha(data)[7:]}"), data


def good_manifest(**extra: Any) -> tuple[tarfile.TarInfo, bytes]:
    return member("manifest.json"), manifest_json("good", {"w.bin": DATA}, **extra)


def imported(agent: Agent, path: Path) -> Outcome:
    return agent("import", str(path))


@pytest.mark.parametrize(("name", "number"), [
    ("../../x/imp", 1), ("/abs/imp", 1), ("ok", "../../x/num"), ("ok", "1"), ("ok", 0), (7, 1),
    ("ok", True), (None, 1),
])
def test_names_and_numbers_in_the_manifest_are_checked(jailed: Agent, jail: Jail, tmp_path: Path,
                                                       name: Any, number: Any) -> None:
    path = archive(tmp_path / "a.tar", [
        (member("manifest.json"), manifest_json(name, {"w.bin": DATA}, number=number)), blob_member()])
    refused(imported(jailed, path), "manifest")
    jail.check()


@pytest.mark.parametrize("artifact_path", ["../../../../../x/evil", "/etc/evil", "a/../../b", "a\\b"])
def test_artifact_paths_in_the_manifest_are_checked(jailed: Agent, jail: Jail, tmp_path: Path,
                                                    artifact_path: str) -> None:
    path = archive(tmp_path / "a.tar", [
        (member("manifest.json"), manifest_json("good", {artifact_path: DATA})), blob_member()])
    refused(imported(jailed, path), "artifact path")
    jail.check()


def test_pulled_as_refs_must_name_the_same_model(jailed: Agent, jail: Jail, tmp_path: Path) -> None:
    path = archive(tmp_path / "a.tar", [good_manifest(pulled_as=["other@prod"]), blob_member()])
    refused(imported(jailed, path), "other@prod")
    jail.check()


@pytest.mark.parametrize("members", [
    [good_manifest(), blob_member(), (member("../../../../x/evil"), b"evil")],
    [good_manifest(), blob_member(), (member("/tmp/modelyard-evil"), b"evil")],
    [good_manifest(), blob_member(), (member("blobs/sha256/notes.txt"), b"evil")],
    [good_manifest(), (member(f"blobs/sha256/{HEX}", tarfile.SYMTYPE, "/etc/passwd"), None)],
    [good_manifest(), (member(f"blobs/sha256/{HEX}", tarfile.SYMTYPE, "manifest.json"), None)],
    [good_manifest(), (member(f"blobs/sha256/{HEX}", tarfile.LNKTYPE, "manifest.json"), None)],
    [good_manifest(), (member(f"blobs/sha256/{HEX}", tarfile.CHRTYPE), None)],
    [good_manifest(), (member(f"blobs/sha256/{HEX}", tarfile.FIFOTYPE), None)],
    [(member("manifest.json", tarfile.SYMTYPE, "/etc/passwd"), None), blob_member()],
], ids=["traversal", "absolute", "undeclared", "symlink-out", "symlink-in", "hardlink", "device",
        "fifo", "manifest-symlink"])
def test_members_an_export_never_writes_are_refused(jailed: Agent, jail: Jail, tmp_path: Path,
                                                    members: list[Any]) -> None:
    refused(imported(jailed, archive(tmp_path / "a.tar", members)))
    jail.check()
    assert not list((jail.home / "manifests").glob("**/*.json"))


def test_a_second_manifest_does_not_replace_the_first(jailed: Agent, jail: Jail, tmp_path: Path) -> None:
    evil = (member("manifest.json"), manifest_json("../../../../x/dup", {"w.bin": DATA}))
    refused(imported(jailed, archive(tmp_path / "a.tar", [good_manifest(), blob_member(), evil])),
            "manifest.json", "twice")
    jail.check()


def test_a_blob_given_twice_is_refused(jailed: Agent, jail: Jail, tmp_path: Path) -> None:
    twice = archive(tmp_path / "a.tar", [good_manifest(), blob_member(),
                                         blob_member(b"X" * len(DATA), f"blobs/sha256/{HEX}")])
    refused(imported(jailed, twice), "twice")
    jail.check()


def _sparse_archive(folder: Path, declared: bytes, expanded: int) -> Path:
    """A few KiB of tar whose one blob entry expands to `expanded` bytes (GNU sparse)."""
    (folder / "blobs" / "sha256").mkdir(parents=True)
    (folder / "manifest.json").write_bytes(manifest_json("good", {"w.bin": declared}))
    big = folder / "blobs" / "sha256" / sha(declared)[7:]
    with big.open("wb") as f:
        f.truncate(expanded)
    out = folder.parent / "sparse.tar"
    subprocess.run(["tar", "--sparse", "--format=gnu", "-cf", str(out), "-C", str(folder),
                    "manifest.json", f"blobs/sha256/{big.name}"], check=True)
    return out


def _import_capped(home: Path, path: Path, cap: int) -> Outcome:
    """`modelyard-agent import` in a process that may not write a file larger than `cap`."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (cap, cap))

    env = {**os.environ, "MODELYARD_AGENT_HOME": str(home)}
    done = subprocess.run([sys.executable, "-m", "modelyard_agent", "import", str(path)], env=env,
                          capture_output=True, text=True, preexec_fn=limit, timeout=120)
    return Outcome(done.returncode, done.stdout, done.stderr)


def test_a_sparse_entry_is_stopped_at_the_declared_size(jail: Jail, tmp_path: Path) -> None:
    """The issue's case: ~10 KiB of tar, an entry that expands to 2 GiB, a manifest that says 4 B."""
    path = _sparse_archive(tmp_path / "src", b"four", 2 << 30)
    assert path.stat().st_size < 64 * 1024
    done = _import_capped(jail.home, path, 8 * MiB)  # writing more than 8 MiB kills the process
    refused(done, "4 bytes")
    assert bytes_under(jail.home) < MiB
    jail.check()


def test_free_disk_space_is_checked_before_writing(tiny_fs: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(2 * MiB)
    path = archive(tmp_path / "a.tar", [(member("manifest.json"), manifest_json("big", {"w.bin": data})),
                                        blob_member(data)])
    agent = Agent(tiny_fs / "home", "http://127.0.0.1:9", monkeypatch)
    refused(agent("import", str(path)), "disk space")
    assert bytes_under(tiny_fs) < 64 * 1024


def test_a_huge_manifest_is_not_read_into_memory(jailed: Agent, jail: Jail, tmp_path: Path) -> None:
    folder = tmp_path / "src"
    folder.mkdir()
    with (folder / "manifest.json").open("wb") as f:
        f.truncate(256 * MiB)
    path = tmp_path / "huge.tar"
    subprocess.run(["tar", "--sparse", "--format=gnu", "-cf", str(path), "-C", str(folder),
                    "manifest.json"], check=True)
    tracemalloc.start()
    try:
        done = imported(jailed, path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    refused(done, "manifest.json", "larger than")
    assert peak < 64 * MiB, f"import held {peak / MiB:.0f} MiB"
    jail.check()


@pytest.fixture
def exported(agent: Agent, publisher: Publisher, tmp_path: Path) -> Path:
    """A real export of a real pulled version, with a blob big enough to cut in half."""
    name = publisher.model("exp")
    v = publisher.version(name, {"w.bin": os.urandom(300_000), "cfg.json": b"{}"})
    assert agent("pull", v.ref).code == 0
    out = tmp_path / "real.tar"
    assert agent("export", v.ref, str(out)).code == 0
    return out


@pytest.mark.parametrize("keep", [0.5, 0.9, 700, 100])
def test_a_truncated_archive_gets_one_line(jailed: Agent, jail: Jail, exported: Path, tmp_path: Path,
                                           keep: float) -> None:
    data = exported.read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[: int(len(data) * keep) if keep < 1 else int(keep)])
    refused(imported(jailed, cut))
    jail.check()
    assert not list((jail.home / "manifests").glob("**/*.json"))


@pytest.mark.parametrize("content", [b"", b"not a tar at all" * 100, gzip.compress(b"\0" * 10_000)])
def test_something_that_is_not_an_export_gets_one_line(jailed: Agent, jail: Jail, tmp_path: Path,
                                                       content: bytes) -> None:
    path = tmp_path / "junk.tar"
    path.write_bytes(content)
    refused(imported(jailed, path))
    jail.check()


@pytest.mark.parametrize("text", [b"{not json", b"\xff\xfe", b"[1, 2]", b'{"name": "good"}'])
def test_a_manifest_that_is_not_one_gets_one_line(jailed: Agent, jail: Jail, tmp_path: Path,
                                                  text: bytes) -> None:
    path = archive(tmp_path / "a.tar", [(member("manifest.json"), text), blob_member()])
    refused(imported(jailed, path), "manifest")
    jail.check()


def test_bytes_that_do_not_match_are_not_imported(jailed: Agent, jail: Jail, tmp_path: Path) -> None:
    path = archive(tmp_path / "a.tar", [good_manifest(),
                                        blob_member(b"X" * len(DATA), f"blobs/sha256/{HEX}")])
    refused(imported(jailed, path), "do not hash")
    jail.check()
    assert not (jail.home / "blobs" / "sha256" / HEX).exists()


def test_a_compressed_export_still_imports(agent: Agent, exported: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    packed = tmp_path / "real.tar.gz"
    packed.write_bytes(gzip.compress(exported.read_bytes()))
    other = Agent(tmp_path / "other-home", agent.server, monkeypatch)
    done = other("import", str(packed))
    assert done.code == 0, done.err
    assert other("verify").code == 0
    assert len(other("ls", "--json").json()) == 1
