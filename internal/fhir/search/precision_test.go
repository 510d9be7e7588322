package search

import (
	"encoding/json"
	"math"
	"slices"
	"testing"
)

func TestDateRange(t *testing.T) {
	tests := []struct {
		in      string
		minutes bool
		lo, hi  string
		wantErr bool
	}{
		{"2020", false, "2020-01-01T00:00:00Z", "2020-12-31T23:59:59.999999Z", false},
		{"2020-02", false, "2020-02-01T00:00:00Z", "2020-02-29T23:59:59.999999Z", false},
		{"2021-02-28", false, "2021-02-28T00:00:00Z", "2021-02-28T23:59:59.999999Z", false},
		{"2020-01-02T10:20:30Z", false, "2020-01-02T10:20:30Z", "2020-01-02T10:20:30.999999Z", false},
		{"2020-01-02T10:20:30.5Z", false, "2020-01-02T10:20:30.5Z", "2020-01-02T10:20:30.599999Z", false},
		{"2020-01-02T10:20:30+02:00", false, "2020-01-02T08:20:30Z", "2020-01-02T08:20:30.999999Z", false},
		{"2020-01-02T10:20:30-05:30", false, "2020-01-02T15:50:30Z", "2020-01-02T15:50:30.999999Z", false},
		{"2020-01-02T10:20:30", false, "2020-01-02T10:20:30Z", "2020-01-02T10:20:30.999999Z", false},
		{"2020-01-02T10:20Z", true, "2020-01-02T10:20:00Z", "2020-01-02T10:20:59.999999Z", false},
		{"2020-01-02T10:20Z", false, "", "", true},
		{"2020-13", false, "", "", true},
		{"2021-02-29", false, "", "", true},
		{"2020-01-02T24:00:00Z", false, "", "", true},
		{"2020-01-02 10:20:30Z", false, "", "", true},
		{"20", false, "", "", true},
		{"2020-01-02T10:20:30+2", false, "", "", true},
		{"abcd", false, "", "", true},
		{"", false, "", "", true},
	}
	for _, tc := range tests {
		lo, hi, err := dateRange(tc.in, tc.minutes)
		if (err != nil) != tc.wantErr {
			t.Errorf("dateRange(%q) err = %v", tc.in, err)
			continue
		}
		if tc.wantErr {
			continue
		}
		if lo != unix(tc.lo) || hi != unix(tc.hi) {
			t.Errorf("dateRange(%q) = [%f, %f], want [%f, %f]", tc.in, lo, hi, unix(tc.lo), unix(tc.hi))
		}
	}
}

func TestDecimalRange(t *testing.T) {
	tests := []struct {
		in        string
		v, lo, hi float64
		wantErr   bool
	}{
		{"1.5", 1.5, 1.45, 1.55, false},
		{"100", 100, 99.5, 100.5, false},
		{"-2.00", -2, -2.005, -1.995, false},
		{"1.50e2", 150, 149.5, 150.5, false},
		{"5E-1", 0.5, 0.45, 0.55, false},
		{"0", 0, -0.5, 0.5, false},
		{"", 0, 0, 0, true},
		{"1.2.3", 0, 0, 0, true},
		{"NaN", 0, 0, 0, true},
		{"Inf", 0, 0, 0, true},
		{"1e999", 0, 0, 0, true},
		{"0x10", 0, 0, 0, true},
		{"1_000", 0, 0, 0, true},
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	for _, tc := range tests {
		v, lo, hi, err := decimalRange(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("decimalRange(%q) err = %v", tc.in, err)
			continue
		}
		if !tc.wantErr && (!near(v, tc.v) || !near(lo, tc.lo) || !near(hi, tc.hi)) {
			t.Errorf("decimalRange(%q) = %v [%v, %v), want %v [%v, %v)", tc.in, v, lo, hi, tc.v, tc.lo, tc.hi)
		}
	}
}

func TestNormalizeString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Koepp", "koepp"},
		{"  José   María\tÑúñez ", "jose maria nunez"},
		{"Straße", "strasse"},
		{"Øster Ærø", "oster aero"},
		{"Łódź", "lodz"},
		{"e\u0301cole", "ecole"}, // decomposed accent
		{"ΑΘΗΝΑ", "αθηνα"},
		{"O'Brien-Smith", "o'brien-smith"},
		{"", ""},
		{"\n\t", ""},
	}
	for _, tc := range tests {
		if got := NormalizeString(tc.in); got != tc.want {
			t.Errorf("NormalizeString(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestExtractShapes covers choice types, periods, timings, ranges, money,
// references and the FHIRPath filters on small hand-built resources.
func TestExtractShapes(t *testing.T) {
	r := newRegistry(t)
	inf := math.Inf(1)
	tests := []struct {
		name, rt string
		res      string
		want     []Value
		absent   []string // params that must have no value
	}{
		{"open period", "Encounter", `{"resourceType":"Encounter","period":{"start":"2020-01-01"}}`,
			[]Value{{Param: "date", Type: TypeDate, Lo: unix("2020-01-01T00:00:00Z"), Hi: inf}}, nil},
		{"timing events", "CarePlan", `{"resourceType":"CarePlan","activity":[{"detail":{"scheduledTiming":{"event":["2020-03-01","2020-01-01"]}}}]}`,
			[]Value{{Param: "activity-date", Type: TypeDate, Lo: unix("2020-01-01T00:00:00Z"), Hi: unix("2020-03-01T23:59:59.999999Z")}}, nil},
		{"occurrence string not a date", "Immunization", `{"resourceType":"Immunization","occurrenceString":"last spring"}`,
			nil, []string{"date"}},
		{"choice as dateTime only", "RiskAssessment", `{"resourceType":"RiskAssessment","occurrencePeriod":{"start":"2020"}}`,
			nil, []string{"date"}},
		{"onset age range", "Condition", `{"resourceType":"Condition","onsetRange":{"low":{"value":10,"unit":"a","system":"http://unitsofmeasure.org","code":"a"},"high":{"value":20,"code":"a"}}}`,
			[]Value{{Param: "onset-age", Type: TypeQuantity, System: "http://unitsofmeasure.org", Code: "a", Lo: 9.5, Hi: 20.5}}, []string{"onset-date"}},
		{"money", "Invoice", `{"resourceType":"Invoice","totalNet":{"value":12.5,"currency":"EUR"}}`,
			[]Value{{Param: "totalnet", Type: TypeQuantity, System: "urn:iso:std:iso:4217", Code: "EUR", Lo: 12.45, Hi: 12.55}}, nil},
		{"unit when no code", "Observation", `{"resourceType":"Observation","valueQuantity":{"value":3,"unit":"mmol/L"}}`,
			[]Value{{Param: "value-quantity", Type: TypeQuantity, Code: "mmol/L", Lo: 2.5, Hi: 3.5}}, nil},
		{"value string from concept text", "Observation", `{"resourceType":"Observation","valueCodeableConcept":{"text":"Positive","coding":[{"system":"s","code":"c"}]}}`,
			[]Value{{Param: "value-string", Type: TypeString, Blind: true, Text: "positive", Exact: "Positive"}, {Param: "value-concept", Type: TypeToken, System: "s", Code: "c"}}, []string{"value-quantity"}},
		{"patient where resolve", "Observation", `{"resourceType":"Observation","subject":{"reference":"Group/g1"}}`,
			[]Value{{Param: "subject", Type: TypeReference, Text: "Group/g1", RefType: "Group"}}, []string{"patient"}},
		{"versioned and absolute refs", "Observation", `{"resourceType":"Observation","subject":{"reference":"Patient/p1/_history/3"},"performer":[{"reference":"https://ehr.example/fhir/Practitioner/x9"},{"reference":"#contained"},{"reference":"urn:uuid:0a1b"}]}`,
			[]Value{{Param: "patient", Type: TypeReference, Text: "Patient/p1", RefType: "Patient"},
				{Param: "performer", Type: TypeReference, Text: "https://ehr.example/fhir/Practitioner/x9", RefType: "Practitioner"},
				{Param: "performer", Type: TypeReference, Text: "urn:uuid:0a1b"}}, nil},
		{"reference type field", "Observation", `{"resourceType":"Observation","subject":{"reference":"urn:uuid:1","type":"Patient"}}`,
			[]Value{{Param: "patient", Type: TypeReference, Text: "urn:uuid:1", RefType: "Patient"}}, nil},
		{"telecom where system", "Patient", `{"resourceType":"Patient","telecom":[{"system":"email","value":"a@b.c"},{"system":"phone","value":"123"}]}`,
			[]Value{{Param: "email", Type: TypeToken, Blind: true, System: "email", Code: "a@b.c"}, {Param: "phone", Type: TypeToken, Blind: true, System: "phone", Code: "123"}}, nil},
		{"deceased datetime", "Patient", `{"resourceType":"Patient","deceasedDateTime":"2020-01-01"}`,
			[]Value{{Param: "deceased", Type: TypeToken, Code: "true"}, {Param: "death-date", Type: TypeDate, Blind: true, Lo: unix("2020-01-01T00:00:00Z"), Hi: unix("2020-01-01T23:59:59.999999Z")}}, nil},
		{"address parts", "Patient", `{"resourceType":"Patient","address":[{"line":["1 Rue Éluard"],"city":"Saint-Étienne"}]}`,
			[]Value{{Param: "address", Type: TypeString, Blind: true, Text: "1 rue eluard", Exact: "1 Rue Éluard"}, {Param: "address-city", Type: TypeString, Blind: true, Text: "saint-etienne", Exact: "Saint-Étienne"}}, nil},
		{"meta", "Patient", `{"resourceType":"Patient","id":"p","meta":{"lastUpdated":"2024-05-06T07:08:09Z","profile":["http://p"],"security":[{"system":"s","code":"R"}],"tag":[{"system":"t","code":"x"}],"source":"http://src"}}`,
			[]Value{{Param: "_id", Type: TypeToken, Code: "p"}, {Param: "_lastUpdated", Type: TypeDate, Lo: unix("2024-05-06T07:08:09Z"), Hi: unix("2024-05-06T07:08:09.999999Z")},
				{Param: "_profile", Type: TypeURI, Text: "http://p"}, {Param: "_security", Type: TypeToken, System: "s", Code: "R"}, {Param: "_source", Type: TypeURI, Blind: true, Text: "http://src"},
				{Param: "_tag", Type: TypeToken, Blind: true, System: "t", Code: "x"}}, nil},
		{"bundle first entry", "Bundle", `{"resourceType":"Bundle","type":"document","entry":[{"resource":{"resourceType":"Composition","id":"c1"}}]}`,
			[]Value{{Param: "composition", Type: TypeReference, Text: "Composition/c1", RefType: "Composition"}, {Param: "type", Type: TypeToken, Code: "document"}}, nil},
		{"related artifact where", "Library", `{"resourceType":"Library","relatedArtifact":[{"type":"depends-on","resource":"http://lib/a"},{"type":"successor","resource":"http://lib/b"}]}`,
			[]Value{{Param: "depends-on", Type: TypeReference, Text: "http://lib/a"}, {Param: "successor", Type: TypeReference, Text: "http://lib/b"}}, []string{"predecessor"}},
		{"boolean token", "Group", `{"resourceType":"Group","actual":true}`,
			[]Value{{Param: "actual", Type: TypeToken, Code: "true"}}, nil},
		{"number", "RiskAssessment", `{"resourceType":"RiskAssessment","prediction":[{"probabilityDecimal":0.02}]}`,
			[]Value{{Param: "probability", Type: TypeNumber, Lo: 0.015, Hi: 0.025}}, nil},
	}
	near := func(a, b Value) bool {
		lo, hi := a.Lo, a.Hi
		a.Lo, a.Hi = b.Lo, b.Hi
		return a == b && (lo == b.Lo || math.Abs(lo-b.Lo) < 1e-9) && (hi == b.Hi || math.Abs(hi-b.Hi) < 1e-9)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var obj map[string]any
			dec := json.NewDecoder(stringsReader(tc.res))
			dec.UseNumber()
			if err := dec.Decode(&obj); err != nil {
				t.Fatal(err)
			}
			vs, err := r.Extract(tc.rt, obj)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !slices.ContainsFunc(vs, func(v Value) bool { return near(v, w) }) {
					t.Errorf("missing %+v in %+v", w, vs)
				}
			}
			for _, a := range tc.absent {
				if slices.ContainsFunc(vs, func(v Value) bool { return v.Param == a }) {
					t.Errorf("unexpected %s value in %+v", a, vs)
				}
			}
		})
	}
}

func TestExtractErrors(t *testing.T) {
	r := newRegistry(t)
	tests := []struct{ name, rt, res string }{
		{"type mismatch", "Patient", `{"resourceType":"Observation"}`},
		{"unknown type", "Nope", `{"resourceType":"Nope"}`},
		{"bad date", "Patient", `{"resourceType":"Patient","birthDate":"1956-02-30"}`},
		{"bad period", "Encounter", `{"resourceType":"Encounter","period":{"end":"yesterday"}}`},
		{"bad decimal", "Observation", `{"resourceType":"Observation","valueQuantity":{"value":"x"}}`},
	}
	for _, tc := range tests {
		var obj map[string]any
		dec := json.NewDecoder(stringsReader(tc.res))
		dec.UseNumber()
		if err := dec.Decode(&obj); err != nil {
			t.Fatal(err)
		}
		if tc.name == "bad decimal" {
			obj["valueQuantity"].(map[string]any)["value"] = json.Number("1..2")
		}
		if _, err := r.Extract(tc.rt, obj); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}
