package fhirpath

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

func decode(t testing.TB, s string) map[string]any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

const observation = `{
 "resourceType": "Observation", "id": "o1", "status": "final",
 "_status": {"extension": [{"url": "http://example.org/x", "valueString": "y"}]},
 "contained": [{"resourceType": "Practitioner", "id": "p1"}],
 "performer": [{"reference": "#p1"}, {"reference": "Practitioner/2"}],
 "code": {"coding": [{"system": "http://loinc.org", "code": "1-8"}, {"system": "http://snomed.info/sct", "code": "123"}], "text": "x"},
 "valueQuantity": {"value": 101, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"},
 "effectivePeriod": {"start": "2020-01-02T10:00:00Z", "end": "2020-01-01T10:00:00Z"},
 "component": [{"code": {"text": "a"}, "valueString": "s"}, {"code": {"text": "b"}, "valueInteger": 3}],
 "_note": [null],
 "identifier": [{"value": "A"}, {"value": "b"}, {"value": "a"}]
}`

func TestEvaluate(t *testing.T) {
	res := NewResource(decode(t, observation), "")
	cases := []struct {
		expr, want string // want: the values, comma-separated; "{}" for empty
	}{
		{"status", "final"},
		{"Observation.status", "final"},
		{"status.hasValue()", "true"},
		{"status.extension.url", "http://example.org/x"},
		{"status.extension('http://example.org/x').value", "y"},
		{"code.coding.code", "1-8,123"},
		{"code.coding.where(system = %loinc).code", "1-8"},
		{"code.coding.select(code)", "1-8,123"},
		{"code.coding.count()", "2"},
		{"code.coding.exists(code = '123')", "true"},
		{"code.coding.all(system.exists())", "true"},
		{"code.coding.first().code", "1-8"},
		{"code.coding.last().code", "123"},
		{"code.coding.tail().code", "123"},
		{"value.value", "101"},
		{"value.value > 100", "true"},
		{"value is Quantity", "true"}, // no model: the choice is typed by its JSON name
		{"valueQuantity.value <= 100", "false"},
		{"value.code = '%' and value.system = %ucum", "true"},
		{"effective.start <= effective.end", "false"},
		{"@2020-01-01 < @2020-01-02", "true"},
		{"@2020-01 <= @2020-01-01", "{}"},
		{"'2020-01-01T10:00:00Z' = '2020-01-01T10:00:00Z'", "true"},
		{"component.value", "s,3"},
		{"component.code.text", "a,b"},
		{"component[1].code.text", "b"},
		{"performer.first().reference.substring(1) in %rootResource.contained.id", "true"},
		{"performer.resolve().id", "p1"},
		{"performer.resolve().ofType(Practitioner).exists()", "true"},
		{"contained.where(('#'+id in %resource.descendants().reference).not()).empty()", "true"},
		{"identifier.value.isDistinct()", "true"},
		{"identifier.select(value.lower()).isDistinct()", "false"},
		{"identifier.value.distinct().count()", "3"},
		{"(1 | 2 | 2).count()", "2"},
		{"(1 | 2).combine(2).count()", "3"},
		{"(1 | 2 | 3).intersect(2 | 3 | 4).count()", "2"},
		{"(1 | 2 | 3).exclude(2).count()", "2"},
		{"2 in (1 | 2)", "true"},
		{"(1 | 2) contains 3", "false"},
		{"1 + 2 * 3", "7"},
		{"7 div 2", "3"},
		{"7 mod 2", "1"},
		{"1.5 + 1", "2.5"},
		{"-1 < 0", "true"},
		{"'a' & {} & 'b'", "ab"},
		{"'abc'.matches('^a.c$')", "true"},
		{"'abc'.matches('b')", "true"},
		{"'a.b'.replaceMatches('\\\\..*', '')", "a"},
		{"'abc'.length()", "3"},
		{"'abc'.contains('bc')", "true"},
		{"'abc'.upper()", "ABC"},
		{"'12'.toInteger() + 1", "13"},
		{"'x'.toInteger()", "{}"},
		{"12.toString()", "12"},
		{"true and {}", "{}"},
		{"false and {}", "false"},
		{"true or {}", "true"},
		{"{} or false", "{}"},
		{"false implies {}", "true"},
		{"{} implies true", "true"},
		{"true xor false", "true"},
		{"{}.empty()", "true"},
		{"{}.not()", "{}"},
		{"iif(status = 'final', 'f', 'o')", "f"},
		{"iif({}, 'f', 'o')", "o"},
		{"note.exists()", "false"},
		{"children().count() > 5", "true"},
		{"descendants().where($this = 'a').count()", "2"},
		{"code.coding.where($index = 1).code", "123"},
		{"'A' ~ 'a'", "true"},
		{"'A' != 'a'", "true"},
		{"4 'mg' = 4 'mg'", "true"},
		{"4 'mg' < 5 'g'", "{}"},
		{"now() > @2020-01-01T00:00:00Z", "true"},
		{"today()", "2025-06-01"},
		{"code.trace('c').text", "x"},
		{"(code | status).count()", "2"},
		{"Patient.name", "{}"},
	}
	env := &Env{Now: func() time.Time { return time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC) }}
	for _, c := range cases {
		t.Run(c.expr, func(t *testing.T) {
			e, err := Compile(c.expr, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.Evaluate(env, res)
			if err != nil {
				t.Fatal(err)
			}
			if s := render(got); s != c.want {
				t.Errorf("got %s, want %s", s, c.want)
			}
		})
	}
}

// Functions of one item fail on a collection of several.
func TestEvaluateErrors(t *testing.T) {
	res := NewResource(decode(t, observation), "")
	for _, src := range []string{
		"performer.reference.startsWith('#')", "identifier.value.lower()", "identifier.value and true",
		"identifier.value < 'x'", "code.coding.single()", "(1 | 2) + 1", "'a' + 1", "%nosuch",
	} {
		e, err := Compile(src, nil)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if got, err := e.Evaluate(nil, res); err == nil {
			t.Errorf("%s: got %s, want an error", src, render(got))
		}
	}
}

func render(c Collection) string {
	if len(c) == 0 {
		return "{}"
	}
	var parts []string
	for _, n := range c {
		switch v := n.Value.(type) {
		case string:
			parts = append(parts, v)
		case json.Number:
			parts = append(parts, string(v))
		case bool:
			if v {
				parts = append(parts, "true")
			} else {
				parts = append(parts, "false")
			}
		default:
			parts = append(parts, "<"+n.Type+">")
		}
	}
	return strings.Join(parts, ",")
}

// The nodes an expression finds carry their location, so a caller (a
// FHIRPath Patch) can change them in place.
func TestEvaluatePaths(t *testing.T) {
	obj := decode(t, observation)
	e, err := Compile("component.where(code.text = 'b').value", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.Evaluate(nil, NewResource(obj, ""))
	if err != nil || len(got) != 1 {
		t.Fatalf("got %v, %v", got, err)
	}
	n := got[0]
	if n.Path() != "Observation.component[1].valueInteger" || n.Key != "valueInteger" || n.Index != -1 {
		t.Fatalf("location %q key %q index %d", n.Path(), n.Key, n.Index)
	}
	n.Parent[n.Key] = json.Number("4")
	if v := obj["component"].([]any)[1].(map[string]any)["valueInteger"]; v != json.Number("4") {
		t.Errorf("parent is not the resource's own object: %v", v)
	}
	e, _ = Compile("code.coding[1]", nil)
	got, _ = e.Evaluate(nil, NewResource(obj, ""))
	if len(got) != 1 || got[0].Path() != "Observation.code.coding[1]" || got[0].Index != 1 {
		t.Errorf("array element located at %+v", got)
	}
}

func TestCompileRejects(t *testing.T) {
	for _, src := range []string{
		"", "a.", "a.where(", "a[1", "'unterminated", "a.memberOf('x')", "a.nosuch()",
		"a.exists(1, 2)", "a.ofType('x')", "1 +", "a b", "%", "a.matches('(')",
		strings.Repeat("(", 200) + "1" + strings.Repeat(")", 200),
		strings.Repeat("a.", MaxExpressionBytes),
	} {
		if _, err := Compile(src, nil); err == nil {
			t.Errorf("Compile(%.40q) succeeded", src)
		}
	}
	var ue *UnsupportedError
	if _, err := Compile("code.memberOf('http://x')", nil); !errors.As(err, &ue) || ue.Function != "memberOf" {
		t.Errorf("unsupported function: %v", err)
	}
}

func TestCustomFunction(t *testing.T) {
	opts := &Options{Functions: map[string]Function{
		"htmlChecks": func(focus Collection, _ []Collection) (Collection, error) {
			return Collection{boolNode(len(focus) == 1)}, nil
		},
	}}
	e, err := Compile("code.htmlChecks()", opts)
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.Evaluate(nil, NewResource(decode(t, observation), ""))
	if err != nil || render(got) != "true" {
		t.Errorf("got %s, %v", render(got), err)
	}
}

// An evaluation that would visit too many nodes stops with ErrTooCostly.
func TestEvaluateBudget(t *testing.T) {
	var b bytes.Buffer
	b.WriteString(`{"resourceType":"Observation","identifier":[`)
	for i := range 300 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"value":"v"}`)
	}
	b.WriteString(`]}`)
	res := NewResource(decode(t, b.String()), "")
	e, err := Compile("identifier.where(%resource.descendants().where(%resource.descendants().exists()).exists()).exists()", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Evaluate(&Env{MaxSteps: 100000}, res)
	if !errors.Is(err, ErrTooCostly) {
		t.Errorf("err = %v, want ErrTooCostly", err)
	}
}

// FuzzCompile: any input either compiles or fails cleanly, and a compiled
// expression evaluates without panicking within its step budget.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		"status", "a.b.where(c = 'x').exists()", "iif(a, b, c)", "1 + 2 * 3", "a is Quantity",
		"@2020-01-01T10:00:00Z < now()", "%resource.descendants().as(canonical)", "a[0].b | c",
		"'\\u0041'.matches('^A$')", "`div`.exists()", "4 'mg' = 4 'mg'", "(((a)))",
	} {
		f.Add(s)
	}
	res := NewResource(map[string]any{"resourceType": "Observation", "status": "final",
		"code": map[string]any{"text": "x"}, "component": []any{map[string]any{"valueString": "s"}}}, "")
	f.Fuzz(func(t *testing.T, src string) {
		e, err := Compile(src, nil)
		if err != nil {
			return
		}
		start := time.Now()
		_, _ = e.Evaluate(&Env{MaxSteps: 100000}, res)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("evaluation of %q took %v", src, d)
		}
	})
}

// TestDescendantsRemembered: descendants() of one node is walked once per
// evaluation and remembered; combining or appending to the remembered
// collection never changes what later calls in the same evaluation get.
func TestDescendantsRemembered(t *testing.T) {
	res := NewResource(decode(t, observation), "")
	count := func(src string) int64 {
		t.Helper()
		e, err := Compile(src, nil)
		if err != nil {
			t.Fatal(err)
		}
		out, err := e.Evaluate(&Env{Resource: res, RootResource: res, MaxSteps: 1 << 20}, res)
		if err != nil || len(out) != 1 {
			t.Fatalf("%s: %v, %v", src, out, err)
		}
		n, err := strconv.ParseInt(fmt.Sprint(out[0].Value), 10, 64)
		if err != nil {
			t.Fatalf("%s: %#v is not an integer", src, out[0].Value)
		}
		return n
	}
	n := count("descendants().count()")
	if n < 20 {
		t.Fatalf("descendants().count() = %d", n)
	}
	distinct := count("descendants().distinct().count()")
	for src, want := range map[string]int64{
		"%resource.descendants().combine(%resource.descendants()).count()":                                   2 * n,
		"%resource.descendants().combine(%resource.descendants()).count() + %resource.descendants().count()": 3 * n,
		"(%resource.descendants() | descendants()).count()":                                                  distinct,
		"contained.where(%resource.descendants().reference.exists()).count() + descendants().count()":        1 + n,
	} {
		if got := count(src); got != want {
			t.Errorf("%s = %d, want %d", src, got, want)
		}
	}
}

// TestDescendantsWalkedOnce: asking for a node's descendants again in the
// same evaluation costs no second walk (dom-3 asks four times for each
// contained resource).
func TestDescendantsWalkedOnce(t *testing.T) {
	res := NewResource(decode(t, observation), "")
	spent := func(src string) int {
		t.Helper()
		e, err := Compile(src, nil)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		if _, err := e.Evaluate(&Env{Resource: res, RootResource: res, MaxSteps: 1 << 20, Spent: &n}, res); err != nil {
			t.Fatal(err)
		}
		return n
	}
	once := spent("%resource.descendants().exists()")
	four := spent("%resource.descendants().exists() and %resource.descendants().exists() and %resource.descendants().exists() and %resource.descendants().exists()")
	if four >= 2*once {
		t.Errorf("four calls of descendants() spent %d steps, one spent %d: the walk is repeated", four, once)
	}
}
