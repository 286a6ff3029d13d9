"""Refuse abusive queries before they run: depth, aliases and estimated cost.

The cost is an estimate of how many objects a request returns: each object-typed field costs 1
times the number of parents it is resolved for (scalars are free); the lists of a connection hold
`first` items (the default page when absent), any other list `LIST_ESTIMATE`. Introspection counts
like any other field (200 aliased `__schema` answered megabytes) but not towards the depth: the
type references of GraphiQL's own introspection query nest deeper than any data query needs.
`first` beyond the page-size limit is refused here too, before anything runs.
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
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef
from strawberry.extensions import SchemaExtension

from modelyard.config import Settings
from modelyard.graphql.pagination import DEFAULT_PAGE

LIST_ESTIMATE = 10
META_FIELDS = {"__schema": SchemaMetaFieldDef, "__type": TypeMetaFieldDef}


class _Walk:
    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode],
                 variables: dict[str, Any]) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.aliases = 0
        self.max_depth = 0
        self.introspecting = 0
        self.largest_first = 0

    def cost(self, selection: SelectionSetNode | None, parent: Any, depth: int,
             seen: frozenset[str], page: int | None = None) -> int:
        """Objects under `selection`; `page` is the `first` of the connection we are inside."""
        if selection is None:
            return 0
        total = 0
        for node in selection.selections:
            if isinstance(node, FieldNode):
                total += self._field(node, parent, depth, seen, page)
            elif isinstance(node, InlineFragmentNode):
                cond = self.schema.get_type(node.type_condition.name.value) if node.type_condition else parent
                total += self.cost(node.selection_set, cond or parent, depth, seen, page)
            elif isinstance(node, FragmentSpreadNode):
                name = node.name.value
                frag = self.fragments.get(name)
                if frag is None or name in seen:  # unknown or cyclic: standard validation reports it
                    continue
                cond = self.schema.get_type(frag.type_condition.name.value) or parent
                total += self.cost(frag.selection_set, cond, depth, seen | {name}, page)
        return total

    def _field(self, node: FieldNode, parent: Any, depth: int, seen: frozenset[str], page: int | None) -> int:
        name = node.name.value
        if node.alias is not None:
            self.aliases += 1
        if not self.introspecting:
            self.max_depth = max(self.max_depth, depth)
        fields = getattr(get_named_type(parent), "fields", None) or {}
        definition = META_FIELDS.get(name) or fields.get(name)
        if definition is None:
            return 0
        child_type = get_named_type(definition.type)
        if is_leaf_type(child_type):
            return 0
        if name in META_FIELDS:  # the schema's description: costs what it returns, at any depth
            self.introspecting += 1
            try:
                return 1 + self.cost(node.selection_set, child_type, depth + 1, seen)
            finally:
                self.introspecting -= 1
        field_type = definition.type
        if isinstance(field_type, GraphQLNonNull):
            field_type = field_type.of_type
        if "first" in definition.args:
            first = self._first(node)
            if isinstance(field_type, GraphQLList):  # a plain list of `first` items (`suggestModels`)
                return first * (1 + self.cost(node.selection_set, child_type, depth + 1, seen))
            # a connection: its edges/nodes lists hold `first` items
            return 1 + self.cost(node.selection_set, child_type, depth + 1, seen, first)
        per_parent = (page or LIST_ESTIMATE) if isinstance(field_type, GraphQLList) else 1
        return per_parent * (1 + self.cost(node.selection_set, child_type, depth + 1, seen))

    def _first(self, node: FieldNode) -> int:
        for arg in node.arguments or ():
            if arg.name.value == "first":
                value: Any = None
                if isinstance(arg.value, IntValueNode):
                    value = int(arg.value.value)
                elif isinstance(arg.value, VariableNode):
                    value = self.variables.get(arg.value.name.value)
                if isinstance(value, int):
                    self.largest_first = max(self.largest_first, value)
                    return max(value, 1)
        return DEFAULT_PAGE


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
        if document is not None and not ctx.pre_execution_errors:  # [] = known valid (DocumentCache)
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
        if walk.largest_first > s.max_page_size:
            return _limit(f"first may be at most {s.max_page_size}, got {walk.largest_first}")
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
