package fhir

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/fhir/fhirpath"
)

// TestConstraintRejects: each case breaks one R4 constraint, which must be
// reported on the element that carries it, by key, without the value.
func TestConstraintRejects(t *testing.T) {
	const ra = `"resourceType":"RiskAssessment","status":"final","subject":{"reference":"Patient/1"}`
	const enc = `"resourceType":"Encounter","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"}`
	cases := []struct {
		name, body string
		expr, key  string // "" when the resource must be accepted
	}{
		{"probability over 100", `{` + ra + `,"prediction":[{"probabilityDecimal":101}]}`, "RiskAssessment.prediction[0]", "ras-2"},
		{"probability of 100", `{` + ra + `,"prediction":[{"probabilityDecimal":100}]}`, "", ""},
		{"probability range not in percent", `{` + ra + `,"prediction":[{"probabilityRange":{"low":{"value":1,"code":"mg","system":"http://unitsofmeasure.org"}}}]}`, "RiskAssessment.prediction[0].probabilityRange", "ras-1"},
		{"period ends before it starts", `{` + enc + `,"period":{"start":"2020-01-02T00:00:00Z","end":"2020-01-01T00:00:00Z"}}`, "Encounter.period", "per-1"},
		{"period in order across zones", `{` + enc + `,"period":{"start":"2020-01-01T10:00:00+02:00","end":"2020-01-01T09:00:00Z"}}`, "", ""},
		{"period out of order across zones", `{` + enc + `,"period":{"start":"2020-01-01T10:00:00Z","end":"2020-01-01T11:00:00+02:00"}}`, "Encounter.period", "per-1"},
		{"period of different precisions", `{` + enc + `,"period":{"start":"2020-01-01","end":"2020-01-01T09:00:00Z"}}`, "", ""},
		{"value and data absent reason", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueString":"v","dataAbsentReason":{"text":"x"}}`, "Observation", "obs-6"},
		{"extension with value and extensions", `{"resourceType":"Patient","extension":[{"url":"http://example.org/x","valueString":"v","extension":[{"url":"y","valueString":"z"}]}]}`, "Patient.extension[0]", "ext-1"},
		{"organization without name or identifier", `{"resourceType":"Organization","active":true}`, "Organization", "org-1"},
		{"patient contact with no details", `{"resourceType":"Patient","contact":[{"gender":"male"}]}`, "Patient.contact[0]", "pat-1"},
		{"total in a collection bundle", `{"resourceType":"Bundle","type":"collection","total":1}`, "Bundle", "bdl-1"},
		{"range low above high", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueRange":{"low":{"value":5,"code":"mg","system":"http://unitsofmeasure.org"},"high":{"value":4,"code":"mg","system":"http://unitsofmeasure.org"}}}`, "Observation.valueRange", "rng-2"},
		{"quantity code without system", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1,"code":"mg"}}`, "Observation.valueQuantity", "qty-3"},
		{"element of an id alone", `{"resourceType":"Patient","name":[{"id":"n1"}]}`, "Patient.name[0]", "ele-1"},
		{"primitive of an id alone", `{"resourceType":"Patient","_active":{"id":"a1"}}`, "Patient._active", "ele-1"},
		{"contained resource nobody refers to", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","name":"x"}]}`, "Patient", "dom-3"},
		{"contained resource with a security label", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","name":"x","meta":{"security":[{"system":"urn:x","code":"y"}]}}],"managingOrganization":{"reference":"#o"}}`, "Patient", "dom-5"},
		{"contained resource referred to", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","name":"x"}],"managingOrganization":{"reference":"#o"}}`, "", ""},
		{"questionnaire enableWhen without behaviour", `{"resourceType":"Questionnaire","status":"active","item":[{"linkId":"a","type":"boolean"},{"linkId":"b","type":"string","enableWhen":[{"question":"a","operator":"=","answerBoolean":true},{"question":"a","operator":"exists","answerBoolean":true},{"question":"a","operator":"!=","answerBoolean":false}]}]}`, "Questionnaire.item[1]", "que-12"},
		{"constraint in a bundle entry", `{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:8c2b1f0e-0d0a-4d5e-9a7e-111111111111","resource":{` + ra + `,"prediction":[{"probabilityDecimal":150}]}}]}`, "Bundle.entry[0].resource.prediction[0]", "ras-2"},
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
			fe := err.(*Error)
			for _, is := range fe.Issues {
				if slices.Contains(is.Expression, c.expr) && is.Code == CodeInvariant && strings.Contains(is.Diagnostics, "constraint "+c.key+" ") {
					for _, digit := range []string{"101", "150", "2020"} {
						if strings.Contains(is.Diagnostics, digit) {
							t.Errorf("diagnostics echo a value: %s", is.Diagnostics)
						}
					}
					return
				}
			}
			t.Fatalf("no %s issue at %s: %s", c.key, c.expr, describe(err))
		})
	}
}

// A resource shaped to make dom-3 (every contained resource against every
// reference of the resource) quadratic is refused as too costly, in
// bounded time, rather than accepted unchecked.
func TestConstraintBudget(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"resourceType":"Patient","contained":[`)
	const n = 3000
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"resourceType":"Organization","id":"o%d","name":"x"}`, i)
	}
	b.WriteString(`],"generalPractitioner":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"reference":"#o%d"}`, i)
	}
	b.WriteString(`]}`)
	r, err := Parse([]byte(b.String()), bigLimits)
	if err != nil {
		t.Fatal(err)
	}
	err = newValidator(t).Validate(r)
	var fe *Error
	if !errors.As(err, &fe) {
		t.Fatalf("accepted: %v", err)
	}
	for _, is := range fe.Issues {
		if is.Code == CodeTooCostly && strings.Contains(is.Diagnostics, "dom-3") {
			return
		}
	}
	t.Fatalf("no too-costly issue: %s", describe(err))
}

// forEachSharedResource calls fn with every HL7 example and every Synthea
// resource.
func forEachSharedResource(t *testing.T, fn func(name string, r *Resource)) {
	t.Helper()
	for _, f := range fhirtestFiles(t, "examples") {
		r, err := Parse(readFile(t, f), bigLimits)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		fn(filepath.Base(f), r)
	}
	for _, f := range fhirtestFiles(t, "synthea") {
		r, err := Parse(readFile(t, f), bigLimits)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		b, err := ParseBundle(r)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range b.Entries {
			fn(fmt.Sprintf("%s entry %d", filepath.Base(f), i), e.Resource)
		}
	}
}

func fhirtestFiles(t *testing.T, sub string) []string {
	files, err := filepath.Glob(filepath.Join(dataDir(t, sub), "*.json"))
	if err != nil || len(files) == 0 {
		t.Skipf("no %s data", sub)
	}
	sort.Strings(files)
	return files
}

// TestConstraintsEvaluateCleanly: on the HL7 examples and Synthea, no
// constraint fails to evaluate (an evaluation error leaves a constraint
// unchecked, so it must not happen on real data).
func TestConstraintsEvaluateCleanly(t *testing.T) {
	v := newValidator(t)
	n := 0
	forEachSharedResource(t, func(name string, r *Resource) {
		n++
		_, errs := v.validate(r)
		for _, e := range errs {
			t.Errorf("%s: %s", name, e)
		}
	})
	t.Logf("%d resources", n)
}

// TestEle1Native: the Go evaluation of ele-1 agrees with the engine's on
// every element of the HL7 examples.
func TestEle1Native(t *testing.T) {
	e, err := fhirpath.Compile(ele1, nil)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			n := fhirpath.NewNode(v, "Element", "Element", "")
			want, _, err := e.EvaluateBool(nil, n)
			if err != nil {
				t.Fatal(err)
			}
			if got := ele1Native(n); got != want {
				t.Fatalf("ele-1 native %v, engine %v on %v", got, want, v)
			}
			checked++
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	for _, f := range fhirtestFiles(t, "examples") {
		r, err := Parse(readFile(t, f), bigLimits)
		if err != nil {
			t.Fatal(err)
		}
		walk(r.Object)
	}
	for _, obj := range []map[string]any{{"id": "x"}, {}} {
		walk(obj)
	}
	t.Logf("%d elements", checked)
}

var updateConstraintDoc = flag.Bool("update-constraints", false, "rewrite docs/VALIDATION-CONSTRAINTS.md")

// TestConstraintDoc: docs/VALIDATION-CONSTRAINTS.md lists every constraint
// of the R4 base resources and data types: which are evaluated on write,
// and the others with the reason. Refresh with:
//
//	go test ./internal/fhir -run ConstraintDoc -update-constraints
func TestConstraintDoc(t *testing.T) {
	v := newValidator(t)
	evaluated, skipped := v.ConstraintReport()
	var b bytes.Buffer
	b.WriteString("# R4 constraints and what Ward does with them\n\n")
	b.WriteString("Generated by `go test ./internal/fhir -run ConstraintDoc -update-constraints`\n")
	b.WriteString("from the constraints of the R4 StructureDefinitions embedded in Ward; the\n")
	b.WriteString("test fails when this file is out of date. See VALIDATION.md.\n\n")
	total := len(evaluated) + len(skipped)
	fmt.Fprintf(&b, "Of the spec's **%d** constraints (`key@where defined`), Ward evaluates **%d** on every write;\n", total, len(evaluated))
	fmt.Fprintf(&b, "**%d** are not evaluated, each for the reason given.\n\n", len(skipped))
	b.WriteString("## Not evaluated\n\n| constraint | reason |\n|---|---|\n")
	keys := make([]string, 0, len(skipped))
	for k := range skipped {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "| `%s` | %s |\n", k, skipped[k])
	}
	b.WriteString("\n## Evaluated on every write\n\n")
	for _, k := range evaluated {
		fmt.Fprintf(&b, "`%s` ", k)
	}
	b.WriteString("\n")
	path := filepath.Join("..", "..", "docs", "VALIDATION-CONSTRAINTS.md")
	if *updateConstraintDoc {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(old, b.Bytes()) {
		t.Errorf("%s is out of date; run: go test ./internal/fhir -run ConstraintDoc -update-constraints", path)
	}
}
