"""The GraphQL schema: one module per aggregate, merged here into Query and Mutation."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

import strawberry
from graphql import GraphQLError
from strawberry.permission import BasePermission, PermissionExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext
from strawberry.types.base import get_object_definition
from strawberry.types.field import StrawberryField
from strawberry.types.private import is_private

from audit.fields import apply_audit_policy
from auth.permissions import HasRole
from auth.policy import ALLOWED_BEFORE_MFA, MUTATIONS, NO_RULE, field_readers, type_readers
from errors import CareGraphError
from resolvers.guards import MutationGuard, graphql_name
from schema.account import (
    AccountMutations,
    AccountQueries,
    AuthPayload,
    MfaEnrollment,
    MfaRequired,
    RecoveryCodes,
    User,
)
from schema.appointment import (
    Appointment,
    AppointmentMutations,
    AppointmentQueries,
    DoctorUnavailable,
    InvalidStatusTransition,
)
from schema.audit import AccessLogEntry, AuditEntity, AuditEvent, AuditIntegrity, AuditQueries
from schema.bill import Bill, BillMutations, BillQueries
from schema.doctor import AvailabilityWindow, Doctor, DoctorMutations, DoctorQueries
from schema.documents import PreparedDocuments
from schema.emergency import EmergencyAccessGrant, EmergencyMutations, EmergencyQueries
from schema.limits import Limits, OperationLimits
from schema.operations import IntegrityAlarm, OperationsQueries
from schema.patient import Address, Contact, Patient, PatientMutations, PatientQueries
from schema.prescription import Dosage, Prescription, PrescriptionMutations, PrescriptionQueries
from schema.report import (
    DiseaseCost,
    DiseaseCostReport,
    DiseaseDuration,
    DiseaseDurationsReport,
    DoctorRanking,
    MonthlyAppointments,
    MonthlyTrendReport,
    ReportCacheStats,
    ReportPrivacy,
    ReportQueries,
    TopDoctorsReport,
)
from schema.safety import (
    AlertEvidence,
    AlertOverride,
    AlertSource,
    AlertSuggestion,
    AllergyRecord,
    CodedCondition,
    DrugCoding,
    InvalidVerificationTransition,
    KnowledgeBaseInfo,
    KnowledgeSource,
    MedicationAlert,
    MedicationSafetyCheck,
    PrescriptionRefused,
    PrescriptionVerification,
)
from schema.safety_root import SafetyMutations, SafetyQueries
from schema.scalars import SCALAR_MAP
from settings import Settings


@strawberry.type
class Query(
    AccountQueries,
    PatientQueries,
    DoctorQueries,
    AppointmentQueries,
    PrescriptionQueries,
    BillQueries,
    ReportQueries,
    OperationsQueries,
    SafetyQueries,
    AuditQueries,
    EmergencyQueries,
):
    pass


@strawberry.type
class Mutation(
    AccountMutations,
    PatientMutations,
    DoctorMutations,
    AppointmentMutations,
    PrescriptionMutations,
    BillMutations,
    SafetyMutations,
    EmergencyMutations,
):
    pass


ROOT_TYPES = ("Query", "Mutation")
# tests/test_trusted_documents.py imports the helper under this older name.
_graphql_name = graphql_name
POLICED_TYPES = (
    Query,
    Mutation,
    Patient,
    Contact,
    Address,
    Doctor,
    AvailabilityWindow,
    Appointment,
    Prescription,
    Dosage,
    Bill,
    DoctorUnavailable,
    InvalidStatusTransition,
    User,
    AuthPayload,
    MfaRequired,
    MfaEnrollment,
    RecoveryCodes,
    TopDoctorsReport,
    DoctorRanking,
    DiseaseDurationsReport,
    DiseaseDuration,
    MonthlyTrendReport,
    MonthlyAppointments,
    DiseaseCostReport,
    DiseaseCost,
    ReportPrivacy,
    ReportCacheStats,
    IntegrityAlarm,
    *(
        MedicationAlert,
        AlertSource,
        AlertEvidence,
        AlertSuggestion,
        MedicationSafetyCheck,
        DrugCoding,
        CodedCondition,
        AllergyRecord,
        AlertOverride,
        PrescriptionVerification,
        KnowledgeBaseInfo,
        KnowledgeSource,
        PrescriptionRefused,
        InvalidVerificationTransition,
    ),
    AuditEvent,
    AuditEntity,
    AuditIntegrity,
    AccessLogEntry,
    EmergencyAccessGrant,
)


class PolicyPermission(PermissionExtension):
    """The permission auth/policy.py attaches to a field; its own class, so building the
    schema again replaces it instead of stacking a second check on every field."""


def _permissions(type_name: str, field: StrawberryField) -> list[BasePermission]:
    name = graphql_name(field)
    permissions: list[BasePermission] = [
        HasRole(
            field_readers(type_name, name),
            where=f"{type_name}.{name}",
            allow_before_mfa=name in ALLOWED_BEFORE_MFA,
        )
    ]
    if type_name == "Mutation":
        if name not in MUTATIONS:
            raise ValueError(f"auth/policy.py MUTATIONS has no rule for the mutation {name!r}")
        if MUTATIONS[name] != NO_RULE:
            permissions.append(MutationGuard(name, MUTATIONS[name], field))
    return permissions


def apply_access_policy(object_types: Iterable[type]) -> None:
    """Attach a role check to every root field and to every field whose readers are
    narrower than its type's (auth/policy.py), and to every mutation its MutationRule
    (input fields, acting for self). Fields readable by everyone who can hold the
    object need no per-field check: the field that returned the object checked.

    Strawberry's field objects belong to the type classes, shared by every schema built
    from them: any earlier policy check is replaced, so this is idempotent."""
    # Every check is built before any field changes: a table that does not fit the
    # schema (a mutation without a rule, a rule naming a missing field) refuses the
    # build and leaves the types as they were.
    checks: list[tuple[StrawberryField, PolicyPermission | None]] = []
    for object_type in object_types:
        definition = get_object_definition(object_type, strict=True)
        for field in definition.fields:
            if is_private(field.type):
                continue
            roles = field_readers(definition.name, graphql_name(field))
            if definition.name not in ROOT_TYPES and roles == type_readers(definition.name):
                checks.append((field, None))
                continue
            permissions = _permissions(definition.name, field)
            checks.append((field, PolicyPermission(permissions=permissions, use_directives=False)))
    for field, check in checks:
        field.extensions = [
            extension
            for extension in field.extensions
            if not isinstance(extension, PolicyPermission)
        ]
        if check is not None:
            field.extensions.append(check)


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


def build_schema(settings: Settings) -> CareGraphSchema:
    """The schema with this deployment's limits built into its extensions.

    Nothing is read from the request context, so the limits hold however the schema is
    executed (HTTP, `schema.execute`, scripts). There is no module-level schema: callers
    build one from their settings and pass it on (create_app, the CLI, tests)."""
    if not isinstance(settings, Settings):
        raise TypeError("build_schema needs the deployment's Settings (limits come from them)")
    apply_access_policy(POLICED_TYPES)
    apply_audit_policy(POLICED_TYPES)  # after: the audit sees permission denials
    return CareGraphSchema(
        query=Query,
        mutation=Mutation,
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
        # Factories, not instances: Strawberry makes one extension object per request.
        # Order matters: documents are validated before their limits are measured.
        extensions=[
            partial(
                PreparedDocuments,
                max_tokens=settings.max_tokens,
                introspection=settings.introspection,
            ),
            partial(OperationLimits, limits=Limits.from_settings(settings)),
        ],
    )
