#!/usr/bin/env python3
"""Bundle GraphiQL's browser assets from the npm registry so the IDE works offline."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DEST = Path(__file__).resolve().parent.parent / "src/modelyard/http/static/graphiql"
MANIFEST = "VERSIONS.json"


@dataclass(frozen=True)
class Package:
    """One pinned npm tarball and the files taken from it (path inside tarball -> served name)."""

    name: str
    version: str
    integrity: str
    files: dict[str, str]

    @property
    def spec(self) -> str:
        """The `name@version` spec given to npm."""
        return f"{self.name}@{self.version}"


# The versions Strawberry 0.341's own GraphiQL template loads from unpkg; integrity is npm's
# sha512 of each tarball, so a re-published or tampered package is refused.
PACKAGES: tuple[Package, ...] = (
    Package(
        "react",
        "18.2.0",
        "sha512-/3IjMdb2L9QbBdWiW5e3P2/npwMBaU9mHCSCUzNln0ZCYbcfTsGbTJrU/kGemdH2IWmB2ioZ+zkxtmq6g09fGQ==",
        {"umd/react.production.min.js": "react.production.min.js"},
    ),
    Package(
        "react-dom",
        "18.2.0",
        "sha512-6IMTriUmvsjHUjNtEDudZfuDQUoWXVxKHhlEGSk81n4YFS+r/Kl99wXiwlVXtPBtJenozv2P+hxDsw9eA7Xo6g==",
        {"umd/react-dom.production.min.js": "react-dom.production.min.js"},
    ),
    Package(
        "graphiql",
        "3.8.3",
        "sha512-cuPDYtXVKV86Pu5PHBX642Odi/uVEE2y1Jxq5rGO/Qy1G2lRp7ZZ7a/T30RzxhuLSWo9zUbzq0P3U49//H0Ugw==",
        {"graphiql.min.js": "graphiql.min.js", "graphiql.min.css": "graphiql.min.css"},
    ),
    Package(
        "@graphiql/plugin-explorer",
        "1.0.2",
        "sha512-9j+kg2UjtLZD5EBmGjeWHkoVVxtbShYg2DzbUVebibnZYZM/iMBEF4vaccXJIAm5KaomIPLx0aoNs4LbODyc3Q==",
        {"dist/index.umd.js": "plugin-explorer.umd.js", "dist/style.css": "plugin-explorer.css"},
    ),
)


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def is_current(dest: Path) -> bool:
    """True when dest already holds exactly the pinned packages' files, unmodified."""
    try:
        manifest = json.loads((dest / MANIFEST).read_text())
        wanted = {p.name: p.version for p in PACKAGES}
        if manifest["packages"] != wanted:
            return False
        return all(sha256(dest / name) == digest for name, digest in manifest["files"].items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def npm_pack(workdir: Path) -> dict[str, Path]:
    """Download every pinned tarball into workdir with one `npm pack`; map package name to file."""
    cmd = [
        "npm",
        "pack",
        "--json",
        "--ignore-scripts",
        "--loglevel=error",
        "--pack-destination",
        str(workdir),
        *(p.spec for p in PACKAGES),
    ]
    try:
        proc = subprocess.run(
            cmd, check=False, cwd=workdir, capture_output=True, text=True, timeout=300
        )
    except subprocess.TimeoutExpired:
        sys.exit(
            "fetch_graphiql: `npm pack` timed out after 300 s (is the npm registry reachable?)"
        )
    if proc.returncode != 0:
        sys.exit(
            f"fetch_graphiql: `{' '.join(cmd)}` failed (exit {proc.returncode}):\n"
            f"{proc.stderr.strip() or proc.stdout.strip()}"
        )
    packed = {entry["name"]: entry for entry in json.loads(proc.stdout)}
    tarballs: dict[str, Path] = {}
    for pkg in PACKAGES:
        entry = packed.get(pkg.name)
        if entry is None or entry["version"] != pkg.version:
            sys.exit(f"fetch_graphiql: npm did not return {pkg.spec}: got {entry!r}")
        if entry["integrity"] != pkg.integrity:
            sys.exit(f"fetch_graphiql: integrity mismatch for {pkg.spec}: {entry['integrity']}")
        tarballs[pkg.name] = workdir / entry["filename"]
    return tarballs


def extract(pkg: Package, tarball: Path, dest: Path) -> dict[str, str]:
    """Copy pkg's wanted files out of its tarball into dest; return served name -> sha256."""
    digests: dict[str, str] = {}
    with tarfile.open(tarball, "r:gz") as tar:
        for inner, served in pkg.files.items():
            try:
                member = tar.extractfile(f"package/{inner}")
            except KeyError:
                member = None
            if member is None:
                sys.exit(f"fetch_graphiql: {inner} is not a file in {pkg.spec}")
            data = member.read()
            # Write then rename, so a running server never serves a half-written file.
            tmp = dest / f".{served}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, dest / served)
            digests[served] = hashlib.sha256(data).hexdigest()
    return digests


def main(argv: list[str] | None = None) -> int:
    """Fetch the assets into --dest unless they are already there."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help=f"default: {DEFAULT_DEST}")
    dest: Path = parser.parse_args(argv).dest.resolve()

    if is_current(dest):
        print(f"fetch_graphiql: up to date in {dest}")
        return 0
    if shutil.which("npm") is None:
        sys.exit("fetch_graphiql: `npm` not found on PATH; install Node.js and npm")

    dest.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="fetch-graphiql-") as tmp:
        tarballs = npm_pack(Path(tmp))
        for pkg in PACKAGES:
            files.update(extract(pkg, tarballs[pkg.name], dest))
    # Written last: its presence means every file above is complete.
    manifest = {"packages": {p.name: p.version for p in PACKAGES}, "files": files}
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    print(f"fetch_graphiql: wrote {len(files)} files to {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
