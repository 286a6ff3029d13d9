"""What the agent knows of a pulled version, and the checks that make it safe to build paths from.

A manifest comes from a registry's answer (`from_server`), an archive's `manifest.json` or a file
in the cache (`from_json`). All three are untrusted: the name, number and digests become folder
and file names and the artifact paths become paths under `versions/`, so each is held to the
registry's own grammar (`src/modelyard/catalog/refs.py`, `catalog/artifacts.py`) before anything
is written, and anything else is refused with an `InvalidInputError` naming the field:

    name        [namespace/]name, each part [a-z0-9][a-z0-9._-]{0,63}
    number      a JSON integer >= 1 (not a string, not a bool)
    digest      sha256:<64 lowercase hex>
    path        relative POSIX path of at most 512 characters: no '..', '.' or empty segment,
                no backslash, drive letter or control character; no path both a file and a folder
    size        a JSON integer, 0 <= size < 2**63
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from modelyard_agent.errors import InvalidInputError, UsageError
from modelyard_agent.refs import DIGEST, NAME, Ref, parse

MAX_ARTIFACTS = 10_000  # the registry's own limit per version
MAX_PATH = 512
MAX_SIZE = 2**63 - 1
MAX_TEXT = 256
MAX_TENSORS = 10_000
MAX_DIMS = 64
_TASK = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")


@dataclass
class Artifact:
    """One file of a version."""

    path: str
    digest: str
    size: int
    media_type: str = "application/octet-stream"


@dataclass
class Manifest:
    """What the agent knows of one pulled version."""

    name: str
    number: int
    ref: str
    manifest_digest: str
    artifacts: list[Artifact]
    task: str = "other"
    signature: dict[str, Any] | None = None
    pulled_as: list[str] = field(default_factory=list)
    pulled_at: str = ""

    @property
    def size(self) -> int:
        """Total bytes of its distinct blobs."""
        return sum({a.digest: a.size for a in self.artifacts}.values())

    def to_json(self) -> str:
        """The manifest file's text."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str) -> Manifest:
        """A manifest file's text (the cache's or an archive's), every field checked."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InvalidInputError(f"{source}: not JSON ({exc})") from None
        check = _Checker(source)
        if not isinstance(data, dict):
            raise check.bad("is not a JSON object")
        name = check.name(data.get("name"))
        number = check.number(data.get("number"))
        pulled_as = data.get("pulled_as", [])
        if not isinstance(pulled_as, list):
            raise check.bad("pulled_as is not a list")
        return cls(
            name=name,
            number=number,
            ref=check.ref(data.get("ref"), name, number),
            manifest_digest=check.digest(data.get("manifest_digest"), "manifest digest"),
            artifacts=check.artifacts(data.get("artifacts"), "media_type"),
            task=check.task(data.get("task", "other")),
            signature=check.signature(data.get("signature")),
            pulled_as=[check.pulled_as(text, name) for text in pulled_as],
            pulled_at=check.text(data.get("pulled_at", ""), "pulled_at"),
        )

    @classmethod
    def from_server(cls, data: Any, asked: Ref, source: str) -> Manifest:
        """The registry's answer for `asked` (the agent's VERSION_QUERY selection), every field
        checked, and checked to be the version asked for."""
        check = _Checker(f"{source} answered {asked.text!r} with a version whose")
        if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
            raise InvalidInputError(f"{source} answered {asked.text!r} with something that is not a version")
        name = check.name(data["model"].get("name"))
        if name != asked.name:
            raise check.bad(f"model is {name!r}, not {asked.name!r}")
        number = check.number(data.get("number"))
        if asked.number is not None and number != asked.number:
            raise check.bad(f"ref is {name}:{number}, not {asked.text}")
        digest = check.digest(data.get("manifestDigest"), "manifest digest")
        if asked.digest is not None and digest != asked.digest:
            raise check.bad(f"manifest digest is {digest}, not the one asked for")
        return cls(
            name=name,
            number=number,
            ref=check.ref(data.get("ref"), name, number),
            manifest_digest=digest,
            artifacts=check.artifacts(data.get("artifacts"), "mediaType"),
            task=check.task(data["model"].get("task") or "other"),
            signature=check.signature(data.get("signature")),
            pulled_as=[asked.text],
        )


class _Checker:
    """Field checks that name their source in every error."""

    def __init__(self, source: str) -> None:
        self.source = source

    def bad(self, problem: str) -> InvalidInputError:
        return InvalidInputError(f"{self.source} {problem}")

    def name(self, value: Any) -> str:
        if not isinstance(value, str) or not NAME.fullmatch(value):
            raise self.bad(f"model name {value!r} is not a model name")
        return value

    def number(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIZE:
            raise self.bad(f"version number {value!r} is not an integer of 1 or more")
        return value

    def ref(self, value: Any, name: str, number: int) -> str:
        if value != f"{name}:{number}":
            raise self.bad(f"ref {value!r} is not {name}:{number}")
        return str(value)

    def digest(self, value: Any, what: str) -> str:
        if not isinstance(value, str) or not DIGEST.fullmatch(value):
            raise self.bad(f"{what} {value!r} is not a sha256:<64 hex> digest")
        return value

    def text(self, value: Any, what: str) -> str:
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise self.bad(f"{what} is not a string of at most {MAX_TEXT} characters")
        return value

    def task(self, value: Any) -> str:
        if not isinstance(value, str) or not _TASK.fullmatch(value):
            raise self.bad(f"task {value!r} is not a task name")
        return value.lower().replace("_", "-")

    def pulled_as(self, value: Any, name: str) -> str:
        try:
            ref = parse(value) if isinstance(value, str) else None
        except UsageError:
            ref = None
        if ref is None or ref.name != name:
            raise self.bad(f"pulled_as entry {value!r} is not a ref of {name}")
        return ref.text

    def path(self, value: Any) -> str:
        if not isinstance(value, str):
            raise self.bad(f"artifact path {value!r} is not a string")
        problem = None
        if not value or len(value) > MAX_PATH:
            problem = f"must be 1-{MAX_PATH} characters"
        elif "\\" in value:
            problem = "must use '/' (no backslashes)"
        elif value.startswith("/") or (len(value) > 1 and value[1] == ":"):
            problem = "must be relative"
        elif any(part in ("", ".", "..") for part in value.split("/")):
            problem = "must not contain empty, '.' or '..' segments"
        elif any(ord(c) < 32 or c == "\x7f" for c in value):
            problem = "must not contain control characters"
        elif posixpath.normpath(value) != value:
            problem = "must be normalised"
        if problem:
            raise self.bad(f"artifact path {value!r} {problem}")
        return value

    def size(self, value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SIZE:
            raise self.bad(f"size of {path!r} ({value!r}) is not a byte count")
        return value

    def artifacts(self, items: Any, media_key: str) -> list[Artifact]:
        if not isinstance(items, list):
            raise self.bad("artifacts are not a list")
        if len(items) > MAX_ARTIFACTS:
            raise self.bad(f"has {len(items)} artifacts, more than the registry allows ({MAX_ARTIFACTS})")
        out: list[Artifact] = []
        for item in items:
            if not isinstance(item, dict):
                raise self.bad(f"artifact {item!r} is not an object")
            path = self.path(item.get("path"))
            media = item.get(media_key) or ""
            out.append(Artifact(path, self.digest(item.get("digest"), f"digest of {path!r}"),
                                self.size(item.get("size"), path), self.text(media, f"media type of {path!r}")))
        files = [a.path for a in out]
        if len(set(files)) != len(files):
            twice = next(p for p in files if files.count(p) > 1)
            raise self.bad(f"artifact path {twice!r} is given twice")
        folders = {"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)}
        both = sorted(folders.intersection(files))
        if both:
            raise self.bad(f"artifact path {both[0]!r} is both a file and a folder")
        return out

    def signature(self, value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.bad("signature is not an object")
        return {side: self._tensors(value.get(side) or [], side) for side in ("inputs", "outputs")}

    def _tensors(self, items: Any, side: str) -> list[dict[str, Any]]:
        if not isinstance(items, list) or len(items) > MAX_TENSORS:
            raise self.bad(f"signature {side} are not a list of at most {MAX_TENSORS}")
        out = []
        for t in items:
            shape = t.get("shape") if isinstance(t, dict) else None
            if (not isinstance(t, dict) or not isinstance(t.get("name"), str)
                    or not isinstance(t.get("datatype"), str) or not isinstance(shape, list)
                    or len(shape) > MAX_DIMS
                    or not all(isinstance(d, int) and not isinstance(d, bool) and d >= -1 for d in shape)):
                raise self.bad(f"signature {side} entry {t!r:.80} is not a tensor (name, datatype, shape)")
            out.append({"name": t["name"], "datatype": t["datatype"], "shape": list(shape)})
        return out
