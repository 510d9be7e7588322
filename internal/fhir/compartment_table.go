// Code generated from the R4 CompartmentDefinition "patient" (4.0.1) and the
// R4 SearchParameter expressions (spec/search-parameters.json). DO NOT EDIT.

package fhir

// patientCompartmentParams returns, for a resource type, the search parameters
// of the R4 patient compartment in the order the CompartmentDefinition lists
// them, each with the element paths (below the resource) its R4 expression
// selects. A ".where(resolve() is Patient)" filter in the expression is
// implied: only references of the form "Patient/<id>" are considered.
func patientCompartmentParams(typ string) []compartmentParam {
	switch typ {
	case "Account":
		return []compartmentParam{
			{"subject", [][]string{{"subject"}}},
		}
	case "AdverseEvent":
		return []compartmentParam{
			{"subject", [][]string{{"subject"}}},
		}
	case "AllergyIntolerance":
		return []compartmentParam{
			{"patient", [][]string{{"patient"}}},
			{"recorder", [][]string{{"recorder"}}},
			{"asserter", [][]string{{"asserter"}}},
		}
	case "Appointment":
		return []compartmentParam{
			{"actor", [][]string{{"participant", "actor"}}},
		}
	case "AppointmentResponse":
		return []compartmentParam{
			{"actor", [][]string{{"actor"}}},
		}
	case "AuditEvent":
		return []compartmentParam{
			{"patient", [][]string{{"agent", "who"}, {"entity", "what"}}},
		}
	case "Basic":
		return []compartmentParam{
			{"patient", [][]string{{"subject"}}},
			{"author", [][]string{{"author"}}},
		}
	case "BodyStructure":
		return []compartmentParam{
			{"patient", [][]string{{"patient"}}},
		}
	case "CarePlan":
		return []compartmentParam{
			{"patient", [][]string{{"subject"}}},
			{"performer", [][]string{{"activity", "detail", "performer"}}},
		}
	case "CareTeam":
		return []compartmentParam{
			{"patient", [][]string{{"subject"}}},
			{"participant", [][]string{{"participant", "member"}}},
		}
	case "ChargeItem":
		return []compartmentParam{
			{"subject", [][]string{{"subject"}}},
		}
	case "Claim":
		return []compartmentParam{
			{"patient", [][]string{{"patient"}}},
			{"payee", [][]string{{"payee", "party"}}},
		}
	case "ClaimResponse":
		return []compartmentParam{
			{"patient", [][]string{{"patient"}}},
		}
	case "ClinicalImpression":
		return []compartmentParam{
			{"subject", [][]string{{"subject"}}},
		}
	case "Communication":
		return []compartmentParam{
			{"subject", [][]string{{"subject"}}},
			{"sender", [][]string{{"sender"}}},
			{"recipient", [][]string{{"recipient"}}},
		}
	case "CommunicationRequest":
		return []compartmentParam{
			{"subject", [][]string{{"subject"}}},
			{"sender", [][]string{{"sender"}}},
			{"recipient", [][]string{{"recipient"}}},
			{"requester", [][]string{{"requester"}}},
		}
	case "Composition":
		return []compartmentParam{
			{"subject", [][]string{{"subject"}}},
			{"author", [][]string{{"author"}}},
			{"attester", [][]string{{"attester", "party"}}},
		}
	case "Condition":
		return []compartmentParam{
			{"patient", [][]string{{"subject"}}},
			{"asserter", [][]string{{"asserter"}}},
		}
	case "Consent":
		return []compartmentParam{
			{"patient", [][]string{{"patient"}}},
		}
	case "Coverage":
		return []compartmentParam{
			{"policy-holder", [][]string{{"policyHolder"}}},
			{"subscriber", [][]string{{"subscriber"}}},
			{"beneficiary", [][]string{{"beneficiary"}}},
			{"payor", [][]string{{"payor"}}},
		}
	case "CoverageEligibilityRequest":
		return []compartmentParam{
			{"patient", [][]string{{"patient"}}},
		}
	case "CoverageEligibilityResponse":
		return []compartmentParam{
			{"patient", [][]string{{"patient"}}},
		}
	case "DetectedIssue":
		return []compartmentParam{
			{"patient", [][]string{{"patient"}}},
		}
	case "DeviceRequest":
		return []compartmentParam{
			{"subject", [][]string{{"subject"}}},
			{"performer", [][]string{{"performer"}}},
		}
	case "DeviceUseStatement":
		return []compartmentParam{
			{"subject", [][]string{{"subject"}}},
		}
	case "DiagnosticReport":
		return []compartmentParam{
			{"subject", [][]string{{"subject"}}},
		}
	case "DocumentManifest":
		return []compartmentParam{
			{"subject", [][]string{{"subject"}}},
			{"author", [][]string{{"author"}}},
			{"recipient", [][]string{{"recipient"}}},
		}
	case "DocumentReference":
		return []compartmentParam{
			{"subject", [][]string{{"subject"}}},
			{"author", [][]string{{"author"}}},
		}
	case "Encounter":
		return []compartmentParam{
			{"patient", [][]string{{"subject"}}},
		}
	case "EnrollmentRequest":
		return []compartmentParam{
			{"subject", [][]string{{"candidate"}}},
		}
	case "EpisodeOfCare":
		return []compartmentParam{
			{"patient", [][]string{{"patient"}}},
		}
	case "ExplanationOfBenefit":
		return []compartmentParam{
			{"patient", [][]string{{"patient"}}},
			{"payee", [][]string{{"payee", "party"}}},
		}
	case "FamilyMemberHistory":
		return []compartmentParam{
			{"patient", [][]string{{"patient"}}},
		}
	case "Flag":
		return []compartmentParam{
			{"patient", [][]string{{"subject"}}},
		}
	case "Goal":
		return []compartmentParam{
			{"patient", [][]string{{"subject"}}},
		}
	case "Group":
		return []compartmentParam{
			{"member", [][]string{{"member", "entity"}}},
		}
	case "ImagingStudy":
		return []compartmentParam{
			{"patient", [][]string{{"subject"}}},
		}
	case "Immunization":
		return []compartmentParam{
			{"patient", [][]string{{"patient"}}},
		}
	case "ImmunizationEvaluation":
		return []compartmentParam{
			{"patient", [][]string{{"patient"}}},
		}
	case "ImmunizationRecommendation":
		return []compartmentParam{
			{"patient", [][]string{{"patient"}}},
		}
	case "Invoice":
		return []compartmentParam{
			{"subject", [][]string{{"subject"}}},
			{"patient", [][]string{{"subject"}}},
			{"recipient", [][]string{{"recipient"}}},
		}
	case "List":
		return []compartmentParam{
			{"subject", [][]string{{"subject"}}},
			{"source", [][]string{{"source"}}},
		}
	case "MeasureReport":
		return []compartmentParam{
			{"patient", [][]string{{"subject"}}},
		}
	case "Media":
		return []compartmentParam{
			{"subject", [][]string{{"subject"}}},
		}
	case "MedicationAdministration":
		return []compartmentParam{
			{"patient", [][]string{{"subject"}}},
			{"performer", [][]string{{"performer", "actor"}}},
			{"subject", [][]string{{"subject"}}},
		}
	case "MedicationDispense":
		return []compartmentParam{
			{"subject", [][]string{{"subject"}}},
			{"patient", [][]string{{"subject"}}},
			{"receiver", [][]string{{"receiver"}}},
		}
	case "MedicationRequest":
		return []compartmentParam{
			{"subject", [][]string{{"subject"}}},
		}
	case "MedicationStatement":
		return []compartmentParam{
			{"subject", [][]string{{"subject"}}},
		}
	case "MolecularSequence":
		return []compartmentParam{
			{"patient", [][]string{{"patient"}}},
		}
	case "NutritionOrder":
		return []compartmentParam{
			{"patient", [][]string{{"patient"}}},
		}
	case "Observation":
		return []compartmentParam{
			{"subject", [][]string{{"subject"}}},
			{"performer", [][]string{{"performer"}}},
		}
	case "Patient":
		return []compartmentParam{
			{"link", [][]string{{"link", "other"}}},
		}
	case "Person":
		return []compartmentParam{
			{"patient", [][]string{{"link", "target"}}},
		}
	case "Procedure":
		return []compartmentParam{
			{"patient", [][]string{{"subject"}}},
			{"performer", [][]string{{"performer", "actor"}}},
		}
	case "Provenance":
		return []compartmentParam{
			{"patient", [][]string{{"target"}}},
		}
	case "QuestionnaireResponse":
		return []compartmentParam{
			{"subject", [][]string{{"subject"}}},
			{"author", [][]string{{"author"}}},
		}
	case "RelatedPerson":
		return []compartmentParam{
			{"patient", [][]string{{"patient"}}},
		}
	case "RequestGroup":
		return []compartmentParam{
			{"subject", [][]string{{"subject"}}},
			{"participant", [][]string{{"action", "participant"}}},
		}
	case "ResearchSubject":
		return []compartmentParam{
			{"individual", [][]string{{"individual"}}},
		}
	case "RiskAssessment":
		return []compartmentParam{
			{"subject", [][]string{{"subject"}}},
		}
	case "Schedule":
		return []compartmentParam{
			{"actor", [][]string{{"actor"}}},
		}
	case "ServiceRequest":
		return []compartmentParam{
			{"subject", [][]string{{"subject"}}},
			{"performer", [][]string{{"performer"}}},
		}
	case "Specimen":
		return []compartmentParam{
			{"subject", [][]string{{"subject"}}},
		}
	case "SupplyDelivery":
		return []compartmentParam{
			{"patient", [][]string{{"patient"}}},
		}
	case "SupplyRequest":
		return []compartmentParam{
			{"subject", [][]string{{"deliverTo"}}},
		}
	case "VisionPrescription":
		return []compartmentParam{
			{"patient", [][]string{{"patient"}}},
		}
	}
	return nil
}
