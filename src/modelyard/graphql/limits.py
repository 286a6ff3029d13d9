"""Refuse abusive queries before they run: depth, aliases and estimated cost.

The cost is an estimate of how many objects a request returns: each object-typed field costs 1
times the number of parents it is resolved for (scalars are free); a connection multiplies its
children by `first` (default page when absent), a plain list by `LIST_ESTIMATE`. Introspection is
not counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    is_leaf_type,
)
from strawberry.extensions import SchemaExtension

from modelyard.config import Settings
from modelyard.graphql.pagination import DEFAULT_PAGE

LIST_ESTIMATE = 10


class _Walk:
    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode],
                 variables: dict[str, Any]) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.aliases = 0
        self.max_depth = 0

    def cost(self, selection: SelectionSetNode | None, parent: Any, depth: int, seen: frozenset[str]) -> int:
        if selection is None:
            return 0
        total = 0
        for node in selection.selections:
            if isinstance(node, FieldNode):
                total += self._field(node, parent, depth, seen)
            elif isinstance(node, InlineFragmentNode):
                cond = self.schema.get_type(node.type_condition.name.value) if node.type_condition else parent
                total += self.cost(node.selection_set, cond or parent, depth, seen)
            elif isinstance(node, FragmentSpreadNode):
                name = node.name.value
                frag = self.fragments.get(name)
                if frag is None or name in seen:  # unknown or cyclic: standard validation reports it
                    continue
                cond = self.schema.get_type(frag.type_condition.name.value) or parent
                total += self.cost(frag.selection_set, cond, depth, seen | {name})
        return total

    def _field(self, node: FieldNode, parent: Any, depth: int, seen: frozenset[str]) -> int:
        name = node.name.value
        if name.startswith("__"):
            return 0
        if node.alias is not None:
            self.aliases += 1
        self.max_depth = max(self.max_depth, depth)
        fields = getattr(get_named_type(parent), "fields", None) or {}
        definition = fields.get(name)
        if definition is None:
            return 0
        child_type = get_named_type(definition.type)
        if is_leaf_type(child_type):
            return 0
        per_parent = self._fan_out(node, definition)
        children = self.cost(node.selection_set, child_type, depth + 1, seen)
        return per_parent * (1 + children)

    def _fan_out(self, node: FieldNode, definition: Any) -> int:
        if "first" in definition.args:
            for arg in node.arguments or ():
                if arg.name.value == "first":
                    if isinstance(arg.value, IntValueNode):
                        return max(int(arg.value.value), 1)
                    if isinstance(arg.value, VariableNode):
                        value = self.variables.get(arg.value.name.value)
                        if isinstance(value, int):
                            return max(value, 1)
            return DEFAULT_PAGE
        field_type = definition.type
        if isinstance(field_type, GraphQLNonNull):
            field_type = field_type.of_type
        return LIST_ESTIMATE if isinstance(field_type, GraphQLList) else 1


def _operations(document: Any) -> Iterator[OperationDefinitionNode]:
    for d in document.definitions:
        if isinstance(d, OperationDefinitionNode):
            yield d


class QueryLimits(SchemaExtension):
    """Depth, alias and cost limits, checked before validation and execution."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def on_validate(self) -> Iterator[None]:
        ctx = self.execution_context
        document = ctx.graphql_document
        if document is not None and ctx.pre_execution_errors is None:
            error = self.check(ctx.schema._schema, document, ctx.variables or {})
            if error is not None:
                ctx.pre_execution_errors = [error]
        yield

    def check(self, schema: GraphQLSchema, document: Any, variables: dict[str, Any]) -> GraphQLError | None:
        """The first limit the document breaks, as an error with code LIMIT."""
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        walk = _Walk(schema, fragments, variables)
        cost = 0
        for op in _operations(document):
            root: GraphQLObjectType | None = schema.get_root_type(op.operation)
            cost += walk.cost(op.selection_set, root, 1, frozenset())
        s = self.settings
        if walk.max_depth > s.max_depth:
            return _limit(f"query is {walk.max_depth} levels deep; the limit is {s.max_depth}")
        if walk.aliases > s.max_aliases:
            return _limit(f"query uses {walk.aliases} aliases; the limit is {s.max_aliases}")
        if cost > s.max_cost:
            return _limit(
                f"query could return about {cost} objects; the limit is {s.max_cost}: "
                "ask for smaller pages or fewer nested lists"
            )
        return None


def _limit(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "LIMIT"})
