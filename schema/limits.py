"""Operation limits: depth, aliases and estimated cost, checked before any resolver runs.

One walk over the operation, with fragments expanded where they are spread, measures
all three, so an alias or a nested list hidden in a fragment counts like any other.
Cost estimates how many fields the server would resolve: the lists in a page holder (a
connection's `nodes` and `edges`, a report's `rows`) count its page size (`first` or
`limit`, else the default) times, any other list of objects the default page size
times; the holder's own fields (pageInfo) once, except `totalCount`, which counts
COUNT_WEIGHT times: it is a database count over every match, not a field of a row
already fetched (a nested one is one grouped count per level, but its work still grows
with the parents and their children).
Introspection (`__schema`, `__type`) counts as one field and is not walked: its size
is bounded by the schema, its nesting by graphql-core's MaxIntrospectionDepthRule, and
production turns it off.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
    is_composite_type,
    value_from_ast_untyped,
)
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

PAGE_ARGUMENTS = ("first", "limit")
# Estimates saturate here. Nested lists multiply (100^n for n default pages), and an
# integer over 64 bits in the error's `measured` made orjson fail the response: a 500.
# 2^53 - 1 is also the largest integer every JSON client reads exactly.
COST_CEILING = 2**53 - 1
# What a connection's totalCount costs, in fields: roughly the work of resolving ten
# fields of rows already fetched, for the index entries a count reads.
COUNT_WEIGHT = 10

if TYPE_CHECKING:
    from settings import Settings

# Lists bounded well below a page (what one alert cites, one prescription's alerts): their
# largest real size, not a page's, so a review screen is not priced as a report.
BOUNDED_LISTS: dict[str, int] = {
    "MedicationAlert.evidence": 4,
    "MedicationAlert.suggestions": 4,
    "Prescription.alerts": 12,
    "Prescription.overrides": 12,
    "MedicationSafetyCheck.alerts": 12,
    "PrescriptionRefused.alerts": 12,
    "PrescriptionRefused.unacknowledged": 12,
    "Patient.codedConditions": 50,
    "Patient.codedAllergies": 50,
    "KnowledgeBaseInfo.sources": 20,
}


@dataclass(frozen=True)
class Limits:
    max_depth: int
    max_aliases: int
    max_cost: int
    page_size_default: int
    page_size_max: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_depth=settings.max_depth,
            max_aliases=settings.max_aliases,
            max_cost=settings.max_cost,
            page_size_default=settings.page_size_default,
            page_size_max=settings.page_size_max,
        )


@dataclass
class Measurement:
    depth: int = 0
    aliases: int = 0
    cost: int = 0
    # A page argument over the cap, as (field name, requested size); resolvers would
    # refuse it, but only after their parents had run.
    oversized_page: tuple[str, int] | None = None


def select_operation(
    document: DocumentNode, operation_name: str | None
) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is None:
        return operations[0] if len(operations) == 1 else None
    return next((op for op in operations if op.name and op.name.value == operation_name), None)


def measure(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    *,
    variables: Mapping[str, Any] | None,
    limits: Limits,
) -> Measurement:
    """Depth, aliases and cost of one operation of an already validated document."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    defaults = {
        v.variable.name.value: value_from_ast_untyped(v.default_value)
        for v in operation.variable_definitions or ()
        if v.default_value is not None
    }
    walk = _Walk(schema, fragments, {**defaults, **(variables or {})}, limits)
    root = schema.get_root_type(operation.operation)
    if root is not None:
        walk.selections(operation.selection_set, root, depth=1, multiplier=1, spreads=())
    return walk.result


class _Walk:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        variables: dict[str, Any],
        limits: Limits,
    ) -> None:
        self.schema, self.fragments, self.variables, self.limits = (
            schema,
            fragments,
            variables,
            limits,
        )
        self.result = Measurement()

    def selections(
        self,
        selection_set: SelectionSetNode,
        parent: Any,
        *,
        depth: int,
        multiplier: int,
        spreads: tuple[str, ...],
        page: int | None = None,
    ) -> None:
        for field, field_parent in self._fields(selection_set, parent, spreads):
            if self.result.cost > self.limits.max_cost:
                # Refused already. Walking on could take forever: each spread counts, so
                # fragments that spread the next one 10 times, 10 deep, are 10^10 fields.
                return
            self.field(
                field, field_parent, depth=depth, multiplier=multiplier, spreads=spreads, page=page
            )

    def _fields(
        self, selection_set: SelectionSetNode, parent: Any, spreads: tuple[str, ...]
    ) -> Iterator[tuple[FieldNode, Any]]:
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                yield selection, parent
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                scope = self.schema.get_type(condition.name.value) if condition else parent
                yield from self._fields(selection.selection_set, scope or parent, spreads)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                # A cycle is refused by validation (NoFragmentCyclesRule); guard anyway.
                if fragment is None or name in spreads:
                    continue
                scope = self.schema.get_type(fragment.type_condition.name.value) or parent
                yield from self._fields(fragment.selection_set, scope, (*spreads, name))

    def field(
        self,
        field: FieldNode,
        parent: Any,
        *,
        depth: int,
        multiplier: int,
        spreads: tuple[str, ...],
        page: int | None,
    ) -> None:
        """`page`: the page size of the page holder this field belongs to, if any."""
        result = self.result
        name = field.name.value
        if field.alias is not None:
            result.aliases += 1
        result.depth = max(result.depth, depth)
        # At least 1, even under `first: 0`: each field walked adds to the cost, so the
        # walk stops within max_cost fields.
        weight = COUNT_WEIGHT if name == "totalCount" and _is_connection(parent) else 1
        result.cost = min(result.cost + max(multiplier, 1) * weight, COST_CEILING)
        if name.startswith("__") or field.selection_set is None:
            return
        definition = _field_definition(parent, name)
        if definition is None:
            return
        child_type = get_named_type(definition.type)
        if not is_composite_type(child_type):
            return
        requested = self._page_size(field)
        is_list = _is_list(definition.type)
        fan_out, child_page = 1, None
        if not is_list and (requested is not None or child_type.name.endswith("Connection")):
            # A page holder (a connection, a report with `limit`) is one object; the
            # lists inside it (nodes, edges, rows) hold the page.
            child_page = requested if requested is not None else self.limits.page_size_default
        elif is_list:
            bounded = BOUNDED_LISTS.get(f"{getattr(parent, 'name', '')}.{name}")
            fan_out = next(
                size
                for size in (requested, page, bounded, self.limits.page_size_default)
                if size is not None
            )
        self.selections(
            field.selection_set,
            child_type,
            depth=depth + 1,
            multiplier=min(multiplier * fan_out, COST_CEILING),
            spreads=spreads,
            page=child_page,
        )

    def _page_size(self, field: FieldNode) -> int | None:
        """The page size a field asks for (`first` or `limit`), clamped to the cap."""
        requested = self._page_argument(field)
        if requested is None:
            return None
        if requested > self.limits.page_size_max and self.result.oversized_page is None:
            self.result.oversized_page = (field.name.value, requested)
        return max(0, min(requested, self.limits.page_size_max))

    def _page_argument(self, field: FieldNode) -> int | None:
        for argument in field.arguments or ():
            if argument.name.value in PAGE_ARGUMENTS:
                value = value_from_ast_untyped(argument.value, self.variables)
                return value if isinstance(value, int) else None
        return None


def _field_definition(parent: Any, name: str) -> Any:
    """The field on an object or interface type (a union has no fields of its own)."""
    fields = getattr(parent, "fields", None)
    return fields.get(name) if fields else None


def _is_connection(parent: Any) -> bool:
    return str(getattr(parent, "name", "")).endswith("Connection")


def _is_list(field_type: Any) -> bool:
    if isinstance(field_type, GraphQLNonNull):
        field_type = field_type.of_type
    return isinstance(field_type, GraphQLList)


def limit_errors(measurement: Measurement, limits: Limits) -> list[GraphQLError]:
    """The client-facing errors for every limit the operation breaks (none: it may run)."""
    errors: list[GraphQLError] = []
    if measurement.depth > limits.max_depth:
        errors.append(
            _limit_error(
                f"Query depth {measurement.depth} exceeds the limit of {limits.max_depth}",
                "MAX_DEPTH_LIMIT",
                measured=measurement.depth,
                limit=limits.max_depth,
            )
        )
    if measurement.aliases > limits.max_aliases:
        errors.append(
            _limit_error(
                f"The operation uses {measurement.aliases} aliases; "
                f"the limit is {limits.max_aliases}",
                "MAX_ALIASES_LIMIT",
                measured=measurement.aliases,
                limit=limits.max_aliases,
            )
        )
    if measurement.oversized_page is not None:
        field, requested = measurement.oversized_page
        errors.append(
            _limit_error(
                f"`{field}` asks for {requested} items; the most one page can hold is "
                f"{limits.page_size_max}",
                "BAD_USER_INPUT",
                field=field,
                limit=limits.page_size_max,
            )
        )
    if measurement.cost > limits.max_cost:
        errors.append(
            _limit_error(
                f"The operation's estimated cost {measurement.cost} exceeds the budget of "
                f"{limits.max_cost}; ask for smaller pages or fewer nested lists",
                "COST_ESTIMATED_TOO_EXPENSIVE",
                measured=measurement.cost,
                limit=limits.max_cost,
            )
        )
    return errors


def _limit_error(message: str, code: str, **details: Any) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code, **details})


class OperationLimits(SchemaExtension):
    """Refuses an operation over any limit once it is valid, so no resolver runs.

    It runs per request, not inside the cached validation: page sizes often arrive as
    variables. The limits are given when the schema is built (build_schema(settings)),
    never looked up in the context, so executing the bare schema enforces them too.
    It must follow PreparedDocuments in the schema's extensions: that one validates
    before yielding, and Strawberry stops on validation errors before any hook's code
    after `yield` would run.
    """

    def __init__(
        self, *, limits: Limits, execution_context: ExecutionContext | None = None
    ) -> None:
        self.limits = limits

    def on_validate(self) -> Iterator[None]:
        execution = self.execution_context
        if execution.pre_execution_errors == [] and execution.graphql_document is not None:
            self._check(execution)
        yield

    def _check(self, execution: ExecutionContext) -> None:
        assert execution.graphql_document is not None
        operation = select_operation(execution.graphql_document, execution.operation_name)
        if operation is None:
            return  # graphql-core reports the missing or ambiguous operation itself
        measurement = measure(
            execution.schema._schema,
            execution.graphql_document,
            operation,
            variables=execution.variables,
            limits=self.limits,
        )
        errors = limit_errors(measurement, self.limits)
        if errors:
            execution.pre_execution_errors = errors
