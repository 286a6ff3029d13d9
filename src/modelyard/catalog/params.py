"""Typed params: how a value is checked, stored for comparison in SQL, and given back.

Numbers and booleans are stored in `num_value` (so `lr < 1e-3` compares as a number on an
index), strings in `text_value`, and every value exactly in `value_json`.
"""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass
from typing import Any

from modelyard.catalog.refs import check_key
from modelyard.catalog.text import check_text
from modelyard.errors import InvalidError, LimitError

MAX_TEXT = 512
MAX_JSON = 16_384
MAX_PARAMS = 1_000
MAX_JSON_DEPTH = 32
INT64 = 2**63


class ParamKind(enum.Enum):
    STRING = "string"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    JSON = "json"


@dataclass(frozen=True)
class TypedParam:
    """A checked param ready to store."""

    key: str
    kind: ParamKind
    value: Any

    @property
    def num_value(self) -> float | None:
        if self.kind in (ParamKind.INT, ParamKind.FLOAT):
            return float(self.value)
        if self.kind is ParamKind.BOOL:
            return 1.0 if self.value else 0.0
        return None

    @property
    def text_value(self) -> str | None:
        return self.value if self.kind is ParamKind.STRING else None

    @property
    def value_json(self) -> str:
        return json.dumps(self.value, sort_keys=True, separators=(",", ":"))


def infer_kind(value: Any) -> ParamKind:
    """The kind a bare JSON value gets when none is given."""
    if isinstance(value, bool):
        return ParamKind.BOOL
    if isinstance(value, int):
        return ParamKind.INT
    if isinstance(value, float):
        return ParamKind.FLOAT
    if isinstance(value, str):
        return ParamKind.STRING
    return ParamKind.JSON


def typed_param(key: str, value: Any, kind: ParamKind | None = None) -> TypedParam:
    """Check `value` against `kind` (inferred when None) and return the param to store."""
    check_key(key, "param")
    kind = kind or infer_kind(value)
    wrong = InvalidError(
        f"param {key!r} must be of type {kind.value}, got {type(value).__name__} {value!r:.60}"
    )
    if value is None:
        raise InvalidError(f"param {key!r} has no value")
    if kind is ParamKind.BOOL:
        if not isinstance(value, bool):
            raise wrong
    elif kind is ParamKind.INT:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong
        if not -INT64 <= value < INT64:
            raise InvalidError(f"param {key!r} does not fit in a 64-bit integer")
    elif kind is ParamKind.FLOAT:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong
        try:
            value = float(value)
        except OverflowError:  # an integer of hundreds of digits
            raise InvalidError(f"param {key!r} is too large for a 64-bit float") from None
        if not math.isfinite(value):
            raise InvalidError(f"param {key!r} must be a finite number")
    elif kind is ParamKind.STRING:
        if not isinstance(value, str):
            raise wrong
        if len(value) > MAX_TEXT:
            raise InvalidError(f"param {key!r} is longer than {MAX_TEXT} characters; use type json")
        check_text(value, f"param {key!r}", MAX_TEXT)
    elif kind is ParamKind.JSON:
        _check_json(value, key)
    param = TypedParam(key, kind, value)
    if len(param.value_json) > MAX_JSON:
        raise LimitError(f"param {key!r} is larger than {MAX_JSON} bytes")
    return param


def _check_json(value: Any, key: str, depth: int = 0) -> None:
    """A JSON param holds what every database stores and every reader parses back: at most
    MAX_JSON_DEPTH levels, finite numbers, 64-bit integers, text without NUL or lone surrogates."""
    if depth > MAX_JSON_DEPTH:
        raise InvalidError(f"param {key!r} is nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, dict):
        for k, v in value.items():
            check_text(str(k), f"param {key!r} (a key)", MAX_JSON)
            _check_json(v, key, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check_json(v, key, depth + 1)
    elif isinstance(value, str):
        check_text(value, f"param {key!r}", MAX_JSON)
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidError(f"param {key!r} holds {value!r}: JSON numbers must be finite")
    elif isinstance(value, int) and not isinstance(value, bool) and not -INT64 <= value < INT64:
        raise InvalidError(f"param {key!r} holds an integer that does not fit in 64 bits")


def check_params(params: list[TypedParam]) -> list[TypedParam]:
    """Refuse duplicate keys and too many params."""
    if len(params) > MAX_PARAMS:
        raise LimitError(f"a version may have at most {MAX_PARAMS} params")
    seen: set[str] = set()
    for p in params:
        if p.key in seen:
            raise InvalidError(f"param {p.key!r} is given twice")
        seen.add(p.key)
    return params


def check_metric(key: str, value: float) -> float:
    """Metrics are finite numbers."""
    check_key(key, "metric")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidError(f"metric {key!r} must be a finite number, got {value!r}")
    return float(value)
