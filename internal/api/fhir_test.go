package api_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func patient(family, given string) map[string]any {
	return map[string]any{
		"resourceType": "Patient",
		"name":         []any{map[string]any{"family": family, "given": []any{given}}},
		"gender":       "female",
		"birthDate":    "1987-03-14",
		"identifier":   []any{map[string]any{"system": "urn:oid:2.16.840.1.113883.4.3.25", "value": "S-" + family}},
	}
}

func observation(patientRef, code string, value float64) map[string]any {
	return map[string]any{
		"resourceType":      "Observation",
		"status":            "final",
		"code":              map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": code}}},
		"subject":           map[string]any{"reference": patientRef},
		"effectiveDateTime": "2020-05-01T10:00:00Z",
		"valueQuantity":     map[string]any{"value": value, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
	}
}

// idFrom returns the id in a Location header.
func idFrom(t *testing.T, r response) string {
	t.Helper()
	loc := r.header.Get("Location")
	parts := strings.Split(strings.TrimPrefix(loc, "https://"), "/")
	// host/fhir/Type/id/_history/v
	if len(parts) != 6 || parts[4] != "_history" {
		t.Fatalf("unexpected Location %q", loc)
	}
	return parts[3]
}

func TestCRUDAndVersions(t *testing.T) {
	s := newStack(t)
	created := must(t, s.do("POST", "/fhir/Patient", patient("Okafor", "Ada")), http.StatusCreated)
	id := idFrom(t, created)
	if created.header.Get("ETag") != `W/"1"` || created.header.Get("Last-Modified") == "" {
		t.Fatalf("create headers: ETag %q Last-Modified %q", created.header.Get("ETag"), created.header.Get("Last-Modified"))
	}
	body := created.json(t)
	if body["id"] != id || body["meta"].(map[string]any)["versionId"] != "1" {
		t.Fatalf("created body has id %v meta %v", body["id"], body["meta"])
	}
	for _, h := range []string{"Cache-Control", "Strict-Transport-Security", "X-Content-Type-Options"} {
		if created.header.Get(h) == "" {
			t.Errorf("missing %s", h)
		}
	}

	read := must(t, s.do("GET", "/fhir/Patient/"+id, nil), http.StatusOK)
	if read.json(t)["id"] != id {
		t.Fatal("read returned another resource")
	}

	upd := patient("Okafor", "Adaeze")
	upd["id"] = id
	must(t, s.do("PUT", "/fhir/Patient/"+id, upd, "If-Match", `W/"1"`), http.StatusOK)
	// The same If-Match again is stale now.
	must(t, s.do("PUT", "/fhir/Patient/"+id, upd, "If-Match", `W/"1"`), http.StatusPreconditionFailed)
	// Update without If-Match makes version 3.
	r3 := must(t, s.do("PUT", "/fhir/Patient/"+id, upd), http.StatusOK)
	if r3.header.Get("ETag") != `W/"3"` {
		t.Fatalf("third version ETag %q", r3.header.Get("ETag"))
	}
	v1 := must(t, s.do("GET", "/fhir/Patient/"+id+"/_history/1", nil), http.StatusOK).json(t)
	if given := v1["name"].([]any)[0].(map[string]any)["given"].([]any)[0]; given != "Ada" {
		t.Fatalf("vread 1 returned given %v", given)
	}
	must(t, s.do("GET", "/fhir/Patient/"+id+"/_history/9", nil), http.StatusNotFound)

	must(t, s.do("DELETE", "/fhir/Patient/"+id, nil), http.StatusNoContent)
	must(t, s.do("GET", "/fhir/Patient/"+id, nil), http.StatusGone)
	must(t, s.do("DELETE", "/fhir/Patient/"+id, nil), http.StatusNoContent) // idempotent

	hist := must(t, s.do("GET", "/fhir/Patient/"+id+"/_history", nil), http.StatusOK).json(t)
	if hist["total"] != float64(4) || len(hist["entry"].([]any)) != 4 {
		t.Fatalf("history total %v entries %d, want 4", hist["total"], len(hist["entry"].([]any)))
	}
	first := hist["entry"].([]any)[0].(map[string]any)
	if first["request"].(map[string]any)["method"] != "DELETE" {
		t.Fatalf("newest history entry is %v, want the deletion", first["request"])
	}
	// Update of a deleted resource revives it as a new version.
	must(t, s.do("PUT", "/fhir/Patient/"+id, upd), http.StatusCreated)
	must(t, s.do("GET", "/fhir/Patient/"+id, nil), http.StatusOK)

	// Update-as-create with a client-chosen id, and mismatched ids.
	p := patient("Mbeki", "Thabo")
	p["id"] = "chosen-1"
	must(t, s.do("PUT", "/fhir/Patient/chosen-1", p), http.StatusCreated)
	must(t, s.do("PUT", "/fhir/Patient/other-id", p), http.StatusBadRequest)
	must(t, s.do("PUT", "/fhir/Observation/chosen-1", p), http.StatusBadRequest)
}

func TestPreferReturn(t *testing.T) {
	s := newStack(t)
	r := must(t, s.do("POST", "/fhir/Patient", patient("A", "B"), "Prefer", "return=minimal"), http.StatusCreated)
	if len(r.body) != 0 || r.header.Get("Location") == "" {
		t.Fatalf("return=minimal: body %q Location %q", r.body, r.header.Get("Location"))
	}
	r = must(t, s.do("POST", "/fhir/Patient", patient("A", "B"), "Prefer", "return=OperationOutcome"), http.StatusCreated)
	if r.json(t)["resourceType"] != "OperationOutcome" {
		t.Fatal("return=OperationOutcome did not return one")
	}
}

func TestConditionalCreateAndUpdate(t *testing.T) {
	s := newStack(t)
	crit := "identifier=urn:oid:2.16.840.1.113883.4.3.25|S-Nakamura"
	first := must(t, s.do("POST", "/fhir/Patient", patient("Nakamura", "Yui"), "If-None-Exist", crit), http.StatusCreated)
	again := must(t, s.do("POST", "/fhir/Patient", patient("Nakamura", "Yui"), "If-None-Exist", crit), http.StatusOK)
	if again.json(t)["id"] != first.json(t)["id"] {
		t.Fatal("conditional create made a second resource")
	}
	upd := patient("Nakamura", "Yuina")
	must(t, s.do("PUT", "/fhir/Patient?"+crit, upd), http.StatusOK)
	got := must(t, s.do("GET", "/fhir/Patient?"+crit, nil), http.StatusOK).json(t)
	if got["total"] != float64(1) {
		t.Fatalf("conditional update: %v matches", got["total"])
	}
	// Two matches: 412.
	must(t, s.do("POST", "/fhir/Patient", patient("Nakamura", "Ken")), http.StatusCreated)
	must(t, s.do("PUT", "/fhir/Patient?family=nakamura", upd), http.StatusPreconditionFailed)
}

// F3: concurrent read-modify-write cycles with If-Match never lose an
// update: every success is a distinct version, and all are retrievable.
func TestConcurrentIfMatchNoLostUpdate(t *testing.T) {
	s := newStack(t)
	id := idFrom(t, must(t, s.do("POST", "/fhir/Patient", patient("Race", "Condition")), http.StatusCreated))
	raceIfMatch(t, []*stack{s, s, s, s, s, s}, id, 5)
}

func TestSearch(t *testing.T) {
	s := newStack(t)
	ids := map[string]string{}
	for _, fam := range []string{"Okafor", "Okoye", "Smith"} {
		ids[fam] = idFrom(t, must(t, s.do("POST", "/fhir/Patient", patient(fam, "Ada")), http.StatusCreated))
	}
	for i, code := range []string{"29463-7", "29463-7", "8302-2"} {
		must(t, s.do("POST", "/fhir/Observation", observation("Patient/"+ids["Okafor"], code, float64(60+i))), http.StatusCreated)
	}
	must(t, s.do("POST", "/fhir/Observation", observation("Patient/"+ids["Smith"], "29463-7", 90)), http.StatusCreated)

	cases := []struct {
		query string
		want  int
	}{
		{"Patient?family=okafor", 1},
		{"Patient?family=OKAFOR", 1},
		{"Patient?name=ada", 3},
		{"Patient?family:exact=Okafor", 1},
		{"Patient?family:exact=okafor", 0},
		{"Patient?birthdate=1987-03-14", 3},
		{"Patient?birthdate=1987-03", 0}, // blind index: exact dates only, by precision written
		{"Patient?family=oka", 0},        // blind index: whole words, not prefixes
		{"Patient?identifier=S-Smith", 1},
		{"Patient?identifier=urn:oid:2.16.840.1.113883.4.3.25|S-Smith", 1},
		{"Patient?identifier=urn:other|S-Smith", 0},
		{"Patient?gender=female", 3},
		{"Patient?gender:not=female", 0},
		{"Patient?_id=" + ids["Okoye"], 1},
		{"Patient?_id=" + ids["Okoye"] + "," + ids["Smith"], 2},
		{"Observation?subject=Patient/" + ids["Okafor"], 3},
		{"Observation?patient=" + ids["Okafor"], 3},
		{"Observation?subject=Patient/" + ids["Okafor"] + "&code=8302-2", 1},
		{"Observation?code=http://loinc.org|29463-7", 3},
		{"Observation?code=http://other|29463-7", 0},
		{"Observation?value-quantity=gt61", 2},
		{"Observation?value-quantity=90|http://unitsofmeasure.org|kg", 1},
		{"Observation?date=2020-05", 4},
		{"Observation?date=lt2020-05-01", 0},
		{"Observation?date=ge2020-05-01T10:00:00Z", 4},
		{"Observation?_lastUpdated=gt2000-01-01", 4},
		{"Observation?code:missing=false", 4},
	}
	for _, c := range cases {
		got := must(t, s.do("GET", "/fhir/"+c.query, nil), http.StatusOK).json(t)
		if got["total"] != float64(c.want) {
			t.Errorf("%s: total %v, want %d", c.query, got["total"], c.want)
		}
		entries, _ := got["entry"].([]any)
		if len(entries) != c.want {
			t.Errorf("%s: %d entries, want %d", c.query, len(entries), c.want)
		}
	}

	// Refused, with a reason: prefix and range searches on blind indexes,
	// unknown parameters, a chain through a parameter the target type does
	// not have, a composite value without its components, client-set offsets.
	for _, q := range []string{
		"Patient?birthdate=ge1980", "Patient?name:contains=ka",
		"Patient?nonsense=1", "Observation?subject:Patient.nonsense=x", "Observation?code-value-quantity=x", "Patient?_offset=10",
		"Patient?_sort=family", "Patient?birthdate=not-a-date",
	} {
		r := s.do("GET", "/fhir/"+q, nil)
		if r.status != http.StatusBadRequest || r.json(t)["resourceType"] != "OperationOutcome" {
			t.Errorf("%s: status %d, want 400 OperationOutcome", q, r.status)
		}
		if q == "Patient?birthdate=not-a-date" && strings.Contains(string(r.body), "not-a-date") {
			t.Errorf("%s: the error echoes the searched value", q)
		}
	}

	// _include and _revinclude.
	inc := must(t, s.do("GET", "/fhir/Observation?code=8302-2&_include=Observation:subject", nil), http.StatusOK).json(t)
	if modes := searchModes(inc); modes["match"] != 1 || modes["include"] != 1 {
		t.Fatalf("_include: %v", modes)
	}
	rev := must(t, s.do("GET", "/fhir/Patient?_id="+ids["Okafor"]+"&_revinclude=Observation:subject", nil), http.StatusOK).json(t)
	if modes := searchModes(rev); modes["match"] != 1 || modes["include"] != 3 {
		t.Fatalf("_revinclude: %v", modes)
	}

	// POST _search with a form body.
	form := url.Values{"family": {"smith"}}
	r := s.do("POST", "/fhir/Patient/_search", form.Encode(), "Content-Type", "application/x-www-form-urlencoded")
	if must(t, r, http.StatusOK).json(t)["total"] != float64(1) {
		t.Fatal("POST _search did not find the patient")
	}

	// _sort.
	sorted := must(t, s.do("GET", "/fhir/Observation?_sort=-value-quantity", nil), http.StatusOK).json(t)
	first := sorted["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)
	if first["valueQuantity"].(map[string]any)["value"] != float64(90) {
		t.Fatalf("_sort=-value-quantity starts with %v", first["valueQuantity"])
	}
}

func searchModes(bundle map[string]any) map[string]int {
	modes := map[string]int{}
	entries, _ := bundle["entry"].([]any)
	for _, e := range entries {
		modes[e.(map[string]any)["search"].(map[string]any)["mode"].(string)]++
	}
	return modes
}

func links(bundle map[string]any) map[string]string {
	out := map[string]string{}
	ls, _ := bundle["link"].([]any)
	for _, l := range ls {
		m := l.(map[string]any)
		out[m["relation"].(string)] = m["url"].(string)
	}
	return out
}

// Paging links are authenticated: they cannot be altered, expire, and
// belong to the client they were issued to.
func TestPagingLinks(t *testing.T) {
	s := newStack(t)
	for i := 0; i < 7; i++ {
		must(t, s.do("POST", "/fhir/Patient", patient(fmt.Sprintf("Page%d", i), "P")), http.StatusCreated)
	}
	seen := map[string]bool{}
	next := "/fhir/Patient?_count=3&_sort=_id"
	pages := 0
	for next != "" {
		b := must(t, s.do("GET", next, nil), http.StatusOK).json(t)
		for _, e := range b["entry"].([]any) {
			id := e.(map[string]any)["resource"].(map[string]any)["id"].(string)
			if seen[id] {
				t.Fatalf("id %s on two pages", id)
			}
			seen[id] = true
		}
		next = links(b)["next"]
		pages++
		if pages > 5 {
			t.Fatal("paging does not end")
		}
	}
	if len(seen) != 7 || pages != 3 {
		t.Fatalf("paged %d resources in %d pages, want 7 in 3", len(seen), pages)
	}
	b := must(t, s.do("GET", "/fhir/Patient?_count=3&_sort=_id", nil), http.StatusOK).json(t)
	link := links(b)["next"]
	u, _ := url.Parse(link)
	tok := u.Query().Get("_page")
	// Flip one character of the token.
	alt := []byte(tok)
	alt[len(alt)/3] ^= 1
	must(t, s.do("GET", "/fhir/Patient?_page="+url.QueryEscape(string(alt)), nil), http.StatusBadRequest)
	// Another client may not use it.
	other := s.newToken("system/*.rs")
	must(t, s.do("GET", link, nil, "Authorization", "Bearer "+other), http.StatusBadRequest)
	// Extra parameters next to a page token are refused.
	must(t, s.do("GET", link+"&family=x", nil), http.StatusBadRequest)
	must(t, s.do("GET", link, nil), http.StatusOK)
	// A count-only page has no next page.
	zero := must(t, s.do("GET", "/fhir/Patient?_count=0", nil), http.StatusOK).json(t)
	if zero["total"] != float64(7) || links(zero)["next"] != "" {
		t.Fatalf("_count=0: total %v, links %v", zero["total"], links(zero))
	}
}

// C4: an oversized _count is capped, not obeyed.
func TestCountCapped(t *testing.T) {
	s := newStack(t)
	b := must(t, s.do("GET", "/fhir/Patient?_count=1000000", nil), http.StatusOK).json(t)
	self := links(b)["self"]
	if !strings.Contains(self, "_count=1000") || strings.Contains(self, "_count=1000000") {
		t.Fatalf("self link %q does not state the capped page size", self)
	}
}

func TestHistoryTypeAndSystem(t *testing.T) {
	s := newStack(t)
	for i := 0; i < 3; i++ {
		must(t, s.do("POST", "/fhir/Patient", patient("H", "I")), http.StatusCreated)
	}
	must(t, s.do("POST", "/fhir/Observation", observation("Patient/x", "1-8", 1)), http.StatusCreated)
	typ := must(t, s.do("GET", "/fhir/Patient/_history?_count=2", nil), http.StatusOK).json(t)
	if typ["total"] != float64(3) || len(typ["entry"].([]any)) != 2 || links(typ)["next"] == "" {
		t.Fatalf("type history: total %v, %d entries, links %v", typ["total"], len(typ["entry"].([]any)), links(typ))
	}
	sys := must(t, s.do("GET", "/fhir/_history", nil), http.StatusOK).json(t)
	if sys["total"] != float64(4) {
		t.Fatalf("system history total %v", sys["total"])
	}
	must(t, s.do("GET", "/fhir/_history?_since=yesterday", nil), http.StatusBadRequest)
	must(t, s.do("GET", "/fhir/Patient/nope/_history", nil), http.StatusNotFound)
	// Whole-system history needs a wildcard scope.
	narrow := s.newToken("system/Patient.rs")
	must(t, s.do("GET", "/fhir/_history", nil, "Authorization", "Bearer "+narrow), http.StatusForbidden)
}

// TestPutInvalidID: an update names the id it writes, so an id that is no
// FHIR id is bad input (400, an OperationOutcome naming the id), not an
// unknown resource (404); nothing is written (catalogue C2, C10).
func TestPutInvalidID(t *testing.T) {
	s := newStack(t)
	for _, id := range []string{"a_b", "..", ".", strings.Repeat("a", 65), "a%20b", "a%00b", "%E2%80%AEab", "a%2Fb", "a/b", "a$b", "a:b", "%2E%2E"} {
		t.Run(id, func(t *testing.T) {
			p := patient("Okeke", "Obi")
			r := must(t, s.do("PUT", "/fhir/Patient/"+id, p), http.StatusBadRequest)
			if oo := r.json(t); oo["resourceType"] != "OperationOutcome" || !strings.Contains(string(r.body), "id in the URL") {
				t.Errorf("body %s", r.body)
			}
		})
	}
	// Routes that take no PUT still say so.
	for _, path := range []string{"/fhir/Patient/x/_history/1", "/fhir/Patient/x/$everything", "/fhir/Patient/x/Observation"} {
		must(t, s.do("PUT", path, patient("Okeke", "Obi")), http.StatusMethodNotAllowed)
	}
	if b := must(t, s.do("GET", "/fhir/Patient", nil), http.StatusOK).json(t); b["total"] != float64(0) {
		t.Errorf("a refused PUT wrote: total %v", b["total"])
	}
}
