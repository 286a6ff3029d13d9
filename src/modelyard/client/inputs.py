"""Turning what a user hands the client (dicts, files, `NAME@V`) into GraphQL input values.

Checked before any byte is uploaded, so a typo fails in a second rather than after an hour.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from modelyard.client.errors import UsageError

RELATIONS = ("FINE_TUNED_FROM", "DISTILLED_FROM", "QUANTIZED_FROM", "CONVERTED_FROM", "DERIVED_FROM",
             "TRAINED_ON", "EVALUATED_ON")
PARAM_TYPES = ("STRING", "INT", "FLOAT", "BOOL", "JSON")

Params = Mapping[str, Any] | Sequence[Mapping[str, Any]]
Metrics = Mapping[str, Any] | Sequence[Mapping[str, Any]]


def load_file(path: str | Path) -> Any:
    """The data in a JSON file, or a YAML one (`.yaml`/`.yml`, needs PyYAML)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path} is not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise UsageError(f"reading {path} needs PyYAML (pip install pyyaml), or give a .json file") from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UsageError(f"{path} is not valid YAML: {exc}") from exc
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}") from exc


def params_input(params: Params | None) -> list[dict[str, Any]]:
    """`ParamInput`s from `{key: value}` (the JSON type decides) or `[{key, value, type?}]`."""
    if params is None:
        return []
    if isinstance(params, Mapping):
        return [{"key": _key(k, "param"), "value": v} for k, v in params.items()]
    if isinstance(params, Sequence) and not isinstance(params, str | bytes):
        out = []
        for item in params:
            if not isinstance(item, Mapping) or "key" not in item or "value" not in item:
                raise UsageError(f"a param must be {{key, value, type?}}, not {item!r}")
            entry = {"key": _key(item["key"], "param"), "value": item["value"]}
            if item.get("type") is not None:
                kind = str(item["type"]).upper()
                if kind not in PARAM_TYPES:
                    raise UsageError(f"param {item['key']!r}: type must be one of {', '.join(PARAM_TYPES)}")
                entry["type"] = kind
            out.append(entry)
        return out
    raise UsageError(f"params must be a mapping of key to value, or a list of {{key, value}}; got {type(params).__name__}")


def metrics_input(metrics: Metrics | None) -> list[dict[str, Any]]:
    """`MetricInput`s from `{key: number}`, `{key: [{value, step}]}` or `[{key, value, step?}]`."""
    if metrics is None:
        return []
    points: list[tuple[Any, Any]] = []
    if isinstance(metrics, Mapping):
        for key, value in metrics.items():
            series = value if isinstance(value, list) else [value]
            points.extend((key, v) for v in series)
    elif isinstance(metrics, Sequence) and not isinstance(metrics, str | bytes):
        for item in metrics:
            if not isinstance(item, Mapping) or "key" not in item:
                raise UsageError(f"a metric must be {{key, value, step?}}, not {item!r}")
            points.append((item["key"], item))
    else:
        raise UsageError(f"metrics must be a mapping of key to number, or a list of {{key, value}}; got {type(metrics).__name__}")
    return [_metric(_key(key, "metric"), value) for key, value in points]


def _metric(key: str, value: Any) -> dict[str, Any]:
    step = None
    if isinstance(value, Mapping):
        step, value = value.get("step"), value.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(f"metric {key!r} must be a number, not {value!r}")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
        raise UsageError(f"metric {key!r}: step must be an integer, not {step!r}")
    return {"key": key, "value": float(value), "step": step}


def tags_input(tags: Mapping[str, str] | None) -> list[dict[str, str]]:
    """`TagInput`s from `{key: value}`."""
    return [{"key": _key(k, "tag"), "value": str(v)} for k, v in (tags or {}).items()]


def relation(name: str) -> str:
    """`fine-tuned-from`, `fine_tuned_from` or `FINE_TUNED_FROM` → `FINE_TUNED_FROM`."""
    value = name.strip().upper().replace("-", "_")
    if value not in RELATIONS:
        raise UsageError(f"unknown relation {name!r}: one of {', '.join(r.lower() for r in RELATIONS)}")
    return value


def lineage_input(parents: Iterable[tuple[str, str]], datasets: Iterable[str]) -> list[dict[str, str]]:
    """`LineageInput`s: `(ref, relation)` pairs, and `NAME@V` datasets as TRAINED_ON."""
    edges = [{"parent": _ref(ref), "relation": relation(rel)} for ref, rel in parents]
    for ref in datasets:
        name, at, version = ref.partition("@")
        if not (name and at and version):
            raise UsageError(f"a dataset is NAME@VERSION, not {ref!r}")
        edges.append({"parent": ref, "relation": "TRAINED_ON"})
    return edges


def _key(key: Any, what: str) -> str:
    if not isinstance(key, str) or not key:
        raise UsageError(f"a {what} key must be a non-empty string, not {key!r}")
    return key


def _ref(ref: Any) -> str:
    if not isinstance(ref, str) or not ref.strip():
        raise UsageError(f"a parent must be a version ref such as base:2, not {ref!r}")
    return ref.strip()
