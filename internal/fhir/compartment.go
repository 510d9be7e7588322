package fhir

import (
	"slices"
	"strings"
)

// compartmentParam is one search parameter of a compartment definition and
// the element paths its R4 expression selects.
type compartmentParam struct {
	code  string
	paths [][]string
}

// PatientCompartment returns the id of the patient whose compartment r
// belongs to, or "" when r is in no patient compartment.
//
// A Patient is in its own compartment. Any other resource is in the
// compartment of the patient named by the first parameter of the R4
// CompartmentDefinition "patient" for its type (in the definition's order)
// that holds a relative reference "Patient/<id>" (a version suffix
// "/_history/<v>" is allowed). The parameters map to elements through their
// R4 search parameter expressions, listed in compartment_table.go; for
// example Observation: subject -> Observation.subject, then performer ->
// Observation.performer; Encounter: patient -> Encounter.subject;
// Appointment: actor -> Appointment.participant.actor.
//
// R4 puts Binary in no compartment; Ward puts a Binary whose
// securityContext is "Patient/<id>" in that patient's (the records
// service resolves a securityContext naming another resource to that
// resource's compartment).
//
// Absolute and urn:uuid references are not considered: transaction
// processing must rewrite urn:uuid references to "Patient/<id>" first.
func PatientCompartment(r *Resource) string {
	if r.Type == "Patient" {
		return r.ID
	}
	if r.Type == "Binary" {
		if ids := patientIDsAt(r.Object, []string{"securityContext"}, nil); len(ids) > 0 {
			return ids[0]
		}
		return ""
	}
	for _, p := range patientCompartmentParams(r.Type) {
		for _, path := range p.paths {
			if ids := patientIDsAt(r.Object, path, nil); len(ids) > 0 {
				return ids[0]
			}
		}
	}
	return ""
}

// UnplacedPatientReference returns where r, which belongs to no patient
// compartment (PatientCompartment is ""), nevertheless names someone who
// may be a patient: a reference in one of its type's patient compartment
// elements that gives an identifier but no literal reference, and whose
// type is absent or Patient ("Observation.subject"); "" when there is none.
// Ward places a patient's data by literal references only, so such a
// resource would be sealed and served as shared data, readable by every
// patient's token: the records service refuses it.
func UnplacedPatientReference(r *Resource) string {
	if r.Type == "Patient" || r.Type == "Binary" {
		return ""
	}
	for _, p := range patientCompartmentParams(r.Type) {
		for _, path := range p.paths {
			if identifiedOnly(r.Object, path) {
				return r.Type + "." + strings.Join(path, ".")
			}
		}
	}
	return ""
}

// identifiedOnly reports whether a Reference at path below v gives an
// identifier without a literal reference, and no type but Patient.
func identifiedOnly(v any, path []string) bool {
	switch v := v.(type) {
	case []any:
		return slices.ContainsFunc(v, func(e any) bool { return identifiedOnly(e, path) })
	case map[string]any:
		if len(path) > 0 {
			return identifiedOnly(v[path[0]], path[1:])
		}
		literal, _ := v["reference"].(string)
		typ, _ := v["type"].(string)
		_, hasIdentifier := v["identifier"]
		return literal == "" && hasIdentifier && (typ == "" || typ == "Patient")
	}
	return false
}

// PatientReferences returns the ids of all patients r refers to through its
// patient compartment parameters, in parameter order, without duplicates.
// For a Patient this is its own id followed by the patients of Patient.link.
func PatientReferences(r *Resource) []string {
	var ids []string
	if r.Type == "Patient" && r.ID != "" {
		ids = append(ids, r.ID)
	}
	if r.Type == "Binary" {
		return patientIDsAt(r.Object, []string{"securityContext"}, nil)
	}
	for _, p := range patientCompartmentParams(r.Type) {
		for _, path := range p.paths {
			ids = patientIDsAt(r.Object, path, ids)
		}
	}
	return dedupe(ids)
}

// patientIDsAt appends the patient ids of the references found at path
// below v (arrays are traversed at every step).
func patientIDsAt(v any, path []string, ids []string) []string {
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			ids = patientIDsAt(e, path, ids)
		}
		return ids
	case map[string]any:
		if len(path) == 0 {
			s, _ := v["reference"].(string)
			if typ, id, _, ok := parseRelative(s); ok && typ == "Patient" {
				ids = append(ids, id)
			}
			return ids
		}
		if next, ok := v[path[0]]; ok { // #nosec G602 -- path is not empty: the case above returned for an empty one
			return patientIDsAt(next, path[1:], ids) // #nosec G602 -- path is not empty: the case above returned for an empty one
		}
	}
	return ids
}

func dedupe(ids []string) []string {
	if len(ids) < 2 {
		return ids
	}
	seen := make(map[string]bool, len(ids))
	out := ids[:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
