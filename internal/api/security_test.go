package api_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
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
	checkOutcome(t, "POST to an instance", s.do("POST", "/fhir/Patient/x", "{}"), http.StatusMethodNotAllowed)
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

// C9: a query the standard parser would read with a pair missing (a ';',
// a bad '%' escape), a repeated single-valued parameter, or a name or
// value that is not plain text, is refused with a 400 naming the
// parameter, on every route that reads a query: never answered with a
// filter missing.
func TestStrictQueries(t *testing.T) {
	s := newStack(t)
	mine := idFrom(t, must(t, s.do("POST", "/fhir/Patient", patient("Mine", "A")), http.StatusCreated))
	other := idFrom(t, must(t, s.do("POST", "/fhir/Patient", patient("Other", "B")), http.StatusCreated))
	must(t, s.do("POST", "/fhir/Observation", observation("Patient/"+mine, "29463-7", 60)), http.StatusCreated)
	must(t, s.do("POST", "/fhir/Observation", observation("Patient/"+other, "29463-7", 70)), http.StatusCreated)
	s.checkpoint(t)
	audits := s.newToken("system/AuditEvent.rs")
	admin := s.adminToken("admin.strict")
	form := []string{"Content-Type", "application/x-www-form-urlencoded"}
	tx := func(url string) map[string]any {
		return map[string]any{"resourceType": "Bundle", "type": "batch", "entry": []any{
			map[string]any{"request": map[string]any{"method": "GET", "url": url}}}}
	}
	cases := []struct {
		name, method, path string
		body               any
		headers            []string
		param              string // the name the outcome must quote
	}{
		{"semicolon", "GET", "/fhir/Observation?patient=" + mine + ";", nil, nil, "patient"},
		{"semicolon between pairs", "GET", "/fhir/Observation?patient=" + mine + ";code=1", nil, nil, "patient"},
		{"bad escape", "GET", "/fhir/Observation?code=x%zz", nil, nil, "code"},
		{"truncated escape", "GET", "/fhir/Observation?patient=" + mine + "%2", nil, nil, "patient"},
		{"bad escape in a name", "GET", "/fhir/Observation?pat%zzient=" + mine, nil, nil, "pat%zzient"},
		{"repeated _count", "GET", "/fhir/Observation?_count=1&_count=2", nil, nil, "_count"},
		{"repeated _sort", "GET", "/fhir/Observation?_sort=date&_sort=code", nil, nil, "_sort"},
		{"repeated _total", "GET", "/fhir/Observation?_total=none&_total=accurate", nil, nil, "_total"},
		{"repeated _summary", "GET", "/fhir/Observation?_summary=true&_summary=false", nil, nil, "_summary"},
		{"repeated _elements", "GET", "/fhir/Observation?_elements=id&_elements=code", nil, nil, "_elements"},
		{"repeated _format", "GET", "/fhir/Observation?_format=json&_format=xml", nil, nil, "_format"},
		{"NUL in a value", "GET", "/fhir/Observation?code=a%00b", nil, nil, "code"},
		{"bidi override in a value", "GET", "/fhir/Patient?family=%E2%80%AEevil", nil, nil, "family"},
		{"invalid UTF-8 in a value", "GET", "/fhir/Patient?family=%FF", nil, nil, "family"},
		{"id of dots", "GET", "/fhir/Patient?_id=..", nil, nil, "_id"},
		{"reference to an id of dots", "GET", "/fhir/Observation?subject=Patient/..", nil, nil, "subject"},
		{"POST _search body", "POST", "/fhir/Observation/_search", "patient=" + mine + ";", form, "patient"},
		{"POST _search body escape", "POST", "/fhir/Observation/_search", "code=x%zz", form, "code"},
		{"POST _search body and URL", "POST", "/fhir/Observation/_search?_count=2", "_count=1", form, "_count"},
		{"instance history", "GET", "/fhir/Patient/" + mine + "/_history?_count=1&_count=2", nil, nil, "_count"},
		{"type history", "GET", "/fhir/Patient/_history?_since=2020-01-01T00:00:00Z;", nil, nil, "_since"},
		{"system history", "GET", "/fhir/_history?_at=2020-01-01T00:00:00Z&_at=2021-01-01T00:00:00Z", nil, nil, "_at"},
		{"history unknown", "GET", "/fhir/_history?patient=" + mine, nil, nil, "patient"},
		{"$everything", "GET", "/fhir/Patient/" + mine + "/$everything?_format=json;", nil, nil, "_format"},
		{"$everything unknown", "GET", "/fhir/Patient/" + mine + "/$everything?_type=Observation", nil, nil, "_type"},
		{"paging link twice", "GET", "/fhir/Observation?_page=a&_page=b", nil, nil, "_page"},
		{"metadata", "GET", "/fhir/metadata?_format=json%zz", nil, nil, "_format"},
		{"If-None-Exist", "POST", "/fhir/Patient", patient("Mine", "A"), []string{"If-None-Exist", "identifier=S-Mine;"}, "identifier"},
		{"If-None-Exist escape", "POST", "/fhir/Patient", patient("Mine", "A"), []string{"If-None-Exist", "family=x%zz"}, "family"},
		{"conditional update", "PUT", "/fhir/Patient?identifier=S-Mine%", patient("Mine", "A"), nil, "identifier"},
		{"conditional update repeat", "PUT", "/fhir/Patient?identifier=S-Mine&_count=1&_count=1", patient("Mine", "A"), nil, "_count"},
		{"AuditEvent", "GET", "/fhir/AuditEvent?patient=" + mine + "&patient=" + other, nil, []string{"Authorization", "Bearer " + audits}, "patient"},
		{"AuditEvent escape", "GET", "/fhir/AuditEvent?patient=" + mine + "%zz", nil, []string{"Authorization", "Bearer " + audits}, "patient"},
		{"ledger entries", "GET", "/ledger/entries?start=0&end=1;", nil, []string{"Authorization", "Bearer " + audits}, "end"},
		{"ledger entries repeat", "GET", "/ledger/entries?start=0&start=1&end=2", nil, []string{"Authorization", "Bearer " + audits}, "start"},
		{"ledger unknown", "GET", "/ledger/entries?start=0&end=1&patient=" + mine, nil, []string{"Authorization", "Bearer " + audits}, "patient"},
		{"ledger proof", "GET", "/ledger/proof/inclusion?index=0%zz", nil, []string{"Authorization", "Bearer " + audits}, "index"},
		{"ledger checkpoint", "GET", "/ledger/checkpoint?size=1", nil, []string{"Authorization", "Bearer " + audits}, "size"},
		{"admin users", "GET", "/admin/users?role=admin", nil, []string{"Authorization", "Bearer " + admin}, "role"},
		{"admin users escape", "GET", "/admin/users?x=%zz", nil, []string{"Authorization", "Bearer " + admin}, "x"},
	}
	for _, c := range cases {
		r := s.do(c.method, c.path, c.body, c.headers...)
		m := checkOutcome(t, c.name, r, http.StatusBadRequest)
		if m == nil {
			continue
		}
		if want := strconv.QuoteToASCII(c.param); !strings.Contains(diagnostics(m), want) {
			t.Errorf("%s: the outcome does not name %s: %s", c.name, want, r.body)
		}
	}

	// A batch entry's query is read the same way.
	r := must(t, s.do("POST", "/fhir", tx("Observation?patient="+mine+";")), http.StatusOK)
	if !bytes.Contains(r.body, []byte(`"status":"400 Bad Request"`)) || !bytes.Contains(r.body, []byte(`parameter \"patient\"`)) {
		t.Errorf("batch entry with a ';': %s", r.body)
	}

	// A made-up name comes back escaped, never as the characters sent.
	r = s.do("GET", "/fhir/Observation?pa%1B%5B2Jt%E2%80%AEient=x", nil)
	if m := checkOutcome(t, "control characters in a name", r, http.StatusBadRequest); m != nil {
		d := diagnostics(m)
		if !strings.Contains(d, `"pa\x1b[2Jt\u202eient"`) || strings.ContainsFunc(d, func(c rune) bool { return c < 0x20 || c >= 0x7f }) {
			t.Errorf("the outcome does not name the parameter escaped to printable ASCII: %q", d)
		}
	}

	// What is well formed still works: an escaped ';' is a value.
	got := must(t, s.do("GET", "/fhir/Observation?patient="+mine+"&code=29463-7", nil), http.StatusOK).json(t)
	if got["total"] != float64(1) {
		t.Errorf("the filtered search found %v, want 1", got["total"])
	}
	must(t, s.do("GET", "/fhir/Observation?code=a%3Bb", nil), http.StatusOK)
	must(t, s.do("GET", "/ledger/entries?start=0&end=1", nil, "Authorization", "Bearer "+audits), http.StatusOK)
}

// diagnostics joins an OperationOutcome's diagnostics.
func diagnostics(m map[string]any) string {
	var out []string
	issues, _ := m["issue"].([]any)
	for _, is := range issues {
		if d, ok := is.(map[string]any)["diagnostics"].(string); ok {
			out = append(out, d)
		}
	}
	return strings.Join(out, "\n")
}

// C10: ids made of dots, control characters and bidi overrides in
// strings, bodies in another charset than UTF-8 or not UTF-8 at all are
// refused before anything is stored, with a 400 naming the element or a
// 415.
func TestInputHoles(t *testing.T) {
	s := newStack(t)
	admin := s.adminToken("admin.holes")
	withID := func(id string) map[string]any {
		p := patient("Dots", "A")
		p["id"] = id
		return p
	}
	family := func(v string) string {
		return `{"resourceType":"Patient","name":[{"family":"` + v + `"}]}`
	}
	tx := func(url string, res map[string]any) map[string]any {
		return map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
			map[string]any{"resource": res, "request": map[string]any{"method": "PUT", "url": url}}}}
	}
	const latin1 = "application/fhir+json; charset=iso-8859-1"
	cases := []struct {
		name, method, path string
		body               any
		headers            []string
		status             int
		expr               string // the element the outcome must name, if any
	}{
		{"PUT Patient/..", "PUT", "/fhir/Patient/..", withID(".."), nil, 400, ""},
		{"PUT Patient/. ", "PUT", "/fhir/Patient/.", withID("."), nil, 400, ""},
		{"PUT Patient/%2E%2E", "PUT", "/fhir/Patient/%2E%2E", withID(".."), nil, 400, ""},
		{"PUT Patient/...", "PUT", "/fhir/Patient/...", withID("..."), nil, 400, ""},
		{"resource.id ..", "PUT", "/fhir/Patient/dots", withID(".."), nil, 400, ""},
		{"transaction Patient/..", "POST", "/fhir", tx("Patient/..", withID("..")), nil, 400, ""},
		{"reference to Patient/..", "POST", "/fhir/Observation", observation("Patient/..", "29463-7", 1), nil, 400, "Observation.subject.reference"},
		{"NUL", "POST", "/fhir/Patient", family(`a\u0000b`), nil, 400, "Patient.name[0].family"},
		{"escape sequence", "POST", "/fhir/Patient", family(`\u001b[2J`), nil, 400, "Patient.name[0].family"},
		{"DEL", "POST", "/fhir/Patient", family(`a\u007f`), nil, 400, "Patient.name[0].family"},
		{"C1 control", "POST", "/fhir/Patient", family(`a\u0085`), nil, 400, "Patient.name[0].family"},
		{"right-to-left override", "POST", "/fhir/Patient", family(`Smith\u202egnp.exe`), nil, 400, "Patient.name[0].family"},
		{"bidi isolate", "POST", "/fhir/Patient", family("a\u2067b\u2069"), nil, 400, "Patient.name[0].family"},
		{"noncharacter", "POST", "/fhir/Patient", family(`\uffff`), nil, 400, "Patient.name[0].family"},
		{"invalid UTF-8", "POST", "/fhir/Patient", family("a\xffb"), nil, 400, "Patient.name[0].family"},
		{"lone surrogate", "POST", "/fhir/Patient", family(`a\ud800b`), nil, 400, "Patient.name[0].family"},
		{"ISO-8859-1 body", "POST", "/fhir/Patient", family("Mu\xf1oz"), []string{"Content-Type", latin1}, 415, ""},
		{"UTF-16 body", "POST", "/fhir/Patient", patient("A", "B"), []string{"Content-Type", "application/fhir+json; charset=utf-16"}, 415, ""},
		{"ISO-8859-1 update", "PUT", "/fhir/Patient/latin", withID("latin"), []string{"Content-Type", latin1}, 415, ""},
		{"ISO-8859-1 form", "POST", "/fhir/Patient/_search", "family=Mu%F1oz", []string{"Content-Type", "application/x-www-form-urlencoded; charset=iso-8859-1"}, 415, ""},
		{"invalid UTF-8 form", "POST", "/fhir/Patient/_search", "family=Mu%F1oz", []string{"Content-Type", "application/x-www-form-urlencoded"}, 400, ""},
		{"ISO-8859-1 break-the-glass", "POST", "/emergency", `{"patient":"x","reason":"r"}`, []string{"Content-Type", "application/json; charset=iso-8859-1"}, 415, ""},
		{"invalid UTF-8 break-the-glass", "POST", "/emergency", "{\"patient\":\"x\",\"reason\":\"\xff\"}", []string{"Content-Type", "application/json"}, 400, ""},
		{"ISO-8859-1 admin", "POST", "/admin/users", `{"username":"new.one","role":"practitioner","password":"` + testPassword + `"}`,
			[]string{"Authorization", "Bearer " + admin, "Content-Type", "application/json; charset=iso-8859-1"}, 415, ""},
		{"invalid UTF-8 admin", "POST", "/admin/users", "{\"username\":\"new.\xff\",\"role\":\"practitioner\",\"password\":\"" + testPassword + "\"}",
			[]string{"Authorization", "Bearer " + admin, "Content-Type", "application/json"}, 400, ""},
	}
	for _, c := range cases {
		r := s.do(c.method, c.path, c.body, c.headers...)
		if checkOutcome(t, c.name, r, c.status) != nil && c.expr != "" && !bytes.Contains(r.body, []byte(`"`+c.expr+`"`)) {
			t.Errorf("%s: the outcome does not name %s: %s", c.name, c.expr, r.body)
		}
	}
	if b := must(t, s.do("GET", "/fhir/Patient", nil), http.StatusOK).json(t); b["total"] != float64(0) {
		t.Errorf("refused input wrote %v patients", b["total"])
	}
	var users []any
	if err := json.Unmarshal(must(t, s.do("GET", "/admin/users", nil, "Authorization", "Bearer "+admin), http.StatusOK).body, &users); err != nil || len(users) != 1 {
		t.Errorf("refused input created users: %d besides the admin (%v)", len(users)-1, err)
	}
	// What is allowed stays allowed: UTF-8 named in any case, tab and
	// newlines, right-to-left text with its marks.
	must(t, s.do("POST", "/fhir/Patient", family(`Mu\u00f1oz\tde\nla`), "Content-Type", "application/fhir+json; charset=UTF-8"), http.StatusCreated)
	must(t, s.do("POST", "/fhir/Patient", family("כהן\u200f")), http.StatusCreated)
	must(t, s.do("PUT", "/fhir/Patient/a.b", withID("a.b")), http.StatusCreated)
}

// C8: Accept is read with its q-values (RFC 9110): FHIR JSON is served
// only when the most specific range naming it gives it a quality above
// 0; otherwise 406.
func TestAcceptQuality(t *testing.T) {
	s := newStack(t)
	for accept, want := range map[string]int{
		"application/fhir+json;q=0":                        406,
		"application/fhir+json; q=0.000":                   406,
		"application/fhir+json;q=0, */*":                   406, // the specific range wins
		"application/fhir+json;q=0, application/json":      406, // an explicit refusal wins over the alias
		"application/fhir+json, application/fhir+json;q=0": 406,
		"*/*;q=0":                                           406,
		"application/*;q=0, */*":                            406,
		"application/json;q=0":                              406,
		"application/fhir+json;q=2":                         406, // a malformed q: the range is ignored
		"application/fhir+json;q=0.5":                       200,
		"application/fhir+json;q=0.001":                     200,
		"application/fhir+json;q=1.000":                     200,
		"application/json":                                  200,
		"application/json+fhir":                             200,
		"text/html, */*;q=0.1":                              200,
		"application/json;q=0, */*":                         200,
		"application/fhir+xml, application/fhir+json;q=0.1": 200,
	} {
		for _, path := range []string{"/fhir/Patient", "/fhir/metadata"} {
			r := s.do("GET", path, nil, "Accept", accept)
			if want == 406 {
				checkOutcome(t, "Accept "+accept+" "+path, r, http.StatusNotAcceptable)
			} else if r.status != want {
				t.Errorf("Accept %s %s: %d, want %d", accept, path, r.status, want)
			}
		}
	}
}

// Version ids are the decimal numbers Ward issues: "+1", "01", "1.0",
// " 1" name no version and answer exactly as an unknown version does,
// whether or not the resource exists (invariant 10); an If-Match with
// such a version is malformed.
func TestVersionIDs(t *testing.T) {
	s := newStack(t)
	id := idFrom(t, must(t, s.do("POST", "/fhir/Patient", patient("Version", "A")), http.StatusCreated))
	must(t, s.do("GET", "/fhir/Patient/"+id+"/_history/1", nil), http.StatusOK)
	unknown := s.do("GET", "/fhir/Patient/"+id+"/_history/9", nil)
	checkOutcome(t, "unknown version", unknown, http.StatusNotFound)
	for _, v := range []string{"+1", "01", "001", "1.0", "%201", "1%20", "-1", "0x1", "1e0", "%2B1", "0"} {
		for _, res := range []string{id, "nosuchpatient"} {
			r := s.do("GET", "/fhir/Patient/"+res+"/_history/"+v, nil)
			checkOutcome(t, "vread "+v, r, http.StatusNotFound)
			if !bytes.Equal(r.body, unknown.body) {
				t.Errorf("vread %s of %s answers %s, an unknown version %s", v, res, r.body, unknown.body)
			}
		}
	}
	for _, etag := range []string{`W/"+1"`, `W/"01"`, `W/"1.0"`, `W/" 1"`, `"01"`} {
		checkOutcome(t, "If-Match "+etag, s.do("PUT", "/fhir/Patient/"+id, withIDOf(patient("Version", "B"), id), "If-Match", etag), http.StatusBadRequest)
	}
	must(t, s.do("PUT", "/fhir/Patient/"+id, withIDOf(patient("Version", "B"), id), "If-Match", `W/"1"`), http.StatusOK)
}

func withIDOf(res map[string]any, id string) map[string]any {
	res["id"] = id
	return res
}

// B2 and A8: a token without the scope for a conditional write is refused
// (403) before its criteria are matched, whatever they match: none, one
// or several (which would otherwise be a 412), in a plain request, a
// batch entry or a transaction entry. Nothing is written.
func TestScopeBeforeConditions(t *testing.T) {
	s := newStack(t)
	for _, given := range []string{"Ann", "Bea"} {
		must(t, s.do("POST", "/fhir/Patient", patient("Twin", given)), http.StatusCreated)
	}
	before := must(t, s.do("GET", "/fhir/Patient/_history", nil), http.StatusOK).json(t)["total"]
	readOnly := "Bearer " + s.newToken("system/Patient.rs")
	searchOnly := "Bearer " + s.newToken("system/Patient.s")
	entry := func(typ, method, url string, extra map[string]any) map[string]any {
		req := map[string]any{"method": method, "url": url}
		for k, v := range extra {
			req[k] = v
		}
		return map[string]any{"resourceType": "Bundle", "type": typ, "entry": []any{
			map[string]any{"resource": patient("Twin", "Cy"), "request": req}}}
	}
	criteria := map[string]string{"several": "family=twin", "one": "given=ann", "none": "family=nobody"}
	for what, crit := range criteria {
		for tok, name := range map[string]string{readOnly: "rs", searchOnly: "s"} {
			checkOutcome(t, name+" conditional update, "+what, s.do("PUT", "/fhir/Patient?"+crit, patient("Twin", "Cy"), "Authorization", tok), http.StatusForbidden)
			checkOutcome(t, name+" conditional create, "+what, s.do("POST", "/fhir/Patient", patient("Twin", "Cy"), "Authorization", tok, "If-None-Exist", crit), http.StatusForbidden)
			checkOutcome(t, name+" transaction conditional update, "+what, s.do("POST", "/fhir", entry("transaction", "PUT", "Patient?"+crit, nil), "Authorization", tok), http.StatusForbidden)
			checkOutcome(t, name+" transaction conditional create, "+what, s.do("POST", "/fhir", entry("transaction", "POST", "Patient", map[string]any{"ifNoneExist": crit}), "Authorization", tok), http.StatusForbidden)
			for _, b := range []map[string]any{entry("batch", "PUT", "Patient?"+crit, nil), entry("batch", "POST", "Patient", map[string]any{"ifNoneExist": crit})} {
				r := must(t, s.do("POST", "/fhir", b, "Authorization", tok), http.StatusOK)
				if !bytes.Contains(r.body, []byte(`"status":"403 Forbidden"`)) {
					t.Errorf("%s batch conditional write, %s: %s", name, what, r.body)
				}
			}
		}
	}
	if after := must(t, s.do("GET", "/fhir/Patient/_history", nil), http.StatusOK).json(t)["total"]; after != before {
		t.Errorf("refused conditional writes changed the history: %v versions, were %v", after, before)
	}
}
