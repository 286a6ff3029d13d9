"""The ref grammar: every form parses to what it names; anything else is INVALID with the rule."""

from __future__ import annotations

import pytest

from modelyard.catalog.refs import parse_dataset_ref, parse_name, parse_ref
from modelyard.errors import InvalidError

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("raw", "model", "number", "alias", "digest"),
    [
        ("base-llm", "base-llm", None, None, None),
        ("base-llm:2", "base-llm", 2, None, None),
        ("vision/resnet50@production", "vision/resnet50", None, "production", None),
        (f"vision/resnet50@{DIGEST}", "vision/resnet50", None, None, DIGEST),
        ("m.v2_x:10", "m.v2_x", 10, None, None),
    ],
)
def test_ref_forms(raw: str, model: str, number: int | None, alias: str | None, digest: str | None) -> None:
    ref = parse_ref(raw)
    assert (ref.model.full, ref.number, ref.alias, ref.digest) == (model, number, alias, digest)
    assert str(ref) == raw


@pytest.mark.parametrize(
    "raw",
    ["", "Base", "a b", "a/b/c", "m:0", "m:-1", "m:x", "m@", "m@sha256:xyz", "m@Prod", "-m", "m:1:2", "x" * 65],
)
def test_bad_refs_are_invalid(raw: str) -> None:
    with pytest.raises(InvalidError) as exc:
        parse_ref(raw)
    assert repr(raw) in exc.value.message


def test_namespace_is_kept_apart() -> None:
    name = parse_name("vision/resnet50")
    assert (name.namespace, name.name, name.full) == ("vision", "resnet50", "vision/resnet50")


def test_dataset_refs() -> None:
    assert str(parse_dataset_ref("imagenet@2024-06")) == "imagenet@2024-06"
    assert parse_dataset_ref("imagenet").version is None
    with pytest.raises(InvalidError):
        parse_dataset_ref("imagenet@")
