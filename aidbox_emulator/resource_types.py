"""The resource types the emulator stores out of the box: FHIR R4 plus Aidbox's own."""

from __future__ import annotations

import re

# FHIR R4 (4.0.1) resource types, abstract Resource/DomainResource excluded.
FHIR_R4_TYPES: tuple[str, ...] = tuple(
    """
        Account ActivityDefinition AdverseEvent AllergyIntolerance Appointment
        AppointmentResponse AuditEvent Basic Binary BiologicallyDerivedProduct BodyStructure
        Bundle CapabilityStatement CarePlan CareTeam CatalogEntry ChargeItem
        ChargeItemDefinition Claim ClaimResponse ClinicalImpression CodeSystem Communication
        CommunicationRequest CompartmentDefinition Composition ConceptMap Condition Consent
        Contract Coverage CoverageEligibilityRequest CoverageEligibilityResponse
        DetectedIssue Device DeviceDefinition DeviceMetric DeviceRequest DeviceUseStatement
        DiagnosticReport DocumentManifest DocumentReference EffectEvidenceSynthesis
        Encounter Endpoint EnrollmentRequest EnrollmentResponse EpisodeOfCare
        EventDefinition Evidence EvidenceVariable ExampleScenario ExplanationOfBenefit
        FamilyMemberHistory Flag Goal GraphDefinition Group GuidanceResponse
        HealthcareService ImagingStudy Immunization ImmunizationEvaluation
        ImmunizationRecommendation ImplementationGuide InsurancePlan Invoice Library Linkage
        List Location Measure MeasureReport Media Medication MedicationAdministration
        MedicationDispense MedicationKnowledge MedicationRequest MedicationStatement
        MedicinalProduct MedicinalProductAuthorization MedicinalProductContraindication
        MedicinalProductIndication MedicinalProductIngredient MedicinalProductInteraction
        MedicinalProductManufactured MedicinalProductPackaged MedicinalProductPharmaceutical
        MedicinalProductUndesirableEffect MessageDefinition MessageHeader MolecularSequence
        NamingSystem NutritionOrder Observation ObservationDefinition OperationDefinition
        OperationOutcome Organization OrganizationAffiliation Parameters Patient
        PaymentNotice PaymentReconciliation Person PlanDefinition Practitioner
        PractitionerRole Procedure Provenance Questionnaire QuestionnaireResponse
        RelatedPerson RequestGroup ResearchDefinition ResearchElementDefinition
        ResearchStudy ResearchSubject RiskAssessment RiskEvidenceSynthesis Schedule
        SearchParameter ServiceRequest Slot Specimen SpecimenDefinition StructureDefinition
        StructureMap Subscription Substance SubstanceNucleicAcid SubstancePolymer
        SubstanceProtein SubstanceReferenceInformation SubstanceSourceMaterial
        SubstanceSpecification SupplyDelivery SupplyRequest Task TerminologyCapabilities
        TestReport TestScript ValueSet VerificationResult VisionPrescription
        """.split()  # noqa: SIM905
)

# Aidbox's own resource types that the App, the SDK or access control touch.
AIDBOX_TYPES: tuple[str, ...] = (
    "App",
    "Client",
    "User",
    "AccessPolicy",
    "Operation",
    "FHIRSchema",
    "Entity",
    "Attribute",
    "AidboxSubscriptionTopic",
    "AidboxTopicDestination",
)

BUILTIN_TYPES: frozenset[str] = frozenset(FHIR_R4_TYPES + AIDBOX_TYPES)

_TYPE_NAME = re.compile(r"^[A-Z][A-Za-z0-9]{0,62}$")


def is_type_name(name: str) -> bool:
    """True if `name` is shaped like a resource type (capitalised identifier)."""
    return bool(_TYPE_NAME.match(name))


def table_name(resource_type: str) -> str:
    """Aidbox's table for a type: the lower-cased name (database/database-schema.md)."""
    return resource_type.lower()


def history_table_name(resource_type: str) -> str:
    """Aidbox's history table for a type: `<type>_history` (database/database-schema.md)."""
    return f"{resource_type.lower()}_history"
