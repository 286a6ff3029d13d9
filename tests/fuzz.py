"""Valid-looking GraphQL requests generated from schema.graphql, for tests/test_fuzz.py.

Generic strings never get past the name check (a probe sent 11,207 requests and 11,154 ended
at INVALID), so argument values come from pools of what the catalog holds and near misses of it:
names, refs, aliases, digests and keys that exist, that almost exist, and that break one rule
(a trailing newline, a full-width digit, 5,000 digits, a lone surrogate, NUL, deep nesting).
Every choice comes from one seeded `random.Random`: the same seed makes the same requests.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    build_schema,
    get_named_type,
)

SCHEMA = Path(__file__).resolve().parents[1] / "schema.graphql"
DIGEST = "sha256:" + "ab" * 32

MODELS = ["m", "ns/m", "base", "other/x"]
NEAR_NAMES = ["m\n", " m", "M", "m/", "a/b/c", "", "x" * 65, "m\x00", "ns/", "\ud800", "m" * 5000]
REFS = ["m:1", "m:2", "m@prod", "m", "ns/m:1", "base:1", f"m@{DIGEST}", "other/x:1", "m@latest",
        "m:0", "m:" + "9" * 5000, "m:１", "m@prod\n", "m@", "m:1:2", "data@v1", "ns/data@v1"]
ALIASES = ["prod", "staging", "prod\n", "Prod", "1", "latest", "a" * 70, ""]
KEYS = ["lr", "acc", "loss", "lr\n", "", "k" * 200, "a b", "x[0]"]
DIGESTS = [DIGEST, "sha256:" + "00" * 32, "sha256:xyz", "md5:0", ""]
TEXT = ["", "hello", "é" * 10, "a\x00b", "\ud800", "x" * 100_001, "<script>", "${jndi}", "'; DROP TABLE model;--"]
INTS = [0, 1, 2, -1, 3, 10, 100, 2**31 - 1]
LONGS = [0, 1, -1, 2**31, 2**53, 2**63 - 1, -(2**63)]
FLOATS = [0.0, 0.001, 0.5, 1.0, -1.0, 1e300, -1e-300, 0.9]
TIMES = ["2026-01-01T00:00:00Z", "2026-01-01T00:00:00", "1970-01-01T00:00:00+14:00", "not a time", "2999-12-31T23:59:59Z"]


def _nested(rng: random.Random, depth: int) -> Any:
    value: Any = rng.choice([1, "x", True, 0.5, None])
    for _ in range(depth):
        value = {"x": value} if rng.random() < 0.5 else [value]
    return value


def json_value(rng: random.Random) -> Any:
    return rng.choice([
        0.001, 3, True, "adam", "\ud800", None, [1, 2, 3], {"layers": [64, 64], "act": "relu"},
        2**70, -(2**63), _nested(rng, rng.choice([2, 20, 40])), {"\ud800": 1}, "a\x00",
    ])


class Generator:
    """Builds requests (document, variables) for the fields of Query and Mutation."""

    def __init__(self, seed: int, schema: GraphQLSchema | None = None) -> None:
        self.rng = random.Random(seed)
        self.schema = schema or build_schema(SCHEMA.read_text())

    def request(self) -> tuple[str, dict[str, Any]]:
        """One request: a query or a mutation (mutations twice as often: they reach more rules)."""
        root = self.schema.mutation_type if self.rng.random() < 0.66 else self.schema.query_type
        assert root is not None
        name = self.rng.choice(sorted(root.fields))
        field = root.fields[name]
        variables: dict[str, Any] = {}
        args, decls = [], []
        for arg_name, arg in sorted(field.args.items()):
            required = isinstance(arg.type, GraphQLNonNull)
            if not required and self.rng.random() < 0.4:
                continue
            variables[arg_name] = self.value(arg.type, arg_name, 0)
            decls.append(f"${arg_name}: {arg.type}")
            args.append(f"{arg_name}: ${arg_name}")
        kind = "mutation" if root is self.schema.mutation_type else "query"
        head = f"{kind}({', '.join(decls)})" if decls else kind
        call = f"{name}({', '.join(args)})" if args else name
        return f"{head} {{ {call}{self.selection(field.type, 0)} }}", variables

    def selection(self, type_: Any, depth: int) -> str:
        named = get_named_type(type_)
        if not isinstance(named, GraphQLObjectType):
            if hasattr(named, "types"):  # a union: its members' typename is enough
                return " { __typename }"
            return ""
        fields = []
        for fname, f in sorted(named.fields.items()):
            inner = get_named_type(f.type)
            if any(isinstance(a.type, GraphQLNonNull) for a in f.args.values()):
                if depth < 1 and self.rng.random() < 0.3:
                    fields.append(self._with_args(fname, f, depth))
                continue
            if isinstance(inner, GraphQLScalarType | GraphQLEnumType):
                fields.append(fname)
            elif depth < 2 and self.rng.random() < 0.3:
                fields.append(fname + self.selection(f.type, depth + 1))
        return " { __typename " + " ".join(fields) + " }"

    def _with_args(self, fname: str, f: GraphQLField, depth: int) -> str:
        args = []
        for arg_name, arg in f.args.items():
            if isinstance(arg.type, GraphQLNonNull):
                args.append(f"{arg_name}: {_literal(self.value(arg.type, arg_name, 0))}")
        return f"{fname}({', '.join(args)}){self.selection(f.type, depth + 1)}"

    def value(self, type_: Any, name: str, depth: int) -> Any:
        """A value for an argument or input field called `name` of GraphQL type `type_`."""
        if isinstance(type_, GraphQLNonNull):
            return self.value(type_.of_type, name, depth)
        if isinstance(type_, GraphQLList):
            count = self.rng.choice([0, 1, 1, 2, 3]) if depth < 3 else 0
            if name in ("in",) and self.rng.random() < 0.1:
                count = 1_500
            return [self.value(type_.of_type, name, depth + 1) for _ in range(count)]
        if isinstance(type_, GraphQLEnumType):
            return self.rng.choice(sorted(type_.values))
        if isinstance(type_, GraphQLInputObjectType):
            out = {}
            for fname, f in sorted(type_.fields.items()):
                required = isinstance(f.type, GraphQLNonNull)
                if required or (depth < 3 and self.rng.random() < 0.35):
                    out[fname] = self.value(f.type, fname, depth + 1)
            return out
        return self.scalar(type_.name, name)

    def scalar(self, kind: str, name: str) -> Any:
        rng, lower = self.rng, name.lower()
        if kind == "Int":
            return rng.choice(INTS)
        if kind == "Long":
            return rng.choice(LONGS)
        if kind == "Float":
            return rng.choice(FLOATS)
        if kind == "Boolean":
            return rng.random() < 0.5
        if kind == "JSON":
            return json_value(rng)
        if kind == "DateTime":
            return rng.choice(TIMES)
        if kind == "ID":
            return rng.choice(["TW9kZWw6MQ==", "TW9kZWxWZXJzaW9uOjE=", "bm9wZQ==", "!!", ""])
        if lower in ("ref", "parent", "derivedfrom", "version"):
            return rng.choice(REFS)
        if lower in ("model", "name", "namespace"):
            return rng.choice(MODELS * 3 + NEAR_NAMES)
        if lower == "alias":
            return rng.choice(ALIASES)
        if lower == "key":
            return rng.choice(KEYS)
        if lower == "digest":
            return rng.choice(DIGESTS)
        if lower in ("trainedon",):
            return rng.choice(["data", "data@v1", "ns/data@v1", "data@", "data@v9"])
        if lower == "path":
            return rng.choice(["model.onnx", "a/b.bin", "../x", "/abs", "a//b", ""])
        return rng.choice(TEXT + MODELS)


def _literal(value: Any) -> str:
    """A GraphQL literal for a plain value (used for arguments of nested fields)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # JSON's string escapes are GraphQL's
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_literal(v)}" for k, v in value.items()) + "}"
    return "null"
