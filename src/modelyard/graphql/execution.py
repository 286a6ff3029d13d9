"""Execution with a fast path for plain objects and lists of them, and a cache of parsed, validated
documents.

graphql-core completes every field of every object on its own: a resolve-info object, a path, an
argument check, an awaitable check and an output coercion per value, several microseconds a field.
A model page selects thousands of such leaves (20 versions × 40 params and metrics × 3 fields).

When the items of a list are objects whose selected fields are all plain leaves (read from an
attribute: no resolver, no arguments, no directives, no sub-selection), the list completes here in
one loop: each field's value is read from its attribute and coerced by its scalar or enum exactly as
graphql-core coerces it. A single object of that kind (`model { name }` under each row of a page)
completes the same way. Anything unusual (a null in a non-null field, a value its type refuses, an
item of another type) completes the whole list the ordinary way instead, so errors, their paths and
null propagation are graphql-core's own.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from inspect import isawaitable, iscoroutine
from operator import attrgetter
from typing import Any, TypeVar

from graphql import (
    DocumentNode,
    GraphQLEnumType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLScalarType,
)
from graphql.execution.values import get_argument_values
from graphql.pyutils import Path
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter

_BACKREF = GraphQLCoreConverter.DEFINITION_BACKREF
F = TypeVar("F", bound=Callable[..., Any])


class _Slow(Exception):  # noqa: N818 - a signal, not an error: "complete this list the ordinary way"
    """A value the fast path does not handle."""


# One response key of a plain object: (key, read the value, coerce it, may it be null).
Leaf = tuple[str, Callable[[Any], Any], Callable[[Any], Any], bool]
Plan = tuple[type | None, list[Leaf]]


class Executor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor (as Strawberry configures it) with lists of plain objects in one loop."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # (item type, id of the field's node list) → plan or None; the node list is kept alive
        # beside its plan so its id cannot be reused while the request runs.
        self._plans: dict[tuple[Any, int], tuple[object, Plan | None]] = {}

    def complete_iterable_value(
        self, item_type: GraphQLOutputType, field_details_list: Any, info: GraphQLResolveInfo,
        path: Path, items: Iterable[Any], position_context: Any,
    ) -> Any:
        if type(items) is list and items:
            plan = self._plan(item_type, field_details_list)
            if plan is not None:
                try:
                    return _complete(plan, items, isinstance(item_type, GraphQLNonNull))
                except _Slow:
                    pass
        return super().complete_iterable_value(
            item_type, field_details_list, info, path, items, position_context
        )

    def complete_object_value(
        self, return_type: GraphQLObjectType, field_details_list: Any, info: GraphQLResolveInfo,
        path: Path, result: Any, position_context: Any,
    ) -> Any:
        # One object of plain leaves (`model { name }`, `param(key:) { value }`), as a list item is.
        plan = self._plan(return_type, field_details_list)
        if plan is not None and plan[0] is not None:
            try:
                return _complete(plan, [result], True)[0]
            except _Slow:
                pass
        return super().complete_object_value(
            return_type, field_details_list, info, path, result, position_context
        )

    def _plan(self, item_type: GraphQLOutputType, field_details_list: Any) -> Plan | None:
        key = (item_type, id(field_details_list))
        found = self._plans.get(key)
        if found is None:
            found = (field_details_list, self._make_plan(item_type, field_details_list))
            self._plans[key] = found
        return found[1]

    def _make_plan(self, item_type: GraphQLOutputType, field_details_list: Any) -> Plan | None:
        object_type = item_type.of_type if isinstance(item_type, GraphQLNonNull) else item_type
        if not isinstance(object_type, GraphQLObjectType) or _has_middleware(self):
            return None
        if any(details.node.directives for details in field_details_list):
            return None  # @stream and the like: graphql-core's business
        grouped, defer_usages, _ = self.collect_subfields(object_type, field_details_list)
        if defer_usages:
            return None
        definition = (object_type.extensions or {}).get(_BACKREF)
        origin = getattr(definition, "origin", None)
        leaves: list[Leaf] = []
        for response_key, details in grouped.items():
            node = details[0].node
            name = node.name.value
            if name == "__typename":
                leaves.append((response_key, _constant(object_type.name), _same, False))
                continue
            leaf = self._field(object_type, name, details)
            if leaf is None:
                return None
            read, coerce, nullable = leaf
            leaves.append((response_key, read, coerce, nullable))
        return (origin if isinstance(origin, type) else None), leaves

    def _field(self, object_type: GraphQLObjectType, name: str, details: Any) -> tuple[Any, Any, bool] | None:
        """How to read and complete field `name`: a plain attribute or a `pure` resolver, of a
        leaf type or of an object type whose own selection is plain; else None."""
        node = details[0].node
        field = object_type.fields.get(name)
        strawberry_field = (field.extensions or {}).get(_BACKREF) if field is not None else None
        if field is None or strawberry_field is None or node.directives:
            return None
        read = _reader(field, strawberry_field, node)
        if read is None:
            read = self._pure_reader(field, strawberry_field, details)
        if read is None:
            return None
        field_type = field.type
        nullable = not isinstance(field_type, GraphQLNonNull)
        inner = field_type.of_type if isinstance(field_type, GraphQLNonNull) else field_type
        if isinstance(inner, GraphQLScalarType | GraphQLEnumType) and not node.selection_set:
            return read, inner.coerce_output_value, nullable
        if isinstance(inner, GraphQLObjectType) and node.selection_set:
            plan = self._plan(inner, details)
            if plan is None or plan[0] is None:
                return None
            return read, partial(_complete_one, plan), nullable
        return None

    def _pure_reader(self, field: Any, strawberry_field: Any, details: Any) -> Callable[[Any], Any] | None:
        """A reader calling a resolver marked `pure`, with this field's arguments."""
        resolver = getattr(strawberry_field, "base_resolver", None)
        function = getattr(resolver, "wrapped_func", None)
        if resolver is None or function is None or not getattr(function, PURE, False) or strawberry_field.extensions:
            return None
        if getattr(details[0], "fragment_variable_values", None) is not None:
            return None
        names = {a.graphql_name or a.python_name: a.python_name for a in strawberry_field.arguments}
        try:
            raw = get_argument_values(field, details[0].node, self.variable_values)
        except Exception:  # noqa: BLE001 - graphql-core reports it, with its path, the ordinary way
            return None
        if set(raw) - set(names):
            return None
        kwargs = {names[k]: v for k, v in raw.items()}
        if resolver.info_parameter is not None:
            kwargs[resolver.info_parameter.name] = _ContextOnly(self.context_value)

        def read(item: Any) -> Any:
            try:
                value = function(item, **kwargs)
            except Exception as exc:  # the field's own error: graphql-core's path reports it
                raise _Slow from exc
            if isawaitable(value):  # not loaded yet: the ordinary path awaits it
                if iscoroutine(value):
                    value.close()
                raise _Slow
            return value

        return read


def _has_middleware(executor: Any) -> bool:
    """Whether a Strawberry extension wraps resolvers (`resolve` hook): then every field runs it."""
    manager = executor.middleware_manager
    return manager is not None and bool(getattr(manager, "middlewares", True))


def _reader(field: Any, strawberry_field: Any, node: Any) -> Callable[[Any], Any] | None:
    """The attribute getter of a plain field (no resolver, no arguments); else None."""
    if field.args or node.arguments:
        return None
    # Strawberry marks the resolver of a field without one (a plain attribute) `_is_default`.
    if field.resolve is None or not getattr(field.resolve, "_is_default", False):
        return None
    return attrgetter(strawberry_field.python_name)


PURE = "__modelyard_pure__"


def pure(function: F) -> F:
    """Mark a resolver the fast path may call directly: synchronous apart from answering an
    awaitable when its data is not loaded yet, free of side effects, reading only `info.context`,
    and with no permission classes or field extensions. Apply under `@strawberry.field`."""
    setattr(function, PURE, True)
    return function


class _ContextOnly:
    """The part of Strawberry's `Info` a `pure` resolver may read."""

    __slots__ = ("context",)

    def __init__(self, context: Any) -> None:
        self.context = context


def _complete_one(plan: Plan, value: Any) -> Any:
    return _complete(plan, [value], True)[0]


def _same(value: Any) -> Any:
    return value


def _constant(value: str) -> Callable[[Any], str]:
    def read(_item: Any) -> str:
        return value

    return read


def _complete(plan: Plan, items: list[Any], items_non_null: bool) -> list[Any]:
    """Every item as a response dict, or `_Slow` at the first value graphql-core would complain of."""
    cls, leaves = plan
    out: list[Any] = []
    append = out.append
    for item in items:
        if item is None:
            if items_non_null:
                raise _Slow
            append(None)
            continue
        if cls is not None and not isinstance(item, cls):
            raise _Slow
        result: dict[str, Any] = {}
        for key, read, coerce, nullable in leaves:
            value = read(item)
            if value is None:
                if not nullable:
                    raise _Slow
                result[key] = None
                continue
            try:
                coerced = coerce(value)
            except Exception as exc:  # graphql-core would report it, with its path: let it
                raise _Slow from exc
            if coerced is None:
                raise _Slow
            result[key] = coerced
        append(result)
    return out


class DocumentCache(SchemaExtension):
    """Parsed and validated documents by query text, so a client repeating a query skips both.

    Not Strawberry's `ParserCache`/`ValidationCache`: the first parses without `MaxTokensLimiter`'s
    token limit, the second overwrites the errors `QueryLimits` sets during validation.

    Only documents that parsed and passed validation are kept (at most `size`, least recently used
    out first; query texts longer than `longest` are not kept). A cached document skips the
    standard validation rules, which depend on nothing but the schema and the document; the
    limits (`QueryLimits`) still run on every request, since they read the variables.
    """

    def __init__(self, cache: DocumentLru) -> None:
        self.cache = cache
        self._hit = False

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        query = context.query
        document = self.cache.get(query) if query else None
        if document is not None:
            context.graphql_document = document
            self._hit = True
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if self._hit and context.pre_execution_errors is None:
            context.pre_execution_errors = []  # known valid: Strawberry skips the validation rules
        yield
        if not self._hit and not context.pre_execution_errors and context.query and context.graphql_document:
            self.cache.put(context.query, context.graphql_document)


class DocumentLru:
    """A bounded map from query text to its valid document, shared by every request of a schema."""

    def __init__(self, size: int = 256, longest: int = 20_000) -> None:
        self.size = size
        self.longest = longest
        self._docs: OrderedDict[str, DocumentNode] = OrderedDict()

    def get(self, query: str) -> DocumentNode | None:
        document = self._docs.get(query)
        if document is not None:
            self._docs.move_to_end(query)
        return document

    def put(self, query: str, document: DocumentNode) -> None:
        if len(query) > self.longest:
            return
        self._docs[query] = document
        self._docs.move_to_end(query)
        while len(self._docs) > self.size:
            self._docs.popitem(last=False)

    def __len__(self) -> int:
        return len(self._docs)
