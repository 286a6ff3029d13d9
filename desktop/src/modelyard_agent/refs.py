"""Parsing refs (`name`, `name:3`, `name@alias`, `name@sha256:<hex>`) and digests at the edge."""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelyard_agent.errors import UsageError

_PART = r"[a-z0-9][a-z0-9._-]{0,63}"
# Used with fullmatch: `$` alone would also match before a final newline.
NAME = re.compile(rf"(?:{_PART}/)?{_PART}")
ALIAS = re.compile(_PART)
NUMBER = re.compile(r"[1-9][0-9]{0,17}")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class Ref:
    """A parsed ref: exactly one of `number`, `alias`, `digest` or none (newest READY)."""

    text: str
    name: str
    number: int | None = None
    alias: str | None = None
    digest: str | None = None

    @property
    def movable(self) -> bool:
        """Whether the server may answer it differently later (`name` or `name@alias`)."""
        return self.number is None and self.digest is None


def check_digest(digest: str) -> str:
    """`digest` if it is `sha256:<64 hex>`; refuses anything else (it becomes a file name)."""
    if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
        raise UsageError(f"not a sha256 digest: {digest!r}")
    return digest


def parse(text: str) -> Ref:
    """Parse a ref or refuse it with a clear message."""
    name, number, alias, digest = text, None, None, None
    if "@" in text:
        name, _, after = text.partition("@")
        if after.startswith("sha256:"):
            try:
                digest = check_digest(after)
            except UsageError:
                raise UsageError(f"bad ref {text!r}: the digest must be sha256:<64 hex>") from None
        elif ALIAS.fullmatch(after):
            alias = after
        else:
            raise UsageError(f"bad ref {text!r}: expected name@alias or name@sha256:<hex>")
    elif ":" in text:
        name, _, num = text.rpartition(":")
        if not NUMBER.fullmatch(num):
            raise UsageError(f"bad ref {text!r}: the version number must be 1 or more")
        number = int(num)
    if not NAME.fullmatch(name):
        raise UsageError(f"bad ref {text!r}: {name!r} is not a model name")
    return Ref(text, name, number, alias, digest)
