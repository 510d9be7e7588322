// Code generated from the R4 CompartmentDefinition "patient" (4.0.1). DO NOT EDIT.

package fhir

// patientCompartmentTypes lists the resource types that can belong to a
// patient compartment, sorted; patientCompartmentParams has an entry for
// each.
var patientCompartmentTypes = [...]string{
	"Account",
	"AdverseEvent",
	"AllergyIntolerance",
	"Appointment",
	"AppointmentResponse",
	"AuditEvent",
	"Basic",
	"BodyStructure",
	"CarePlan",
	"CareTeam",
	"ChargeItem",
	"Claim",
	"ClaimResponse",
	"ClinicalImpression",
	"Communication",
	"CommunicationRequest",
	"Composition",
	"Condition",
	"Consent",
	"Coverage",
	"CoverageEligibilityRequest",
	"CoverageEligibilityResponse",
	"DetectedIssue",
	"DeviceRequest",
	"DeviceUseStatement",
	"DiagnosticReport",
	"DocumentManifest",
	"DocumentReference",
	"Encounter",
	"EnrollmentRequest",
	"EpisodeOfCare",
	"ExplanationOfBenefit",
	"FamilyMemberHistory",
	"Flag",
	"Goal",
	"Group",
	"ImagingStudy",
	"Immunization",
	"ImmunizationEvaluation",
	"ImmunizationRecommendation",
	"Invoice",
	"List",
	"MeasureReport",
	"Media",
	"MedicationAdministration",
	"MedicationDispense",
	"MedicationRequest",
	"MedicationStatement",
	"MolecularSequence",
	"NutritionOrder",
	"Observation",
	"Person",
	"Procedure",
	"Provenance",
	"QuestionnaireResponse",
	"RelatedPerson",
	"RequestGroup",
	"ResearchSubject",
	"RiskAssessment",
	"Schedule",
	"ServiceRequest",
	"Specimen",
	"SupplyDelivery",
	"SupplyRequest",
	"VisionPrescription",
}

// PatientCompartmentTypes returns the resource types that can belong to a
// patient compartment (Patient first, then the
// others sorted).
func PatientCompartmentTypes() []string {
	return append([]string{"Patient"}, patientCompartmentTypes[:]...)
}
