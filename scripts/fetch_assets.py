#!/usr/bin/env python3
"""Fetch the browser assets the server serves (GraphiQL, the web UI's libraries) from the npm
registry, pinned by version and integrity, so every page works offline with no CDN.

Each bundle is a folder under src/modelyard/http/static/ with a VERSIONS.json written last;
a bundle whose VERSIONS.json matches the pins and whose files hash as recorded is left alone."""

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

STATIC = Path(__file__).resolve().parent.parent / "src/modelyard/http/static"
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
GRAPHIQL: tuple[Package, ...] = (
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

# The web UI's libraries: the lineage picture's layout (dagre, maintained as @dagrejs/dagre) and
# the metric charts (uPlot). Both are plain scripts that define one global.
UI: tuple[Package, ...] = (
    Package(
        "@dagrejs/dagre",
        "3.1.4",
        "sha512-tW3fsvXxSteGpBHgT/hqPxBxTibPw409mH97S6LzXe+ddak2/RtPtYkYPo5gfvzBtnjxrZnoh8ft62zA3LDAZQ==",
        {"dist/dagre.min.js": "dagre.min.js", "LICENSE": "dagre.LICENSE.txt"},
    ),
    Package(
        "uplot",
        "1.6.32",
        "sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==",
        {"dist/uPlot.iife.min.js": "uPlot.iife.min.js", "dist/uPlot.min.css": "uPlot.min.css",
         "LICENSE": "uPlot.LICENSE.txt"},
    ),
)

BUNDLES: dict[str, tuple[Package, ...]] = {"graphiql": GRAPHIQL, "ui-vendor": UI}


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def is_current(dest: Path, packages: tuple[Package, ...]) -> bool:
    """True when dest already holds exactly the pinned packages' files, unmodified."""
    try:
        manifest = json.loads((dest / MANIFEST).read_text())
        wanted = {p.name: p.version for p in packages}
        if manifest["packages"] != wanted:
            return False
        return all(sha256(dest / name) == digest for name, digest in manifest["files"].items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def npm_pack(workdir: Path, packages: tuple[Package, ...]) -> dict[str, Path]:
    """Download every pinned tarball into workdir with one `npm pack`; map package name to file."""
    cmd = [
        "npm",
        "pack",
        "--json",
        "--ignore-scripts",
        "--loglevel=error",
        "--pack-destination",
        str(workdir),
        *(p.spec for p in packages),
    ]
    try:
        proc = subprocess.run(
            cmd, check=False, cwd=workdir, capture_output=True, text=True, timeout=300
        )
    except subprocess.TimeoutExpired:
        sys.exit(
            "fetch_assets: `npm pack` timed out after 300 s (is the npm registry reachable?)"
        )
    if proc.returncode != 0:
        sys.exit(
            f"fetch_assets: `{' '.join(cmd)}` failed (exit {proc.returncode}):\n"
            f"{proc.stderr.strip() or proc.stdout.strip()}"
        )
    packed = {entry["name"]: entry for entry in json.loads(proc.stdout)}
    tarballs: dict[str, Path] = {}
    for pkg in packages:
        entry = packed.get(pkg.name)
        if entry is None or entry["version"] != pkg.version:
            sys.exit(f"fetch_assets: npm did not return {pkg.spec}: got {entry!r}")
        if entry["integrity"] != pkg.integrity:
            sys.exit(f"fetch_assets: integrity mismatch for {pkg.spec}: {entry['integrity']}")
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
                sys.exit(f"fetch_assets: {inner} is not a file in {pkg.spec}")
            data = member.read()
            # Write then rename, so a running server never serves a half-written file.
            tmp = dest / f".{served}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, dest / served)
            digests[served] = hashlib.sha256(data).hexdigest()
    return digests


def fetch(name: str, packages: tuple[Package, ...], dest: Path) -> None:
    """Fetch one bundle into dest unless it is already there."""
    if is_current(dest, packages):
        print(f"fetch_assets: {name} up to date in {dest}")
        return
    if shutil.which("npm") is None:
        sys.exit("fetch_assets: `npm` not found on PATH; install Node.js and npm")
    dest.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="fetch-assets-") as tmp:
        tarballs = npm_pack(Path(tmp), packages)
        for pkg in packages:
            files.update(extract(pkg, tarballs[pkg.name], dest))
    # Written last: its presence means every file above is complete.
    manifest = {"packages": {p.name: p.version for p in packages}, "files": files}
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    print(f"fetch_assets: wrote {len(files)} {name} files to {dest}")


def main(argv: list[str] | None = None) -> int:
    """Fetch every bundle into its folder under --static."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--static", type=Path, default=STATIC, help=f"default: {STATIC}")
    static: Path = parser.parse_args(argv).static.resolve()
    for name, packages in BUNDLES.items():
        fetch(name, packages, static / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
