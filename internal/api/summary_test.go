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
	if st := s.do("GET", "/fhir/Patient?identifier=urn:mrn|", nil).status; st != http.StatusBadRequest {
		t.Errorf("a blind-indexed identifier by system alone: %d, want 400", st)
	}
}
