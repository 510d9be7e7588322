package search

import (
	"slices"
	"strings"

	"github.com/wardhealth/ward/internal/fhir"
)

// personTypes are the resource types that describe a person: everything
// that names or reaches them (names, contact points, addresses, birth and
// death dates) is blind-indexed.
var personTypes = []string{"Patient", "Practitioner", "PractitionerRole", "RelatedPerson", "Person"}

// protectedType reports whether resources of typ are held to the
// deny-by-default rule: they can belong to a patient compartment, or
// they describe a person.
func protectedType(typ string) bool {
	return slices.Contains(personTypes, typ) || slices.Contains(fhir.PatientCompartmentTypes(), typ)
}

// blind decides whether the values of p, on resources of resourceType,
// are stored only as blind indexes (keyed hashes) rather than in the
// clear. The rule is deny by default (docs/THREAT-MODEL.md, "Search
// index"):
//
//   - identifiers are blind on every resource type, those inside
//     references (Reference.identifier, for :identifier) too;
//   - on a protected type (one that can belong to a patient compartment,
//     or that describes a person), every value is blind except those on an
//     explicit allowlist of non-identifying kinds: codes of token
//     parameters whose every element is a code, Coding, CodeableConcept or
//     boolean (plainTokens, generated and reviewed; never meta.tag, which
//     carries free-form codes), quantities and numbers, references (opaque
//     "Type/id"), the profile a resource claims (a StructureDefinition's
//     URL), and dates of clinical events (any date but a person's);
//   - on other types (Organization, Location, Medication, terminology and
//     conformance resources) values are plain, so that shared reference
//     data keeps prefix and :contains search.
func blind(resourceType string, p *Param) bool {
	switch p.Code {
	case "_id", "_lastUpdated":
		return false // answered from the resources table, never indexed
	case "identifier":
		return true
	}
	if p.Type == TypeToken && strings.HasSuffix(p.Code, identifierSuffix) {
		return true // a reference's identifier (identifierParam)
	}
	if !protectedType(resourceType) {
		return false
	}
	switch p.Type {
	case TypeToken:
		return !plainTokens[resourceType][p.Code]
	case TypeNumber, TypeQuantity, TypeReference:
		return false
	case TypeURI:
		return p.Code != "_profile"
	case TypeDate:
		return slices.Contains(personTypes, resourceType)
	}
	return true // strings, and any type not named above
}
