"""The Relay `Node` interface and global ids (`base64("Type:pk")`)."""

from __future__ import annotations

import base64

import strawberry

from modelyard.errors import InvalidError


@strawberry.interface(description="An object with a global id, fetchable with `node(id)`.")
class Node:
    @strawberry.field(description="Global id: stable and opaque.")
    def id(self) -> strawberry.ID:
        return global_id(type(self).__name__, self.pk)  # type: ignore[attr-defined]


def global_id(type_name: str, pk: int) -> strawberry.ID:
    """Encode `Type:pk`."""
    return strawberry.ID(base64.b64encode(f"{type_name}:{pk}".encode()).decode())


def parse_global_id(value: str) -> tuple[str, int]:
    """Decode a global id; INVALID when it is not one of ours."""
    try:
        type_name, _, pk = base64.b64decode(value, validate=True).decode().partition(":")
        number = int(pk)
    except ValueError as exc:
        raise InvalidError(f"invalid node id {value!r}") from exc
    if not 0 < number < 2**31:  # our primary keys are 32-bit serials: anything else names nothing
        return type_name, 0
    return type_name, number
