package search

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func newRegistry(t testing.TB) *Registry {
	t.Helper()
	r, err := NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// minSupported is the number of (base, code) entries this evaluator
// supports; it may only grow.
const minSupported = 1700

func TestRegistrySupportedCount(t *testing.T) {
	r := newRegistry(t)
	supported, unsupported := 0, 0
	seen := make(map[*Param]bool)
	for _, m := range r.byType {
		for _, p := range m {
			seen[p] = true
		}
	}
	for _, p := range r.common {
		seen[p] = true
	}
	for p := range seen {
		if p.Supported {
			supported++
		} else {
			unsupported++
			if p.Reason == "" {
				t.Errorf("%s.%s unsupported without a reason", p.Base, p.Code)
			}
		}
	}
	t.Logf("supported %d, unsupported %d", supported, unsupported)
	if supported < minSupported {
		t.Errorf("supported parameters = %d, want at least %d", supported, minSupported)
	}
	if len(r.Unsupported()) != unsupported {
		t.Errorf("Unsupported() lists %d, counted %d", len(r.Unsupported()), unsupported)
	}
	for _, p := range r.Unsupported() {
		if p.Type != TypeComposite && p.Type != TypeSpecial && p.Expression != "" {
			t.Errorf("unexpectedly unsupported: %s.%s (%s): %s", p.Base, p.Code, p.Expression, p.Reason)
		}
	}
}

func TestRegistryLookup(t *testing.T) {
	r := newRegistry(t)
	tests := []struct {
		typ, code   string
		ok          bool
		ptype       Type
		identifying bool
		expr        string
	}{
		{"Patient", "name", true, TypeString, true, "Patient.name"},
		{"Patient", "birthdate", true, TypeDate, true, "Patient.birthDate"},
		{"Patient", "address-city", true, TypeString, true, "Patient.address.city"},
		{"Patient", "gender", true, TypeToken, false, "Patient.gender"},
		{"Practitioner", "email", true, TypeToken, true, "Practitioner.telecom.where(system='email')"},
		{"Observation", "identifier", true, TypeToken, true, "Observation.identifier"},
		{"Observation", "code", true, TypeToken, false, "Observation.code"},
		{"Observation", "value-quantity", true, TypeQuantity, false, "(Observation.value as Quantity) | (Observation.value as SampledData)"},
		{"Observation", "patient", true, TypeReference, false, "Observation.subject.where(resolve() is Patient)"},
		{"Organization", "name", true, TypeString, false, "Organization.name | Organization.alias"},
		{"Observation", "_id", true, TypeToken, false, "Resource.id"},
		{"Binary", "_lastUpdated", true, TypeDate, false, "Resource.meta.lastUpdated"},
		{"Observation", "nope", false, "", false, ""},
		{"NoSuchType", "_id", false, "", false, ""},
	}
	for _, tc := range tests {
		p, ok := r.Param(tc.typ, tc.code)
		if ok != tc.ok {
			t.Errorf("Param(%s, %s) ok = %v", tc.typ, tc.code, ok)
			continue
		}
		if !ok {
			continue
		}
		if p.Type != tc.ptype || p.Blind != tc.identifying || p.Expression != tc.expr || !p.Supported {
			t.Errorf("Param(%s, %s) = %+v", tc.typ, tc.code, p)
		}
	}
	ps := r.Params("Patient")
	if !slices.IsSortedFunc(ps, func(a, b *Param) int { return strings.Compare(a.Code, b.Code) }) {
		t.Error("Params not sorted by code")
	}
	if !slices.ContainsFunc(ps, func(p *Param) bool { return p.Code == "_id" }) {
		t.Error("Params(Patient) lacks _id")
	}
	if p, _ := r.Param("Observation", "patient"); !slices.Equal(p.Targets, []string{"Patient", "Group"}) {
		t.Errorf("Observation.patient targets = %v", p.Targets)
	}
}

func TestExtractExamples(t *testing.T) {
	r := newRegistry(t)
	n := 0
	for _, f := range exampleFiles(t) {
		m := readJSON(t, f)
		resources := []map[string]any{m}
		if entries, ok := m["entry"].([]any); ok && m["resourceType"] == "Bundle" {
			for _, e := range entries {
				if res, ok := e.(map[string]any)["resource"].(map[string]any); ok {
					resources = append(resources, res)
				}
			}
		}
		for _, res := range resources {
			rt, _ := res["resourceType"].(string)
			vs, err := r.Extract(rt, res)
			if err != nil {
				t.Errorf("%s: %v", filepath.Base(f), err)
			}
			n += len(vs)
		}
	}
	if n == 0 {
		t.Error("no values extracted")
	}
}

func TestExtractSynthea(t *testing.T) {
	r := newRegistry(t)
	files := syntheaFiles(t)
	if testing.Short() {
		files = files[:4]
	}
	for _, f := range files {
		for _, res := range syntheaResources(t, f) {
			rt := res["resourceType"].(string)
			vs, err := r.Extract(rt, res)
			if err != nil {
				t.Errorf("%s %s: %v", filepath.Base(f), rt, err)
				continue
			}
			if !slices.ContainsFunc(vs, func(v Value) bool { return v.Param == "_id" }) {
				t.Errorf("%s %s: no _id value", filepath.Base(f), rt)
			}
		}
	}
}

func unix(s string) float64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return float64(t.UnixMicro()) / 1e6
}

// firstOf returns the first resource of type rt in the first Synthea bundle.
func firstOf(t testing.TB, rt string, pred func(map[string]any) bool) map[string]any {
	t.Helper()
	files := syntheaFiles(t)
	for _, res := range syntheaResources(t, files[0]) {
		if res["resourceType"] == rt && (pred == nil || pred(res)) {
			return res
		}
	}
	t.Fatalf("no %s in %s", rt, files[0])
	return nil
}

func TestExtractSyntheaValues(t *testing.T) {
	r := newRegistry(t)
	patient := firstOf(t, "Patient", nil)
	pid := "Patient/" + patient["id"].(string)
	obs := firstOf(t, "Observation", func(m map[string]any) bool { _, ok := m["valueQuantity"]; return ok })
	enc := firstOf(t, "Encounter", nil)
	med := firstOf(t, "MedicationRequest", nil)
	tests := []struct {
		name string
		rt   string
		res  map[string]any
		want Value
	}{
		{"family", "Patient", patient, Value{Param: "family", Type: TypeString, Blind: true, Text: "koepp", Exact: "Koepp"}},
		{"given", "Patient", patient, Value{Param: "given", Type: TypeString, Blind: true, Text: "abdul", Exact: "Abdul"}},
		{"name combined", "Patient", patient, Value{Param: "name", Type: TypeString, Blind: true, Text: "mr. abdul koepp", Exact: "Mr. Abdul Koepp"}},
		{"birthdate", "Patient", patient, Value{Param: "birthdate", Type: TypeDate, Blind: true, Lo: unix("1956-08-03T00:00:00Z"), Hi: unix("1956-08-03T23:59:59.999999Z")}},
		{"ssn", "Patient", patient, Value{Param: "identifier", Type: TypeToken, Blind: true, System: "http://hl7.org/fhir/sid/us-ssn", Code: "999-22-1962"}},
		{"phone", "Patient", patient, Value{Param: "phone", Type: TypeToken, Blind: true, System: "phone", Code: "555-978-4581"}},
		{"gender", "Patient", patient, Value{Param: "gender", Type: TypeToken, Code: "male"}},
		{"deceased", "Patient", patient, Value{Param: "deceased", Type: TypeToken, Code: "false"}},
		{"obs code", "Observation", obs, Value{Param: "code", Type: TypeToken, System: "http://loinc.org", Code: "8302-2"}},
		{"obs subject", "Observation", obs, Value{Param: "subject", Type: TypeReference, Text: pid, RefType: "Patient"}},
		{"obs patient", "Observation", obs, Value{Param: "patient", Type: TypeReference, Text: pid, RefType: "Patient"}},
		{"obs date", "Observation", obs, Value{Param: "date", Type: TypeDate, Lo: unix("2011-10-14T23:37:54Z"), Hi: unix("2011-10-14T23:37:54.999999Z")}},
		{"obs value", "Observation", obs, Value{Param: "value-quantity", Type: TypeQuantity, System: "http://unitsofmeasure.org", Code: "cm", Lo: 176.35499866729558, Hi: 176.35499866729558}},
		{"enc period", "Encounter", enc, Value{Param: "date", Type: TypeDate, Lo: unix("1991-06-07T23:37:54Z"), Hi: unix("1991-06-07T23:52:54.999999Z")}},
		{"enc class", "Encounter", enc, Value{Param: "class", Type: TypeToken, System: "http://terminology.hl7.org/CodeSystem/v3-ActCode", Code: "AMB"}},
		{"med code", "MedicationRequest", med, Value{Param: "code", Type: TypeToken, System: "http://www.nlm.nih.gov/research/umls/rxnorm", Code: "310965"}},
		{"med patient", "MedicationRequest", med, Value{Param: "patient", Type: TypeReference, Text: pid, RefType: "Patient"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vs, err := r.Extract(tc.rt, tc.res)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(vs, tc.want) {
				var got []Value
				for _, v := range vs {
					if v.Param == tc.want.Param {
						got = append(got, v)
					}
				}
				t.Errorf("missing %+v; %s values: %+v", tc.want, tc.want.Param, got)
			}
		})
	}
}
