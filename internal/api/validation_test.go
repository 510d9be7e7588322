package api_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestValidationOnWrite: the checks from the R4 StructureDefinitions
// (cardinality, primitive formats, required bindings, FHIRPath
// constraints) refuse a write with a 400 whose OperationOutcome names the
// element and the constraint, never the value, and nothing is stored, on
// SQLite and on PostgreSQL. A transaction with one invalid entry fails as
// a whole.
func TestValidationOnWrite(t *testing.T) {
	const subject = `"subject":{"reference":"Patient/p1"}`
	cases := []struct {
		name, path, body string
		expr, key        string // the element and constraint key the outcome names
	}{
		{"Observation without status", "/fhir/Observation", `{"resourceType":"Observation","code":{"text":"x"},` + subject + `}`, "Observation.status", ""},
		{"Procedure without status", "/fhir/Procedure", `{"resourceType":"Procedure",` + subject + `}`, "Procedure.status", ""},
		{"base64 that is not", "/fhir/Binary", `{"resourceType":"Binary","contentType":"text/plain","data":"%%%"}`, "Binary.data", ""},
		{"probability of 101", "/fhir/RiskAssessment", `{"resourceType":"RiskAssessment","status":"final",` + subject + `,"prediction":[{"probabilityDecimal":101.5}]}`, "RiskAssessment.prediction[0]", "ras-2"},
		{"period ending before it starts", "/fhir/Encounter", `{"resourceType":"Encounter","status":"finished","class":{"code":"AMB"},` + subject + `,"period":{"start":"2021-03-04T10:00:00Z","end":"2021-03-03T10:00:00Z"}}`, "Encounter.period", "per-1"},
		{"clinical status outside its value set", "/fhir/Condition", `{"resourceType":"Condition",` + subject + `,"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"cured"}]}}`, "Condition.clinicalStatus", ""},
		{"transaction with one invalid entry", "/fhir", `{"resourceType":"Bundle","type":"transaction","entry":[
			{"request":{"method":"POST","url":"Observation"},"resource":{"resourceType":"Observation","status":"final","code":{"text":"ok"},` + subject + `}},
			{"request":{"method":"POST","url":"Observation"},"resource":{"resourceType":"Observation","code":{"text":"no status"},` + subject + `}}]}`, "Observation.status", ""},
	}
	backends := map[string]stackOptions{"sqlite": {}, "postgres": {openStore: postgresStore}} // skips visibly without WARD_TEST_POSTGRES
	for name, o := range backends {
		t.Run(name, func(t *testing.T) {
			s := newStackWith(t, o)
			for _, c := range cases {
				r := s.do("POST", c.path, c.body)
				if checkOutcome(t, c.name, r, http.StatusBadRequest) == nil {
					continue
				}
				body := string(r.body)
				if !strings.Contains(body, `"`+c.expr+`"`) || (c.key != "" && !strings.Contains(body, "constraint "+c.key+" ")) {
					t.Errorf("%s: the outcome does not name %s %s: %s", c.name, c.expr, c.key, body)
				}
				for _, value := range []string{"101.5", "2021-03", "cured", "%%%"} {
					if strings.Contains(body, value) {
						t.Errorf("%s: the outcome echoes a value: %s", c.name, body)
					}
				}
			}
			for _, typ := range []string{"Observation", "Procedure", "Binary", "RiskAssessment", "Encounter", "Condition"} {
				if b := must(t, s.do("GET", "/fhir/"+typ, nil), http.StatusOK).json(t); b["total"] != float64(0) {
					t.Errorf("refused writes stored %v %s", b["total"], typ)
				}
			}
			// The same resources made valid are accepted.
			must(t, s.do("POST", "/fhir/RiskAssessment", `{"resourceType":"RiskAssessment","status":"final",`+subject+`,"prediction":[{"probabilityDecimal":99.5}]}`), http.StatusCreated)
			must(t, s.do("POST", "/fhir/Binary", `{"resourceType":"Binary","contentType":"text/plain","data":"aGVsbG8="}`), http.StatusCreated)
		})
	}
}
