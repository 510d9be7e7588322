package fhir

import (
	"encoding/json"
	"slices"
	"sort"
	"testing"
)

const subsetPatient = `{"resourceType":"Patient","id":"p1","meta":{"versionId":"1"},` +
	`"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},` +
	`"identifier":[{"system":"urn:mrn","value":"1"}],"active":true,"name":[{"family":"Doe"}],` +
	`"birthDate":"1970-01-01","_birthDate":{"extension":[{"url":"urn:x","valueString":"y"}]},` +
	`"deceasedBoolean":false,"maritalStatus":{"text":"M"},` +
	`"contact":[{"name":{"family":"Roe"},"modifierExtension":[{"url":"urn:m","valueBoolean":true}]}],` +
	`"communication":[{"language":{"text":"en"},"preferred":true}],` +
	`"link":[{"other":{"reference":"Patient/p2"},"type":"seealso","id":"l1"}]}`

func subsetKeys(t *testing.T, body []byte) (root []string, obj map[string]any) {
	t.Helper()
	if err := json.Unmarshal(body, &obj); err != nil {
		t.Fatal(err)
	}
	for k := range obj {
		root = append(root, k)
	}
	sort.Strings(root)
	return root, obj
}

// TestSubset: each _summary mode and _elements keep what R4 says, drop
// the rest, and tag the result SUBSETTED.
func TestSubset(t *testing.T) {
	elems := func(list string) Subset {
		s, bad, ok := ElementsOf("Patient", list)
		if !ok {
			t.Fatalf("ElementsOf(%q): %q refused", list, bad)
		}
		return s
	}
	mode := func(m string) Subset {
		s, ok := SummaryMode(m)
		if !ok {
			t.Fatalf("SummaryMode(%q) refused", m)
		}
		return s
	}
	for _, c := range []struct {
		name string
		s    Subset
		want []string
	}{
		{"_summary=true", mode("true"), []string{"_birthDate", "active", "birthDate", "deceasedBoolean", "id", "identifier", "link", "meta", "name", "resourceType"}},
		{"_summary=text", mode("text"), []string{"id", "meta", "resourceType", "text"}},
		{"_summary=data", mode("data"), []string{"_birthDate", "active", "birthDate", "communication", "contact", "deceasedBoolean", "id", "identifier", "link", "maritalStatus", "meta", "name", "resourceType"}},
		{"_elements=name,deceased", elems("name,deceased"), []string{"deceasedBoolean", "id", "meta", "name", "resourceType"}},
		{"_elements=Patient.birthDate", elems("Patient.birthDate"), []string{"_birthDate", "birthDate", "id", "meta", "resourceType"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := c.s.Apply([]byte(subsetPatient))
			if err != nil {
				t.Fatal(err)
			}
			got, obj := subsetKeys(t, out)
			if !slices.Equal(got, c.want) {
				t.Errorf("root %v, want %v", got, c.want)
			}
			meta := obj["meta"].(map[string]any)
			tags, _ := meta["tag"].([]any)
			if len(tags) != 1 || tags[0].(map[string]any)["code"] != SubsettedCode || meta["versionId"] != "1" {
				t.Errorf("meta %v: want versionId kept and one SUBSETTED tag", meta)
			}
		})
	}
	// _summary=true filters inside backbone elements by their own flags:
	// link keeps other and type (summary), not its id; an Observation's
	// component keeps code and value, not interpretation.
	out, err := mode("true").Apply([]byte(subsetPatient))
	if err != nil {
		t.Fatal(err)
	}
	_, obj := subsetKeys(t, out)
	link := obj["link"].([]any)[0].(map[string]any)
	if _, ok := link["id"]; ok || link["type"] != "seealso" || link["other"] == nil {
		t.Errorf("link %v: want other and type only", link)
	}
	obs, err := mode("true").Apply([]byte(`{"resourceType":"Observation","status":"final","code":{"text":"bp"},"note":[{"text":"n"}],` +
		`"component":[{"code":{"text":"sys"},"valueQuantity":{"value":120},"interpretation":[{"text":"high"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	got, o := subsetKeys(t, obs)
	comp := o["component"].([]any)[0].(map[string]any)
	if _, ok := comp["interpretation"]; ok || comp["code"] == nil || comp["valueQuantity"] == nil || slices.Contains(got, "note") {
		t.Errorf("Observation %s: want component code and value, no interpretation, no note", obs)
	}
	// Applying twice tags once.
	again, err := mode("true").Apply(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(out) {
		t.Errorf("a second application changed the subset:\n%s\n%s", out, again)
	}
	// The whole view returns the body itself.
	if whole, _ := SummaryMode("false"); !whole.Whole() {
		t.Error(`_summary=false is not the whole resource`)
	}
}

// TestElementsOfRefused: a name the type does not have, or a path below
// the root, is refused naming it.
func TestElementsOfRefused(t *testing.T) {
	for _, list := range []string{"nmae", "name.family", "Observation.value", "name,bogus"} {
		if _, bad, ok := ElementsOf("Patient", list); ok || bad == "" {
			t.Errorf("ElementsOf(Patient, %q) = ok %v, bad %q; want refused", list, ok, bad)
		}
	}
	if _, _, ok := ElementsOf("NoSuchType", "id"); ok {
		t.Error("an unknown type's elements accepted")
	}
	if _, ok := SummaryMode("count"); ok {
		t.Error("_summary=count is not a view of a resource")
	}
	// Every R4 resource type has a row.
	for _, typ := range ResourceTypes() {
		if tableOf(typ) == nil {
			t.Errorf("%s has no element table", typ)
		}
	}
}
