package storetest

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/store"
)

const (
	loinc  = "http://loinc.org"
	snomed = "http://snomed.info/sct"
	ucum   = "http://unitsofmeasure.org"
)

func tok(param, system, value string) store.IndexEntry {
	return store.IndexEntry{Param: param, Kind: store.KindToken, System: system, Value: value}
}

func str(param, value string) store.IndexEntry {
	return store.IndexEntry{Param: param, Kind: store.KindString, Value: value}
}

func date(lo, hi float64) store.IndexEntry {
	return store.IndexEntry{Param: "date", Kind: store.KindDate, Lo: lo, Hi: hi}
}

func qty(system, unit string, v float64) store.IndexEntry {
	return store.IndexEntry{Param: "value-quantity", Kind: store.KindQuantity, System: system, Value: unit, Lo: v, Hi: v}
}

func ref(target string) store.IndexEntry {
	return store.IndexEntry{Param: "subject", Kind: store.KindReference, System: "Patient", Value: target}
}

// seedObservations writes the fixture the search tests share:
//
//	o1 @0 p1: code loinc|1234-5, name "alpha beta", date [100,199], 5 ucum|mg, subject Patient/p1
//	o2 @1 p2: code loinc|9999-9, name "beta", date [200,299], 10 ucum|mg, subject Patient/p2, blind ab12
//	o3 @2 p1: code snomed|1234-5 and |local, name "gamma", date [150,250], 5 ucum|g, subject Patient/p1
//	o4 @3 "": name "delta" only
//	o5: deleted (its version 1 matched code 1234-5 and name "beta")
//	Patient/x: code 1234-5 and name "beta", to prove the type filter
func seedObservations(t *testing.T, s store.Store) {
	obs := func(id string, n int, comp string, idx ...store.IndexEntry) {
		r := res("Observation", id, 1, n)
		r.Compartment = comp
		put(t, s, r, idx)
	}
	obs("o1", 0, "p1", tok("code", loinc, "1234-5"), str("name", "alpha beta"), date(100, 199), qty(ucum, "mg", 5), ref("Patient/p1"))
	obs("o2", 1, "p2", tok("code", loinc, "9999-9"), str("name", "beta"), date(200, 299), qty(ucum, "mg", 10), ref("Patient/p2"),
		store.IndexEntry{Param: "identifier", Kind: store.KindBlind, Value: "ab12"})
	obs("o3", 2, "p1", tok("code", snomed, "1234-5"), tok("code", "", "local"), str("name", "gamma"), date(150, 250), qty(ucum, "g", 5), ref("Patient/p1"))
	obs("o4", 3, "", str("name", "delta"))
	obs("o5", 4, "p1", tok("code", loinc, "1234-5"), str("name", "beta"))
	put(t, s, store.Resource{Type: "Observation", ID: "o5", Version: 2, Deleted: true, LastUpdated: at(5)}, nil)
	put(t, s, res("Patient", "x", 1, 6), []store.IndexEntry{tok("code", loinc, "1234-5"), str("name", "beta")})
}

func ids(p store.Page) []string {
	out := []string{}
	for _, r := range p.Resources {
		out = append(out, r.ID)
	}
	return out
}

func clause(param string, ps ...store.Predicate) store.Clause {
	return store.Clause{Param: param, Any: ps}
}

func eqTok(system, value string, hasSystem bool) store.Predicate {
	return store.Predicate{Kind: store.KindToken, Op: store.OpEq, HasSystem: hasSystem, System: system, Value: value}
}

func rng(kind store.IndexKind, c store.Cmp, lo, hi float64) store.Predicate {
	return store.Predicate{Kind: kind, Op: store.OpRange, Cmp: c, Lo: lo, Hi: hi}
}

func strOp(op store.Op, v string) store.Predicate {
	return store.Predicate{Kind: store.KindString, Op: op, Value: v}
}

func testSearchPredicates(t *testing.T, s store.Store) {
	seedObservations(t, s)
	notTok := eqTok("", "1234-5", false)
	notTok.Not = true
	notDate := rng(store.KindDate, store.CmpEq, 100, 199)
	notDate.Not = true
	mgQty := rng(store.KindQuantity, store.CmpEq, 5, 5)
	mgQty.Value = "mg"
	ucumG := rng(store.KindQuantity, store.CmpEq, 5, 5)
	ucumG.Value, ucumG.HasSystem, ucumG.System = "g", true, ucum
	gtMg := rng(store.KindQuantity, store.CmpGt, 5, 5)
	gtMg.Value = "mg"
	cases := []struct {
		name    string
		clauses []store.Clause
		want    []string
	}{
		{"token system|code", []store.Clause{clause("code", eqTok(loinc, "1234-5", true))}, []string{"o1"}},
		{"token code any system", []store.Clause{clause("code", eqTok("", "1234-5", false))}, []string{"o1", "o3"}},
		{"token empty system", []store.Clause{clause("code", eqTok("", "local", true))}, []string{"o3"}},
		{"token empty system no match", []store.Clause{clause("code", eqTok("", "1234-5", true))}, []string{}},
		{"token or", []store.Clause{clause("code", eqTok("", "9999-9", false), eqTok(snomed, "1234-5", true))}, []string{"o2", "o3"}},
		{"token not", []store.Clause{clause("code", notTok)}, []string{"o2", "o4"}},
		{"token system only", []store.Clause{clause("code", store.Predicate{Kind: store.KindToken, Op: store.OpSystem, HasSystem: true, System: loinc})}, []string{"o1", "o2"}},
		{"token empty system only", []store.Clause{clause("code", store.Predicate{Kind: store.KindToken, Op: store.OpSystem, HasSystem: true, System: ""})}, []string{"o3"}},
		{"token system only not", []store.Clause{clause("code", store.Predicate{Kind: store.KindToken, Op: store.OpSystem, HasSystem: true, System: snomed, Not: true})}, []string{"o1", "o2", "o4"}},
		{"token kind mismatch", []store.Clause{clause("code", strOp(store.OpEq, "1234-5"))}, []string{}},
		{"string eq", []store.Clause{clause("name", strOp(store.OpEq, "beta"))}, []string{"o2"}},
		{"string eq is not prefix", []store.Clause{clause("name", strOp(store.OpEq, "bet"))}, []string{}},
		{"string prefix", []store.Clause{clause("name", strOp(store.OpPrefix, "be"))}, []string{"o2"}},
		{"string prefix 2", []store.Clause{clause("name", strOp(store.OpPrefix, "al"))}, []string{"o1"}},
		{"string prefix is case sensitive", []store.Clause{clause("name", strOp(store.OpPrefix, "AL"))}, []string{}},
		{"string contains", []store.Clause{clause("name", strOp(store.OpContains, "eta"))}, []string{"o1", "o2"}},
		{"string contains all", []store.Clause{clause("name", strOp(store.OpContains, "a"))}, []string{"o1", "o2", "o3", "o4"}},
		{"missing true", []store.Clause{clause("code", store.Predicate{Op: store.OpMissing, Missing: true})}, []string{"o4"}},
		{"missing false", []store.Clause{clause("code", store.Predicate{Op: store.OpMissing, Missing: false})}, []string{"o1", "o2", "o3"}},
		{"missing date", []store.Clause{clause("date", store.Predicate{Op: store.OpMissing, Missing: true})}, []string{"o4"}},
		{"date eq", []store.Clause{clause("date", rng(store.KindDate, store.CmpEq, 100, 199))}, []string{"o1"}},
		{"date eq wide", []store.Clause{clause("date", rng(store.KindDate, store.CmpEq, 100, 300))}, []string{"o1", "o2", "o3"}},
		{"date ne", []store.Clause{clause("date", rng(store.KindDate, store.CmpNe, 100, 199))}, []string{"o2", "o3"}},
		{"date gt", []store.Clause{clause("date", rng(store.KindDate, store.CmpGt, 150, 199))}, []string{"o2", "o3"}},
		{"date gt edge", []store.Clause{clause("date", rng(store.KindDate, store.CmpGt, 250, 250))}, []string{"o2"}},
		{"date lt", []store.Clause{clause("date", rng(store.KindDate, store.CmpLt, 150, 160))}, []string{"o1"}},
		{"date ge", []store.Clause{clause("date", rng(store.KindDate, store.CmpGe, 250, 260))}, []string{"o2", "o3"}},
		{"date le", []store.Clause{clause("date", rng(store.KindDate, store.CmpLe, 140, 150))}, []string{"o1", "o3"}},
		{"date sa", []store.Clause{clause("date", rng(store.KindDate, store.CmpSa, 150, 199))}, []string{"o2"}},
		{"date eb", []store.Clause{clause("date", rng(store.KindDate, store.CmpEb, 200, 210))}, []string{"o1"}},
		{"date ap", []store.Clause{clause("date", rng(store.KindDate, store.CmpAp, 240, 260))}, []string{"o2", "o3"}},
		{"date not or eq", []store.Clause{clause("date", notDate, rng(store.KindDate, store.CmpEq, 200, 299))}, []string{"o2", "o3", "o4"}},
		{"quantity any unit", []store.Clause{clause("value-quantity", rng(store.KindQuantity, store.CmpEq, 5, 5))}, []string{"o1", "o3"}},
		{"quantity unit", []store.Clause{clause("value-quantity", mgQty)}, []string{"o1"}},
		{"quantity system and unit", []store.Clause{clause("value-quantity", ucumG)}, []string{"o3"}},
		{"quantity gt", []store.Clause{clause("value-quantity", gtMg)}, []string{"o2"}},
		{"reference", []store.Clause{clause("subject", store.Predicate{Kind: store.KindReference, Op: store.OpEq, Value: "Patient/p1"})}, []string{"o1", "o3"}},
		// A chained search's shape: a thousand and one references in one
		// clause (bound as one list), with a kind and a range beside them.
		{"reference list", []store.Clause{clause("subject", manyRefs(1000, "Patient/p2", store.Predicate{Kind: store.KindToken, Op: store.OpEq, Value: "Patient/p1"})...)}, []string{"o2"}},
		{"reference list or range", []store.Clause{clause("subject", manyRefs(1000, "Patient/p2")...), clause("date", store.Predicate{Kind: store.KindDate, Op: store.OpRange, Cmp: store.CmpGe, Lo: 250, Hi: 250})}, []string{"o2"}},
		{"blind", []store.Clause{clause("identifier", store.Predicate{Kind: store.KindBlind, Op: store.OpEq, Value: "ab12"})}, []string{"o2"}},
		{"and", []store.Clause{clause("code", eqTok("", "1234-5", false)), clause("subject", store.Predicate{Kind: store.KindReference, Op: store.OpEq, Value: "Patient/p1"})}, []string{"o1", "o3"}},
		{"and narrows", []store.Clause{clause("code", eqTok("", "1234-5", false)), clause("name", strOp(store.OpPrefix, "g"))}, []string{"o3"}},
		{"and empty", []store.Clause{clause("code", eqTok(loinc, "9999-9", true)), clause("name", strOp(store.OpPrefix, "g"))}, []string{}},
		{"predicate on other param", []store.Clause{clause("name", eqTok(loinc, "1234-5", true))}, []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			page, err := s.Search(t.Context(), store.Query{Type: "Observation", Clauses: tc.clauses, Count: 10, Total: true})
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(page); !slices.Equal(got, tc.want) || page.Total != len(tc.want) || page.More {
				t.Fatalf("Search = %v total=%d more=%v; want %v", got, page.Total, page.More, tc.want)
			}
		})
	}
}

// secs is the instant at(n) in unix seconds, as a search bound.
func secs(n int) float64 { return float64(at(n).UnixMicro()) / 1e6 }

func testSearchFilters(t *testing.T, s store.Store) {
	seedObservations(t, s)
	p1, none := "p1", ""
	upd := func(c store.Cmp, lo, hi float64) []store.Predicate {
		return []store.Predicate{rng(store.KindDate, c, lo, hi)}
	}
	cases := []struct {
		name string
		q    store.Query
		want []string
	}{
		{"all", store.Query{}, []string{"o1", "o2", "o3", "o4"}},
		{"ids", store.Query{IDs: []string{"o3", "o1", "o5", "nope", "x"}}, []string{"o1", "o3"}},
		{"compartment", store.Query{Compartment: &p1}, []string{"o1", "o3"}},
		{"shared compartment", store.Query{Compartment: &none}, []string{"o4"}},
		{"ids and compartment", store.Query{IDs: []string{"o1", "o2"}, Compartment: &p1}, []string{"o1"}},
		{"compartment list", store.Query{Compartments: []string{"p1", "nobody"}}, []string{"o1", "o3"}},
		{"compartment list with shared", store.Query{Compartments: []string{"", "p1"}}, []string{"o1", "o3", "o4"}},
		{"empty compartment list", store.Query{Compartments: []string{}}, nil},
		{"compartment and list", store.Query{Compartment: &p1, Compartments: []string{""}}, nil},
		{"updated ge exact", store.Query{Updated: upd(store.CmpGe, secs(2), secs(2))}, []string{"o3", "o4"}},
		{"updated gt exact", store.Query{Updated: upd(store.CmpGt, secs(2), secs(2))}, []string{"o4"}},
		{"updated lt exact", store.Query{Updated: upd(store.CmpLt, secs(2), secs(2))}, []string{"o1", "o2"}},
		{"updated le exact", store.Query{Updated: upd(store.CmpLe, secs(2), secs(2))}, []string{"o1", "o2", "o3"}},
		{"updated eq range", store.Query{Updated: upd(store.CmpEq, secs(1), secs(2))}, []string{"o2", "o3"}},
		{"updated ne range", store.Query{Updated: upd(store.CmpNe, secs(1), secs(2))}, []string{"o1", "o4"}},
		{"updated both", store.Query{Updated: append(upd(store.CmpGe, secs(1), secs(1)), rng(store.KindDate, store.CmpLt, secs(3), secs(3)))}, []string{"o2", "o3"}},
		{"updated whole seconds", store.Query{Updated: upd(store.CmpAp, float64(at(1).Unix()), float64(at(1).Unix()+1))}, []string{"o2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			q.Type, q.Count, q.Total = "Observation", 10, true
			page, err := s.Search(t.Context(), q)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(page); !slices.Equal(got, tc.want) || page.Total != len(tc.want) {
				t.Fatalf("Search = %v total=%d; want %v", got, page.Total, tc.want)
			}
		})
	}
}

func testSearchSort(t *testing.T, s store.Store) {
	seedObservations(t, s)
	key := func(p string, k store.IndexKind, desc bool) store.SortKey {
		return store.SortKey{Param: p, Kind: k, Desc: desc}
	}
	cases := []struct {
		name string
		sort []store.SortKey
		want []string
	}{
		{"default", nil, []string{"o1", "o2", "o3", "o4"}},
		{"_id desc", []store.SortKey{key("_id", 0, true)}, []string{"o4", "o3", "o2", "o1"}},
		{"_lastUpdated", []store.SortKey{key("_lastUpdated", 0, false)}, []string{"o1", "o2", "o3", "o4"}},
		{"_lastUpdated desc", []store.SortKey{key("_lastUpdated", 0, true)}, []string{"o4", "o3", "o2", "o1"}},
		{"string", []store.SortKey{key("name", store.KindString, false)}, []string{"o1", "o2", "o4", "o3"}},
		{"string desc", []store.SortKey{key("name", store.KindString, true)}, []string{"o3", "o4", "o2", "o1"}},
		{"date missing last", []store.SortKey{key("date", store.KindDate, false)}, []string{"o1", "o3", "o2", "o4"}},
		{"date desc missing last", []store.SortKey{key("date", store.KindDate, true)}, []string{"o2", "o3", "o1", "o4"}},
		{"multi-valued min, tie by id", []store.SortKey{key("code", store.KindToken, false)}, []string{"o1", "o3", "o2", "o4"}},
		{"multi-valued max", []store.SortKey{key("code", store.KindToken, true)}, []string{"o3", "o2", "o1", "o4"}},
		{"two keys", []store.SortKey{key("subject", store.KindReference, false), key("_id", 0, true)}, []string{"o3", "o1", "o2", "o4"}},
		{"quantity then id", []store.SortKey{key("value-quantity", store.KindQuantity, false), key("_id", 0, true)}, []string{"o3", "o1", "o2", "o4"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			page, err := s.Search(t.Context(), store.Query{Type: "Observation", Sort: tc.sort, Count: 10})
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(page); !slices.Equal(got, tc.want) {
				t.Fatalf("Search = %v; want %v", got, tc.want)
			}
		})
	}
}

// testSearchTotalCountsCurrent checks that a total counts each matching
// resource once, as of its current version: not a deleted one, not one
// whose earlier versions matched too, not one that matches two ways,
// whichever way the backend counts (a page that ends the matches, or a
// count query).
func testSearchTotalCountsCurrent(t *testing.T, s store.Store) {
	seedObservations(t, s) // o5 matched code 1234-5, then was deleted
	r := res("Observation", "o1", 2, 6)
	r.Compartment = "p1"
	put(t, s, r, []store.IndexEntry{tok("code", loinc, "1234-5"), tok("code", snomed, "1234-5")})
	r = res("Observation", "o2", 2, 7)
	r.Compartment = "p2"
	put(t, s, r, []store.IndexEntry{tok("code", loinc, "0000-0")}) // no longer 9999-9
	cases := []struct {
		name   string
		clause store.Clause
		want   int
	}{
		// o1 (matching by two rows) and o3; o5 is deleted.
		{"any system", clause("code", eqTok("", "1234-5", false)), 2},
		{"two systems", clause("code", eqTok(loinc, "1234-5", true), eqTok(snomed, "1234-5", true)), 2},
		{"updated away", clause("code", eqTok(loinc, "9999-9", true)), 0},
		{"names after updates", clause("name", strOp(store.OpPrefix, "beta")), 0}, // o2 and o1 lost theirs; o5 is deleted
		{"prefix", clause("name", strOp(store.OpPrefix, "gam")), 1},
	}
	for _, tc := range cases {
		for _, count := range []int{0, 1, 10} {
			t.Run(fmt.Sprintf("%s/count %d", tc.name, count), func(t *testing.T) {
				page, err := s.Search(t.Context(), store.Query{Type: "Observation", Clauses: []store.Clause{tc.clause}, Count: count, Total: true})
				if err != nil {
					t.Fatal(err)
				}
				if page.Total != tc.want || page.More != (tc.want > count) {
					t.Fatalf("Search total=%d more=%v; want total=%d more=%v", page.Total, page.More, tc.want, tc.want > count)
				}
			})
		}
	}
}

func testSearchPaging(t *testing.T, s store.Store) {
	seedObservations(t, s)
	desc := []store.SortKey{{Param: "_id", Desc: true}}
	cases := []struct {
		name          string
		offset, count int
		total         bool
		sort          []store.SortKey
		want          []string
		more          bool
		wantTotal     int
	}{
		{"first page", 0, 2, true, nil, []string{"o1", "o2"}, true, 4},
		{"second page", 2, 2, true, nil, []string{"o3", "o4"}, false, 4},
		{"partial page", 3, 5, false, nil, []string{"o4"}, false, 0},
		{"past the end", 7, 2, true, nil, []string{}, false, 4},
		// The total from the last page's own rows, without a count.
		{"last page with its total", 3, 5, true, nil, []string{"o4"}, false, 4},
		{"one page holds all", 0, 4, true, nil, []string{"o1", "o2", "o3", "o4"}, false, 4},
		{"one page with room to spare", 0, 10, true, desc, []string{"o4", "o3", "o2", "o1"}, false, 4},
		{"just past the end", 4, 2, true, nil, []string{}, false, 4},
		{"sorted page", 1, 2, false, desc, []string{"o3", "o2"}, true, 0},
		{"count only", 0, 0, true, nil, []string{}, true, 4},
		{"count only past the end", 4, 0, true, nil, []string{}, false, 4},
		{"nothing asked", 0, 0, false, nil, []string{}, false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			page, err := s.Search(t.Context(), store.Query{Type: "Observation", Offset: tc.offset, Count: tc.count, Total: tc.total, Sort: tc.sort})
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(page); !slices.Equal(got, tc.want) || page.More != tc.more || page.Total != tc.wantTotal {
				t.Fatalf("Search = %v more=%v total=%d; want %v more=%v total=%d", got, page.More, page.Total, tc.want, tc.more, tc.wantTotal)
			}
		})
	}
	// Walking pages with More visits every match once.
	var seen []string
	for off := 0; ; off += 3 {
		page, err := s.Search(t.Context(), store.Query{Type: "Observation", Offset: off, Count: 3, Sort: desc})
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, ids(page)...)
		if !page.More {
			break
		}
	}
	if want := []string{"o4", "o3", "o2", "o1"}; !slices.Equal(seen, want) {
		t.Fatalf("paged walk = %v, want %v", seen, want)
	}
}

func testIndexReplaced(t *testing.T, s store.Store) {
	ctx := t.Context()
	put(t, s, res("Patient", "p", 1, 0), []store.IndexEntry{str("name", "old"), tok("gender", "", "male")})
	put(t, s, res("Patient", "p", 2, 1), []store.IndexEntry{str("name", "new")})
	count := func(param, value string) int {
		t.Helper()
		page, err := s.Search(ctx, store.Query{Type: "Patient", Total: true, Clauses: []store.Clause{
			clause(param, store.Predicate{Op: store.OpEq, Value: value})}})
		if err != nil {
			t.Fatal(err)
		}
		return page.Total
	}
	if count("name", "old") != 0 || count("gender", "male") != 0 || count("name", "new") != 1 {
		t.Fatal("index rows of the previous version still match, or the new ones do not")
	}
	put(t, s, store.Resource{Type: "Patient", ID: "p", Version: 3, Deleted: true, LastUpdated: at(2)}, nil)
	if count("name", "new") != 0 {
		t.Fatal("a deleted resource still matches")
	}
	put(t, s, res("Patient", "p", 4, 3), []store.IndexEntry{str("name", "again")})
	if count("name", "again") != 1 || count("name", "new") != 0 {
		t.Fatal("index after re-creation is wrong")
	}
	// More rows than one INSERT batch.
	var many []store.IndexEntry
	for i := range 150 {
		many = append(many, tok("code", "s", fmt.Sprint(i)))
	}
	put(t, s, res("Patient", "big", 1, 4), many)
	for _, v := range []string{"0", "63", "64", "127", "128", "149"} {
		if count("code", v) != 1 {
			t.Fatalf("index row %s of 150 is missing", v)
		}
	}
}

// literals are values that would change a statement, or a LIKE pattern, if
// they were pasted into SQL.
var literals = []string{
	`' OR 1=1 --`, `'`, `''`, `%`, `_`, `\`, `a%b`, `a_b`, `a\b`, `a\%`, `%%`, `a`, `A`, `ab`, `Zeta`, `zeta`,
	`"; DROP TABLE resources; --`, `'); DELETE FROM search_index; --`, `$1`, `?`, `:name`, `@p1`,
	"Ünïcödé 日本語 🩺", "tab\tand\nnewline", `[a-z]*`, `*`, `]`,
}

func testLiteralValues(t *testing.T, s store.Store) {
	ctx := t.Context()
	byID := map[string]string{}
	for i, v := range literals {
		id := fmt.Sprintf("lit-%02d", i)
		byID[id] = v
		r := res("Basic", id, 1, i)
		r.Compartment = v
		put(t, s, r, []store.IndexEntry{str("s", v), tok("t", v, v)})
	}
	match := func(pred func(string) bool) []string {
		out := []string{}
		for i, v := range literals {
			if pred(v) {
				out = append(out, fmt.Sprintf("lit-%02d", i))
			}
		}
		return out
	}
	search := func(q store.Query) []string {
		t.Helper()
		q.Type, q.Count = "Basic", 100
		page, err := s.Search(ctx, q)
		if err != nil {
			t.Fatalf("Search: %v", err)
		}
		return ids(page)
	}
	for i, v := range literals {
		want := []string{fmt.Sprintf("lit-%02d", i)}
		checks := []struct {
			name string
			q    store.Query
			want []string
		}{
			{"eq", store.Query{Clauses: []store.Clause{clause("s", strOp(store.OpEq, v))}}, want},
			{"token", store.Query{Clauses: []store.Clause{clause("t", eqTok(v, v, true))}}, want},
			{"compartment", store.Query{Compartment: &v}, want},
			{"id", store.Query{IDs: []string{v}}, []string{}},
			{"prefix", store.Query{Clauses: []store.Clause{clause("s", strOp(store.OpPrefix, v))}}, match(func(x string) bool { return strings.HasPrefix(x, v) })},
			{"contains", store.Query{Clauses: []store.Clause{clause("s", strOp(store.OpContains, v))}}, match(func(x string) bool { return strings.Contains(x, v) })},
		}
		for _, c := range checks {
			if got := search(c.q); !slices.Equal(got, c.want) {
				t.Errorf("%s %q: got %v, want %v", c.name, v, got, c.want)
			}
		}
	}
	// Sorting compares bytes, identically on every backend.
	sorted := slices.Clone(literals)
	sort.Strings(sorted)
	var got []string
	for _, id := range search(store.Query{Sort: []store.SortKey{{Param: "s", Kind: store.KindString}}}) {
		got = append(got, byID[id])
	}
	if !slices.Equal(got, sorted) {
		t.Errorf("sorted by value = %q, want byte order %q", got, sorted)
	}
	// Nothing was dropped or deleted along the way.
	page, err := s.Search(ctx, store.Query{Type: "Basic", Total: true, Clauses: []store.Clause{clause("s", store.Predicate{Op: store.OpMissing})}})
	if err != nil || page.Total != len(literals) {
		t.Fatalf("after literal queries: %d indexed resources, %v; want %d", page.Total, err, len(literals))
	}
}

// manyRefs is n reference predicates that match nothing, then target,
// then extra.
func manyRefs(n int, target string, extra ...store.Predicate) []store.Predicate {
	out := make([]store.Predicate, 0, n+1+len(extra))
	for i := range n {
		out = append(out, store.Predicate{Kind: store.KindReference, Op: store.OpEq, Value: fmt.Sprintf("Patient/none-%d", i)})
	}
	out = append(out, store.Predicate{Kind: store.KindReference, Op: store.OpEq, Value: target})
	return append(out, extra...)
}
