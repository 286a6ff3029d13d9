"""The canonical manifest of a version and its digest, which pins the version immutably."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from modelyard.catalog.params import TypedParam


def manifest(model: str, params: list[TypedParam], artifacts: list[dict[str, Any]]) -> dict[str, Any]:
    """The immutable content of a version: its model, typed params and artifacts (by path)."""
    return {
        "schema": 1,
        "model": model,
        "params": {p.key: {"type": p.kind.value, "value": p.value} for p in params},
        "artifacts": sorted(artifacts, key=lambda a: str(a["path"])),
    }


def manifest_digest(doc: dict[str, Any]) -> str:
    """sha256 of the manifest as canonical JSON (sorted keys, no spaces, UTF-8)."""
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
