package fhir

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
)

// This file keeps the JSON-schema library pass Validate made before its
// checks moved into the walker, as the oracle the walker must agree with.

const schemaURL = "urn:ward:fhir:r4:schema"

// libraryValidator returns a Validator whose schema checks are made by the
// santhosh-tekuri/jsonschema library over the patched R4 schema, as Ward
// made them before, instead of by the walker.
func libraryValidator(t testing.TB) *Validator {
	t.Helper()
	root, err := loadSchema()
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft6)
	if err := c.AddResource(schemaURL, root); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	schemas := make(map[string]*jsonschema.Schema)
	v := newValidator(t)
	v.schemaPass = func(obj map[string]any, typ, path string, issues []Issue) []Issue {
		mu.Lock()
		s, ok := schemas[typ]
		if !ok {
			s, err = c.Compile(schemaURL + "#/definitions/" + typ)
			if err != nil {
				mu.Unlock()
				return append(issues, newIssue("exception", path, "schema unavailable"))
			}
			schemas[typ] = s
		}
		mu.Unlock()
		if err := s.Validate(obj); err != nil {
			var verr *jsonschema.ValidationError
			if !errors.As(err, &verr) {
				return append(issues, newIssue(CodeStructure, path, "invalid resource"))
			}
			issues = schemaIssues(verr, obj, path, issues)
		}
		return issues
	}
	return v
}

// schemaIssues maps the leaves of a schema validation error to issues.
func schemaIssues(verr *jsonschema.ValidationError, obj any, root string, issues []Issue) []Issue {
	if len(verr.Causes) > 0 {
		for _, c := range verr.Causes {
			issues = schemaIssues(c, obj, root, issues)
		}
		return issues
	}
	path := instancePath(obj, root, verr.InstanceLocation)
	switch k := verr.ErrorKind.(type) {
	case *kind.AdditionalProperties:
		for _, p := range k.Properties {
			issues = append(issues, newIssue(CodeStructure, path+"."+safeKey(p), "unknown element"))
		}
	case *kind.Required:
		for _, p := range k.Missing {
			issues = append(issues, newIssue(CodeRequired, path+"."+safeKey(p), "missing required element"))
		}
	case *kind.Type:
		issues = append(issues, newIssue(CodeStructure, path, "wrong JSON type: expected "+strings.Join(k.Want, " or ")+", got "+k.Got))
	case *kind.Pattern:
		issues = append(issues, newIssue(CodeValue, path, "invalid "+schemaDefName(verr.SchemaURL)+" value"))
	case *kind.Enum:
		issues = append(issues, newIssue(CodeValue, path, "value is not one of the allowed codes"))
	case *kind.Const:
		issues = append(issues, newIssue(CodeValue, path, "value is not the one required here"))
	case *kind.FalseSchema:
		issues = append(issues, newIssue(CodeStructure, path, "element not allowed"))
	default:
		issues = append(issues, newIssue(CodeStructure, path, "violates schema keyword "+strings.Join(verr.ErrorKind.KeywordPath(), "/")))
	}
	return issues
}

// schemaDefName extracts the definition name from a schema location such as
// "urn:...#/definitions/dateTime/pattern".
func schemaDefName(loc string) string {
	_, frag, ok := strings.Cut(loc, "#/definitions/")
	if !ok {
		return "element"
	}
	name, _, _ := strings.Cut(frag, "/")
	return safeKey(name)
}

// instancePath renders a JSON pointer's tokens as a FHIRPath-like path,
// using the instance to tell array indexes from member names.
func instancePath(v any, root string, loc []string) string {
	var b strings.Builder
	b.WriteString(root)
	for _, tok := range loc {
		switch cur := v.(type) {
		case []any:
			b.WriteString("[" + tok + "]")
			if i, err := strconv.Atoi(tok); err == nil && i >= 0 && i < len(cur) {
				v = cur[i]
			} else {
				v = nil
			}
		case map[string]any:
			b.WriteString("." + safeKey(tok))
			v = cur[tok]
		default:
			b.WriteString("." + safeKey(tok))
			v = nil
		}
	}
	return b.String()
}

// corpusResource is one resource of the differential corpus.
type corpusResource struct {
	name   string // file, and entry index for Synthea
	r      *Resource
	mutate bool // whether to derive mutants from it
}

// differentialCorpus returns every resource of the shared FHIR data: the
// Synthea bundles' entries, the HL7 examples and the validator cases. The
// examples and validator cases are all mutated, and every mutateEvery-th
// Synthea entry, to bound the test's time.
func differentialCorpus(t *testing.T, mutateEvery int) []corpusResource {
	var out []corpusResource
	for _, f := range sortedGlob(t, dataDir(t, "synthea"), "*.json") {
		r, err := Parse(readFile(t, f), bigLimits)
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(f), err)
		}
		b, err := ParseBundle(r)
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(f), err)
		}
		for i, e := range b.Entries {
			if e.Resource == nil {
				continue
			}
			out = append(out, corpusResource{
				name:   filepath.Base(f) + "#" + strconv.Itoa(i),
				r:      e.Resource,
				mutate: len(out)%mutateEvery == 0,
			})
		}
	}
	for _, sub := range []string{"examples", "validator-cases/cases"} {
		for _, f := range sortedGlob(t, dataDir(t, sub), "*.json") {
			r, err := Parse(readFile(t, f), bigLimits)
			if err != nil {
				continue // cases that Parse rejects never reach Validate
			}
			out = append(out, corpusResource{name: sub + "/" + filepath.Base(f), r: r, mutate: true})
		}
	}
	// Trees built in Go rather than parsed hold Go numbers.
	for i, n := range []any{2, int64(-3), 1.5, float32(0), uint8(7)} {
		obj := map[string]any{
			"resourceType":         "Patient",
			"active":               n,
			"multipleBirthInteger": n,
			"name":                 []any{map[string]any{"given": []any{n, "x"}}},
			"gender":               n,
		}
		out = append(out, corpusResource{name: "Go number " + strconv.Itoa(i), r: &Resource{Type: "Patient", Object: obj}, mutate: true})
	}
	return out
}

func sortedGlob(t *testing.T, dir, pattern string) []string {
	files, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	return files
}

// site is where a value sits in a resource: the keys and indexes leading
// to it.
type site []any // string keys, int indexes

// sites lists every value below v (v itself excluded) in a deterministic
// order.
func sites(v any, at site, out []site) []site {
	switch v := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			s := append(slices.Clip(at), k)
			out = sites(v[k], s, append(out, s))
		}
	case []any:
		for i, e := range v {
			s := append(slices.Clip(at), i)
			out = sites(e, s, append(out, s))
		}
	}
	return out
}

func (s site) String() string {
	var b strings.Builder
	for _, step := range s {
		switch step := step.(type) {
		case string:
			b.WriteString("." + safeKey(step))
		case int:
			b.WriteString("[" + strconv.Itoa(step) + "]")
		}
	}
	return b.String()
}

// get returns the value at s in root.
func (s site) get(root map[string]any) any {
	var v any = root
	for _, step := range s {
		switch step := step.(type) {
		case string:
			v = v.(map[string]any)[step]
		case int:
			v = v.([]any)[step]
		}
	}
	return v
}

// set replaces the value at s in root with val, or deletes the member at s
// when del is true.
func (s site) set(root map[string]any, val any, del bool) {
	parent := site(s[:len(s)-1]).get(root)
	switch step := s[len(s)-1].(type) {
	case string:
		if del {
			delete(parent.(map[string]any), step)
		} else {
			parent.(map[string]any)[step] = val
		}
	case int:
		parent.([]any)[step] = val
	}
}

// mutation changes the value at a site. It returns false when it does not
// apply to that value.
type mutation struct {
	name  string
	apply func(root map[string]any, s site) bool
}

func replaceWith(pred func(v any, member bool) bool, repl func(v any) any) func(map[string]any, site) bool {
	return func(root map[string]any, s site) bool {
		_, member := s[len(s)-1].(string)
		v := s.get(root)
		if !pred(v, member) {
			return false
		}
		s.set(root, repl(v), false)
		return true
	}
}

func isString(v any, _ bool) bool { _, ok := v.(string); return ok }
func isObject(v any, _ bool) bool { _, ok := v.(map[string]any); return ok }
func isArray(v any, _ bool) bool  { _, ok := v.([]any); return ok }
func isScalar(v any, _ bool) bool {
	switch v.(type) {
	case string, bool, json.Number:
		return true
	}
	return false
}
func isMember(_ any, member bool) bool { return member }
func isItem(_ any, member bool) bool   { return !member }
func constant(c any) func(any) any     { return func(any) any { return c } }
func stringWith(c string) mutation {
	return mutation{"string " + strconv.Quote(c), replaceWith(isString, constant(c))}
}

// mutations are the changes the differential test makes, one at a time.
var mutations = []mutation{
	{"drop member", func(root map[string]any, s site) bool {
		if _, ok := s[len(s)-1].(string); !ok {
			return false
		}
		s.set(root, nil, true)
		return true
	}},
	{"add unknown element", replaceWith(isObject, func(v any) any {
		m := cloneMap(v.(map[string]any))
		m["wardUnknown"] = "x"
		m["9 not a name"] = true
		return m
	})},
	{"string for object", replaceWith(isObject, constant("x"))},
	{"object for scalar", replaceWith(isScalar, constant(map[string]any{"a": "b"}))},
	{"number for scalar", replaceWith(isScalar, constant(json.Number("1")))},
	{"decimal for scalar", replaceWith(isScalar, constant(json.Number("-1.5e3")))},
	{"boolean for scalar", replaceWith(isScalar, constant(true))},
	{"string for boolean or number", replaceWith(func(v any, _ bool) bool {
		switch v.(type) {
		case bool, json.Number:
			return true
		}
		return false
	}, constant("true"))},
	{"array for singleton", replaceWith(func(v any, member bool) bool {
		_, arr := v.([]any)
		return member && !arr
	}, func(v any) any { return []any{v} })},
	{"singleton for array", replaceWith(func(v any, _ bool) bool {
		a, ok := v.([]any)
		return ok && len(a) > 0
	}, func(v any) any { return v.([]any)[0] })},
	{"empty array", replaceWith(isArray, constant([]any{}))},
	{"empty object", replaceWith(isObject, constant(map[string]any{}))},
	{"null item", replaceWith(isItem, constant(nil))},
	{"null member", replaceWith(isMember, constant(nil))},
	{"array of null", replaceWith(isMember, constant([]any{nil}))},
	stringWith(""),
	stringWith("a  b"),
	stringWith(" code with spaces "),
	stringWith("%%%"),
	stringWith("not-a-code"),
	stringWith("2020-13-45"),
	stringWith("2021-02-30"),
	stringWith("2021-02-03T10:00:00"),
	stringWith("12:61:00"),
	stringWith("bad_id!"),
	stringWith("urn:uuid:1234"),
	stringWith("Patient/.."),
	stringWith("\u00a0"),
	// At the root, Resource.Type keeps the type validated against: the
	// resourceType constant is what fails.
	{"resourceType of another type", func(root map[string]any, s site) bool {
		if s[len(s)-1] != "resourceType" {
			return false
		}
		t, _ := s.get(root).(string)
		other := "Organization"
		if t == other {
			other = "Patient"
		}
		s.set(root, other, false)
		return true
	}},
	{"unknown resourceType", func(root map[string]any, s site) bool {
		if s[len(s)-1] != "resourceType" {
			return false
		}
		s.set(root, "Bogus", false)
		return true
	}},
}

// TestWalkerMatchesSchemaLibrary is the proof that the walker makes the
// schema's checks exactly as the JSON-schema library did: over every
// resource of the shared data and mutants of them (wrong JSON types,
// missing and unknown elements, bad patterns and codes, nulls, empty
// values), Validate must return the same issues, in the same order, with
// either.
func TestWalkerMatchesSchemaLibrary(t *testing.T) {
	mutateEvery, perMutation := 20, 2
	if testing.Short() {
		mutateEvery, perMutation = 100, 1
	}
	corpus := differentialCorpus(t, mutateEvery)
	walkerV, libraryV := newValidator(t), libraryValidator(t)
	// noSchemaV makes no schema checks at all: the comparison must tell it
	// from the library, or it proves nothing.
	noSchemaV := newValidator(t)
	noSchemaV.schemaPass = func(_ map[string]any, _, _ string, issues []Issue) []Issue { return issues }
	var mutants, mutantsWithIssues, sensed, failures int
	made := make(map[string]int) // mutants per mutation
	compare := func(name string, r *Resource, mutant bool) {
		got, want := issuesOf(walkerV.Validate(r)), issuesOf(libraryV.Validate(r))
		if mutant {
			mutants++
			if len(want) > 0 {
				mutantsWithIssues++
			}
			if mutants%25 == 0 && !reflect.DeepEqual(issuesOf(noSchemaV.Validate(r)), want) {
				sensed++
			}
		}
		if reflect.DeepEqual(got, want) {
			return
		}
		failures++
		if failures <= 20 {
			t.Errorf("%s: walker and schema library disagree\nwalker:%s\nlibrary:%s", name, describeIssues(got), describeIssues(want))
		}
	}
	for i, c := range corpus {
		compare(c.name, c.r, false)
		if !c.mutate {
			continue
		}
		all := sites(c.r.Object, nil, nil)
		rng := rand.New(rand.NewPCG(uint64(i), 0x5eed))
		for _, m := range mutations {
			// Try sites in a random order until perMutation mutants are made.
			n := 0
			for _, j := range rng.Perm(len(all)) {
				if n == perMutation {
					break
				}
				mr := c.r.Clone()
				if !m.apply(mr.Object, all[j]) {
					continue
				}
				n++
				made[m.name]++
				compare(c.name+" "+m.name+" at "+all[j].String(), mr, true)
			}
		}
	}
	if failures > 0 {
		t.Errorf("%d of %d resources disagree", failures, len(corpus)+mutants)
	}
	t.Logf("compared %d resources from the shared data and %d mutants (%d with issues); schema checks changed the issues of %d of %d mutants sampled",
		len(corpus), mutants, mutantsWithIssues, sensed, mutants/25)
	for _, m := range mutations {
		if made[m.name] == 0 {
			t.Errorf("mutation %q made no mutant", m.name)
		}
	}
	if mutantsWithIssues < mutants/2 {
		t.Errorf("only %d of %d mutants have issues: the mutations do not exercise the checks", mutantsWithIssues, mutants)
	}
	if sensed < mutants/25/4 {
		t.Errorf("schema checks changed the issues of only %d of %d mutants sampled: the comparison does not see them", sensed, mutants/25)
	}
}

func issuesOf(err error) []Issue {
	if err == nil {
		return nil
	}
	var fe *Error
	if !errors.As(err, &fe) {
		return []Issue{{Diagnostics: fmt.Sprintf("not an *Error: %T", err)}}
	}
	return fe.Issues
}

func describeIssues(issues []Issue) string {
	if len(issues) == 0 {
		return " none"
	}
	var b strings.Builder
	for _, is := range issues {
		b.WriteString("\n\t" + is.Code + " " + strings.Join(is.Expression, ",") + ": " + is.Diagnostics)
	}
	return b.String()
}

// TestSchemaDiagnostics pins the diagnostics of each kind of schema issue,
// as both the walker and the schema library give them.
func TestSchemaDiagnostics(t *testing.T) {
	cases := []struct {
		name, body, expr, diag string
	}{
		{"unknown element", `{"resourceType":"Patient","nickname":"x"}`, "Patient.nickname", "unknown element"},
		{"unknown element, unsafe name", `{"resourceType":"Patient","a b":"x"}`, "Patient.?", "unknown element"},
		{"missing required element", `{"resourceType":"Patient","link":[{"type":"seealso"}]}`, "Patient.link[0].other", "missing required element"},
		{"primitive given a number", `{"resourceType":"Patient","active":1}`, "Patient.active", "wrong JSON type: expected null or boolean, got number"},
		{"primitive given an object", `{"resourceType":"Patient","birthDate":{"a":"b"}}`, "Patient.birthDate", "wrong JSON type: expected null or string, got object"},
		{"array given a string", `{"resourceType":"Patient","name":"x"}`, "Patient.name", "wrong JSON type: expected array, got string"},
		{"object given a string", `{"resourceType":"Observation","status":"final","code":"x"}`, "Observation.code", "wrong JSON type: expected object, got string"},
		{"object given an array", `{"resourceType":"Patient","maritalStatus":[{"text":"x"}]}`, "Patient.maritalStatus", "wrong JSON type: expected object, got array"},
		{"null for an object", `{"resourceType":"Patient","name":[null]}`, "Patient.name[0]", "wrong JSON type: expected object, got null"},
		{"inline primitive given a string", `{"resourceType":"Patient","multipleBirthInteger":"2"}`, "Patient.multipleBirthInteger", "wrong JSON type: expected number, got string"},
		{"pattern", `{"resourceType":"Patient","id":"bad_id"}`, "Patient.id", "invalid id value"},
		{"inline pattern", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueDateTime":"2020-13"}`, "Observation.valueDateTime", "invalid Observation value"},
		{"enum", `{"resourceType":"Patient","gender":"robot"}`, "Patient.gender", "value is not one of the allowed codes"},
		{"enum given a number", `{"resourceType":"Patient","gender":1}`, "Patient.gender", "value is not one of the allowed codes"},
	}
	for _, v := range []struct {
		name string
		v    *Validator
	}{{"walker", newValidator(t)}, {"library", libraryValidator(t)}} {
		for _, c := range cases {
			r, err := Parse([]byte(c.body), Limits{})
			if err != nil {
				t.Fatalf("%s: parse: %v", c.name, err)
			}
			if !slices.ContainsFunc(issuesOf(v.v.Validate(r)), func(is Issue) bool {
				return slices.Equal(is.Expression, []string{c.expr}) && is.Diagnostics == c.diag
			}) {
				t.Errorf("%s, %s: no %q at %s:%s", v.name, c.name, c.diag, c.expr, describeIssues(issuesOf(v.v.Validate(r))))
			}
		}
		// The resourceType constant: a tree whose resourceType is not the
		// type it is validated as.
		r := &Resource{Type: "Patient", Object: map[string]any{"resourceType": "Organization"}}
		want := newIssue(CodeValue, "Patient.resourceType", "value is not the one required here")
		if !slices.ContainsFunc(issuesOf(v.v.Validate(r)), func(is Issue) bool { return reflect.DeepEqual(is, want) }) {
			t.Errorf("%s, resourceType constant: no %q:%s", v.name, want.Diagnostics, describeIssues(issuesOf(v.v.Validate(r))))
		}
	}
}
