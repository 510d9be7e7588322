package api_test

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
)

// checkOutcome asserts that a response is an OperationOutcome with the
// security headers every response carries.
func checkOutcome(t *testing.T, name string, r response, status int) map[string]any {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: status %d, want %d (%.300s)", name, r.status, status, r.body)
		return nil
	}
	checkHeaders(t, name, r)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		t.Errorf("%s: Content-Type %q", name, ct)
	}
	m := r.json(t)
	if m["resourceType"] != "OperationOutcome" {
		t.Errorf("%s: body is a %v, want OperationOutcome", name, m["resourceType"])
	}
	return m
}

// C8: security headers on every response.
func checkHeaders(t *testing.T, name string, r response) {
	t.Helper()
	want := map[string]string{
		"Strict-Transport-Security": "max-age=63072000; includeSubDomains",
		"X-Content-Type-Options":    "nosniff",
		"Cache-Control":             "no-store",
	}
	for h, v := range want {
		if got := r.header.Get(h); got != v {
			t.Errorf("%s: %s = %q, want %q", name, h, got, v)
		}
	}
	if r.header.Get("X-Request-Id") == "" {
		t.Errorf("%s: no X-Request-Id", name)
	}
}

// C7: unknown paths, debug routes and repository files are 404s.
func TestUnknownPaths(t *testing.T) {
	s := newStack(t)
	for _, p := range []string{
		"/.git/config", "/debug/pprof/", "/debug/vars", "/metrics", "/admin", "/fhir/Unknown",
		"/fhir/Patient/a/b/c/d/e", "/fhir/Patient/bad id", "/fhir/Patient/x/_history/0", "/fhir/Patient/x/_history/abc",
		"/fhir/Observation/x/$everything", "/../../etc/passwd", "/fhir/%2e%2e/keys.json",
	} {
		checkOutcome(t, p, s.do("GET", p, nil), http.StatusNotFound)
	}
	checkOutcome(t, "PATCH", s.do("PATCH", "/fhir/Patient/x", "{}"), http.StatusMethodNotAllowed)
}

// B1 at the HTTP boundary: missing or bad tokens get 401 with
// WWW-Authenticate; everything but metadata and discovery needs a token.
func TestAuthentication(t *testing.T) {
	s := newStack(t)
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt"}`))
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"x","scope":"system/*.cruds","exp":9999999999}`))
	cases := map[string]string{
		"none":      "",
		"garbage":   "Bearer not-a-token",
		"alg none":  "Bearer " + header + "." + payload + ".",
		"basic":     "Basic dXNlcjpwYXNz",
		"bit flip":  "Bearer " + flip(s.token),
		"truncated": "Bearer " + s.token[:len(s.token)-4],
	}
	for name, h := range cases {
		r := s.do("GET", "/fhir/Patient", nil, "Authorization", h)
		checkOutcome(t, name, r, http.StatusUnauthorized)
		if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate %q", name, r.header.Get("WWW-Authenticate"))
		}
	}
	// No token needed here.
	for _, p := range []string{"/fhir/metadata", "/healthz", "/.well-known/smart-configuration", "/oauth2/jwks"} {
		if r := s.do("GET", p, nil, "Authorization", ""); r.status != http.StatusOK {
			t.Errorf("%s without a token: %d", p, r.status)
		}
	}
}

func flip(tok string) string {
	b := []byte(tok)
	i := len(b) / 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

// B2 and A8: scopes limit interactions; method override headers are refused.
func TestScopesAndMethodOverride(t *testing.T) {
	s := newStack(t)
	ro := s.newToken("system/Patient.rs")
	auth := "Bearer " + ro
	must(t, s.do("GET", "/fhir/Patient", nil, "Authorization", auth), http.StatusOK)
	checkOutcome(t, "create with rs", s.do("POST", "/fhir/Patient", patient("A", "B"), "Authorization", auth), http.StatusForbidden)
	checkOutcome(t, "delete with rs", s.do("DELETE", "/fhir/Patient/x", nil, "Authorization", auth), http.StatusForbidden)
	checkOutcome(t, "other type", s.do("GET", "/fhir/Observation", nil, "Authorization", auth), http.StatusForbidden)
	for _, h := range []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"} {
		checkOutcome(t, h, s.do("GET", "/fhir/Patient", nil, "Authorization", auth, h, "DELETE"), http.StatusForbidden)
	}
	// A transaction is decided entry by entry.
	tx := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{map[string]any{
		"resource": patient("A", "B"), "request": map[string]any{"method": "POST", "url": "Patient"},
	}}}
	checkOutcome(t, "transaction with rs", s.do("POST", "/fhir", tx, "Authorization", auth), http.StatusForbidden)
	if b := must(t, s.do("GET", "/fhir/Patient", nil), http.StatusOK).json(t); b["total"] != float64(0) {
		t.Fatal("a refused transaction wrote")
	}
}

// C2: malformed resources get 400 with an OperationOutcome naming the element.
func TestBadResources(t *testing.T) {
	s := newStack(t)
	cases := map[string]struct {
		body string
		expr string
	}{
		"duplicate key":  {`{"resourceType":"Patient","gender":"male","gender":"female"}`, "Patient.gender"},
		"unknown":        {`{"resourceType":"Patient","favouriteColour":"blue"}`, "Patient.favouriteColour"},
		"wrong type":     {`{"resourceType":"Patient","active":"yes"}`, "Patient.active"},
		"bad reference":  {`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"not a ref"}}`, "Observation.subject"},
		"bad date":       {`{"resourceType":"Patient","birthDate":"1990-13-01"}`, "Patient.birthDate"},
		"not json":       {`{"resourceType":"Patient",`, ""},
		"array":          {`[1,2]`, ""},
		"type mismatch":  {`{"resourceType":"Observation","status":"final","code":{"text":"x"}}`, ""},
		"trailing":       {`{"resourceType":"Patient"} {}`, ""},
		"null":           {`{"resourceType":"Patient","gender":null}`, "Patient.gender"},
		"deep":           {strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000), ""},
		"bad code value": {`{"resourceType":"Patient","gender":"robot"}`, "Patient.gender"},
	}
	for name, c := range cases {
		path := "/fhir/Patient"
		if strings.Contains(c.body, `"Observation"`) && name != "type mismatch" {
			path = "/fhir/Observation"
		}
		r := s.do("POST", path, c.body)
		m := checkOutcome(t, name, r, http.StatusBadRequest)
		if m == nil || c.expr == "" {
			continue
		}
		if !strings.Contains(string(r.body), c.expr) {
			t.Errorf("%s: outcome does not name %s: %s", name, c.expr, r.body)
		}
	}
	if b := must(t, s.do("GET", "/fhir/Patient", nil), http.StatusOK).json(t); b["total"] != float64(0) {
		t.Fatalf("bad input wrote %v resources", b["total"])
	}
}

// C4 and C8: limits and content negotiation are enforced before work.
func TestLimitsAndNegotiation(t *testing.T) {
	s := newStack(t)
	big := bytes.Repeat([]byte(" "), 17<<20)
	checkOutcome(t, "17 MiB body", s.do("POST", "/fhir/Patient", big), http.StatusRequestEntityTooLarge)
	checkOutcome(t, "gzip", s.do("POST", "/fhir/Patient", "x", "Content-Encoding", "gzip"), http.StatusUnsupportedMediaType)
	checkOutcome(t, "xml", s.do("POST", "/fhir/Patient", "<Patient/>", "Content-Type", "application/fhir+xml"), http.StatusUnsupportedMediaType)
	checkOutcome(t, "text", s.do("POST", "/fhir/Patient", patient("A", "B"), "Content-Type", "text/plain"), http.StatusUnsupportedMediaType)
	checkOutcome(t, "accept xml", s.do("GET", "/fhir/Patient", nil, "Accept", "application/fhir+xml"), http.StatusNotAcceptable)
	checkOutcome(t, "_format xml", s.do("GET", "/fhir/Patient?_format=xml", nil), http.StatusNotAcceptable)
	must(t, s.do("GET", "/fhir/Patient", nil, "Accept", "application/fhir+json;q=0.9, */*;q=0.1"), http.StatusOK)
	must(t, s.do("POST", "/fhir/Patient", patient("A", "B"), "Content-Type", "application/json; charset=utf-8"), http.StatusCreated)
}

// C8: CORS answers only configured origins, never "null".
func TestCORS(t *testing.T) {
	s := newStackWith(t, stackOptions{cors: []string{"https://app.example.org"}})
	ok := s.do("OPTIONS", "/fhir/Patient", nil, "Origin", "https://app.example.org", "Access-Control-Request-Method", "GET")
	if ok.status != http.StatusNoContent || ok.header.Get("Access-Control-Allow-Origin") != "https://app.example.org" {
		t.Fatalf("allowed preflight: %d %q", ok.status, ok.header.Get("Access-Control-Allow-Origin"))
	}
	for _, origin := range []string{"https://evil.example", "null", "https://app.example.org.evil.example"} {
		pre := s.do("OPTIONS", "/fhir/Patient", nil, "Origin", origin, "Access-Control-Request-Method", "GET")
		if pre.status != http.StatusForbidden || pre.header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight from %s: %d %q", origin, pre.status, pre.header.Get("Access-Control-Allow-Origin"))
		}
		get := s.do("GET", "/fhir/Patient", nil, "Origin", origin)
		if get.header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("GET from %s got Access-Control-Allow-Origin", origin)
		}
	}
}

func TestMetadata(t *testing.T) {
	s := newStack(t)
	cs := must(t, s.do("GET", "/fhir/metadata", nil, "Authorization", ""), http.StatusOK).json(t)
	if cs["resourceType"] != "CapabilityStatement" || cs["fhirVersion"] != "4.0.1" {
		t.Fatalf("metadata: %v %v", cs["resourceType"], cs["fhirVersion"])
	}
	rest := cs["rest"].([]any)[0].(map[string]any)
	var patientParams []string
	for _, r := range rest["resource"].([]any) {
		m := r.(map[string]any)
		if m["type"] == "Patient" {
			for _, p := range m["searchParam"].([]any) {
				patientParams = append(patientParams, p.(map[string]any)["name"].(string))
			}
		}
	}
	for _, want := range []string{"family", "birthdate", "identifier", "_id", "_lastUpdated"} {
		if !contains(patientParams, want) {
			t.Errorf("CapabilityStatement lacks Patient search parameter %s", want)
		}
	}
	if !strings.Contains(rest["documentation"].(string), "Not supported") {
		t.Error("CapabilityStatement does not say what is not supported")
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
