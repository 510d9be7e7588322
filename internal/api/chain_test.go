package api_test

import (
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
)

// matchIDs returns the ids of a searchset's matches, sorted, and its
// total.
func matchIDs(t *testing.T, r response) ([]string, any) {
	t.Helper()
	b := r.json(t)
	var ids []string
	entries, _ := b["entry"].([]any)
	for _, e := range entries {
		m := e.(map[string]any)
		if m["search"].(map[string]any)["mode"] == "match" {
			ids = append(ids, m["resource"].(map[string]any)["id"].(string))
		}
	}
	sort.Strings(ids)
	return ids, b["total"]
}

// TestChainedSearch: chained parameters (one and two levels, with and
// without the type, through blind-indexed and plain parameters) and _has
// (nested too) find what they name, on SQLite and PostgreSQL; a chain
// that matches nothing answers an empty page with a total of 0; a search
// with a chain is recorded naming the patients the chain went through.
func TestChainedSearch(t *testing.T) {
	backends := map[string]stackOptions{"sqlite": {}, "postgres": {openStore: postgresStore}} // skips visibly without WARD_TEST_POSTGRES
	for name, o := range backends {
		t.Run(name, func(t *testing.T) {
			s := newStackWith(t, o)
			id := func(r response) string { return must(t, r, http.StatusCreated).json(t)["id"].(string) }
			org := id(s.do("POST", "/fhir/Organization", map[string]any{"resourceType": "Organization", "name": "Chain Clinic"}))
			a := id(s.do("POST", "/fhir/Patient", map[string]any{"resourceType": "Patient", "name": []any{map[string]any{"family": "Chainfam"}},
				"managingOrganization": map[string]any{"reference": "Organization/" + org}}))
			b := id(s.do("POST", "/fhir/Patient", map[string]any{"resourceType": "Patient", "name": []any{map[string]any{"family": "Other"}}}))
			obs := func(patient, code string) string {
				return id(s.do("POST", "/fhir/Observation", map[string]any{"resourceType": "Observation", "status": "final",
					"code":    map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": code}}},
					"subject": map[string]any{"reference": "Patient/" + patient}}))
			}
			oa, ob := obs(a, "8867-4"), obs(b, "8302-2")
			id(s.do("POST", "/fhir/Provenance", map[string]any{"resourceType": "Provenance", "recorded": "2024-01-01T00:00:00Z",
				"target": []any{map[string]any{"reference": "Observation/" + oa}},
				"agent":  []any{map[string]any{"who": map[string]any{"reference": "Organization/" + org}}}}))
			none := []string(nil)
			for _, c := range []struct {
				query string
				want  []string
			}{
				{"Observation?subject:Patient.family=chainfam", []string{oa}},
				{"Observation?subject.family=chainfam", []string{oa}},
				{"Observation?subject:Patient.family=nobody", none},
				{"Observation?subject:Patient._id=" + b, []string{ob}},
				{"Observation?subject:Patient.organization.name=chain", []string{oa}},
				{"Observation?subject:Patient.organization.name=elsewhere", none},
				{"Observation?subject:Patient.family=chainfam,other&code=8302-2", []string{ob}},
				{"Patient?_has:Observation:subject:code=8867-4", []string{a}},
				{"Patient?_has:Observation:subject:code=8867-4,8302-2", []string{a, b}},
				{"Patient?_has:Observation:subject:code=0000-0", none},
				{"Patient?_has:Observation:subject:code=8867-4&_id=" + b, none},
				{"Patient?_has:Observation:subject:_has:Provenance:target:agent=Organization/" + org, []string{a}},
				{"Patient?_has:Observation:patient:subject:Patient.organization=Organization/" + org, []string{a}},
			} {
				got, total := matchIDs(t, must(t, s.do("GET", "/fhir/"+c.query+"&_total=accurate", nil), http.StatusOK))
				if !slices.Equal(got, c.want) || total != float64(len(c.want)) {
					t.Errorf("%s: matches %v total %v, want %v", c.query, got, total, c.want)
				}
			}
			// _summary=count counts what the chain selects.
			if _, total := matchIDs(t, must(t, s.do("GET", "/fhir/Observation?subject:Patient.family=chainfam&_summary=count", nil), http.StatusOK)); total != float64(1) {
				t.Errorf("a chained count: %v", total)
			}
			// Refused before any search: a chain off a token, too deep, or
			// to a result parameter; and chains in conditional criteria.
			for _, q := range []string{"Observation?code.name=x", "Observation?subject:Patient.organization.partof.partof.name=x",
				"Observation?subject:Patient._count=1", "Patient?_has:Observation:subject:_sort=date"} {
				if r := s.do("GET", "/fhir/"+q, nil); r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "OperationOutcome") {
					t.Errorf("%s: %d %s, want a 400 OperationOutcome", q, r.status, r.body)
				}
			}
			if r := s.do("POST", "/fhir/Observation", map[string]any{"resourceType": "Observation", "status": "final", "code": map[string]any{"text": "x"}},
				"If-None-Exist", "subject:Patient.family=chainfam"); r.status != http.StatusBadRequest {
				t.Errorf("chained conditional criteria: %d %s", r.status, r.body)
			}
			// The ledger entry of a chained search names the patient the
			// chain went through, though the answer is empty.
			from := ledgerSize(t, s)
			must(t, s.do("GET", "/fhir/Observation?subject:Patient.family=chainfam&code=0000-0", nil), http.StatusOK)
			es := ledgerEntries(t, s, from)
			if len(es) != 1 || es[0].Patient != a {
				t.Errorf("the chained search's entry: %+v, want it to name patient %s", es, a)
			}
		})
	}
}

// TestIncludeIterate: _include:iterate and _revinclude:iterate follow
// what the round before added, on SQLite and PostgreSQL: an
// Observation's subject, then the Patient's organization; a Patient's
// Observations, then the Provenances about them.
func TestIncludeIterate(t *testing.T) {
	backends := map[string]stackOptions{"sqlite": {}, "postgres": {openStore: postgresStore}} // skips visibly without WARD_TEST_POSTGRES
	for name, o := range backends {
		t.Run(name, func(t *testing.T) {
			s := newStackWith(t, o)
			id := func(r response) string { return must(t, r, http.StatusCreated).json(t)["id"].(string) }
			org := id(s.do("POST", "/fhir/Organization", map[string]any{"resourceType": "Organization", "name": "Iterate Clinic"}))
			pat := id(s.do("POST", "/fhir/Patient", map[string]any{"resourceType": "Patient", "managingOrganization": map[string]any{"reference": "Organization/" + org}}))
			obs := id(s.do("POST", "/fhir/Observation", map[string]any{"resourceType": "Observation", "status": "final",
				"code": map[string]any{"text": "pulse"}, "subject": map[string]any{"reference": "Patient/" + pat}}))
			prov := id(s.do("POST", "/fhir/Provenance", map[string]any{"resourceType": "Provenance", "recorded": "2024-01-01T00:00:00Z",
				"target": []any{map[string]any{"reference": "Observation/" + obs}},
				"agent":  []any{map[string]any{"who": map[string]any{"reference": "Organization/" + org}}}}))
			served := func(query string) (all []string) {
				b := must(t, s.do("GET", "/fhir/"+query, nil), http.StatusOK).json(t)
				entries, _ := b["entry"].([]any)
				for _, e := range entries {
					r := e.(map[string]any)["resource"].(map[string]any)
					all = append(all, r["resourceType"].(string)+"/"+r["id"].(string))
				}
				sort.Strings(all)
				return all
			}
			for q, want := range map[string][]string{
				"Observation?_id=" + obs + "&_include=Observation:subject":                                              {"Observation/" + obs, "Patient/" + pat},
				"Observation?_id=" + obs + "&_include=Observation:subject&_include:iterate=Patient:organization":        {"Observation/" + obs, "Organization/" + org, "Patient/" + pat},
				"Patient?_id=" + pat + "&_revinclude=Observation:subject&_revinclude:iterate=Provenance:target":         {"Observation/" + obs, "Patient/" + pat, "Provenance/" + prov},
				"Patient?_id=" + pat + "&_revinclude=Observation:subject&_revinclude=Provenance:target":                 {"Observation/" + obs, "Patient/" + pat},
				"Organization?_id=" + org + "&_revinclude=Patient:organization&_revinclude:iterate=Observation:subject": {"Observation/" + obs, "Organization/" + org, "Patient/" + pat},
			} {
				if got := served(q); !slices.Equal(got, want) {
					t.Errorf("%s: served %v, want %v", q, got, want)
				}
			}
		})
	}
}
