package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/wardhealth/ward/internal/auth"
	"github.com/wardhealth/ward/internal/policy"
)

var jsonPatch = []string{"Content-Type", "application/json-patch+json"}

func patchHeaders(extra ...string) []string {
	return append(append([]string(nil), jsonPatch...), extra...)
}

// personToken creates a person with role and fhirUser and returns the
// access token of their sign-in through an app asking for scopes.
func (s *stack) personToken(t *testing.T, username, role, fhirUser string, scopes ...string) string {
	t.Helper()
	if _, err := s.users.Create(context.Background(), auth.NewUser{Username: username, Role: role, FHIRUser: fhirUser, Password: testPassword}); err != nil {
		t.Fatal(err)
	}
	scopes = append([]string{"openid", "fhirUser"}, scopes...)
	a := s.newApp(false, scopes...)
	rp := s.relyingParty(a, scopes...)
	return rp.exchange(t, s.signIn(s.newBrowser(), a, rp.authURL("p"), username, testPassword)).AccessToken
}

// historyTotal is how many versions typ/id has.
func historyTotal(t *testing.T, s *stack, ref string) float64 {
	t.Helper()
	total, _ := must(t, s.do("GET", "/fhir/"+ref+"/_history", nil), http.StatusOK).json(t)["total"].(float64)
	return total
}

func TestPatch(t *testing.T) { testPatch(t, newStack(t)) }

func TestPatchPostgres(t *testing.T) {
	testPatch(t, newStackWith(t, stackOptions{openStore: postgresStore}))
}

// testPatch: a JSON Patch is an update of what the caller reads. It is
// validated; server-controlled meta is Ward's (A6); it neither moves a
// resource to another patient's compartment nor reaches one the caller
// cannot see (A1, A4); If-Match and failed tests are 412; and concurrent
// patches lose no update (F3).
func testPatch(t *testing.T, s *stack) {
	pa := idFrom(t, must(t, s.do("POST", "/fhir/Patient", patient("Adeyemi", "Tola")), http.StatusCreated))
	pb := idFrom(t, must(t, s.do("POST", "/fhir/Patient", patient("Bello", "Kemi")), http.StatusCreated))
	obs := "Observation/" + idFrom(t, must(t, s.do("POST", "/fhir/Observation", observation("Patient/"+pa, "29463-7", 70)), http.StatusCreated))
	obsB := "Observation/" + idFrom(t, must(t, s.do("POST", "/fhir/Observation", observation("Patient/"+pb, "29463-7", 80)), http.StatusCreated))

	r := must(t, s.do("PATCH", "/fhir/"+obs, `[{"op":"test","path":"/valueQuantity/value","value":70},{"op":"replace","path":"/valueQuantity/value","value":71.5}]`,
		patchHeaders("If-Match", `W/"1"`)...), http.StatusOK)
	body := r.json(t)
	if r.header.Get("ETag") != `W/"2"` || fmt.Sprint(body["valueQuantity"].(map[string]any)["value"]) != "71.5" {
		t.Fatalf("patched: ETag %q body %s", r.header.Get("ETag"), r.body)
	}
	if got := must(t, s.do("GET", "/fhir/"+obs, nil), http.StatusOK).json(t); fmt.Sprint(got["valueQuantity"].(map[string]any)["value"]) != "71.5" {
		t.Fatalf("read after patch: %v", got["valueQuantity"])
	}
	// Prefer: return=minimal is honoured as for an update.
	if r := must(t, s.do("PATCH", "/fhir/"+obs, `[]`, patchHeaders("Prefer", "return=minimal")...), http.StatusOK); len(r.body) != 0 || r.header.Get("ETag") != `W/"3"` {
		t.Fatalf("return=minimal: ETag %q body %q", r.header.Get("ETag"), r.body)
	}

	// Refused, each with nothing written.
	unchanged := historyTotal(t, s, obs)
	for _, tc := range []struct {
		name   string
		patch  string
		h      []string
		status int
	}{
		{"stale If-Match", `[]`, []string{"If-Match", `W/"1"`}, 412},
		{"failed test", `[{"op":"test","path":"/status","value":"preliminary"}]`, nil, 412},
		{"invalid result", `[{"op":"remove","path":"/code"}]`, nil, 400},
		{"unknown element", `[{"op":"add","path":"/shoeSize","value":42}]`, nil, 400},
		{"changes the type", `[{"op":"replace","path":"/resourceType","value":"Condition"}]`, nil, 400},
		{"changes the id", `[{"op":"replace","path":"/id","value":"other"}]`, nil, 400},
		{"path not there", `[{"op":"remove","path":"/note"}]`, nil, 400},
		{"too many operations", "[" + repeat(`{"op":"test","path":"/status","value":"final"}`, 101) + "]", nil, 400},
		{"neither JSON Patch nor FHIRPath Patch", `[]`, []string{"Content-Type", "application/merge-patch+json"}, 415},
		{"an empty FHIRPath Patch", `{"resourceType":"Parameters"}`, []string{"Content-Type", "application/fhir+json"}, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := patchHeaders(tc.h...)
			got := must(t, s.do("PATCH", "/fhir/"+obs, tc.patch, h...), tc.status)
			if got.json(t)["resourceType"] != "OperationOutcome" {
				t.Errorf("body %s", got.body)
			}
		})
	}
	if n := historyTotal(t, s, obs); n != unchanged {
		t.Fatalf("refused patches wrote: %v versions, want %v", n, unchanged)
	}
	must(t, s.do("PATCH", "/fhir/Observation/unknown-id", `[]`, jsonPatch...), http.StatusNotFound)

	// A6: meta.versionId and meta.lastUpdated are Ward's; labels are set
	// only by a caller who may relabel.
	r = must(t, s.do("PATCH", "/fhir/"+obs, `[{"op":"add","path":"/meta/versionId","value":"99"},{"op":"add","path":"/meta/lastUpdated","value":"2001-01-01T00:00:00Z"}]`, jsonPatch...), http.StatusOK)
	meta := r.json(t)["meta"].(map[string]any)
	if meta["versionId"] != "4" || meta["lastUpdated"] == "2001-01-01T00:00:00Z" {
		t.Fatalf("a patch set server-controlled meta: %v", meta)
	}
	// A practitioner on A's care team: a writer limited to A.
	pr := idFrom(t, must(t, s.do("POST", "/fhir/Practitioner", map[string]any{"resourceType": "Practitioner", "active": true}), http.StatusCreated))
	must(t, s.do("POST", "/fhir/CareTeam", map[string]any{"resourceType": "CareTeam", "subject": map[string]any{"reference": "Patient/" + pa},
		"participant": []any{map[string]any{"member": map[string]any{"reference": "Practitioner/" + pr}}}}), http.StatusCreated)
	drTok := s.personToken(t, "dr.patch", policy.RolePractitioner, "Practitioner/"+pr, "user/*.cruds")
	asDr := func(extra ...string) []string {
		return patchHeaders(append([]string{"Authorization", bearer(drTok)}, extra...)...)
	}
	label := `[{"op":"add","path":"/meta/security","value":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]}]`
	before := historyTotal(t, s, obs)
	must(t, s.do("PATCH", "/fhir/"+obs, label, asDr()...), http.StatusForbidden)

	// A4: the practitioner may patch A's Observation, but not point it at
	// another patient; B's Observation is not there for them (A1).
	must(t, s.do("PATCH", "/fhir/"+obs, `[{"op":"add","path":"/language","value":"en"}]`, asDr()...), http.StatusOK)
	before++
	from := ledgerSize(t, s)
	must(t, s.do("PATCH", "/fhir/"+obs, `[{"op":"replace","path":"/subject/reference","value":"Patient/`+pb+`"}]`, asDr()...), http.StatusForbidden)
	if es := ledgerEntries(t, s, from); len(es) != 1 || es[0].Outcome != "denied" || es[0].Action != "patch" {
		t.Errorf("A4: the refused patch's entries: %+v", es)
	}
	if n := historyTotal(t, s, obs); n != before {
		t.Fatalf("A4: refused patches wrote: %v versions, want %v", n, before)
	}
	hidden := s.do("PATCH", "/fhir/"+obsB, `[]`, asDr()...)
	unknown := s.do("PATCH", "/fhir/Observation/unknown-id", `[]`, asDr()...)
	if hidden.status != http.StatusNotFound || string(hidden.body) != string(unknown.body) {
		t.Errorf("A1: B's Observation answers %d %s; an unknown one %d %s", hidden.status, hidden.body, unknown.status, unknown.body)
	}
	if historyTotal(t, s, obsB) != 1 {
		t.Error("A1: B's Observation was written")
	}

	// F3: concurrent patches without If-Match each apply to the version
	// they find: none is lost. (Each writer loses at most writers-1 races,
	// within the service's retries.)
	must(t, s.do("PATCH", "/fhir/"+obs, `[{"op":"add","path":"/category","value":[{"text":"seed"}]}]`, jsonPatch...), http.StatusOK)
	const writers = 4
	var wg sync.WaitGroup
	status := make([]int, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := fmt.Sprintf(`[{"op":"add","path":"/category/-","value":{"text":"writer %d"}}]`, i)
			status[i] = s.do("PATCH", "/fhir/"+obs, p, jsonPatch...).status
		}()
	}
	wg.Wait()
	var got struct {
		Category []struct{ Text string } `json:"category"`
	}
	if err := json.Unmarshal(must(t, s.do("GET", "/fhir/"+obs, nil), http.StatusOK).body, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Category) != writers+1 || slices.Contains(status, 0) || slices.ContainsFunc(status, func(st int) bool { return st != http.StatusOK }) {
		t.Errorf("F3: statuses %v, categories stored %+v", status, got.Category)
	}
}

// repeat joins n copies of s with commas.
func repeat(s string, n int) string {
	return strings.TrimSuffix(strings.Repeat(s+",", n), ",")
}

var fhirJSONBody = []string{"Content-Type", "application/fhir+json"}

// fhirPathPatch is a FHIRPath Patch of the given operations, each the
// JSON of its parts.
func fhirPathPatch(ops ...string) string {
	var ps []string
	for _, op := range ops {
		ps = append(ps, `{"name":"operation","part":[`+op+`]}`)
	}
	return `{"resourceType":"Parameters","parameter":[` + strings.Join(ps, ",") + `]}`
}

func TestFHIRPathPatch(t *testing.T) { testFHIRPathPatch(t, newStack(t)) }

func TestFHIRPathPatchPostgres(t *testing.T) {
	testFHIRPathPatch(t, newStackWith(t, stackOptions{openStore: postgresStore}))
}

// testFHIRPathPatch: a FHIRPath Patch is an update of what the caller
// reads, exactly as a JSON Patch is: validated, If-Match honoured, an
// operation that cannot apply is a 400 naming it with nothing written,
// server-controlled meta stays Ward's (A6), the resource neither moves to
// another patient (A4) nor is reached when hidden (A1), and every attempt
// is in the ledger with its outcome (E1).
func testFHIRPathPatch(t *testing.T, s *stack) {
	pa := idFrom(t, must(t, s.do("POST", "/fhir/Patient", patient("Okafor", "Ada")), http.StatusCreated))
	pb := idFrom(t, must(t, s.do("POST", "/fhir/Patient", patient("Eze", "Obi")), http.StatusCreated))
	obs := "Observation/" + idFrom(t, must(t, s.do("POST", "/fhir/Observation", observation("Patient/"+pa, "29463-7", 70)), http.StatusCreated))
	obsB := "Observation/" + idFrom(t, must(t, s.do("POST", "/fhir/Observation", observation("Patient/"+pb, "29463-7", 80)), http.StatusCreated))

	replace := fhirPathPatch(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Observation.value.value"},{"name":"value","valueDecimal":71.5}`,
		`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Observation"},{"name":"name","valueString":"note"},{"name":"value","valueAnnotation":{"text":"after lunch"}}`)
	from := ledgerSize(t, s)
	r := must(t, s.do("PATCH", "/fhir/"+obs, replace, append(fhirJSONBody, "If-Match", `W/"1"`)...), http.StatusOK)
	body := r.json(t)
	if r.header.Get("ETag") != `W/"2"` || fmt.Sprint(body["valueQuantity"].(map[string]any)["value"]) != "71.5" || body["note"] == nil {
		t.Fatalf("patched: ETag %q body %s", r.header.Get("ETag"), r.body)
	}
	if es := ledgerEntries(t, s, from); len(es) != 1 || es[0].Action != "patch" || es[0].Outcome != "success" || es[0].Version != "2" {
		t.Errorf("E1: the patch's entries: %+v", es)
	}
	if got := must(t, s.do("GET", "/fhir/"+obs, nil), http.StatusOK).json(t); fmt.Sprint(got["valueQuantity"].(map[string]any)["value"]) != "71.5" {
		t.Fatalf("read after patch: %v", got["valueQuantity"])
	}
	// A choice element changes type; the conditional form patches the one match.
	must(t, s.do("PATCH", "/fhir/Observation?_id="+strings.TrimPrefix(obs, "Observation/"),
		fhirPathPatch(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Observation.value"},{"name":"value","valueString":"seventy"}`), fhirJSONBody...), http.StatusOK)
	if got := must(t, s.do("GET", "/fhir/"+obs, nil), http.StatusOK).json(t); got["valueString"] != "seventy" || got["valueQuantity"] != nil {
		t.Fatalf("choice replaced: %v %v", got["valueString"], got["valueQuantity"])
	}

	// Refused, each with nothing written and the operation named.
	unchanged := historyTotal(t, s, obs)
	for _, tc := range []struct {
		name, patch string
		h           []string
		status      int
		expr        string
	}{
		{"stale If-Match", fhirPathPatch(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Observation.note"}`), []string{"If-Match", `W/"1"`}, 412, ""},
		{"path selects nothing", fhirPathPatch(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Observation.note"}`,
			`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Observation.issued"},{"name":"value","valueInstant":"2020-01-01T00:00:00Z"}`), nil, 400, "Parameters.parameter[1]"},
		{"invalid result", fhirPathPatch(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Observation.code"}`), nil, 400, ""},
		{"invalid value", fhirPathPatch(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Observation.status"},{"name":"value","valueCode":"bogus"}`), nil, 400, ""},
		{"changes the id", fhirPathPatch(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Observation.id"},{"name":"value","valueId":"other"}`), nil, 400, ""},
		{"a computed path", fhirPathPatch(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"'x'"},{"name":"value","valueString":"y"}`), nil, 400, "Parameters.parameter[0]"},
		{"malformed operation", fhirPathPatch(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Observation.status"}`), nil, 400, "Parameters.parameter[0]"},
		{"too many operations", fhirPathPatch(slices.Repeat([]string{`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Observation.note"}`}, 101)...), nil, 400, ""},
		{"not a Parameters", `{"resourceType":"Basic","code":{"text":"x"}}`, nil, 400, ""},
		{"other media type", `{}`, []string{"Content-Type", "text/plain"}, 415, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := append(append([]string(nil), fhirJSONBody...), tc.h...)
			got := must(t, s.do("PATCH", "/fhir/"+obs, tc.patch, h...), tc.status)
			oo := got.json(t)
			if oo["resourceType"] != "OperationOutcome" {
				t.Fatalf("body %s", got.body)
			}
			if tc.expr != "" && !strings.Contains(string(got.body), `"expression":["`+tc.expr+`"]`) {
				t.Errorf("the outcome does not name %s: %s", tc.expr, got.body)
			}
		})
	}
	if n := historyTotal(t, s, obs); n != unchanged {
		t.Fatalf("refused patches wrote: %v versions, want %v", n, unchanged)
	}

	// A6: meta.versionId is Ward's.
	r = must(t, s.do("PATCH", "/fhir/"+obs, fhirPathPatch(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Observation.meta.versionId"},{"name":"value","valueId":"99"}`), fhirJSONBody...), http.StatusOK)
	if meta := r.json(t)["meta"].(map[string]any); meta["versionId"] == "99" {
		t.Fatalf("a patch set server-controlled meta: %v", meta)
	}

	// A4 and A1 for a practitioner on A's care team.
	pr := idFrom(t, must(t, s.do("POST", "/fhir/Practitioner", map[string]any{"resourceType": "Practitioner", "active": true}), http.StatusCreated))
	must(t, s.do("POST", "/fhir/CareTeam", map[string]any{"resourceType": "CareTeam", "subject": map[string]any{"reference": "Patient/" + pa},
		"participant": []any{map[string]any{"member": map[string]any{"reference": "Practitioner/" + pr}}}}), http.StatusCreated)
	drTok := s.personToken(t, "dr.fhirpath", policy.RolePractitioner, "Practitioner/"+pr, "user/*.cruds")
	asDr := append([]string{"Authorization", bearer(drTok)}, fhirJSONBody...)
	before := historyTotal(t, s, obs)
	from = ledgerSize(t, s)
	must(t, s.do("PATCH", "/fhir/"+obs, fhirPathPatch(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Observation.subject.reference"},{"name":"value","valueString":"Patient/`+pb+`"}`), asDr...), http.StatusForbidden)
	if es := ledgerEntries(t, s, from); len(es) != 1 || es[0].Outcome != "denied" || es[0].Action != "patch" {
		t.Errorf("A4: the refused patch's entries: %+v", es)
	}
	if n := historyTotal(t, s, obs); n != before {
		t.Fatalf("A4: the refused patch wrote: %v versions, want %v", n, before)
	}
	noop := fhirPathPatch(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Observation.note"}`)
	hidden := s.do("PATCH", "/fhir/"+obsB, noop, asDr...)
	unknown := s.do("PATCH", "/fhir/Observation/unknown-id", noop, asDr...)
	if hidden.status != http.StatusNotFound || string(hidden.body) != string(unknown.body) {
		t.Errorf("A1: B's Observation answers %d %s; an unknown one %d %s", hidden.status, hidden.body, unknown.status, unknown.body)
	}
	if historyTotal(t, s, obsB) != 1 {
		t.Error("A1: B's Observation was written")
	}
}
