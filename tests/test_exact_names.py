"""Names mean what they say: a name, alias, key or ref matches its grammar as a whole string, with
ASCII digits only; a trailing newline, surrounding spaces or a full-width digit is INVALID and
nothing is stored (issue 11, item 8)."""

from __future__ import annotations

import pytest

from modelyard.catalog.refs import (
    check_alias,
    check_dataset_version,
    check_key,
    parse_dataset_ref,
    parse_name,
    parse_ref,
)
from modelyard.catalog.tokens import check_token_name
from modelyard.errors import InvalidError
from tests.conftest import GraphQLClient

BAD_REFS = ["m\n", " m ", "m ", "m:１", "m:1\n", "m@prod\n", "m:٣", "m\n:1", "m:" + "9" * 5000,
            "m:01", "m@sha256:" + "a" * 64 + "\n"]


@pytest.mark.parametrize("raw", BAD_REFS)
def test_refs_match_as_a_whole(raw: str) -> None:
    with pytest.raises(InvalidError):
        parse_ref(raw)


@pytest.mark.parametrize(("check", "raw"), [
    (parse_name, "n1\n"), (parse_name, "ns/n1\n"), (check_alias, "prod\n"),
    (lambda raw: check_key(raw, "param"), "lr\n"), (check_dataset_version, "v2\n"),
    (check_token_name, "tk\n"), (parse_dataset_ref, "data@v2\n"), (parse_dataset_ref, " data"),
])
def test_names_match_as_a_whole(check: object, raw: str) -> None:
    with pytest.raises(InvalidError):
        check(raw)  # type: ignore[operator]


async def test_names_with_a_newline_are_not_stored(gql: GraphQLClient) -> None:
    error = await gql.error('mutation { createModel(input: {name: "n1\\n"}) { name } }')
    assert error["extensions"]["code"] == "INVALID"
    await gql.ok('mutation { createModel(input: {name: "m"}) { name } }')
    await gql.ok('mutation { createVersion(input: {model: "m"}) { number } }')
    for query in (
        'mutation { setAlias(input: {model: "m", alias: "prod\\n", version: "1"}) { name } }',
        'mutation { createVersion(input: {model: "m", params: [{key: "lr\\n", value: 1}]}) { number } }',
        'mutation { createVersion(input: {model: "m", tags: [{key: "tk\\n", value: "x"}]}) { number } }',
        'mutation { registerDataset(input: {name: "d", version: "v2\\n", uri: "s3://x"}) { version } }',
        'mutation { createToken(input: {name: "tk\\n", scope: READ}) { secret } }',
    ):
        error = await gql.error(query)
        assert error["extensions"]["code"] == "INVALID", (query, error)
    data = await gql.ok('{ models { nodes { name } } model(name: "m") { aliases { name } '
                        'versions { totalCount } } dataset(name: "d") { name } tokens { name } }')
    assert [n["name"] for n in data["models"]["nodes"]] == ["m"]
    assert data["model"]["aliases"] == [] and data["model"]["versions"]["totalCount"] == 1
    assert data["dataset"] is None and [t["name"] for t in data["tokens"]] == ["admin-env"]


@pytest.mark.parametrize("ref", ["m\n", " m ", "m:１", "m:1 "])
async def test_near_refs_do_not_resolve(gql: GraphQLClient, ref: str) -> None:
    await gql.ok('mutation { createModel(input: {name: "m"}) { name } }')
    await gql.ok('mutation { createVersion(input: {model: "m"}) { number } }')
    error = await gql.error("query($r: String!) { version(ref: $r) { ref } }", {"r": ref})
    assert error["extensions"]["code"] == "INVALID"
