package api_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestSummaryCount: _summary=count answers the total and no resource,
// narrowed as the search would be.
func TestSummaryCount(t *testing.T) {
	s := newStack(t)
	for _, status := range []string{"final", "final", "amended"} {
		must(t, s.do("POST", "/fhir/Observation", map[string]any{"resourceType": "Observation", "status": status,
			"code": map[string]any{"text": "pulse"}}), http.StatusCreated)
	}
	for query, want := range map[string]float64{"_summary=count": 3, "status=final&_summary=count": 2, "status=preliminary&_summary=count": 0} {
		b := must(t, s.do("GET", "/fhir/Observation?"+query, nil), http.StatusOK).json(t)
		if b["total"] != want || b["entry"] != nil && len(b["entry"].([]any)) != 0 {
			t.Errorf("%s: total %v, entries %v; want %v and none", query, b["total"], b["entry"], want)
		}
	}
}

// TestTokenSystemOnly: "system|" finds every code of that system on a
// plain token parameter; on a blind-indexed one (an identifier) it is a
// 400, since a blind index holds no system apart from its value.
func TestTokenSystemOnly(t *testing.T) {
	s := newStack(t)
	coded := func(system, code string) string {
		return must(t, s.do("POST", "/fhir/Observation", map[string]any{"resourceType": "Observation", "status": "final",
			"code": map[string]any{"coding": []any{map[string]any{"system": system, "code": code}}}}), http.StatusCreated).json(t)["id"].(string)
	}
	a, b := coded("http://loinc.org", "8302-2"), coded("http://loinc.org", "29463-7")
	other := coded("http://snomed.info/sct", "50373000")
	body := string(must(t, s.do("GET", "/fhir/Observation?code=http://loinc.org|&_total=accurate", nil), http.StatusOK).body)
	if !strings.Contains(body, a) || !strings.Contains(body, b) || strings.Contains(body, other) {
		t.Errorf("code=http://loinc.org| : %s", body)
	}
	notBody := string(must(t, s.do("GET", "/fhir/Observation?code:not=http://loinc.org|", nil), http.StatusOK).body)
	if strings.Contains(notBody, a) || !strings.Contains(notBody, other) {
		t.Errorf("code:not=http://loinc.org| : %s", notBody)
	}
	if r := s.do("GET", "/fhir/Patient?identifier=urn:mrn|", nil); r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "system alone") {
		t.Errorf("a blind-indexed identifier by system alone: %d %s, want 400 saying why", r.status, r.body)
	}
}

// TestSummaryAndElements: _summary=true, text, data and _elements serve
// the subset R4 defines, tagged SUBSETTED, on SQLite and PostgreSQL;
// _summary applies to included resources too, _elements to the matches;
// an element the type does not have is a 400 before anything is read.
func TestSummaryAndElements(t *testing.T) {
	backends := map[string]stackOptions{"sqlite": {}, "postgres": {openStore: postgresStore}} // skips visibly without WARD_TEST_POSTGRES
	for name, o := range backends {
		t.Run(name, func(t *testing.T) {
			s := newStackWith(t, o)
			pat := must(t, s.do("POST", "/fhir/Patient", map[string]any{"resourceType": "Patient", "active": true,
				"name": []any{map[string]any{"family": "Subset"}}, "maritalStatus": map[string]any{"text": "married"},
				"text": map[string]any{"status": "generated", "div": `<div xmlns="http://www.w3.org/1999/xhtml">Subset</div>`}}), http.StatusCreated).json(t)["id"].(string)
			must(t, s.do("POST", "/fhir/Observation", map[string]any{"resourceType": "Observation", "status": "final",
				"code": map[string]any{"text": "pulse"}, "subject": map[string]any{"reference": "Patient/" + pat},
				"note": []any{map[string]any{"text": "after a run"}}, "valueQuantity": map[string]any{"value": 80}}), http.StatusCreated)
			resources := func(query string) (matches, included []map[string]any) {
				b := must(t, s.do("GET", "/fhir/"+query, nil), http.StatusOK).json(t)
				entries, _ := b["entry"].([]any)
				for _, e := range entries {
					m := e.(map[string]any)
					r := m["resource"].(map[string]any)
					if m["search"].(map[string]any)["mode"] == "include" {
						included = append(included, r)
					} else {
						matches = append(matches, r)
					}
				}
				return matches, included
			}
			subsetted := func(r map[string]any) bool {
				meta, _ := r["meta"].(map[string]any)
				tags, _ := meta["tag"].([]any)
				for _, tg := range tags {
					if tg.(map[string]any)["code"] == "SUBSETTED" {
						return true
					}
				}
				return false
			}
			has := func(r map[string]any, keys ...string) string {
				var out []string
				for _, k := range keys {
					if _, ok := r[k]; ok {
						out = append(out, k)
					}
				}
				return strings.Join(out, ",")
			}
			for _, c := range []struct {
				query, want string // want: which of name, maritalStatus, text, active, id are kept
				subset      bool
			}{
				{"Patient?_id=" + pat + "&_summary=true", "name,active,id", true},
				{"Patient?_id=" + pat + "&_summary=text", "text,id", true},
				{"Patient?_id=" + pat + "&_summary=data", "name,maritalStatus,active,id", true},
				{"Patient?_id=" + pat + "&_summary=false", "name,maritalStatus,text,active,id", false},
				{"Patient?_id=" + pat + "&_elements=maritalStatus", "maritalStatus,id", true},
				{"Patient?_id=" + pat + "&_elements=name,active", "name,active,id", true},
				{"Patient?_id=" + pat, "name,maritalStatus,text,active,id", false},
			} {
				m, _ := resources(c.query)
				if len(m) != 1 {
					t.Fatalf("%s: %d matches", c.query, len(m))
				}
				if got := has(m[0], "name", "maritalStatus", "text", "active", "id"); got != c.want || subsetted(m[0]) != c.subset {
					t.Errorf("%s: kept %s (SUBSETTED %v), want %s (%v)", c.query, got, subsetted(m[0]), c.want, c.subset)
				}
			}
			// Includes: _summary reaches them, _elements does not.
			m, inc := resources("Observation?subject=Patient/" + pat + "&_include=Observation:subject&_summary=true")
			if len(m) != 1 || len(inc) != 1 || has(m[0], "note", "valueQuantity", "status", "code") != "valueQuantity,status,code" || has(inc[0], "maritalStatus", "name") != "name" {
				t.Errorf("_summary=true with an include: %v %v", m, inc)
			}
			m, inc = resources("Observation?subject=Patient/" + pat + "&_include=Observation:subject&_elements=note")
			if len(m) != 1 || len(inc) != 1 || has(m[0], "note", "valueQuantity", "status", "code") != "note,status,code" || subsetted(inc[0]) {
				t.Errorf("_elements with an include: %v %v", m, inc)
			}
			// A read takes them too.
			for q, want := range map[string]string{"_summary=true": "name,active,id", "_elements=maritalStatus": "maritalStatus,id", "_summary=false": "name,maritalStatus,text,active,id"} {
				r := must(t, s.do("GET", "/fhir/Patient/"+pat+"?"+q, nil), http.StatusOK).json(t)
				if got := has(r, "name", "maritalStatus", "text", "active", "id"); got != want || subsetted(r) != (q != "_summary=false") {
					t.Errorf("read ?%s: kept %s (SUBSETTED %v), want %s", q, got, subsetted(r), want)
				}
			}
			for _, q := range []string{"Patient?_elements=nmae", "Patient?_elements=name.family", "Patient?_summary=maybe", "Patient/" + pat + "?_summary=count", "Patient/" + pat + "?_elements=nmae"} {
				if r := s.do("GET", "/fhir/"+q, nil); r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "OperationOutcome") {
					t.Errorf("%s: %d %s, want a 400 OperationOutcome", q, r.status, r.body)
				}
			}
		})
	}
}
