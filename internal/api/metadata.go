package api

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/search"
	"github.com/wardhealth/ward/internal/signin"
)

// notSupported is the CapabilityStatement's documentation: how Ward
// takes what R4 leaves open, and what it does not do, so that a client
// can tell before it tries.
const notSupported = "Supported besides the listed parameters: chained parameters (up to 3 hops) and _has, each hop searched " +
	"as the caller and matching at most 1,000 resources (more is a 400); _include:iterate and _revinclude:iterate (3 rounds); " +
	"_summary (true, text, data, count) and _elements, tagged SUBSETTED; :missing on every parameter but composites; :not on tokens; " +
	":identifier on reference parameters, matching Reference.identifier by system|value or value (blind-indexed; it may end a chain, not continue one). " +
	"Composite parameters ('$' between components, '\\$' a literal one; prefixes on quantity and date components) match when one element " +
	"holds every component of a value; they and identifier:of-type=typesystem|typecode|value are answered from at most 1,000 candidates " +
	"the caller sees that the components' indexes select (more is a 400). " +
	"PATCH takes a JSON Patch (application/json-patch+json) or a FHIRPath Patch (a Parameters resource sent as application/fhir+json), " +
	"each at most 100 operations, also conditionally, and as transaction and batch entries (a JSON Patch in a Binary, a FHIRPath Patch in a Parameters). " +
	"Patient $everything adds the Practitioners, Organizations, Locations and Medications the record refers to, each only if the caller may read it. " +
	"Binary is also read and written in its own content type: a read whose Accept takes its contentType and not FHIR JSON gets the raw bytes; " +
	"a POST or PUT of a body that is not FHIR JSON stores it as a Binary (at most 768 KiB), X-Security-Context naming its patient or the resource it belongs to. " +
	"Not supported: XML; special search parameters; " +
	"the :text, :in, :below and :above modifiers, and :of-type on other parameters than identifier; " +
	"composite parameters and :of-type in conditional criteria and Subscription criteria; " +
	"token searches by system only (system|) on blind-indexed parameters and with :identifier; chained parameters in conditional criteria. " +
	"Parameters marked blind-indexed (every string, URI, identifier and contact point, and a person's dates, " +
	"on resource types that can belong to a patient or describe a person) are stored as keyed hashes: " +
	"whole words, whole values and :exact match; prefixes, :contains and date ranges on them do not. " +
	"Search parameters whose expressions Ward cannot evaluate are left out of each resource's searchParam list."

// referenceDoc documents a reference parameter's :identifier modifier.
const referenceDoc = ":identifier=[system|]value matches the reference's identifier (blind-indexed: exact matches only)"

// capabilityStatement describes exactly what this server supports: each
// declared interaction, search parameter and include works for a caller
// whose token covers it, and nothing else is declared
// (TestCapabilityStatementIsHonest walks it).
func (s *Server) capabilityStatement() []byte {
	params := s.records.Params()
	var resources []any
	for _, typ := range fhir.ResourceTypes() {
		if typ == "AuditEvent" {
			resources = append(resources, auditEventCapability())
			continue
		}
		var sps []any
		for _, p := range params.Params(typ) {
			if !searchable(p) {
				continue
			}
			sp := map[string]any{"name": p.Code, "type": string(p.Type)}
			switch {
			case p.Type == search.TypeComposite:
				sp["documentation"] = compositeDoc(p)
			case p.Blind:
				sp["documentation"] = "blind-indexed: exact matches only"
			case p.Type == search.TypeReference:
				sp["documentation"] = referenceDoc
			}
			sps = append(sps, sp)
		}
		sps = append(sps,
			map[string]any{"name": "_id", "type": "token"},
			map[string]any{"name": "_lastUpdated", "type": "date"})
		r := map[string]any{
			"type":              typ,
			"interaction":       codes(resourceInteractions...),
			"versioning":        "versioned-update",
			"readHistory":       true,
			"updateCreate":      true,
			"conditionalCreate": true,
			"conditionalRead":   "not-supported",
			"conditionalUpdate": true,
			"conditionalDelete": "single",
			"searchParam":       sps,
		}
		if typ == "Subscription" {
			// A Subscription is created only by a plain POST, which hands
			// its secret out once (records/subscription.go): no
			// conditional create or update, no create by PUT.
			r["updateCreate"], r["conditionalCreate"], r["conditionalUpdate"] = false, false, false
			r["documentation"] = "rest-hook only, created by a service's POST (the signing secret is returned once in X-Ward-Subscription-Secret); seen and changed by its owner only"
		}
		if inc := includes(params, typ); len(inc) > 0 {
			r["searchInclude"] = inc
		}
		if rev := revIncludes(params, typ); len(rev) > 0 {
			r["searchRevInclude"] = rev
		}
		if ops := typeOperations[typ]; len(ops) > 0 {
			var list []any
			for _, op := range ops {
				list = append(list, map[string]any{"name": op[0], "definition": op[1]})
			}
			r["operation"] = list
		}
		resources = append(resources, r)
	}
	doc := map[string]any{
		"resourceType": "CapabilityStatement",
		"status":       "active",
		"date":         time.Now().UTC().Format("2006-01-02"),
		"kind":         "instance",
		"software":     map[string]any{"name": "Ward", "version": s.cfg.Version},
		"implementation": map[string]any{
			"description": "Ward zero-trust health data server", "url": s.fhirBase(),
		},
		"fhirVersion": "4.0.1",
		"format":      []string{"application/fhir+json"},
		"patchFormat": patchFormats,
		"rest": []any{map[string]any{
			"mode":          "server",
			"documentation": notSupported,
			"security": map[string]any{
				"cors": len(s.cfg.CORSOrigins) > 0,
				"service": []any{map[string]any{"coding": []any{map[string]any{
					"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR",
				}}}},
				"extension": []any{map[string]any{
					"url":       "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
					"extension": s.oauthURIs(),
				}},
			},
			"resource":    resources,
			"interaction": []any{code("transaction"), code("batch"), code("history-system")},
			"operation": []any{map[string]any{
				"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
			}},
		}},
	}
	body, _ := json.Marshal(doc)
	return body
}

// oauthURIs lists the OAuth2 endpoints for the CapabilityStatement's
// SMART oauth-uris extension.
func (s *Server) oauthURIs() []any {
	uris := []any{map[string]any{"url": "token", "valueUri": s.cfg.BaseURL + "/oauth2/token"}}
	if s.signin != nil {
		for _, e := range [][2]string{{"authorize", signin.PathAuthorize}, {"revoke", signin.PathRevoke}, {"introspect", signin.PathIntrospec}} {
			uris = append(uris, map[string]any{"url": e[0], "valueUri": s.cfg.BaseURL + e[1]})
		}
	}
	return uris
}

func code(c string) map[string]any { return map[string]any{"code": c} }

func codes(cs ...string) []any {
	out := make([]any, len(cs))
	for i, c := range cs {
		out[i] = code(c)
	}
	return out
}

// patchFormats are the media types a PATCH body may have: a JSON Patch,
// and a FHIRPath Patch (a Parameters resource in FHIR JSON).
var patchFormats = []string{jsonPatchType, "application/fhir+json"}

// resourceInteractions are the interactions of every resource type but
// AuditEvent.
var resourceInteractions = []string{
	"read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create", "search-type",
}

// typeOperations are the operations on a type or its instances, each
// with its definition: R4's or Bulk Data's, or Ward's own (urn:ward:).
var typeOperations = map[string][][2]string{
	"Patient": {
		{"everything", "http://hl7.org/fhir/OperationDefinition/Patient-everything"},
		// Every ledger entry naming the patient, as AuditEvents.
		{"access-log", "urn:ward:operation:access-log"},
		{"export", "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"},
		// Erasure by crypto-shredding, asked for and approved by two people.
		{"erase", "urn:ward:operation:erase"},
		{"erase-approve", "urn:ward:operation:erase-approve"},
	},
	"Group": {{"export", "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"}},
}

// searchable reports whether the CapabilityStatement declares p: a
// parameter Ward extracts and searches, of a type its queries take.
func searchable(p *search.Param) bool {
	return p.Supported && p.Type != search.TypeSpecial
}

// compositeDoc names a composite's components in the order its values
// give them, and the blind rule when one of them is blind-indexed.
func compositeDoc(p *search.Param) string {
	doc := "components, '$'-separated, paired within one element:"
	for i, c := range p.Components {
		if i > 0 {
			doc += " $"
		}
		doc += " " + c.Param.Code + " (" + string(c.Param.Type)
		if c.Param.Blind {
			doc += ", blind-indexed: exact matches only"
		}
		doc += ")"
	}
	return doc
}

// includes are the _include values a search of typ takes: typ:param for
// each of its reference parameters (wildcards are not taken).
func includes(params *search.Registry, typ string) []string {
	var out []string
	for _, p := range params.Params(typ) {
		if searchable(p) && p.Type == search.TypeReference {
			out = append(out, typ+":"+p.Code)
		}
	}
	return out
}

// revIncludes are the _revinclude values a search of typ takes:
// source:param for each reference parameter of any type that may point
// to typ.
func revIncludes(params *search.Registry, typ string) []string {
	var out []string
	for _, src := range fhir.ResourceTypes() {
		for _, p := range params.Params(src) {
			if searchable(p) && p.Type == search.TypeReference && (len(p.Targets) == 0 || slices.Contains(p.Targets, typ)) {
				out = append(out, src+":"+p.Code)
			}
		}
	}
	return out
}

// auditEventCapability is the AuditEvent view of the ledger: read and
// search with the parameters records.AuditEvents takes; the ledger is
// written by Ward alone, so no write is declared.
func auditEventCapability() map[string]any {
	sp := func(name, typ string) map[string]any { return map[string]any{"name": name, "type": typ} }
	return map[string]any{
		"type":        "AuditEvent",
		"interaction": codes("read", "search-type"),
		"versioning":  "no-version",
		"searchParam": []any{
			sp("action", "token"), sp("agent", "reference"), sp("date", "date"),
			sp("entity", "reference"), sp("outcome", "token"), sp("patient", "reference"),
		},
		"documentation": "The ledger as AuditEvents, read-only: Ward writes it, nobody else.",
	}
}
