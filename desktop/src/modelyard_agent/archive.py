"""`export` and `import`: a version as one tar file, for machines with no network.

An export holds `manifest.json` first, then `blobs/sha256/<hex>` for each distinct blob, all
regular files. Import treats the file as hostile: it reads the member headers first and refuses
anything an export never holds (other names, links, devices, a member given twice, more members
than a version can have), reads `manifest.json` only up to `MAX_MANIFEST` and checks every field
of it, checks each blob member's size against the size the manifest declares and the total
against free disk space, and only then writes: each blob read to its declared size, hashed,
fsynced and renamed into place, the manifest last. Compressed tars (gzip, bzip2, xz) are read too.
"""

from __future__ import annotations

import errno
import hashlib
import io
import lzma
import os
import re
import tarfile
import zlib
from pathlib import Path

from modelyard_agent.cache import CHUNK, Cache, fsync_dir, sha256_file
from modelyard_agent.errors import DiskFullError, IntegrityError, InvalidInputError, UsageError
from modelyard_agent.manifest import MAX_ARTIFACTS, Artifact, Manifest
from modelyard_agent.pull import check_space
from modelyard_agent.refs import parse

MANIFEST = "manifest.json"
MAX_MANIFEST = 16 << 20
_BLOB = re.compile(r"blobs/sha256/([0-9a-f]{64})")
_FOLDERS = {".", "blobs", "blobs/sha256"}  # what `tar -cf x.tar -C dir .` adds around the files
# What reading a damaged or foreign file can raise, beside tarfile's own errors.
_READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError)


def export(cache: Cache, text: str, dest: Path) -> Manifest:
    """Write a tar holding the version's manifest and its blobs."""
    manifest = cache.require(parse(text))
    if not cache.complete(manifest):
        raise UsageError(f"{text}: some blobs are missing from the cache; pull it again first")
    tmp = dest.with_name(dest.name + ".partial")
    with tarfile.open(tmp, "w") as tar:
        data = manifest.to_json().encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for digest in sorted({a.digest for a in manifest.artifacts}):
            tar.add(cache.blob(digest), arcname=f"blobs/sha256/{digest.removeprefix('sha256:')}")
    os.replace(tmp, dest)
    return manifest


def import_(cache: Cache, src: Path) -> Manifest:
    """Read a tar written by `export`, checking everything before writing anything."""
    try:
        tar = tarfile.open(src, "r:*")
    except tarfile.ReadError:
        raise InvalidInputError(f"cannot read {src}: it is not a tar archive") from None
    except _READ_ERRORS as exc:
        raise InvalidInputError(f"cannot read {src}: {_reason(exc)}") from None
    with tar:
        members = _members(tar, src)
        if MANIFEST not in members:
            raise InvalidInputError(f"{src} has no {MANIFEST}: not an export of modelyard-agent")
        manifest = Manifest.from_json(_read_manifest(tar, members.pop(MANIFEST), src),
                                      f"{src}'s {MANIFEST}")
        sizes = {a.digest: a.size for a in manifest.artifacts}
        names = {f"blobs/sha256/{d.removeprefix('sha256:')}": d for d in sizes}
        for name in members:
            if name not in names:
                raise InvalidInputError(f"{src}: member {name!r} is not a blob of {manifest.ref}")
        for name, digest in names.items():
            if name not in members:
                raise InvalidInputError(f"{src} lacks {digest}, a blob of {manifest.ref}")
            if members[name].size != sizes[digest]:
                raise InvalidInputError(f"{src}: {name} holds {members[name].size} bytes; the manifest "
                                        f"declares {sizes[digest]} bytes")
        cache.blob_dir.mkdir(parents=True, exist_ok=True)
        # Artifact.path is the member's name here.
        wanted = [Artifact(name, digest, sizes[digest]) for name, digest in names.items()
                  if not (cache.has(digest, sizes[digest]) and sha256_file(cache.blob(digest)) == digest)]
        check_space(cache, wanted, "the import")
        for a in wanted:
            _extract(cache, tar, members[a.path], a, src)
    cache.save(manifest)
    return manifest


def _members(tar: tarfile.TarFile, src: Path) -> dict[str, tarfile.TarInfo]:
    """The archive's files by name, every header checked before any data is read."""
    found: dict[str, tarfile.TarInfo] = {}
    try:
        for info in tar:
            name = info.name.removeprefix("./")
            if info.isdir() and name.rstrip("/") in _FOLDERS:
                continue
            if name != MANIFEST and not _BLOB.fullmatch(name):
                raise InvalidInputError(f"{src}: member {info.name!r} is not part of an export")
            if not info.isreg():
                raise InvalidInputError(f"{src}: member {info.name!r} is a {_kind(info)}; an export "
                                        "holds regular files only")
            if name in found:
                raise InvalidInputError(f"{src}: member {name!r} is there twice")
            found[name] = info
            if len(found) > MAX_ARTIFACTS + 1:
                raise InvalidInputError(f"{src} has more members than a version can have "
                                        f"({MAX_ARTIFACTS} blobs and the manifest)")
    except _READ_ERRORS as exc:
        raise InvalidInputError(f"cannot read {src}: {_reason(exc)}") from None
    return found


def _read_manifest(tar: tarfile.TarFile, info: tarfile.TarInfo, src: Path) -> str:
    if info.size > MAX_MANIFEST:
        raise InvalidInputError(f"{src}: {MANIFEST} is larger than {MAX_MANIFEST >> 20} MiB; "
                                "not an export of modelyard-agent")
    try:
        f = tar.extractfile(info)
        data = f.read(info.size) if f is not None else b""
    except _READ_ERRORS as exc:
        raise InvalidInputError(f"cannot read {src}: {_reason(exc)}") from None
    if len(data) != info.size:
        raise InvalidInputError(f"{src} is truncated: {MANIFEST} is cut short")
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise InvalidInputError(f"{src}: {MANIFEST} is not UTF-8 text") from None


def _extract(cache: Cache, tar: tarfile.TarFile, info: tarfile.TarInfo, a: Artifact, src: Path) -> None:
    """One blob into the cache: read to its declared size, hashed, fsynced, renamed into place."""
    with cache.locked(a.digest):
        partial = cache.inside(cache.partial(a.digest))
        hasher = hashlib.sha256()
        try:
            source = tar.extractfile(info)
            assert source is not None  # a regular file, checked in _members
            with partial.open("wb") as out:
                left = a.size
                while left:
                    try:
                        chunk = source.read(min(CHUNK, left))
                    except _READ_ERRORS as exc:
                        raise InvalidInputError(f"cannot read {src}: {_reason(exc)}") from None
                    if not chunk:
                        raise InvalidInputError(f"{src} is truncated: {info.name} is cut short")
                    out.write(chunk)
                    hasher.update(chunk)
                    left -= len(chunk)
                out.flush()
                os.fsync(out.fileno())
            if f"sha256:{hasher.hexdigest()}" != a.digest:
                raise IntegrityError(f"{src}: the bytes for {a.digest} do not hash to it; nothing imported")
            os.replace(partial, cache.blob(a.digest))
            fsync_dir(cache.blob_dir)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFullError(f"disk full while importing {a.digest} into {cache.home}") from exc
            raise UsageError(f"cannot write {partial}: {exc.strerror or exc}") from exc
        except BaseException:
            partial.unlink(missing_ok=True)
            raise


def _kind(info: tarfile.TarInfo) -> str:
    if info.issym():
        return f"symbolic link to {info.linkname!r}"
    if info.islnk():
        return f"hard link to {info.linkname!r}"
    if info.isdir():
        return "folder"
    return "device or pipe"


def _reason(exc: BaseException) -> str:
    """A read error as one short line (tarfile's own messages may span several)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
