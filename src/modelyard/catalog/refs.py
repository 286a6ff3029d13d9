"""Names and references: the one grammar that names a model, a version or a dataset version.

    name           latest READY version      vision/resnet50
    name:3         version number 3          vision/resnet50:3
    name@alias     what an alias points at   vision/resnet50@production
    name@sha256:…  manifest digest (pinned)  vision/resnet50@sha256:9f2c…
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelyard.errors import InvalidError

_PART = r"[a-z0-9][a-z0-9._-]{0,63}"
# Every pattern here is used with `fullmatch`: `$` alone would also match before a final newline.
NAME_RE = re.compile(rf"(?:(?P<ns>{_PART})/)?(?P<name>{_PART})")
ALIAS_RE = re.compile(r"[a-z][a-z0-9._-]{0,63}")
DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
TAG_KEY_RE = re.compile(r"[A-Za-z0-9_.:/-]{1,128}")
KEY_RE = re.compile(r"[A-Za-z0-9_.:/\-\[\]]{1,128}")
# A version number as written in a ref: ASCII digits, no leading zero, at most 9 of them.
NUMBER_RE = re.compile(r"[1-9][0-9]{0,8}")


@dataclass(frozen=True)
class ModelName:
    """A validated model (or dataset) name with its optional namespace."""

    namespace: str
    name: str

    @property
    def full(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


def parse_name(raw: str, what: str = "model") -> ModelName:
    """Validate `[namespace/]name`; raise INVALID with the rule when it does not match."""
    m = NAME_RE.fullmatch(raw or "")
    if not m:
        raise InvalidError(
            f"invalid {what} name {raw!r}: use lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, at most 64 characters, with an optional "
            "'namespace/' prefix of the same form"
        )
    return ModelName(m.group("ns") or "", m.group("name"))


def namespace_of(name: str) -> str:
    """The namespace part of a model or dataset name or ref ('' when there is none)."""
    base = name.split("@", 1)[0].split(":", 1)[0]
    return base.split("/", 1)[0] if "/" in base else ""


def check_alias(raw: str) -> str:
    """Validate an alias name (a number would read as a version, so it must start with a letter)."""
    if not ALIAS_RE.fullmatch(raw or "") or raw == "latest":
        raise InvalidError(
            f"invalid alias {raw!r}: use lowercase letters, digits, '.', '_' or '-', starting "
            "with a letter, at most 64 characters ('latest' is reserved)"
        )
    return raw


def check_key(raw: str, what: str) -> str:
    """Validate a param, metric or tag key."""
    if not KEY_RE.fullmatch(raw or ""):
        raise InvalidError(
            f"invalid {what} key {raw!r}: 1-128 characters of letters, digits and _ . : / - [ ]"
        )
    return raw


def check_digest(raw: str) -> str:
    """Validate a `sha256:<64 lowercase hex>` digest."""
    if not DIGEST_RE.fullmatch(raw or ""):
        raise InvalidError(f"invalid digest {raw!r}: expected 'sha256:' and 64 lowercase hex digits")
    return raw


@dataclass(frozen=True)
class VersionRef:
    """A parsed reference to a model version; exactly one of number, alias, digest, or none (latest)."""

    model: ModelName
    number: int | None = None
    alias: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        if self.number is not None:
            return f"{self.model.full}:{self.number}"
        if self.alias is not None:
            return f"{self.model.full}@{self.alias}"
        if self.digest is not None:
            return f"{self.model.full}@{self.digest}"
        return self.model.full


def parse_ref(raw: str) -> VersionRef:
    """Parse `name`, `name:N`, `name@alias` or `name@sha256:<hex>`."""
    try:
        return _parse_ref(raw or "")
    except InvalidError as exc:
        raise InvalidError(
            f"invalid version ref {raw!r} (expected name, name:N, name@alias or "
            f"name@sha256:<hex>): {exc.message}"
        ) from exc


def _parse_ref(text: str) -> VersionRef:
    if "@" in text:
        base, _, target = text.partition("@")
        model = parse_name(base)
        if target.startswith("sha256:"):
            return VersionRef(model, digest=check_digest(target))
        return VersionRef(model, alias=target if target == "latest" else check_alias(target))
    if ":" in text:
        base, _, num = text.partition(":")
        model = parse_name(base)
        if not NUMBER_RE.fullmatch(num):
            shown = num if len(num) <= 20 else num[:20] + "…"
            raise InvalidError(f"version number {shown!r} must be a whole number from 1 "
                               "(ASCII digits, no leading zero, at most 9 digits)")
        return VersionRef(model, number=int(num))
    return VersionRef(parse_name(text))


@dataclass(frozen=True)
class DatasetRef:
    """`dataset` (latest version) or `dataset@version`."""

    dataset: ModelName
    version: str | None = None

    def __str__(self) -> str:
        return f"{self.dataset.full}@{self.version}" if self.version else self.dataset.full


DATASET_VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_dataset_version(raw: str) -> str:
    """Validate a dataset version label such as `v3` or `2024-06`."""
    if not DATASET_VERSION_RE.fullmatch(raw or ""):
        raise InvalidError(
            f"invalid dataset version {raw!r}: 1-64 letters, digits, '.', '_' or '-'"
        )
    return raw


def parse_dataset_ref(raw: str) -> DatasetRef:
    """Parse `dataset` or `dataset@version`."""
    base, sep, version = (raw or "").partition("@")
    name = parse_name(base, "dataset")
    return DatasetRef(name, check_dataset_version(version) if sep else None)
