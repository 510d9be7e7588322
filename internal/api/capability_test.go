package api_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/fhir/fhirtest"
	"github.com/wardhealth/ward/internal/ratelimit"
)

// handSamples are valid instances of the resource types the shared HL7
// examples have none of.
var handSamples = map[string]string{
	"ChargeItem":                     `{"status":"billable","code":{"text":"x"},"subject":{"reference":"Patient/cap"}}`,
	"DeviceUseStatement":             `{"status":"active","subject":{"reference":"Patient/cap"},"device":{"reference":"Device/cap"}}`,
	"EventDefinition":                `{"status":"draft","trigger":[{"type":"named-event","name":"x"}]}`,
	"MedicinalProductPharmaceutical": `{"administrableDoseForm":{"text":"tablet"},"routeOfAdministration":[{"code":{"text":"oral"}}]}`,
	"MessageHeader":                  `{"eventCoding":{"system":"http://example.org/events","code":"x"},"source":{"endpoint":"http://example.org/x"}}`,
	"PaymentNotice":                  `{"status":"active","created":"2020-01-01","payment":{"reference":"PaymentReconciliation/x"},"recipient":{"reference":"Organization/x"},"amount":{"value":1,"currency":"USD"}}`,
	"ResearchDefinition":             `{"status":"draft","population":{"reference":"EvidenceVariable/x"}}`,
	"ResearchSubject":                `{"status":"candidate","study":{"reference":"ResearchStudy/x"},"individual":{"reference":"Patient/cap"}}`,
	"CapabilityStatement":            `{"status":"draft","date":"2020-01-01","kind":"capability","fhirVersion":"4.0.1","format":["json"],"software":{"name":"x"},"rest":[{"mode":"server"}]}`,
	"TerminologyCapabilities":        `{"status":"draft","date":"2020-01-01","kind":"capability","software":{"name":"x"}}`,
	"InsurancePlan":                  `{"name":"x"}`,
	"ExampleScenario":                `{"status":"draft"}`,
	"ConceptMap":                     `{"status":"draft"}`,
	"StructureMap":                   `{"url":"http://example.org/sm","name":"X","status":"draft","group":[{"name":"g","typeMode":"none","input":[{"name":"src","mode":"source"}],"rule":[{"name":"r","source":[{"context":"src"}]}]}]}`,
}

// samples returns one valid instance of every resource type it can find:
// the first HL7 example of the type, without id and meta, or a
// hand-written one.
func samples(t *testing.T) map[string]map[string]any {
	t.Helper()
	out := make(map[string]map[string]any)
	for _, f := range fhirtest.Files(t, "examples", "*.json") {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("%s: %v", filepath.Base(f), err)
		}
		typ, _ := m["resourceType"].(string)
		if _, ok := out[typ]; ok || typ == "" {
			continue
		}
		delete(m, "id")
		delete(m, "meta")
		out[typ] = m
	}
	for typ, body := range handSamples {
		var m map[string]any
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		m["resourceType"] = typ
		out[typ] = m
	}
	return out
}

// capability is one resource entry of the CapabilityStatement.
type capability struct {
	Type              string   `json:"type"`
	Interaction       []code   `json:"interaction"`
	ConditionalCreate bool     `json:"conditionalCreate"`
	ConditionalUpdate bool     `json:"conditionalUpdate"`
	ConditionalDelete string   `json:"conditionalDelete"`
	SearchInclude     []string `json:"searchInclude"`
	SearchRevInclude  []string `json:"searchRevInclude"`
	SearchParam       []struct {
		Name          string `json:"name"`
		Type          string `json:"type"`
		Documentation string `json:"documentation"`
	} `json:"searchParam"`
	Operation []struct {
		Name string `json:"name"`
	} `json:"operation"`
}

type code struct {
	Code string `json:"code"`
}

func (c capability) declares(interaction string) bool {
	return slices.Contains(c.Interaction, code{interaction})
}

// patchFormats reads the CapabilityStatement's patchFormat list.
func patchFormats(t *testing.T, s *stack) []string {
	var cs struct {
		PatchFormat []string `json:"patchFormat"`
	}
	if err := json.Unmarshal(must(t, s.do("GET", "/fhir/metadata", nil, "Authorization", ""), http.StatusOK).body, &cs); err != nil {
		t.Fatal(err)
	}
	return cs.PatchFormat
}

// patchLanguage is a patch in format that sets language to lang on a
// resource of type typ, whether or not it has one; nil for a format the
// test does not know.
func patchLanguage(format, typ, lang string) any {
	switch format {
	case "application/json-patch+json":
		return `[{"op":"add","path":"/language","value":"` + lang + `"}]`
	case "application/fhir+json":
		return fhirPathPatch(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"`+typ+`.language"}`,
			`{"name":"type","valueCode":"add"},{"name":"path","valueString":"`+typ+`"},{"name":"name","valueString":"language"},{"name":"value","valueCode":"`+lang+`"}`)
	}
	return nil
}

// statement reads the server's CapabilityStatement.
func statement(t *testing.T, s *stack) (rest struct {
	Resource    []capability `json:"resource"`
	Interaction []code       `json:"interaction"`
	Operation   []struct {
		Name string `json:"name"`
	} `json:"operation"`
}) {
	t.Helper()
	var cs struct {
		Rest []json.RawMessage `json:"rest"`
	}
	if err := json.Unmarshal(must(t, s.do("GET", "/fhir/metadata", nil, "Authorization", ""), http.StatusOK).body, &cs); err != nil || len(cs.Rest) != 1 {
		t.Fatalf("metadata: %v, %d rest entries", err, len(cs.Rest))
	}
	if err := json.Unmarshal(cs.Rest[0], &rest); err != nil {
		t.Fatal(err)
	}
	return rest
}

// searchValue is a value that parameter name of resource type rt, of
// type typ, takes (it need not match anything).
func searchValue(t *testing.T, rt, name, typ string) string {
	switch typ {
	case "composite":
		reg, err := sharedRegistry()
		if err != nil {
			t.Fatal(err)
		}
		p, ok := reg.Param(rt, name)
		if !ok || len(p.Components) == 0 {
			t.Fatalf("%s.%s: declared composite without components", rt, name)
		}
		var parts []string
		for _, c := range p.Components {
			parts = append(parts, searchValue(t, rt, c.Param.Code, string(c.Param.Type)))
		}
		return strings.Join(parts, "$")
	case "number", "quantity":
		return "1"
	case "date":
		return "2020-01-01"
	case "reference":
		reg, err := sharedRegistry()
		if err != nil {
			t.Fatal(err)
		}
		if p, ok := reg.Param(rt, name); ok && len(p.Targets) > 0 {
			return p.Targets[0] + "/cap"
		}
		return "Basic/cap"
	case "uri":
		return "http://example.org/x"
	}
	return "x"
}

// TestCapabilityStatementIsHonest derives its expectations from the
// CapabilityStatement: every interaction, conditional interaction,
// search parameter, include and operation it declares for a type works
// for a caller allowed to use it, and the interactions it does not
// declare are refused with nothing written. It fails when Ward declares
// what it does not do, and when it does what it does not declare.
func TestCapabilityStatementIsHonest(t *testing.T) {
	// Thousands of requests by one client: no rate limit in the way.
	s := newStackWith(t, stackOptions{limits: ratelimit.Config{Principal: ratelimit.Limit{Rate: 1e6, Burst: 1e6}}})
	rest := statement(t, s)
	samples := samples(t)
	auditor := s.auditor()
	declared := make(map[string]bool)
	for _, c := range rest.Resource {
		declared[c.Type] = true
	}
	// Every resource type Ward knows is declared once.
	for typ := range samples {
		if !declared[typ] {
			t.Errorf("%s has a sample but is not in the CapabilityStatement", typ)
		}
	}

	// The system interactions.
	var sys []string
	for _, c := range rest.Interaction {
		sys = append(sys, c.Code)
	}
	sort.Strings(sys)
	if want := []string{"batch", "history-system", "transaction"}; !slices.Equal(sys, want) {
		t.Errorf("system interactions %v, want %v", sys, want)
	}
	must(t, s.do("POST", "/fhir", map[string]any{"resourceType": "Bundle", "type": "batch", "entry": []any{
		map[string]any{"request": map[string]any{"method": "GET", "url": "Patient?_count=1"}},
	}}), http.StatusOK)
	must(t, s.do("POST", "/fhir", map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
		map[string]any{"fullUrl": "urn:uuid:2b2a1f4e-7d8c-4f7e-9a7b-0f5e4c3d2a10", "resource": map[string]any{"resourceType": "Basic", "code": map[string]any{"text": "x"}},
			"request": map[string]any{"method": "POST", "url": "Basic"}},
	}}), http.StatusOK)
	must(t, s.do("GET", "/fhir/_history", nil), http.StatusOK)

	// Every declared patch format is a PATCH body, and a transaction or
	// batch entry (a JSON Patch in a Binary, a FHIRPath Patch in a
	// Parameters); an undeclared one is refused, nothing written.
	formats := patchFormats(t, s)
	if len(formats) == 0 {
		t.Error("no patchFormat declared, while patch is")
	}
	basic := idFrom(t, must(t, s.do("POST", "/fhir/Basic", map[string]any{"resourceType": "Basic", "code": map[string]any{"text": "x"}}), http.StatusCreated))
	for i, f := range formats {
		var res map[string]any
		switch body := patchLanguage(f, "Basic", "nl").(type) {
		case string:
			if f == "application/json-patch+json" {
				res = binaryJSONPatch(body)
			} else if err := json.Unmarshal([]byte(body), &res); err != nil {
				t.Fatal(err)
			}
		default:
			t.Errorf("patchFormat %s is declared but not known to this test", f)
			continue
		}
		typ := []string{"transaction", "batch"}[i%2]
		r := must(t, s.do("POST", "/fhir", tx(typ, patchEntry("Basic/"+basic, res, ""))), http.StatusOK)
		if got := entryStatuses(t, r); len(got) != 1 || got[0] != "200 OK" {
			t.Errorf("a %s PATCH entry in %s: %v", f, typ, got)
		}
	}
	for _, f := range []string{"application/merge-patch+json", "application/xml", "application/fhir+xml"} {
		must(t, s.do("PATCH", "/fhir/Basic/"+basic, `{}`, "Content-Type", f), http.StatusUnsupportedMediaType)
	}
	if h := must(t, s.do("GET", "/fhir/Basic/"+basic+"/_history", nil), http.StatusOK).json(t); h["total"] != float64(1+len(formats)) {
		t.Errorf("patch entries: %v versions, want %d", h["total"], 1+len(formats))
	}

	// search-system is not declared, and not served.
	if r := s.do("GET", "/fhir?_id=x", nil); r.status < 400 {
		t.Errorf("GET /fhir (search-system, undeclared) answered %d", r.status)
	}

	for _, c := range rest.Resource {
		t.Run(c.Type, func(t *testing.T) {
			t.Parallel()
			if c.Type == "AuditEvent" {
				checkAuditEventCapability(t, s, c, auditor)
				return
			}
			if c.Type == "Subscription" {
				checkSubscriptionCapability(t, s, c)
				return
			}
			sample, ok := samples[c.Type]
			if !ok {
				// Types whose elements are all optional.
				sample = map[string]any{"resourceType": c.Type}
			}
			checkCapability(t, s, c, sample, formats)
		})
	}
	t.Run("operations", func(t *testing.T) {
		t.Parallel()
		checkOperations(t, s, rest.Resource, auditor)
	})
}

// checkCapability exercises what c declares with the stack's
// system/*.cruds token, on instances of sample.
func checkCapability(t *testing.T, s *stack, c capability, sample map[string]any, formats []string) {
	base := "/fhir/" + c.Type
	standard := []string{"create", "read", "vread", "update", "patch", "delete", "history-instance", "history-type", "search-type"}
	for _, i := range standard {
		if !c.declares(i) {
			t.Errorf("%s does not declare %s", c.Type, i)
		}
	}
	if !c.ConditionalCreate || !c.ConditionalUpdate || c.ConditionalDelete != "single" {
		t.Errorf("%s conditional interactions: create %v update %v delete %q", c.Type, c.ConditionalCreate, c.ConditionalUpdate, c.ConditionalDelete)
	}
	created := must(t, s.do("POST", base, sample), http.StatusCreated)
	id := idFrom(t, created)
	must(t, s.do("GET", base+"/"+id, nil), http.StatusOK)
	must(t, s.do("GET", base+"/"+id+"/_history/1", nil), http.StatusOK)
	upd := clone(sample)
	upd["id"] = id
	if r := must(t, s.do("PUT", base+"/"+id, upd), http.StatusOK); r.header.Get("ETag") != `W/"2"` {
		t.Errorf("update: ETag %q", r.header.Get("ETag"))
	}
	// Each declared patch format, pinned by If-Match.
	for i, f := range formats {
		lang := []string{"en", "de", "fr"}[i%3]
		body := patchLanguage(f, c.Type, lang)
		if body == nil {
			continue // reported once, with the system interactions
		}
		patched := must(t, s.do("PATCH", base+"/"+id, body, "Content-Type", f, "If-Match", `W/"`+strconv.Itoa(2+i)+`"`), http.StatusOK)
		if patched.json(t)["language"] != lang || patched.header.Get("ETag") != `W/"`+strconv.Itoa(3+i)+`"` {
			t.Errorf("patch (%s): ETag %q, body %.300s", f, patched.header.Get("ETag"), patched.body)
		}
	}
	if h := must(t, s.do("GET", base+"/"+id+"/_history", nil), http.StatusOK).json(t); h["total"] != float64(2+len(formats)) {
		t.Errorf("history-instance: total %v, want %d", h["total"], 2+len(formats))
	}
	must(t, s.do("GET", base+"/_history?_count=1", nil), http.StatusOK)
	if b := must(t, s.do("GET", base+"?_id="+id, nil), http.StatusOK).json(t); b["total"] != float64(1) {
		t.Errorf("search-type by _id: total %v, want 1", b["total"])
	}
	// Conditional create that matches returns the match; conditional
	// update of the match writes version 4.
	if r := must(t, s.do("POST", base, sample, "If-None-Exist", "_id="+id), http.StatusOK); r.json(t)["id"] != id {
		t.Errorf("conditional create returned another resource")
	}
	must(t, s.do("PUT", base+"?_id="+id, upd), http.StatusOK)
	for _, p := range c.SearchParam {
		q := url.Values{p.Name: {searchValue(t, c.Type, p.Name, p.Type)}}
		if r := s.do("GET", base+"?"+q.Encode(), nil); r.status != http.StatusOK {
			t.Errorf("declared search parameter %s (%s): status %d: %.300s", p.Name, p.Type, r.status, r.body)
		}
		// A reference parameter declares :identifier, and takes it.
		if declared := strings.HasPrefix(p.Documentation, ":identifier="); declared != (p.Type == "reference") {
			t.Errorf("search parameter %s (%s) declares :identifier: %v", p.Name, p.Type, declared)
		} else if declared {
			q := url.Values{p.Name + ":identifier": {"urn:x|1"}}
			if r := s.do("GET", base+"?"+q.Encode(), nil); r.status != http.StatusOK {
				t.Errorf("declared %s:identifier: status %d: %.300s", p.Name, r.status, r.body)
			}
		}
	}
	for _, inc := range c.SearchInclude {
		if r := s.do("GET", base+"?_id="+id+"&_include="+url.QueryEscape(inc), nil); r.status != http.StatusOK {
			t.Errorf("declared _include %s: status %d: %.300s", inc, r.status, r.body)
		}
	}
	for _, inc := range c.SearchRevInclude {
		if r := s.do("GET", base+"?_id="+id+"&_revinclude="+url.QueryEscape(inc), nil); r.status != http.StatusOK {
			t.Errorf("declared _revinclude %s: status %d: %.300s", inc, r.status, r.body)
		}
	}
	must(t, s.do("DELETE", base+"/"+id, nil), http.StatusNoContent)
	must(t, s.do("GET", base+"/"+id, nil), http.StatusGone)
	// Conditional delete of the one match.
	other := idFrom(t, must(t, s.do("POST", base, sample), http.StatusCreated))
	must(t, s.do("DELETE", base+"?_id="+other, nil), http.StatusNoContent)
	must(t, s.do("GET", base+"/"+other, nil), http.StatusGone)
}

// checkAuditEventCapability: the ledger's view is read and searched by
// an auditor, and never written, whatever the caller's scopes.
func checkAuditEventCapability(t *testing.T, s *stack, c capability, auditor []string) {
	var got []string
	for _, i := range c.Interaction {
		got = append(got, i.Code)
	}
	sort.Strings(got)
	if want := []string{"read", "search-type"}; !slices.Equal(got, want) {
		t.Fatalf("AuditEvent declares %v, want %v", got, want)
	}
	if c.ConditionalCreate || c.ConditionalUpdate || c.ConditionalDelete != "" || len(c.SearchInclude)+len(c.SearchRevInclude) > 0 {
		t.Errorf("AuditEvent declares conditional interactions or includes: %+v", c)
	}
	s.flushLedger()
	b := must(t, s.do("GET", "/fhir/AuditEvent?_count=1", nil, auditor...), http.StatusOK).json(t)
	entries, _ := b["entry"].([]any)
	if len(entries) != 1 {
		t.Fatalf("AuditEvent search returned %d entries", len(entries))
	}
	id := entries[0].(map[string]any)["resource"].(map[string]any)["id"].(string)
	must(t, s.do("GET", "/fhir/AuditEvent/"+id, nil, auditor...), http.StatusOK)
	for _, p := range c.SearchParam {
		q := url.Values{p.Name: {searchValue(t, "AuditEvent", p.Name, p.Type)}}
		if p.Type == "date" {
			q.Set(p.Name, "ge2020-01-01")
		}
		if r := s.do("GET", "/fhir/AuditEvent?"+q.Encode(), nil, auditor...); r.status != http.StatusOK {
			t.Errorf("declared AuditEvent search parameter %s: status %d: %.300s", p.Name, r.status, r.body)
		}
	}
	// What is not declared is refused, to an auditor and to a caller
	// with every scope alike.
	ae := map[string]any{"resourceType": "AuditEvent", "id": id,
		"type":     map[string]any{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110110"},
		"recorded": "2020-01-01T00:00:00Z",
		"agent":    []any{map[string]any{"requestor": true, "who": map[string]any{"display": "x"}}},
		"source":   map[string]any{"observer": map[string]any{"display": "x"}},
	}
	all := s.newToken("system/*.cruds", "system/AuditEvent.cruds")
	for _, h := range [][]string{auditor, {"Authorization", bearer(all)}} {
		for _, tc := range []struct {
			method, path string
			body         any
		}{
			{"POST", "/fhir/AuditEvent", ae},
			{"PUT", "/fhir/AuditEvent/" + id, ae},
			{"DELETE", "/fhir/AuditEvent/" + id, nil},
			{"PATCH", "/fhir/AuditEvent/" + id, `[]`},
			{"GET", "/fhir/AuditEvent/" + id + "/_history", nil},
			{"GET", "/fhir/AuditEvent/_history", nil},
		} {
			if r := s.do(tc.method, tc.path, tc.body, h...); r.status < 400 {
				t.Errorf("%s %s (undeclared) answered %d", tc.method, tc.path, r.status)
			}
		}
	}
}

// checkOperations calls each declared operation as a caller allowed to.
// $erase and $erase-approve need two people with fresh second factors;
// TestErasure exercises them, so here they only have to be routed.
func checkOperations(t *testing.T, s *stack, caps []capability, auditor []string) {
	pat := idFrom(t, must(t, s.do("POST", "/fhir/Patient", patient("Okoro", "Ify")), http.StatusCreated))
	grp := idFrom(t, must(t, s.do("POST", "/fhir/Group", map[string]any{"resourceType": "Group", "type": "person", "actual": true}), http.StatusCreated))
	for _, c := range caps {
		for _, op := range c.Operation {
			var r response
			switch c.Type + "/$" + op.Name {
			case "Patient/$everything":
				r = must(t, s.do("GET", "/fhir/Patient/"+pat+"/$everything", nil), http.StatusOK)
			case "Patient/$access-log":
				r = must(t, s.do("GET", "/fhir/Patient/"+pat+"/$access-log", nil, auditor...), http.StatusOK)
			case "Patient/$export":
				r = must(t, s.do("GET", "/fhir/Patient/$export", nil, "Prefer", "respond-async", "Accept", "application/fhir+json"), http.StatusAccepted)
			case "Group/$export":
				r = must(t, s.do("GET", "/fhir/Group/"+grp+"/$export", nil, "Prefer", "respond-async", "Accept", "application/fhir+json"), http.StatusAccepted)
			case "Patient/$erase", "Patient/$erase-approve":
				if r = s.do("POST", "/fhir/Patient/"+pat+"/$"+op.Name, map[string]any{}); r.status == http.StatusNotFound || r.status == http.StatusMethodNotAllowed {
					t.Errorf("$%s is not routed: %d", op.Name, r.status)
				}
			default:
				t.Errorf("%s declares $%s, which this test does not know how to call", c.Type, op.Name)
			}
			_ = r
		}
	}
}

// checkSubscriptionCapability: a Subscription is created only by a plain
// POST (its secret is handed out once), so the statement declares no
// conditional create or update and no create by PUT, and those are
// refused. What is declared is exercised against an allow-listed
// receiver by TestSubscriptionRules and TestSubscriptionDelivery.
func checkSubscriptionCapability(t *testing.T, s *stack, c capability) {
	if c.ConditionalCreate || c.ConditionalUpdate {
		t.Errorf("Subscription declares conditional create %v, update %v", c.ConditionalCreate, c.ConditionalUpdate)
	}
	sub := map[string]any{"resourceType": "Subscription", "status": "requested", "reason": "x", "criteria": "Observation?code=1234-5",
		"channel": map[string]any{"type": "rest-hook", "endpoint": "https://receiver.example/hook"}}
	if r := s.do("PUT", "/fhir/Subscription/made-by-put", sub); r.status < 400 {
		t.Errorf("Subscription created by PUT: status %d", r.status)
	}
	if r := s.do("POST", "/fhir/Subscription", sub, "If-None-Exist", "criteria=x"); r.status < 400 {
		t.Errorf("Subscription created conditionally: status %d", r.status)
	}
}
