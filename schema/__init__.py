"""The GraphQL schema: one module per aggregate, merged here into Query and Mutation."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

import strawberry
from graphql import GraphQLError
from strawberry.permission import PermissionExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext
from strawberry.types.base import get_object_definition
from strawberry.types.private import is_private
from strawberry.utils.str_converters import to_camel_case

from audit.fields import apply_audit_policy
from auth.permissions import HasRole
from auth.policy import ALLOWED_BEFORE_MFA, field_readers, type_readers
from errors import CareGraphError
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


def _graphql_name(field) -> str:
    return field.graphql_name or to_camel_case(field.python_name)


class PolicyPermission(PermissionExtension):
    """The permission auth/policy.py attaches to a field; its own class, so building the
    schema again replaces it instead of stacking a second check on every field."""


def apply_access_policy(object_types: Iterable[type]) -> None:
    """Attach a role check to every root field and to every field whose readers are
    narrower than its type's (auth/policy.py). Fields readable by everyone who can hold
    the object need no per-field check: the field that returned the object checked.

    Strawberry's field objects belong to the type classes, shared by every schema built
    from them: any earlier policy check is replaced, so this is idempotent."""
    for object_type in object_types:
        definition = get_object_definition(object_type, strict=True)
        for field in definition.fields:
            if is_private(field.type):
                continue
            field.extensions = [
                extension
                for extension in field.extensions
                if not isinstance(extension, PolicyPermission)
            ]
            name = _graphql_name(field)
            roles = field_readers(definition.name, name)
            if definition.name not in ROOT_TYPES and roles == type_readers(definition.name):
                continue
            permission = HasRole(
                roles,
                where=f"{definition.name}.{name}",
                allow_before_mfa=name in ALLOWED_BEFORE_MFA,
            )
            field.extensions.append(
                PolicyPermission(permissions=[permission], use_directives=False)
            )


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
