package api_test

import (
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const loincSystem = "http://loinc.org"

// syntheaObs is one Observation of a loaded Synthea bundle: its server
// id and the (code, value) pairs of its own value and of each component.
type syntheaObs struct {
	id        string
	own       []obsPair // the Observation's code and value
	component []obsPair
}

type obsPair struct {
	code    string
	value   float64
	unit    string
	concept string // valueCodeableConcept's first code
	hasQty  bool
}

func pairOf(code map[string]any, el map[string]any) obsPair {
	var p obsPair
	if codings, _ := code["coding"].([]any); len(codings) > 0 {
		p.code, _ = codings[0].(map[string]any)["code"].(string)
	}
	if q, ok := el["valueQuantity"].(map[string]any); ok {
		if v, ok := q["value"].(float64); ok {
			p.value, p.hasQty = v, true
			p.unit, _ = q["code"].(string)
		}
	}
	if cc, ok := el["valueCodeableConcept"].(map[string]any); ok {
		if codings, _ := cc["coding"].([]any); len(codings) > 0 {
			p.concept, _ = codings[0].(map[string]any)["code"].(string)
		}
	}
	return p
}

// loadSynthea posts one Synthea transaction bundle and returns its
// patient's server id, its identifiers and its Observations.
func loadSynthea(t *testing.T, s *stack, file string) (patient string, identifiers []any, obs []syntheaObs) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var req requestBundle
	if err := json.Unmarshal(data, &req); err != nil {
		t.Fatal(err)
	}
	resp := must(t, s.do("POST", "/fhir", data), http.StatusOK).json(t)
	entries := resp["entry"].([]any)
	for i, e := range entries {
		loc, _ := e.(map[string]any)["response"].(map[string]any)["location"].(string)
		id := strings.Split(loc, "/")[1]
		res := req.Entry[i].Resource
		switch res["resourceType"] {
		case "Patient":
			patient, identifiers = id, res["identifier"].([]any)
		case "Observation":
			o := syntheaObs{id: id, own: []obsPair{pairOf(res["code"].(map[string]any), res)}}
			comps, _ := res["component"].([]any)
			for _, c := range comps {
				cm := c.(map[string]any)
				o.component = append(o.component, pairOf(cm["code"].(map[string]any), cm))
			}
			obs = append(obs, o)
		}
	}
	return patient, identifiers, obs
}

// TestCompositeSearch: composite parameters and identifier:of-type on
// a Synthea patient's record, on SQLite and PostgreSQL. Each answer is
// exactly the set computed from the bundle: a component's code pairs with
// its own value only (the diastolic code at a systolic value finds no
// blood pressure that has both in two components), the OR of values,
// prefixes and units, the panel's code that has no value, the type of an
// identifier with its own value. A composite in conditional criteria is
// refused.
func TestCompositeSearch(t *testing.T) {
	backends := map[string]stackOptions{"sqlite": {}, "postgres": {openStore: postgresStore}} // skips visibly without WARD_TEST_POSTGRES
	for name, o := range backends {
		t.Run(name, func(t *testing.T) {
			s := newStackWith(t, o)
			pid, identifiers, obs := loadSynthea(t, s, syntheaFiles(t)[0])
			// A second patient's record: the search is narrowed to the
			// first by subject, and the candidates span both.
			loadSynthea(t, s, syntheaFiles(t)[1])
			where := func(pick func(o syntheaObs) bool) []string {
				var ids []string
				for _, o := range obs {
					if pick(o) {
						ids = append(ids, o.id)
					}
				}
				sort.Strings(ids)
				return ids
			}
			has := func(pairs []obsPair, code string, ok func(obsPair) bool) bool {
				return slices.ContainsFunc(pairs, func(p obsPair) bool { return p.code == code && ok(p) })
			}
			// The highest systolic pressure of the record: only panels
			// whose systolic component reaches it match.
			top := math.Inf(-1)
			for _, o := range obs {
				for _, c := range o.component {
					if c.code == "8480-6" && c.hasQty {
						top = max(top, math.Floor(c.value))
					}
				}
			}
			if math.IsInf(top, -1) {
				t.Fatal("the Synthea record has no blood pressure")
			}
			at := strconv.FormatFloat(top, 'f', 0, 64)
			// FHIR compares a search value's precision range: ge120 is
			// [119.5, 120.5), which a value of at least 119.5 reaches
			// (Synthea's values have many more digits).
			geTop := func(p obsPair) bool { return p.hasQty && p.value >= top-0.5 }
			systolicTop := where(func(o syntheaObs) bool { return has(o.component, "8480-6", geTop) })
			if len(systolicTop) == 0 {
				t.Fatal("no panel at the highest systolic pressure")
			}
			// Body weight above the record's median, in kg.
			var weights []float64
			for _, o := range obs {
				if o.own[0].code == "29463-7" && o.own[0].hasQty {
					weights = append(weights, o.own[0].value)
				}
			}
			if len(weights) < 2 {
				t.Fatal("the Synthea record has fewer than two body weights")
			}
			sort.Float64s(weights)
			mid := math.Floor(weights[len(weights)/2]) - 1
			gtMid := func(p obsPair) bool { return p.hasQty && p.value > mid+0.5 && p.unit == "kg" }
			midS := strconv.FormatFloat(mid, 'f', 0, 64)
			// A coded value: the first valueCodeableConcept in the record.
			var concept obsPair
			for _, o := range obs {
				if o.own[0].concept != "" {
					concept = o.own[0]
					break
				}
			}
			none := []string(nil)
			cases := []struct {
				query string
				want  []string
			}{
				{"component-code-value-quantity=" + loincSystem + "|8480-6$ge" + at, systolicTop},
				{"component-code-value-quantity=" + loincSystem + "|8462-4$ge" + at,
					where(func(o syntheaObs) bool { return has(o.component, "8462-4", geTop) })},
				{"component-code-value-quantity=" + loincSystem + "|8462-4$ge" + at + "," + loincSystem + "|8480-6$ge" + at,
					where(func(o syntheaObs) bool {
						return has(o.component, "8462-4", geTop) || has(o.component, "8480-6", geTop)
					})},
				{"combo-code-value-quantity=" + loincSystem + "|8480-6$ge" + at + "|http://unitsofmeasure.org|mm[Hg]", systolicTop},
				{"combo-code-value-quantity=" + loincSystem + "|8480-6$ge" + at + "|http://unitsofmeasure.org|kg", none},
				{"code-value-quantity=" + loincSystem + "|55284-4$ge0", none},
				{"code-value-quantity=" + loincSystem + "|29463-7$gt" + midS,
					where(func(o syntheaObs) bool { return has(o.own, "29463-7", gtMid) })},
				{"code-value-quantity=" + loincSystem + "|8302-6$gt" + midS + "||kg", none},
				{"combo-code-value-quantity=" + loincSystem + "|29463-7$gt" + midS,
					where(func(o syntheaObs) bool { return has(o.own, "29463-7", gtMid) })},
			}
			if concept.code != "" {
				cases = append(cases, struct {
					query string
					want  []string
				}{"code-value-concept=" + concept.code + "$" + concept.concept,
					where(func(o syntheaObs) bool {
						return has(o.own, concept.code, func(p obsPair) bool { return p.concept == concept.concept })
					})})
			}
			var counts []int
			for _, c := range cases {
				counts = append(counts, len(c.want))
				name, value, _ := strings.Cut(c.query, "=")
				q := "/fhir/Observation?subject=Patient/" + pid + "&" + name + "=" + url.QueryEscape(value) + "&_total=accurate&_count=500"
				got, total := matchIDs(t, must(t, s.do("GET", q, nil), http.StatusOK))
				if !slices.Equal(got, c.want) || total != float64(len(c.want)) {
					t.Errorf("%s: %d matches, total %v; want %d: %v", c.query, len(got), total, len(c.want), minus(c.want, got))
				}
			}
			// The pairing is what excludes them: the components' own
			// parameters, ANDed, find the panels at the top systolic value,
			// since each also has a diastolic component.
			plain := url.Values{"subject": {"Patient/" + pid}, "component-code": {loincSystem + "|8462-4"}, "component-value-quantity": {"ge" + at}}
			if got, _ := matchIDs(t, must(t, s.do("GET", "/fhir/Observation?"+plain.Encode(), nil), http.StatusOK)); len(minus(systolicTop, got)) != 0 {
				t.Errorf("component-code=8462-4&component-value-quantity=ge%s finds %v, want at least %v", at, got, systolicTop)
			}
			if !t.Failed() {
				t.Logf("%d composite searches, matching %v", len(cases), counts)
			}

			// A compartment search limits the candidates too: the second
			// patient's panels are neither opened nor counted.
			inComp := url.Values{"component-code-value-quantity": {loincSystem + "|8480-6$ge" + at}, "_total": {"accurate"}}
			if got, total := matchIDs(t, must(t, s.do("GET", "/fhir/Patient/"+pid+"/Observation?"+inComp.Encode(), nil), http.StatusOK)); !slices.Equal(got, systolicTop) || total != float64(len(systolicTop)) {
				t.Errorf("compartment search: matches %v total %v, want %v", got, total, systolicTop)
			}

			// The ledger entry of a composite search that matched nothing
			// names the patient whose candidates it opened.
			from := ledgerSize(t, s)
			empty := url.Values{"subject": {"Patient/" + pid}, "component-code-value-quantity": {loincSystem + "|8462-4$ge" + at}}
			must(t, s.do("GET", "/fhir/Observation?"+empty.Encode(), nil), http.StatusOK)
			if es := ledgerEntries(t, s, from); len(es) != 1 || es[0].Patient != pid {
				t.Errorf("the composite search's entry: %+v, want it to name patient %s", es, pid)
			}

			// identifier:of-type: the type and the value on one Identifier.
			var mrn, ssn string
			for _, x := range identifiers {
				m := x.(map[string]any)
				typ, _ := m["type"].(map[string]any)
				codings, _ := typ["coding"].([]any)
				for _, c := range codings {
					switch c.(map[string]any)["code"] {
					case "MR":
						mrn = m["value"].(string)
					case "SS":
						ssn = m["value"].(string)
					}
				}
			}
			const v2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
			for _, c := range []struct {
				value string
				want  []string
			}{
				{v2 + "|MR|" + mrn, []string{pid}},
				{v2 + "|SS|" + ssn, []string{pid}},
				{v2 + "|SS|" + mrn, none},
				{"http://other.example|MR|" + mrn, none},
			} {
				q := url.Values{"identifier:of-type": {c.value}, "_total": {"accurate"}}
				got, total := matchIDs(t, must(t, s.do("GET", "/fhir/Patient?"+q.Encode(), nil), http.StatusOK))
				if !slices.Equal(got, c.want) || total != float64(len(c.want)) {
					t.Errorf("identifier:of-type (value %d): matches %v total %v, want %v", len(c.value), got, total, c.want)
				}
			}
			// Through a chain: the Observations of the patient with that MRN.
			q := url.Values{"subject:Patient.identifier:of-type": {v2 + "|MR|" + mrn}, "_summary": {"count"}}
			if _, total := matchIDs(t, must(t, s.do("GET", "/fhir/Observation?"+q.Encode(), nil), http.StatusOK)); total != float64(len(obs)) {
				t.Errorf("a chain ending in :of-type counts %v, want %d", total, len(obs))
			}

			// Refused: a composite in conditional criteria, a value with
			// the wrong number of components, :missing on a composite.
			if r := s.do("POST", "/fhir/Observation", map[string]any{"resourceType": "Observation", "status": "final", "code": map[string]any{"text": "x"}},
				"If-None-Exist", "code-value-quantity="+url.QueryEscape(loincSystem+"|8480-6$ge1")); r.status != http.StatusBadRequest {
				t.Errorf("composite conditional criteria: %d %s", r.status, r.body)
			}
			for _, q := range []string{"code-value-quantity=" + url.QueryEscape(loincSystem+"|8480-6"), "code-value-quantity:missing=true",
				"identifier:of-type=MR%7C1"} {
				if r := s.do("GET", "/fhir/Observation?"+q, nil); r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "OperationOutcome") {
					t.Errorf("%s: %d %s, want a 400 OperationOutcome", q, r.status, r.body)
				}
			}
		})
	}
}
