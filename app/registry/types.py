"""Which resource types a clinic may be registered to push: clinical data, nothing else.

The rule (docs/access-control.md, "Registrable types"): a registrable type is a FHIR R4
resource type (``app/anonymize/fhir_r4_types.json``) that records patients and their care, or
a person, organization, place, device, medication or substance such records point at. It is
an allow-list, so what is not named here is refused, in particular:

- Aidbox's own resources (Client, User, AccessPolicy, App, FHIRSchema, ...) and the App's
  (AidboxInstance; SyncFence has a rule of its own in the policy): none is FHIR R4;
- FHIR R4 types Aidbox acts on, whatever their id: conformance (StructureDefinition,
  SearchParameter, OperationDefinition, CapabilityStatement, ...), terminology (CodeSystem,
  ValueSet, ConceptMap, ...), Subscription, SubscriptionStatus and Endpoint (they send data
  out), messaging and exchange envelopes (MessageHeader, Bundle, Binary, Parameters,
  OperationOutcome, Linkage);
- security records, which headquarters keeps itself: AuditEvent, Provenance, Consent;
- definitions and knowledge artifacts, which describe no patient and some of which Aidbox can
  execute: *Definition, Questionnaire, Library, Measure, Evidence*, *EvidenceSynthesis,
  CatalogEntry, InsurancePlan, MedicationKnowledge, the MedicinalProduct* and Substance*
  specifications, TestScript, TestReport;
- the abstract Resource and DomainResource.

The clinics' AccessPolicy (``manifest/policies/aidbox-sync-clinics.yaml``) holds the same list
and refuses writes of any other type, whatever an AidboxInstance lists;
``tests/unit/test_clinics_policy.py`` keeps the two equal.
"""

from __future__ import annotations

from collections.abc import Iterable

from app.errors import SyncError

# Grouped as the FHIR R4 resource list (resourcelist.html) groups them.
REGISTRABLE_TYPES: frozenset[str] = frozenset(
    {
        # Base: individuals
        "Patient",
        "Practitioner",
        "PractitionerRole",
        "RelatedPerson",
        "Person",
        "Group",
        # Base: entities
        "Organization",
        "OrganizationAffiliation",
        "HealthcareService",
        "Location",
        "Substance",
        "BiologicallyDerivedProduct",
        "Device",
        "DeviceMetric",
        # Base: workflow and management
        "Task",
        "Appointment",
        "AppointmentResponse",
        "Schedule",
        "Slot",
        "VerificationResult",
        "Encounter",
        "EpisodeOfCare",
        "Flag",
        "List",
        # Clinical: summary
        "AllergyIntolerance",
        "AdverseEvent",
        "Condition",
        "Procedure",
        "FamilyMemberHistory",
        "ClinicalImpression",
        "DetectedIssue",
        # Clinical: diagnostics
        "Observation",
        "Media",
        "DiagnosticReport",
        "Specimen",
        "BodyStructure",
        "ImagingStudy",
        "QuestionnaireResponse",
        "MolecularSequence",
        # Clinical: medications
        "Medication",
        "MedicationRequest",
        "MedicationAdministration",
        "MedicationDispense",
        "MedicationStatement",
        "Immunization",
        "ImmunizationEvaluation",
        "ImmunizationRecommendation",
        # Clinical: care provision, requests and responses
        "CarePlan",
        "CareTeam",
        "Goal",
        "ServiceRequest",
        "NutritionOrder",
        "VisionPrescription",
        "RiskAssessment",
        "RequestGroup",
        "Communication",
        "CommunicationRequest",
        "DeviceRequest",
        "DeviceUseStatement",
        "GuidanceResponse",
        "SupplyRequest",
        "SupplyDelivery",
        # Foundation: documents, and Basic (data of a kind FHIR has no resource for)
        "Composition",
        "DocumentManifest",
        "DocumentReference",
        "Basic",
        # Financial
        "Coverage",
        "CoverageEligibilityRequest",
        "CoverageEligibilityResponse",
        "EnrollmentRequest",
        "EnrollmentResponse",
        "Claim",
        "ClaimResponse",
        "Invoice",
        "PaymentNotice",
        "PaymentReconciliation",
        "Account",
        "ChargeItem",
        "Contract",
        "ExplanationOfBenefit",
        # Specialized: research subjects and results
        "ResearchStudy",
        "ResearchSubject",
        "MeasureReport",
    }
)


class UnregistrableTypes(SyncError, ValueError):
    """A registration named resource types a clinic may not push."""

    def __init__(self, types: list[str]) -> None:
        self.types = types
        super().__init__(
            f"not clinical data types, a clinic may not push them: {', '.join(types)}"
            " (registrable: FHIR R4 clinical resource types, docs/access-control.md)"
        )


def unregistrable(types: Iterable[object]) -> list[str]:
    """The types of ``types`` that are not registrable, in their order, each once (anything
    that is no string, as an AidboxInstance edited by hand may hold, is not registrable)."""
    refused: list[str] = []
    for t in types:
        name = t if isinstance(t, str) else repr(t)
        if name not in REGISTRABLE_TYPES and name not in refused:
            refused.append(name)
    return refused
