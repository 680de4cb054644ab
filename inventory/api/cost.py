"""What a query costs, computed from its document before it runs: GitHub's node limit.

Each connection field (one that takes ``first``, or ``describeImages``' ``maxResults``)
costs the number of nodes it may return (its page size, 100 when not given) times the
product of the page sizes of the connections it is nested in; a query's cost is the sum
over all its connections. ``images(first: 100) { nodes { history(first: 50) } }`` costs
100 + 100 * 50 = 5,100. Fragments (inline and named) count where they are spread, and
``first: $n`` counts the variable's value (or its default). Lists that are not
connections (``registries``, an image's tags) count once. Each item of a list argument
(``filter: {tags: [...]}``) counts one node too, times the page sizes the field is nested in.

The same walk checks every argument's bounds (``inventory.api.limits``).

Above ``MAX_COST`` nodes the query is refused before anything runs, with the code
``QUERY_TOO_COSTLY`` and the cost in the message.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    Undefined,
    get_named_type,
    get_operation_ast,
    validate,
    value_from_ast,
)
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from strawberry.extensions import SchemaExtension

from inventory.api.errors import ApiError
from inventory.api.limits import checked_arguments
from inventory.aws.semantics import DEFAULT_MAX_RESULTS

MAX_COST = 500_000
"""The most nodes a query may ask for."""
PAGE_ARGUMENTS = ("first", "maxResults")
"""The arguments that make a field a connection: the size of its page."""


def query_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    variables: Mapping[str, Any] | None = None,
    operation_name: str | None = None,
) -> int:
    """The cost of the operation ``operation_name`` of a validated ``document`` with ``variables``;
    InvalidParameterException when an argument is out of bounds."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return 0
    values = get_variable_values(schema, operation.variable_definitions or (), dict(variables or {}))
    if isinstance(values, list):  # the variables do not fit: execution refuses them, at no cost
        return 0
    root = schema.get_root_type(operation.operation)
    if root is None:
        return 0
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    return _Walk(schema, fragments, values).cost(root, operation.selection_set, 1)


class _Walk:
    def __init__(
        self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode], variables: VariableValues
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variable_values = variables
        self.variables = variables.coerced

    def cost(self, parent: GraphQLNamedType, selections: SelectionSetNode, multiplier: int) -> int:
        total = 0
        for field_type, node in self._fields(parent, selections):
            field = field_type.fields.get(node.name.value)
            if field is None:  # __typename and the like
                continue
            inner = multiplier
            if field.args:
                arguments = get_argument_values(field, node, self.variable_values)
                items = checked_arguments(arguments, {name: arg.type for name, arg in field.args.items()})
                total += multiplier * items
            size = self._page_size(field, node)
            if size is not None:
                total += multiplier * size
                inner = multiplier * size
            if node.selection_set is not None:
                total += self.cost(get_named_type(field.type), node.selection_set, inner)
        return total

    def _fields(
        self, parent: GraphQLNamedType, selections: SelectionSetNode, seen: frozenset[str] = frozenset()
    ) -> Iterator[tuple[GraphQLObjectType | GraphQLInterfaceType, FieldNode]]:
        """The fields selected on ``parent``, fragments flattened (each with the type it is selected on)."""
        for selection in selections.selections:
            if isinstance(selection, FieldNode):
                if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
                    yield parent, selection
            elif isinstance(selection, InlineFragmentNode):
                on = parent if selection.type_condition is None else self._type(selection.type_condition.name.value)
                yield from self._fields(on or parent, selection.selection_set, seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in seen:  # validation refuses both; never loop
                    continue
                on = self._type(fragment.type_condition.name.value)
                yield from self._fields(on or parent, fragment.selection_set, seen | {name})

    def _type(self, name: str) -> GraphQLNamedType | None:
        return self.schema.get_type(name)

    def _page_size(self, field: GraphQLField, node: FieldNode) -> int | None:
        """The page size asked of a connection field (its default when not given); None for other fields."""
        for name in PAGE_ARGUMENTS:
            argument = field.args.get(name)
            if argument is None:
                continue
            given = next((a.value for a in node.arguments or () if a.name.value == name), None)
            value = Undefined if given is None else value_from_ast(given, argument.type, self.variables)
            return max(0, value) if isinstance(value, int) else DEFAULT_MAX_RESULTS
        return None


def too_costly(cost: int) -> ApiError:
    return ApiError(
        "QUERY_TOO_COSTLY",
        f"query cost {cost:,} nodes exceeds the limit of {MAX_COST:,}: the cost is the product of `first` along "
        "each nested connection, summed over the query; ask for smaller pages",
    )


def operation_chosen(document: DocumentNode, operation_name: str | None) -> None:
    """Refuse a document whose operation to run is not told: several and no ``operationName``, or
    an ``operationName`` it does not hold (OPERATION_RESOLUTION_FAILURE)."""
    names = [d.name.value if d.name else None for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is None and len(names) > 1:
        raise ApiError(
            "OPERATION_RESOLUTION_FAILURE",
            f"the document holds {len(names)} operations: say which to run with operationName",
        )
    if operation_name is not None and operation_name not in names:
        message = f"operationName: the document has no operation {operation_name!r}"
        raise ApiError("OPERATION_RESOLUTION_FAILURE", message)


class QueryCost(SchemaExtension):
    """Computes each query's cost once it is valid, before it runs; refuses it above ``MAX_COST``.

    The cost is kept on the request's context (``Context.cost``) for the audit log."""

    def on_validate(self):  # type: ignore[no-untyped-def]
        # Before the yield: strawberry checks for errors before the hooks' ends run. The document is
        # validated first (by ValidationCache when it comes earlier, else here as strawberry would).
        ec = self.execution_context
        if ec.pre_execution_errors is None and ec.graphql_document is not None:
            ec.pre_execution_errors = validate(ec.schema._schema, ec.graphql_document, ec.validation_rules)
        if not ec.pre_execution_errors and ec.graphql_document is not None:
            try:
                # strawberry names the first operation when none was given: the request's own is on our context
                operation_chosen(ec.graphql_document, getattr(ec.context, "operation_name", ec.operation_name))
                cost = query_cost(ec.schema._schema, ec.graphql_document, ec.variables, ec.operation_name)
            except ApiError as refused:
                ec.pre_execution_errors = [refused]
                yield
                return
            if hasattr(ec.context, "cost"):
                ec.context.cost = cost
            if cost > MAX_COST:
                ec.pre_execution_errors = [too_costly(cost)]
        yield
