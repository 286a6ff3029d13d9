"""The README's GraphQL examples run, in order, against the real app and return data."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import GraphQLClient

README = Path(__file__).resolve().parent.parent / "README.md"


async def test_readme_graphql_examples_run(gql: GraphQLClient) -> None:
    blocks = re.findall(r"```graphql\n(.*?)```", README.read_text(), re.S)
    blocks = [b for b in blocks if '"demo/' not in b]  # the quick start's: tests/test_demo.py
    assert len(blocks) >= 5
    results = [await gql.ok(block) for block in blocks]
    search = next(r for r in results if "lineage" in r)
    assert search["versions"]["totalCount"] == 1
    assert [e["parent"]["ref"] for e in search["lineage"]["edges"]] == ["base-llm:1", "support-chats@2026-10"]
    history = next(r for r in results if "auditLog" in r)
    assert history["auditLog"]["nodes"][0]["changes"] == {"version": {"before": None, "after": 1}}
    assert history["version"] is None  # the alias did not exist on 2026-11-01
