"""Idempotent publishing through the real API: each call checks what the catalog already holds.

Every step can run again after an interruption and does only what is missing, so an interrupted
seed is completed by the next one instead of duplicated. Versions are created in order and a
model's existing versions are counted: version N of the plan is created only when the model has
fewer than N (createVersion is all-or-nothing, so a version is there whole or not at all).
A version's training series go in one `logMetrics` call (all or nothing too), made unless the
version already has them. Alias moves are a timeline replayed once: each alias's history is read
first, and only the moves after the part of the timeline it already holds are made, each as soon
as its version exists — so `aliasHistory` tells the same story however often the seed was cut.
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
ALIAS_HISTORY = "query($n: String!, $a: String!) { model(name: $n) { aliasHistory(alias: $a) { version { number } } } }"
METRIC_KEYS = "query($r: String!) { version(ref: $r) { metrics { key } } }"
LOG_METRICS = "mutation($i: LogMetricsInput!) { logMetrics(input: $i) { ref } }"
REGISTER = "mutation($i: RegisterDatasetInput!) { registerDataset(input: $i) { ref } }"


@dataclass
class VersionPlan:
    """One version to push: `build(folder)` writes its files and returns what to record.
    `series` names the metric series `build` measures, logged after the push."""

    build: Callable[[Path], VersionFacts]
    series: tuple[str, ...] = ()


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
    series: Mapping[str, Sequence[tuple[int, float]]] = field(default_factory=dict)
    """Values the training loop measured, by key: (step, value) points, logged with `logMetrics`."""


@dataclass
class ModelPlan:
    """A model, its versions in order, and its alias moves in order: (alias, version number), each
    made once that version exists (`[("production", 1), ("production", 2)]`: promoted, then moved)."""

    name: str
    task: str
    description: str
    tags: Mapping[str, str]
    versions: Sequence[VersionPlan]
    aliases: Sequence[tuple[str, int]] = ()

    def story(self) -> str:
        """`@production -> :1 -> :2, @staging -> :2`: each alias's moves."""
        moves: dict[str, list[int]] = {}
        for alias, number in self.aliases:
            moves.setdefault(alias, []).append(number)
        return ", ".join(f"@{alias} -> " + " -> ".join(f":{n}" for n in numbers) for alias, numbers in moves.items())


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
        moves = self._moves_left(plan) if found is not None else list(plan.aliases)
        for number, version in enumerate(plan.versions, start=1):
            facts = self._push(plan, number, version) if number > have else None
            if version.series:
                self._log_series(plan, number, version, facts)
            while moves and moves[0][1] <= number:
                alias, target = moves.pop(0)
                self.registry.set_alias(plan.name, alias, target)
                say(f"  moved {plan.name}@{alias} to :{target}")
        return refs

    def _build(self, plan: ModelPlan, number: int, version: VersionPlan) -> tuple[Path, VersionFacts]:
        folder = self.work / plan.name.replace("/", "__") / str(number)
        return folder, version.build(folder)

    def _push(self, plan: ModelPlan, number: int, version: VersionPlan) -> VersionFacts:
        folder, facts = self._build(plan, number, version)
        result = self.registry.push(
            facts.folder or folder, plan.name, params=list(params_list(facts.params)), metrics=facts.metrics,
            tags=facts.tags, parents=facts.parents, description=facts.description, progress=False)
        if result.number != number:
            raise RuntimeError(f"expected {plan.name}:{number}, the server created {result.ref}: "
                               "someone else is writing demo models")
        self.created.append(result.ref)
        say(f"  pushed {result.ref} ({result.files} files, {result.total_bytes:,} bytes)")
        return facts

    def _log_series(self, plan: ModelPlan, number: int, version: VersionPlan, facts: VersionFacts | None) -> None:
        """Log the version's training series unless it has them (a version pushed by a run that was
        cut before it logged them is rebuilt: the training is deterministic)."""
        ref = f"{plan.name}:{number}"
        have = {m["key"] for m in self.conn.graphql(METRIC_KEYS, {"r": ref})["version"]["metrics"]}
        missing = [key for key in version.series if key not in have]
        if not missing:
            return
        if facts is None:
            facts = self._build(plan, number, version)[1]
        points = [{"key": key, "value": value, "step": step} for key in missing for step, value in facts.series[key]]
        self.conn.graphql(LOG_METRICS, {"i": {"ref": ref, "metrics": points}}, mutation=True)
        say(f"  logged {len(points)} points of {', '.join(missing)} to {ref}")

    def _moves_left(self, plan: ModelPlan) -> list[tuple[str, int]]:
        """The moves of the plan's timeline that each alias's history does not hold yet. An alias
        moved otherwise than planned (by someone else) is left as it is."""
        skip: dict[str, int] = {}
        for alias in dict.fromkeys(a for a, _ in plan.aliases):
            found = self.conn.graphql(ALIAS_HISTORY, {"n": plan.name, "a": alias})["model"]["aliasHistory"]
            history = [(m["version"] or {}).get("number") for m in reversed(found)]  # oldest first
            planned = [n for a, n in plan.aliases if a == alias]
            if history == planned[:len(history)]:
                skip[alias] = len(history)
            else:
                say(f"  {plan.name}@{alias} was moved outside the demo's plan; left as it is")
                skip[alias] = len(planned)
        left = []
        for alias, number in plan.aliases:
            if skip[alias]:
                skip[alias] -= 1
            else:
                left.append((alias, number))
        return left


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
