package incident

// The data categories a notification names, in plain words.
const (
	CategoryDemographics  = "demographics"
	CategoryConditions    = "conditions and diagnoses"
	CategoryMedications   = "medications"
	CategoryObservations  = "observations and lab results"
	CategoryProcedures    = "procedures"
	CategoryEncounters    = "encounters and appointments"
	CategoryDocuments     = "documents and notes"
	CategoryImaging       = "imaging"
	CategoryImmunizations = "immunizations"
	CategoryAllergies     = "allergies and intolerances"
	CategoryFinancial     = "financial and coverage"
	CategoryCarePlans     = "care plans and care teams"
	CategoryWholeRecord   = "the whole record (all categories)"
	CategoryOther         = "other"
)

// categories maps FHIR R4 resource types that hold patient data to their
// category; any other type is CategoryOther.
var categories = map[string]string{
	"Patient": CategoryDemographics, "RelatedPerson": CategoryDemographics, "Person": CategoryDemographics,

	"Condition": CategoryConditions, "ClinicalImpression": CategoryConditions, "DetectedIssue": CategoryConditions,
	"FamilyMemberHistory": CategoryConditions, "RiskAssessment": CategoryConditions, "Flag": CategoryConditions,

	"Medication": CategoryMedications, "MedicationRequest": CategoryMedications, "MedicationStatement": CategoryMedications,
	"MedicationAdministration": CategoryMedications, "MedicationDispense": CategoryMedications,

	"Observation": CategoryObservations, "DiagnosticReport": CategoryObservations, "Specimen": CategoryObservations,
	"MolecularSequence": CategoryObservations, "BodyStructure": CategoryObservations,

	"Procedure": CategoryProcedures, "ServiceRequest": CategoryProcedures, "DeviceRequest": CategoryProcedures,
	"DeviceUseStatement": CategoryProcedures,

	"Encounter": CategoryEncounters, "EpisodeOfCare": CategoryEncounters, "Appointment": CategoryEncounters,
	"AppointmentResponse": CategoryEncounters,

	"DocumentReference": CategoryDocuments, "DocumentManifest": CategoryDocuments, "Composition": CategoryDocuments,
	"Binary": CategoryDocuments, "QuestionnaireResponse": CategoryDocuments, "Communication": CategoryDocuments,
	"CommunicationRequest": CategoryDocuments, "Consent": CategoryDocuments,

	"ImagingStudy": CategoryImaging, "Media": CategoryImaging,

	"Immunization": CategoryImmunizations, "ImmunizationEvaluation": CategoryImmunizations,
	"ImmunizationRecommendation": CategoryImmunizations,

	"AllergyIntolerance": CategoryAllergies, "AdverseEvent": CategoryAllergies,

	"Coverage": CategoryFinancial, "CoverageEligibilityRequest": CategoryFinancial, "CoverageEligibilityResponse": CategoryFinancial,
	"Claim": CategoryFinancial, "ClaimResponse": CategoryFinancial, "ExplanationOfBenefit": CategoryFinancial,
	"Account": CategoryFinancial, "Invoice": CategoryFinancial, "ChargeItem": CategoryFinancial,
	"PaymentNotice": CategoryFinancial, "PaymentReconciliation": CategoryFinancial,
	"EnrollmentRequest": CategoryFinancial, "EnrollmentResponse": CategoryFinancial,

	"CarePlan": CategoryCarePlans, "CareTeam": CategoryCarePlans, "Goal": CategoryCarePlans,
	"NutritionOrder": CategoryCarePlans, "RequestGroup": CategoryCarePlans, "Task": CategoryCarePlans,
}

// CategoryOf is the data category of an entry with action and resource
// type: the whole record for $everything and exports (they span every
// type the caller may see), else the category of the resource type.
func CategoryOf(action, resourceType string) string {
	if action == "everything" || action == "export" {
		return CategoryWholeRecord
	}
	if c, ok := categories[resourceType]; ok {
		return c
	}
	return CategoryOther
}
