package api

import (
	"encoding/json"
	"time"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/search"
	"github.com/wardhealth/ward/internal/signin"
)

// notSupported is what the CapabilityStatement says Ward does not do, so
// that a client can tell before it tries.
const notSupported = "Supported besides the listed parameters: chained parameters (up to 3 hops) and _has, each hop searched " +
	"as the caller and matching at most 1,000 resources (more is a 400); _include:iterate and _revinclude:iterate (3 rounds); " +
	"_summary (true, text, data, count) and _elements, tagged SUBSETTED; :missing on every parameter; :not on tokens. " +
	"Not supported: XML; PATCH; composite and special search parameters; the :text, :in, :below, :above, :of-type and :identifier modifiers; " +
	"token searches by system only (system|) on blind-indexed parameters; chained parameters in conditional criteria. " +
	"Parameters marked blind-indexed (every string, URI, identifier and contact point, and a person's dates, " +
	"on resource types that can belong to a patient or describe a person) are stored as keyed hashes: " +
	"whole words, whole values and :exact match; prefixes, :contains and date ranges on them do not. " +
	"Search parameters whose expressions Ward cannot evaluate are left out of each resource's searchParam list."

// capabilityStatement describes exactly what this server supports.
func (s *Server) capabilityStatement() []byte {
	params := s.records.Params()
	var resources []any
	for _, typ := range fhir.ResourceTypes() {
		var sps []any
		for _, p := range params.Params(typ) {
			if !p.Supported || p.Type == search.TypeComposite || p.Type == search.TypeSpecial {
				continue
			}
			sp := map[string]any{"name": p.Code, "type": string(p.Type)}
			if p.Blind {
				sp["documentation"] = "blind-indexed: exact matches only"
			}
			sps = append(sps, sp)
		}
		sps = append(sps,
			map[string]any{"name": "_id", "type": "token"},
			map[string]any{"name": "_lastUpdated", "type": "date"})
		r := map[string]any{
			"type": typ,
			"interaction": []any{
				code("read"), code("vread"), code("update"), code("delete"),
				code("history-instance"), code("history-type"), code("create"), code("search-type"),
			},
			"versioning":        "versioned-update",
			"readHistory":       true,
			"updateCreate":      true,
			"conditionalCreate": true,
			"conditionalRead":   "not-supported",
			"conditionalUpdate": true,
			"conditionalDelete": "single",
			"searchInclude":     []string{"*"},
			"searchRevInclude":  []string{"*"},
			"searchParam":       sps,
		}
		if typ == "Patient" {
			r["operation"] = []any{map[string]any{
				"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
			}, map[string]any{
				// Ward's own: every ledger entry naming the patient, as AuditEvents.
				"name": "access-log", "definition": "urn:ward:operation:access-log",
			}, map[string]any{
				"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export",
			}, map[string]any{
				// Ward's own: erasure by crypto-shredding, asked for and approved by two people.
				"name": "erase", "definition": "urn:ward:operation:erase",
			}, map[string]any{
				"name": "erase-approve", "definition": "urn:ward:operation:erase-approve",
			}}
		}
		if typ == "Group" {
			r["operation"] = []any{map[string]any{
				"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export",
			}}
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
