package api_test

import (
	"net/http"
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
