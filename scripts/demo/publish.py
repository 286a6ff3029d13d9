"""Idempotent publishing through the real API: each call checks what the catalog already holds.

Every step can run again after an interruption and does only what is missing, so an interrupted
seed is completed by the next one instead of duplicated. Versions are created in order and a
model's existing versions are counted: version N of the plan is created only when the model has
fewer than N (createVersion is all-or-nothing, so a version is there whole or not at all).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelyard.client import Registry
from modelyard.client.connection import Connection

MODEL = "query($n: String!) { model(name: $n) { name versions(first: 1) { totalCount } } }"
CREATE_MODEL = "mutation($i: CreateModelInput!) { createModel(input: $i) { name } }"
DATASET = "query($n: String!) { dataset(name: $n) { versions { version } } }"
REGISTER = "mutation($i: RegisterDatasetInput!) { registerDataset(input: $i) { ref } }"


@dataclass
class VersionPlan:
    """One version to push: `build(folder)` writes its files and returns what to record."""

    build: Callable[[Path], VersionFacts]


@dataclass
class VersionFacts:
    """What a built version records besides its files."""

    params: Sequence[Mapping[str, Any]] | Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    parents: Sequence[tuple[str, str]] = ()
    description: str = ""
    folder: Path | None = None
    """Push this folder instead of the one `build` was given (files already on disk)."""


@dataclass
class ModelPlan:
    """A model, its versions in order and the aliases to point at them (alias -> number)."""

    name: str
    task: str
    description: str
    tags: Mapping[str, str]
    versions: Sequence[VersionPlan]
    aliases: Mapping[str, int] = field(default_factory=dict)


class Publisher:
    """Writes to a modelyard server as one token; reports what it did on stderr."""

    def __init__(self, url: str, token: str, work: Path) -> None:
        self.registry = Registry(url, token)
        self.conn = Connection(url, token, timeout=60.0, retries=3, backoff=0.3, transport=None)
        self.work = work
        self.created: list[str] = []

    def close(self) -> None:
        self.registry.close()
        self.conn.close()

    def dataset(self, name: str, version: str, *, uri: str, digest: str, size: int, description: str) -> str:
        """Register `name@version` unless it is there; its ref."""
        found = self.conn.graphql(DATASET, {"n": name})["dataset"]
        ref = f"{name}@{version}"
        if found is None or version not in {v["version"] for v in found["versions"]}:
            self.conn.graphql(REGISTER, {"i": {"name": name, "version": version, "uri": uri, "digest": digest,
                                               "size": size, "description": description}}, mutation=True)
            self.created.append(ref)
            say(f"  registered dataset {ref}")
        return ref

    def model(self, plan: ModelPlan) -> list[str]:
        """Create the model and whichever of its planned versions are missing; set its aliases."""
        found = self.conn.graphql(MODEL, {"n": plan.name})["model"]
        if found is None:
            self.conn.graphql(CREATE_MODEL, {"i": {
                "name": plan.name, "task": plan.task, "description": plan.description,
                "tags": [{"key": k, "value": v} for k, v in plan.tags.items()]}}, mutation=True)
            have = 0
        else:
            have = int(found["versions"]["totalCount"])
        refs = [f"{plan.name}:{n}" for n in range(1, len(plan.versions) + 1)]
        for number, version in enumerate(plan.versions, start=1):
            if number <= have:
                continue
            folder = self.work / plan.name.replace("/", "__") / str(number)
            facts = version.build(folder)
            result = self.registry.push(
                facts.folder or folder, plan.name, params=list(params_list(facts.params)), metrics=facts.metrics,
                tags=facts.tags, parents=facts.parents, description=facts.description, progress=False)
            if result.number != number:
                raise RuntimeError(f"expected {plan.name}:{number}, the server created {result.ref}: "
                                   "someone else is writing demo models")
            self.created.append(result.ref)
            say(f"  pushed {result.ref} ({result.files} files, {result.total_bytes:,} bytes)")
        for alias, number in plan.aliases.items():
            self.registry.set_alias(plan.name, alias, number)
        return refs


def params_list(params: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """`[{key, value}]` from a mapping (floats stay FLOAT even when whole: `C: 1.0`)."""
    if not isinstance(params, Mapping):
        return list(params)
    out: list[Mapping[str, Any]] = []
    for key, value in params.items():
        entry: dict[str, Any] = {"key": key, "value": value}
        if isinstance(value, float):
            entry["type"] = "FLOAT"
        out.append(entry)
    return out


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
