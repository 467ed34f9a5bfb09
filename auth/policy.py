"""The access policy, as data: who may read every type and field, who may call every
root field, and which records each role sees (enforced by the stores' access scope).

Reading the table: TYPE_READERS says which roles may hold an object of a type at all;
FIELDS lists every field of every type with the roles that may read it (a subset of the
type's readers; narrower entries are enforced by a permission on that field). Which
*records* a role sees is ROW_SCOPES. What a role may do with a mutation it may call
(which input fields it may set, whose record it must be acting for) is MUTATIONS.
schema/__init__.py attaches all of it to the fields when the schema is built, so no
resolver enforces (or can forget) any of it. tests/test_policy.py fails for any schema
field or mutation this table does not cover, and checks every field for every role over
HTTP.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from auth.roles import Role

PATIENT, DOCTOR, PHARMACIST, ANALYST, ADMIN = (
    Role.PATIENT,
    Role.DOCTOR,
    Role.PHARMACIST,
    Role.ANALYST,
    Role.ADMIN,
)


class Anyone(Enum):
    """Root fields open to unauthenticated callers (login, register, token refresh)."""

    PUBLIC = "PUBLIC"


PUBLIC = Anyone.PUBLIC
Roles = frozenset[Role]
AUTHENTICATED: Roles = frozenset(Role)
CARE_TEAM: Roles = frozenset({ADMIN, PATIENT, DOCTOR})
CLINICAL_READERS: Roles = frozenset({ADMIN, PATIENT, DOCTOR, PHARMACIST})
BILLING: Roles = frozenset({ADMIN, PATIENT})
ADMIN_ONLY: Roles = frozenset({ADMIN})
REPORT_READERS: Roles = frozenset({ADMIN, ANALYST})
# Medication safety: the prescriber and the pharmacist (and admins) see alerts.
SAFETY_READERS: Roles = frozenset({ADMIN, DOCTOR, PHARMACIST})
PHARMACIST_ONLY: Roles = frozenset({PHARMACIST})


class Scope(Enum):
    ALL = "every record"
    OWN = "only the caller's own records (their patient record and what hangs off it)"
    OWN_SCHEDULE = "only appointments with the calling doctor"
    CARE_RELATIONSHIP = "only patients the doctor has an appointment or prescription with"


# Which records each role sees, per collection; a role not listed sees none.
ROW_SCOPES: dict[str, dict[Role, Scope]] = {
    "patients": {
        ADMIN: Scope.ALL,
        PHARMACIST: Scope.ALL,
        DOCTOR: Scope.CARE_RELATIONSHIP,
        PATIENT: Scope.OWN,
    },
    "doctors": {ADMIN: Scope.ALL, PHARMACIST: Scope.ALL, DOCTOR: Scope.ALL, PATIENT: Scope.ALL},
    "appointments": {ADMIN: Scope.ALL, DOCTOR: Scope.OWN_SCHEDULE, PATIENT: Scope.OWN},
    "prescriptions": {
        ADMIN: Scope.ALL,
        PHARMACIST: Scope.ALL,
        DOCTOR: Scope.CARE_RELATIONSHIP,
        PATIENT: Scope.OWN,
    },
    "bills": {ADMIN: Scope.ALL, PATIENT: Scope.OWN},
}


def _fields(roles: Roles | Anyone, names: str) -> dict[str, Roles | Anyone]:
    return dict.fromkeys(names.split(), roles)


TYPE_READERS: dict[str, Roles | Anyone] = {
    "Patient": CLINICAL_READERS,
    "Contact": CARE_TEAM,
    "Address": CARE_TEAM,
    "Doctor": CLINICAL_READERS,
    "AvailabilityWindow": CLINICAL_READERS,
    "Appointment": CARE_TEAM,
    "Prescription": CLINICAL_READERS,
    "Dosage": CLINICAL_READERS,
    "Bill": BILLING,
    "DoctorUnavailable": CARE_TEAM,
    "InvalidStatusTransition": CARE_TEAM,
    "PageInfo": AUTHENTICATED,
    # Returned to the caller about themself (login, me) or to an admin.
    "User": PUBLIC,
    "AuthPayload": PUBLIC,
    "MfaRequired": PUBLIC,
    # The same neutral answer to every sign-up, taken address or not.
    "RegistrationReceived": PUBLIC,
    "MfaEnrollment": AUTHENTICATED,
    "RecoveryCodes": AUTHENTICATED,
    # Reports: aggregates only, no patient identifiers; analysts see k-anonymised groups.
    **dict.fromkeys(
        [
            "TopDoctorsReport",
            "DoctorRanking",
            "DiseaseDurationsReport",
            "DiseaseDuration",
            "MonthlyTrendReport",
            "MonthlyAppointments",
            "DiseaseCostReport",
            "DiseaseCost",
            "ReportPrivacy",
        ],
        REPORT_READERS,
    ),
    "ReportCacheStats": ADMIN_ONLY,
    "IntegrityAlarm": ADMIN_ONLY,
    **dict.fromkeys(
        [
            "MedicationAlert",
            "AlertSource",
            "AlertEvidence",
            "AlertSuggestion",
            "MedicationSafetyCheck",
            "AlertOverride",
            "PrescriptionRefused",
        ],
        SAFETY_READERS,
    ),
    **dict.fromkeys(
        ["DrugCoding", "CodedCondition", "AllergyRecord", "PrescriptionVerification"],
        CLINICAL_READERS,
    ),
    "InvalidVerificationTransition": PHARMACIST_ONLY,
    "KnowledgeBaseInfo": AUTHENTICATED,
    "KnowledgeSource": AUTHENTICATED,
    # The audit trail: administrators; a patient reads only their own access log.
    **dict.fromkeys(["AuditEvent", "AuditEntity", "AuditIntegrity"], ADMIN_ONLY),
    "AccessLogEntry": frozenset({PATIENT}),
    "EmergencyAccessGrant": frozenset({ADMIN, DOCTOR}),
}

FIELDS: dict[str, dict[str, Roles | Anyone]] = {
    "Query": {
        **_fields(CLINICAL_READERS, "patient patients prescription prescriptions doctor doctors"),
        **_fields(CARE_TEAM, "appointment appointments"),
        **_fields(BILLING, "bill bills"),
        "me": AUTHENTICATED,
        "users": ADMIN_ONLY,
        **_fields(
            REPORT_READERS,
            "topDoctors diseaseTreatmentDurations "
            "monthlyAppointmentTrend averagePrescriptionCostByDisease",
        ),
        "reportCacheStats": ADMIN_ONLY,
        "integrityAlarms": ADMIN_ONLY,
        # The treating doctor (row scope: care relationship) and pharmacists.
        "medicationSafetyCheck": frozenset({DOCTOR, PHARMACIST}),
        "pharmacyQueue": PHARMACIST_ONLY,
        "knowledgeBase": AUTHENTICATED,
        **_fields(ADMIN_ONLY, "auditEvents auditIntegrity emergencyAccessGrants"),
        "myAccessLog": frozenset({PATIENT}),
    },
    "Mutation": {
        **_fields(PUBLIC, "register verifyEmail login refreshToken"),
        **_fields(AUTHENTICATED, "logout changePassword enrollMfa confirmMfa"),
        **_fields(
            ADMIN_ONLY,
            "createUser disableUser resetMfa changeUserRole "
            "createPatient deletePatient createDoctor deleteDoctor "
            "deleteAppointment deletePrescription "
            "createBill updateBill deleteBill",
        ),
        # What each role may do with the mutations it may call is MUTATIONS below.
        "updatePatient": CARE_TEAM,
        "updateDoctor": frozenset({ADMIN, DOCTOR}),
        **_fields(
            CARE_TEAM, "createAppointment updateAppointment rescheduleAppointment cancelAppointment"
        ),
        "completeAppointment": frozenset({ADMIN, DOCTOR}),
        **_fields(frozenset({ADMIN, DOCTOR}), "createPrescription updatePrescription prescribe"),
        **_fields(PHARMACIST_ONLY, "verifyPrescription rejectPrescription dispensePrescription"),
        "requestEmergencyAccess": frozenset({DOCTOR}),
        "revokeEmergencyAccess": ADMIN_ONLY,
    },
    "Patient": {
        **_fields(
            CLINICAL_READERS,
            "id name givenName familyName age ageInMonths sex conditions allergies "
            "codedConditions codedAllergies prescriptions",
        ),
        # Pharmacists check prescriptions (minimum necessary): the age dosing needs, not the
        # birth date nor record dates; no contact details, visits or billing.
        **_fields(CARE_TEAM, "birthDate createdAt updatedAt contact appointments"),
        "bills": BILLING,
        "userId": ADMIN_ONLY,
    },
    "Contact": _fields(CARE_TEAM, "phone email address"),
    "Address": _fields(CARE_TEAM, "line1 line2 city postalCode country"),
    "Doctor": {
        **_fields(
            CLINICAL_READERS,
            "id name givenName familyName specialty availability "
            "acceptingNewPatients createdAt updatedAt",
        ),
        "appointments": CARE_TEAM,
        "userId": ADMIN_ONLY,
    },
    "AvailabilityWindow": _fields(CLINICAL_READERS, "dayOfWeek startTime endTime"),
    "Appointment": {
        **_fields(
            CARE_TEAM,
            "id start durationMinutes end reason diagnosis status cancellationReason "
            "cancelledAt completedAt createdAt updatedAt patient doctor",
        ),
        # Doctors see no billing amounts.
        "bill": BILLING,
    },
    "Prescription": {
        **_fields(
            CLINICAL_READERS,
            "id drug indication dosage frequency startDate endDate cost status createdAt "
            "updatedAt patient doctor drugCoding verification",
        ),
        # Alerts and the prescriber's overrides are for the care team's review screens.
        **_fields(SAFETY_READERS, "alerts overrides"),
    },
    "Dosage": _fields(CLINICAL_READERS, "value unit"),
    "Bill": _fields(BILLING, "id disease totalCost createdAt paid paidAt patient appointment"),
    "DoctorUnavailable": _fields(CARE_TEAM, "reason message"),
    "InvalidStatusTransition": _fields(CARE_TEAM, "currentStatus requestedStatus message"),
    "PageInfo": _fields(AUTHENTICATED, "hasNextPage endCursor"),
    "User": _fields(PUBLIC, "id email role disabled mfaEnabled patientId doctorId createdAt"),
    "AuthPayload": _fields(PUBLIC, "accessToken refreshToken expiresIn user"),
    "MfaRequired": _fields(PUBLIC, "message"),
    "RegistrationReceived": _fields(PUBLIC, "message"),
    "MfaEnrollment": _fields(AUTHENTICATED, "secret provisioningUri"),
    "RecoveryCodes": _fields(AUTHENTICATED, "codes"),
    "TopDoctorsReport": _fields(REPORT_READERS, "rows privacy"),
    "DoctorRanking": _fields(
        REPORT_READERS, "rank doctorId doctorName specialty distinctPatients appointments"
    ),
    "DiseaseDurationsReport": _fields(REPORT_READERS, "rows privacy"),
    "DiseaseDuration": _fields(REPORT_READERS, "disease patients averageDays"),
    "MonthlyTrendReport": _fields(REPORT_READERS, "year months privacy"),
    "MonthlyAppointments": _fields(
        REPORT_READERS, "month suppressed scheduled completed cancelled patients"
    ),
    "DiseaseCostReport": _fields(REPORT_READERS, "rows privacy"),
    "DiseaseCost": _fields(
        REPORT_READERS,
        "disease prescriptions averagePrescriptionCost "
        "prescribedPatients bills averageBilledTotal "
        "billedPatients",
    ),
    "ReportPrivacy": _fields(REPORT_READERS, "minimumGroupSize suppressedGroups note"),
    "ReportCacheStats": _fields(ADMIN_ONLY, "hits misses errors"),
    "IntegrityAlarm": _fields(ADMIN_ONLY, "id check message raisedAt"),
    "MedicationAlert": _fields(
        SAFETY_READERS, "id kind severity summary detail ruleId source evidence suggestions"
    ),
    "AlertSource": _fields(SAFETY_READERS, "label url"),
    "AlertEvidence": _fields(SAFETY_READERS, "kind display id code"),
    "AlertSuggestion": _fields(SAFETY_READERS, "label rxcui display"),
    "MedicationSafetyCheck": _fields(
        SAFETY_READERS, "alerts highestSeverity knowledgeBaseVersion drug"
    ),
    "DrugCoding": _fields(CLINICAL_READERS, "text rxcui atc display coded"),
    "CodedCondition": _fields(CLINICAL_READERS, "text code system display coded"),
    "AllergyRecord": _fields(
        CLINICAL_READERS, "text kind code system display coded reaction severity status"
    ),
    "AlertOverride": _fields(
        SAFETY_READERS,
        "alertId kind severity summary reason comment acknowledgedBy acknowledgedAt",
    ),
    "PrescriptionVerification": _fields(
        CLINICAL_READERS,
        "status reviewedBy reviewedAt rejectionReason dispensedBy dispensedAt",
    ),
    "KnowledgeBaseInfo": _fields(AUTHENTICATED, "version sources drugCount ruleCount"),
    "KnowledgeSource": _fields(AUTHENTICATED, "name url"),
    "PrescriptionRefused": _fields(SAFETY_READERS, "message alerts unacknowledged"),
    "InvalidVerificationTransition": _fields(
        PHARMACIST_ONLY, "currentStatus requestedStatus message"
    ),
    "AuditEvent": _fields(
        ADMIN_ONLY,
        "seq recordedAt action outcome actorId actorRole emergency emergencyGrantIds "
        "operationName documentId requestId clientAddress entities",
    ),
    "AuditEntity": _fields(ADMIN_ONLY, "patientId resourceType recordId fields emergencyGrantId"),
    "AuditIntegrity": _fields(ADMIN_ONLY, "ok checkedRecords firstBadSeq problem"),
    "AccessLogEntry": _fields(
        frozenset({PATIENT}),
        "at action outcome staffName staffRole emergency resourceTypes fields",
    ),
    "EmergencyAccessGrant": _fields(
        frozenset({ADMIN, DOCTOR}),
        "id patientId doctorId reason grantedAt expiresAt revokedAt revokedBy active",
    ),
}

# An ADMIN who has not yet completed a second factor may only do these.
ALLOWED_BEFORE_MFA = frozenset({"me", "logout", "changePassword", "enrollMfa", "confirmMfa"})

EVERY_FIELD = None  # in MutationRule.input_fields: the role may set every input field


@dataclass(frozen=True)
class Argument:
    """The id the caller must own is an argument ("id") or a field of the input
    argument ("input.patientId"), named as the client sends it."""

    path: str


@dataclass(frozen=True)
class Stored:
    """The id the caller must own is a field (`field`, as stored) of the `record` the
    mutation's `id` argument names, read through the request's scoped loaders."""

    record: str
    field: str


@dataclass(frozen=True)
class MutationRule:
    """What a role may do with a mutation it may call (FIELDS["Mutation"] says who may).

    input_fields: which fields of the `input` argument each role may set; a role not
    listed may set none (FORBIDDEN, reason INPUT_FIELD). None: no rule on the input.
    acts_for: where the patient (for PATIENT) or doctor (for DOCTOR) id is that must be
    the caller's own record (FORBIDDEN, reason NOT_OWN_RECORD). A record the caller's row
    scope hides is NOT_FOUND, as it is for reads: no existence oracle."""

    input_fields: Mapping[Role, frozenset[str] | None] | None = None
    acts_for: Mapping[Role, Argument | Stored] = dataclasses.field(default_factory=dict)


NO_RULE = MutationRule()


def _rules(rule: MutationRule, names: str) -> dict[str, MutationRule]:
    return dict.fromkeys(names.split(), rule)


# A patient acts only for their own visits, a doctor only on their own schedule.
_APPOINTMENT_PARTIES: dict[Role, Argument | Stored] = {
    PATIENT: Stored("Appointment", "patientId"),
    DOCTOR: Stored("Appointment", "doctorId"),
}

# Every mutation has an entry (tests/test_policy.py, and the schema will not build
# without one), attached to the mutation at schema build: no resolver enforces these.
MUTATIONS: dict[str, MutationRule] = {
    # Public, or about the caller's own account (the principal is who they act for).
    **_rules(
        NO_RULE,
        "register verifyEmail login refreshToken logout changePassword enrollMfa confirmMfa",
    ),
    # Administrators only: every record, every field.
    **_rules(
        NO_RULE,
        "createUser disableUser resetMfa changeUserRole createPatient deletePatient "
        "createDoctor deleteDoctor deleteAppointment deletePrescription "
        "createBill updateBill deleteBill revokeEmergencyAccess",
    ),
    # Pharmacists review any prescription (their row scope is every prescription).
    **_rules(NO_RULE, "verifyPrescription rejectPrescription dispensePrescription"),
    # The grant is made out to the calling doctor (their principal), for one patient.
    "requestEmergencyAccess": NO_RULE,
    # Which fields each role may change: the rest is refused, so no one changes what
    # their job does not cover (a patient cannot edit diagnoses). Doctors change the
    # clinical record of the patients they treat (row scope: care relationship).
    "updatePatient": MutationRule(
        input_fields={
            ADMIN: EVERY_FIELD,
            DOCTOR: frozenset({"conditions", "allergies", "allergyRecords"}),
            PATIENT: frozenset({"contact"}),
        },
        acts_for={PATIENT: Stored("Patient", "_id")},
    ),
    "updateDoctor": MutationRule(
        input_fields={
            ADMIN: EVERY_FIELD,
            DOCTOR: frozenset({"availability", "acceptingNewPatients"}),
        },
        acts_for={DOCTOR: Argument("id")},
    ),
    "createAppointment": MutationRule(
        acts_for={PATIENT: Argument("input.patientId"), DOCTOR: Argument("input.doctorId")}
    ),
    # A patient may say why they come; what was diagnosed is the clinician's to record.
    "updateAppointment": MutationRule(
        input_fields={ADMIN: EVERY_FIELD, DOCTOR: EVERY_FIELD, PATIENT: frozenset({"reason"})},
        acts_for=_APPOINTMENT_PARTIES,
    ),
    **_rules(
        MutationRule(acts_for=_APPOINTMENT_PARTIES), "rescheduleAppointment cancelAppointment"
    ),
    "completeAppointment": MutationRule(acts_for={DOCTOR: _APPOINTMENT_PARTIES[DOCTOR]}),
    # A doctor prescribes as themself, and changes only what they prescribed, even for
    # a patient they share.
    **_rules(
        MutationRule(acts_for={DOCTOR: Argument("input.doctorId")}), "createPrescription prescribe"
    ),
    "updatePrescription": MutationRule(
        input_fields={ADMIN: EVERY_FIELD, DOCTOR: EVERY_FIELD},
        acts_for={DOCTOR: Stored("Prescription", "doctorId")},
    ),
}

_WRAPPER_SUFFIXES = ("Connection", "Edge")


def type_readers(type_name: str) -> Roles | Anyone:
    """Pagination wrappers (PatientConnection, PatientEdge) are read by their node's readers."""
    for suffix in _WRAPPER_SUFFIXES:
        if type_name.endswith(suffix) and type_name[: -len(suffix)] in TYPE_READERS:
            return TYPE_READERS[type_name[: -len(suffix)]]
    return TYPE_READERS[type_name]


def field_readers(type_name: str, field_name: str) -> Roles | Anyone:
    for suffix in _WRAPPER_SUFFIXES:
        base = type_name[: -len(suffix)]
        if type_name.endswith(suffix) and base in TYPE_READERS:
            return TYPE_READERS[base]
    return FIELDS[type_name][field_name]


# Protected health information: reading any of these fields is audited (audit/fields.py
# records the read; one record per request, see audit/records.py). A PHI field on
# Contact or Address is recorded against its patient as "contact.<field>".
# tests/test_audit_fields.py reads every one, as every role that may, and checks the log.
PHI_FIELDS: dict[str, frozenset[str]] = {
    "Patient": frozenset(
        "name givenName familyName birthDate age sex contact conditions allergies".split()
    ),
    "Contact": frozenset("phone email address".split()),
    "Address": frozenset("line1 line2 city postalCode country".split()),
    "Appointment": frozenset(
        "start end durationMinutes reason diagnosis status cancellationReason "
        "cancelledAt completedAt".split()
    ),
    "Prescription": frozenset(
        "drug indication dosage frequency startDate endDate cost status".split()
    ),
    # Payment information about an identified patient is PHI too.
    "Bill": frozenset("disease totalCost paid paidAt".split()),
}
# The record types audit entries name (FHIR-ish resource types).
PHI_RESOURCES = frozenset({"Patient", "Appointment", "Prescription", "Bill"})
