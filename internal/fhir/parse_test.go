package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// wantError checks that err is an *Error with an issue naming expr.
func wantError(t *testing.T, err error, expr string) {
	t.Helper()
	var fe *Error
	if !errors.As(err, &fe) {
		t.Fatalf("got %v (%T), want *Error", err, err)
	}
	for _, is := range fe.Issues {
		if slices.Contains(is.Expression, expr) {
			return
		}
	}
	t.Fatalf("no issue names %q: %s", expr, describe(err))
}

func TestParseRejects(t *testing.T) {
	cases := []struct {
		name, body, expr string
	}{
		{"duplicate key", `{"resourceType":"Patient","active":true,"active":false}`, "Patient.active"},
		{"duplicate nested key", `{"resourceType":"Patient","name":[{"family":"A","family":"B"}]}`, "Patient.name[0].family"},
		{"null member", `{"resourceType":"Patient","gender":null}`, "Patient.gender"},
		{"missing resourceType", `{"id":"x"}`, "resourceType"},
		{"non-string resourceType", `{"resourceType":7}`, "resourceType"},
		{"unknown resourceType", `{"resourceType":"Patientt"}`, "resourceType"},
		{"trailing data", `{"resourceType":"Patient"} {}`, ""},
		{"invalid UTF-8", "{\"resourceType\":\"Patient\",\"name\":[{\"text\":\"\xff\"}]}", "Patient.name[0].text"},
		{"truncated", `{"resourceType":"Patient","name":[`, "Patient.name[0]"},
		{"not an object", `[1]`, ""},
		{"comment", `{"resourceType":"Patient" /* x */}`, "Patient"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.body), Limits{})
			if err == nil {
				t.Fatal("accepted")
			}
			if c.expr != "" {
				wantError(t, err, c.expr)
			} else {
				var fe *Error
				if !errors.As(err, &fe) {
					t.Fatalf("got %T, want *Error", err)
				}
			}
		})
	}
}

func TestParseKeepsNumbersVerbatim(t *testing.T) {
	r, err := Parse([]byte(`{"resourceType":"Observation","valueQuantity":{"value":1.50},"component":[{"valueInteger":1e2}]}`), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Object["valueQuantity"].(map[string]any)["value"]; got != json.Number("1.50") {
		t.Fatalf("value = %v", got)
	}
	want := `{"resourceType":"Observation","component":[{"valueInteger":1e2}],"valueQuantity":{"value":1.50}}`
	if got := string(r.Marshal()); got != want {
		t.Fatalf("Marshal = %s, want %s", got, want)
	}
}

func TestParseAllowsNullInPrimitiveArrays(t *testing.T) {
	body := `{"resourceType":"Patient","name":[{"given":["A",null],"_given":[null,{"extension":[{"url":"http://x","valueString":"b"}]}]}]}`
	r, err := Parse([]byte(body), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if err := newValidator(t).Validate(r); err != nil {
		t.Fatalf("valid primitive extension alignment rejected: %s", describe(err))
	}
}

// TestParseLimits covers hostile sizes (C4): each must be rejected quickly
// and without building the tree.
func TestParseLimits(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000)
	deepArr := `{"resourceType":"Patient","x":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + "}"
	huge := make([]byte, 50<<20)
	copy(huge, `{"resourceType":"Binary","data":"`)
	for i := 34; i < len(huge)-2; i++ {
		huge[i] = 'A'
	}
	copy(huge[len(huge)-2:], `"}`)
	longArr := `{"resourceType":"Patient","x":[` + strings.Repeat("1,", 20000) + "1]}"
	longStr := `{"resourceType":"Patient","x":"` + strings.Repeat("a", 2<<20) + `"}`
	cases := []struct {
		name string
		body []byte
		lim  Limits
	}{
		{"10000-deep objects", []byte(`{"resourceType":"Patient","x":` + deep + "}"), Limits{}},
		{"10000-deep arrays", []byte(deepArr), Limits{}},
		{"50 MB body", huge, Limits{}},
		{"long array", []byte(longArr), Limits{}},
		{"long string", []byte(longStr), Limits{MaxBytes: 8 << 20}},
		{"custom depth", []byte(`{"resourceType":"Patient","a":{"b":{}}}`), Limits{MaxDepth: 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			_, err := Parse(c.body, c.lim)
			elapsed := time.Since(start)
			runtime.ReadMemStats(&after)
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("got %v, want *Error", err)
			}
			if elapsed > 500*time.Millisecond {
				t.Errorf("took %v", elapsed)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
				t.Errorf("allocated %d bytes", alloc)
			}
		})
	}
}

func TestErrorNeverEchoesValues(t *testing.T) {
	secret := "Zebediah-Secret-Surname"
	bodies := []string{
		`{"resourceType":"Patient","name":[{"family":"` + secret + `","family":"x"}]}`,
		`{"resourceType":"Patient","birthDate":"` + secret + `"}`,
		`{"resourceType":"Patient","gender":"` + secret + `"}`,
		`{"resourceType":"Patient","` + secret + `":1}`,
		`{"resourceType":"Patient","managingOrganization":{"reference":"` + secret + `"}}`,
		`{"resourceType":"` + secret + `"}`,
	}
	v := newValidator(t)
	for _, b := range bodies {
		r, err := Parse([]byte(b), Limits{})
		if err == nil {
			err = v.Validate(r)
		}
		if err == nil {
			t.Fatalf("accepted %s", b)
		}
		var fe *Error
		errors.As(err, &fe)
		if strings.Contains(err.Error(), secret) || bytes.Contains(Outcome(fe.Issues...), []byte(secret)) {
			t.Errorf("error echoes the value: %s", describe(err))
		}
	}
}

func TestResourceHelpers(t *testing.T) {
	r, err := Parse([]byte(`{"resourceType":"Patient","id":"a","meta":{"versionId":"9","security":[{"code":"R"}]}}`), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	c := r.Clone()
	c.SetID("b")
	c.SetMeta("2", time.Date(2024, 2, 29, 10, 0, 0, 0, time.FixedZone("x", 3600)))
	if r.ID != "a" || r.Object["meta"].(map[string]any)["versionId"] != "9" {
		t.Fatal("Clone shares state with the original")
	}
	want := `{"resourceType":"Patient","id":"b","meta":{"lastUpdated":"2024-02-29T09:00:00.000Z","security":[{"code":"R"}],"versionId":"2"}}`
	if got := string(c.Marshal()); got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	if err := newValidator(t).Validate(c); err != nil {
		t.Fatal(describe(err))
	}
	for id, ok := range map[string]bool{"a": true, "A-1.b": true, strings.Repeat("x", 64): true,
		"": false, strings.Repeat("x", 65): false, "a_b": false, "a/b": false, "é": false,
		".": false, "..": false, "...": false, "a.": true, ".a": true, "..a..": true} {
		if ValidID(id) != ok {
			t.Errorf("ValidID(%q) = %v", id, !ok)
		}
	}
	if !IsResourceType("Patient") || IsResourceType("patient") || IsResourceType("Resource") || IsResourceType("DomainResource") {
		t.Error("IsResourceType wrong")
	}
}

func TestOutcome(t *testing.T) {
	out := Outcome(Issue{Severity: "error", Code: "invalid", Diagnostics: "bad", Expression: []string{"Patient.id"}})
	r, err := Parse(out, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if err := newValidator(t).Validate(r); err != nil {
		t.Fatal(describe(err))
	}
	if !bytes.Contains(out, []byte(`"expression":["Patient.id"]`)) {
		t.Fatalf("%s", out)
	}
	if r, err := Parse(Outcome(), Limits{}); err != nil || newValidator(t).Validate(r) != nil {
		t.Fatal("empty outcome is not a valid OperationOutcome")
	}
}
