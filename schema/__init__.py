"""The GraphQL schema: one module per aggregate, merged here into Query and Mutation."""

from __future__ import annotations

import strawberry
from graphql import GraphQLError
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from errors import CareGraphError
from schema.appointment import AppointmentMutations, AppointmentQueries
from schema.bill import BillMutations, BillQueries
from schema.doctor import DoctorMutations, DoctorQueries
from schema.patient import PatientMutations, PatientQueries
from schema.prescription import PrescriptionMutations, PrescriptionQueries
from schema.scalars import SCALAR_MAP


@strawberry.type
class Query(PatientQueries, DoctorQueries, AppointmentQueries, PrescriptionQueries, BillQueries):
    pass


@strawberry.type
class Mutation(
    PatientMutations, DoctorMutations, AppointmentMutations, PrescriptionMutations, BillMutations
):
    pass


class CareGraphSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Expected errors (bad input, not found, conflicts, invalid queries) are answers,
        # not incidents: only unexpected exceptions are logged, with their stack trace.
        unexpected = [
            error
            for error in errors
            if error.original_error is not None
            and not isinstance(error.original_error, CareGraphError | GraphQLError)
            and error.path is not None
        ]
        super().process_errors(unexpected, execution_context)


def build_schema() -> CareGraphSchema:
    return CareGraphSchema(
        query=Query, mutation=Mutation, config=StrawberryConfig(scalar_map=SCALAR_MAP)
    )


schema = build_schema()
