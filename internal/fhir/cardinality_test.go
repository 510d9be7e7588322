package fhir

import "testing"

// TestValidateSpecRules covers the rules taken from the R4
// StructureDefinitions: cardinality, primitive formats the schema leaves
// open, required bindings of CodeableConcept elements and Attachment.size.
func TestValidateSpecRules(t *testing.T) {
	const obs = `"resourceType":"Observation","code":{"text":"x"}`
	cases := []struct {
		name, body string
		expr       string // "" when the resource must be accepted
	}{
		{"observation without status", `{` + obs + `}`, "Observation.status"},
		{"procedure without status", `{"resourceType":"Procedure","subject":{"reference":"Patient/1"}}`, "Procedure.status"},
		{"procedure without subject", `{"resourceType":"Procedure","status":"completed"}`, "Procedure.subject"},
		{"status only as extension", `{` + obs + `,"_status":{"extension":[{"url":"http://example.org/x","valueString":"y"}]}}`, ""},
		{"missing required complex element", `{"resourceType":"Observation","status":"final"}`, "Observation.code"},
		{"missing element in a backbone element", `{` + obs + `,"status":"final","component":[{"valueString":"x"}]}`, "Observation.component[0].code"},
		{"extension without url", `{` + obs + `,"status":"final","extension":[{"valueString":"x"}]}`, "Observation.extension[0].url"},
		{"extension without url on a primitive", `{` + obs + `,"status":"final","_status":{"extension":[{"valueString":"x"}]}}`, "Observation._status.extension[0].url"},
		{"two types for a choice", `{` + obs + `,"status":"final","valueString":"a","valueBoolean":true}`, "Observation.value[x]"},
		{"base64 of percent signs", `{"resourceType":"Binary","contentType":"text/plain","data":"%%%"}`, "Binary.data"},
		{"base64 of wrong length", `{"resourceType":"Binary","contentType":"text/plain","data":"abc"}`, "Binary.data"},
		{"base64 with data after padding", `{"resourceType":"Binary","contentType":"text/plain","data":"ab==cd=="}`, "Binary.data"},
		{"base64 empty", `{"resourceType":"Binary","contentType":"text/plain","data":""}`, "Binary.data"},
		{"base64 valid with line breaks", `{"resourceType":"Binary","contentType":"text/plain","data":"aGVs\r\nbG8="}`, ""},
		{"base64 in an attachment", `{"resourceType":"Media","status":"completed","content":{"contentType":"text/plain","data":"not base64!"}}`, "Media.content.data"},
		{"integer with fraction", `{"resourceType":"Patient","multipleBirthInteger":1.5}`, "Patient.multipleBirthInteger"},
		{"integer with exponent", `{"resourceType":"Patient","multipleBirthInteger":1e3}`, "Patient.multipleBirthInteger"},
		{"integer beyond 32 bits", `{"resourceType":"Patient","multipleBirthInteger":2147483648}`, "Patient.multipleBirthInteger"},
		{"integer at 32-bit limit", `{"resourceType":"Patient","multipleBirthInteger":-2147483648}`, ""},
		{"unsignedInt zero", `{"resourceType":"Patient","photo":[{"contentType":"image/png","size":0}],"communication":[{"language":{"text":"x"}}]}`, ""},
		{"positiveInt zero in sequence", `{"resourceType":"Claim","status":"active","type":{"text":"x"},"use":"claim","patient":{"reference":"Patient/1"},"created":"2020-01-01","provider":{"reference":"Practitioner/1"},"priority":{"text":"x"},"insurance":[{"sequence":0,"focal":true,"coverage":{"reference":"Coverage/1"}}]}`, "Claim.insurance[0].sequence"},
		{"unsignedInt negative", `{"resourceType":"Media","status":"completed","content":{"contentType":"text/plain","size":-1}}`, "Media.content.size"},
		{"attachment size not that of the data", `{"resourceType":"Media","status":"completed","content":{"contentType":"text/plain","data":"aGVsbG8=","size":100}}`, "Media.content.size"},
		{"attachment size of the data", `{"resourceType":"Media","status":"completed","content":{"contentType":"text/plain","data":"aGVsbG8=","size":5}}`, ""},
		{"required binding: code outside the value set", `{"resourceType":"Condition","subject":{"reference":"Patient/1"},"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"healed"}]}}`, "Condition.clinicalStatus"},
		{"required binding: system outside the value set", `{"resourceType":"Condition","subject":{"reference":"Patient/1"},"clinicalStatus":{"coding":[{"system":"http://snomed.info/sct","code":"55561003"}]}}`, "Condition.clinicalStatus"},
		{"required binding: one coding in the value set", `{"resourceType":"Condition","subject":{"reference":"Patient/1"},"clinicalStatus":{"coding":[{"system":"http://snomed.info/sct","code":"55561003"},{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]}}`, ""},
		{"required binding: text only", `{"resourceType":"Condition","subject":{"reference":"Patient/1"},"clinicalStatus":{"text":"active"}}`, ""},
		{"required binding of a code without an enum in the schema", `{"resourceType":"Account","status":"active","servicePeriod":{"start":"2020-01-01"},"guarantor":[{"party":{"reference":"Patient/1"}}],"extension":[{"url":"http://example.org/x","valueMoney":{"value":1,"currency":"XXQ"}}]}`, "Account.extension[0].valueMoney.currency"},
	}
	v := newValidator(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := Parse([]byte(c.body), Limits{})
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			err = v.Validate(r)
			if c.expr == "" {
				if err != nil {
					t.Fatalf("rejected: %s", describe(err))
				}
				return
			}
			wantError(t, err, c.expr)
		})
	}
}

func TestValidBase64(t *testing.T) {
	for s, ok := range map[string]bool{
		"aGVsbG8=": true, "aGVsbA==": true, "aGVs": true, "aG Vs": true, "a+/A": true,
		"": false, "a": false, "aGVsbA=": false, "a===": false, "%%%%": false, "aGVsbA==aGVs": false, "aGV-": false,
	} {
		if validBase64(s) != ok {
			t.Errorf("validBase64(%q) = %v", s, !ok)
		}
	}
	if n := base64Len("aGVsbG8="); n != 5 {
		t.Errorf("base64Len = %d, want 5", n)
	}
}
