package storetest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/wardhealth/ward/internal/store"
)

// labelTests hold a store to Resource.Sensitivity and Query.Views: the
// class is kept with every version, and a search narrowed by views counts
// and pages only what they admit.
var labelTests = []conformanceTest{
	{"SensitivityRoundTrip", testSensitivityRoundTrip},
	{"SearchViews", testSearchViews},
	{"Unclassified", testUnclassified},
	{"ReplaceIndex", testReplaceIndex},
	{"BlindAlternatives", testBlindAlternatives},
}

// Sensitivity bits as the records service uses them; the store gives them
// no meaning.
const (
	sensR uint8 = 1 // confidentiality R
	sensV uint8 = 2 // confidentiality V
	sensS uint8 = 4 // a sensitivity label
)

const actCode = "http://terminology.hl7.org/CodeSystem/v3-ActCode"

func labelled(id, compartment string, sens uint8, codes ...string) (store.Resource, []store.IndexEntry) {
	r := res("Observation", id, 1, 0)
	r.Compartment, r.Sensitivity = compartment, sens
	index := []store.IndexEntry{{Param: "code", Kind: store.KindToken, System: "http://loinc.org", Value: "1"}}
	for _, c := range codes {
		index = append(index, store.IndexEntry{Param: "_security", Kind: store.KindToken, System: actCode, Value: c})
	}
	return r, index
}

func testSensitivityRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	r, index := labelled("o1", "p1", sensR|sensS, "HIV")
	put(t, s, r, index)
	check := func(what string, got store.Resource, err error, want uint8) {
		t.Helper()
		if err != nil || got.Sensitivity != want {
			t.Fatalf("%s: sensitivity %d, %v; want %d", what, got.Sensitivity, err, want)
		}
	}
	got, err := s.Current(ctx, "Observation", "o1")
	check("Current", got, err, sensR|sensS)
	got, err = s.Version(ctx, "Observation", "o1", 1)
	check("Version", got, err, sensR|sensS)

	r2 := res("Observation", "o1", 2, 1)
	r2.Compartment = "p1"
	put(t, s, r2, nil)
	got, err = s.Current(ctx, "Observation", "o1")
	check("relabelled Current", got, err, 0)
	got, err = s.Version(ctx, "Observation", "o1", 1)
	check("old Version", got, err, sensR|sensS)

	del := store.Resource{Type: "Observation", ID: "o1", Version: 3, Compartment: "p1", Deleted: true, LastUpdated: at(2), Sensitivity: sensV}
	put(t, s, del, nil)
	got, err = s.Current(ctx, "Observation", "o1")
	check("deletion", got, err, sensV)

	page, err := s.History(ctx, store.HistoryQuery{Type: "Observation", ID: "o1", Count: 10})
	if err != nil || len(page.Resources) != 3 {
		t.Fatalf("History = %d, %v", len(page.Resources), err)
	}
	for i, want := range []uint8{sensV, 0, sensR | sensS} {
		if page.Resources[i].Sensitivity != want {
			t.Fatalf("History[%d] sensitivity %d, want %d", i, page.Resources[i].Sensitivity, want)
		}
	}
	put(t, s, res("Observation", "o2", 1, 3), nil)
	sp, err := s.Search(ctx, store.Query{Type: "Observation", Count: 10})
	if err != nil || len(sp.Resources) != 1 || sp.Resources[0].Sensitivity != 0 {
		t.Fatalf("Search = %+v, %v", sp.Resources, err)
	}
}

func testSearchViews(t *testing.T, s store.Store) {
	seed := []struct {
		id, comp string
		sens     uint8
		codes    []string
	}{
		{"a1", "p1", 0, nil},
		{"a2", "p1", sensS, []string{"HIV"}},
		{"a3", "p1", sensS, []string{"PSY"}},
		{"a4", "p1", sensR, nil},
		{"a5", "p1", sensR | sensS, []string{"HIV"}},
		{"a6", "p1", sensS, []string{"HIV", "PSY"}},
		{"b1", "p2", 0, nil},
		{"b2", "p2", sensS, []string{"HIV"}},
		{"s1", "", 0, nil},
		{"s2", "", sensV, nil},
	}
	for _, r := range seed {
		res, index := labelled(r.id, r.comp, r.sens, r.codes...)
		put(t, s, res, index)
	}
	hide := func(codes ...string) store.Clause {
		c := store.Clause{Param: "_security"}
		for _, code := range codes {
			c.Any = append(c.Any, eqTok(actCode, code, true))
		}
		return c
	}
	view := func(comps []string, sens, partial uint8, hidden store.Clause) store.View {
		return store.View{Compartments: comps, Sensitivity: sens, Partial: partial, Hidden: hidden}
	}
	p1, p2 := []string{"p1"}, []string{"p2"}
	all := []string{"a1", "a2", "a3", "a4", "a5", "a6", "b1", "b2", "s1", "s2"}
	cases := []struct {
		name  string
		q     store.Query
		want  []string
		fails bool
	}{
		{"no views", store.Query{}, all, false},
		{"empty views", store.Query{Views: []store.View{}}, nil, false},
		{"normal everywhere", store.Query{Views: []store.View{view(nil, 0, 0, store.Clause{})}}, []string{"a1", "b1", "s1"}, false},
		{"normal in p1 only", store.Query{Views: []store.View{view(p1, 0, 0, store.Clause{})}}, []string{"a1"}, false},
		{"everything in p1", store.Query{Views: []store.View{view(p1, 0xff, 0, store.Clause{})}}, []string{"a1", "a2", "a3", "a4", "a5", "a6"}, false},
		{"all of p1, normal elsewhere", store.Query{Views: []store.View{view(p1, sensR|sensV|sensS, 0, store.Clause{}), view(nil, 0, 0, store.Clause{})}},
			[]string{"a1", "a2", "a3", "a4", "a5", "a6", "b1", "s1"}, false},
		{"R in p1", store.Query{Views: []store.View{view(p1, sensR, 0, store.Clause{})}}, []string{"a1", "a4"}, false},
		{"V in the shared compartment", store.Query{Views: []store.View{view([]string{""}, sensV, 0, store.Clause{})}}, []string{"s1", "s2"}, false},
		{"HIV but not PSY in p1", store.Query{Views: []store.View{view(p1, 0, sensS, hide("PSY", "ETH"))}}, []string{"a1", "a2"}, false},
		{"R, and HIV but not PSY, in p1", store.Query{Views: []store.View{view(p1, sensR, sensS, hide("PSY"))}}, []string{"a1", "a2", "a4", "a5"}, false},
		{"partial without hidden rows", store.Query{Views: []store.View{view(p1, 0, sensS, store.Clause{})}}, []string{"a1", "a2", "a3", "a6"}, false},
		{"partial in p1, normal elsewhere", store.Query{Views: []store.View{view(p1, 0, sensS, hide("PSY")), view(nil, 0, 0, store.Clause{})}},
			[]string{"a1", "a2", "b1", "s1"}, false},
		{"a view admitting nothing keeps its compartments from the others", store.Query{Views: []store.View{{Compartments: p1, None: true}, view(nil, 0xff, 0, store.Clause{})}},
			[]string{"b1", "b2", "s1", "s2"}, false},
		{"only views admitting nothing", store.Query{Views: []store.View{{Compartments: p1, None: true}, {None: true}}}, nil, false},
		// Lists of several compartments, and the view covering the rest
		// excluding several.
		{"normal in p1 and p2", store.Query{Views: []store.View{view([]string{"p1", "p2"}, 0, 0, store.Clause{})}}, []string{"a1", "b1"}, false},
		{"R in p1, S in p2, V elsewhere", store.Query{Views: []store.View{view(p1, sensR, 0, store.Clause{}), view(p2, sensS, 0, store.Clause{}), view(nil, sensV, 0, store.Clause{})}},
			[]string{"a1", "a4", "b1", "b2", "s1", "s2"}, false},
		{"HIV but not PSY in p1 and p2, within a list", store.Query{Compartments: []string{"p1", "p2", ""}, Views: []store.View{view([]string{"p1", "p2"}, 0, sensS, hide("PSY", "ETH"))}},
			[]string{"a1", "a2", "b1", "b2"}, false},
		{"a view naming no compartment", store.Query{Views: []store.View{view([]string{}, 0xff, 0, store.Clause{})}}, nil, false},
		{"views within compartments", store.Query{Compartments: p2, Views: []store.View{view(nil, sensS, 0, store.Clause{})}}, []string{"b1", "b2"}, false},
		{"views within a compartment", store.Query{Compartment: &p2[0], Views: []store.View{view(p1, 0xff, 0, store.Clause{})}}, nil, false},
		{"views and clauses", store.Query{Views: []store.View{view(p2, sensS, 0, store.Clause{})},
			Clauses: []store.Clause{clause("_security", eqTok(actCode, "HIV", true))}}, []string{"b2"}, false},
		{"negated hidden predicate", store.Query{Views: []store.View{view(p1, 0, sensS, store.Clause{Param: "_security",
			Any: []store.Predicate{{Kind: store.KindToken, Op: store.OpEq, Value: "PSY", Not: true}}})}}, nil, true},
		{"hidden predicate without a parameter", store.Query{Views: []store.View{view(p1, 0, sensS, store.Clause{Any: []store.Predicate{eqTok(actCode, "PSY", true)}})}}, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			q.Type, q.Count, q.Total = "Observation", 3, true
			var got []string
			total := -1
			for {
				page, err := s.Search(t.Context(), q)
				if tc.fails {
					if err == nil {
						t.Fatal("Search succeeded; want an error")
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if total >= 0 && page.Total != total {
					t.Fatalf("total changed between pages: %d then %d", total, page.Total)
				}
				total = page.Total
				got = append(got, ids(page)...)
				if !page.More {
					break
				}
				q.Offset += q.Count
			}
			if !slices.Equal(got, tc.want) || total != len(tc.want) {
				t.Fatalf("Search = %v total=%d; want %v", got, total, tc.want)
			}
			q.Offset, q.Count = 0, 0
			page, err := s.Search(t.Context(), q)
			if err != nil || page.Total != len(tc.want) {
				t.Fatalf("count-only Search total=%d, %v; want %d", page.Total, err, len(tc.want))
			}
		})
	}
}

// testUnclassified: the maintenance walk over current versions of class 0
// pages by (type, id) across types, skips deleted and classified ones and
// older versions, and SetSensitivity changes only a current version.
func testUnclassified(t *testing.T, s store.Store) {
	ctx := t.Context()
	if pending, err := s.SensitivityPending(ctx); err != nil || pending {
		t.Fatalf("a new database has versions to classify: %v, %v", pending, err)
	}
	put(t, s, res("Observation", "a", 1, 1), nil)
	labelled := res("Observation", "b", 1, 2)
	labelled.Sensitivity = sensS
	put(t, s, labelled, nil)
	put(t, s, res("Observation", "c", 1, 3), nil)
	put(t, s, res("Observation", "c", 2, 4), nil)
	put(t, s, res("Patient", "p", 1, 5), nil)
	put(t, s, res("Patient", "q", 1, 6), nil)
	gone := res("Patient", "q", 2, 7)
	gone.Deleted, gone.Body = true, nil
	put(t, s, gone, nil)

	walk := func() []string {
		var out []string
		typ, id := "", ""
		for range 10 {
			page, err := s.Unclassified(ctx, typ, id, 1)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				return out
			}
			r := page[0]
			out = append(out, fmt.Sprintf("%s/%s/%d", r.Type, r.ID, r.Version))
			typ, id = r.Type, r.ID
		}
		t.Fatal("the walk does not end")
		return nil
	}
	if got, want := walk(), []string{"Observation/a/1", "Observation/c/2", "Patient/p/1"}; !slices.Equal(got, want) {
		t.Fatalf("unclassified: %v, want %v", got, want)
	}
	older, current := res("Observation", "c", 1, 3), res("Observation", "c", 2, 4)
	older.Sensitivity, current.Sensitivity = sensV, sensR
	if n, err := s.SetSensitivity(ctx, []store.Resource{older}); err != nil || n != 0 {
		t.Fatalf("set the class of a version that is not current: %d, %v", n, err)
	}
	if n, err := s.SetSensitivity(ctx, []store.Resource{older, current}); err != nil || n != 1 {
		t.Fatalf("set the class of the current version: %d, %v", n, err)
	}
	if got, want := walk(), []string{"Observation/a/1", "Patient/p/1"}; !slices.Equal(got, want) {
		t.Fatalf("unclassified after setting one: %v, want %v", got, want)
	}
	if r, err := s.Current(ctx, "Observation", "c"); err != nil || r.Sensitivity != sensR {
		t.Fatalf("current version's class: %d, %v", r.Sensitivity, err)
	}
	if r, err := s.Version(ctx, "Observation", "c", 1); err != nil || r.Sensitivity != 0 {
		t.Fatalf("older version's class: %d, %v", r.Sensitivity, err)
	}
	if err := s.SensitivityClassified(ctx); err != nil {
		t.Fatal(err)
	}
	if pending, err := s.SensitivityPending(ctx); err != nil || pending {
		t.Fatalf("pending after classifying: %v, %v", pending, err)
	}
}

// testReplaceIndex: the index rebuild walks every current, non-deleted
// version, and ReplaceIndex swaps the rows of a version only while it is
// current, so that a search finds it by its new rows and not its old.
func testReplaceIndex(t *testing.T, s store.Store) {
	ctx := t.Context()
	if pending, err := s.IndexRebuildPending(ctx); err != nil || pending {
		t.Fatalf("a new database has an index to rebuild: %v, %v", pending, err)
	}
	old := []store.IndexEntry{{Param: "value-string", Kind: store.KindString, Value: "chest pain"}}
	put(t, s, res("Observation", "a", 1, 1), old)
	put(t, s, res("Observation", "b", 1, 2), old)
	put(t, s, res("Observation", "b", 2, 3), old)
	gone := res("Observation", "c", 1, 4)
	put(t, s, gone, old)
	gone = res("Observation", "c", 2, 5)
	gone.Deleted, gone.Body = true, nil
	put(t, s, gone, nil)
	var walked []string
	typ, id := "", ""
	for range 10 {
		page, err := s.CurrentVersions(ctx, typ, id, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		r := page[0]
		walked = append(walked, fmt.Sprintf("%s/%s/%d", r.Type, r.ID, r.Version))
		typ, id = r.Type, r.ID
	}
	if want := []string{"Observation/a/1", "Observation/b/2"}; !slices.Equal(walked, want) {
		t.Fatalf("current versions: %v, want %v", walked, want)
	}
	blind := []store.IndexEntry{{Param: "value-string", Kind: store.KindBlind, Value: "h1"}}
	n, err := s.ReplaceIndex(ctx, []store.Reindexed{
		{Resource: res("Observation", "a", 1, 1), Index: blind},
		{Resource: res("Observation", "b", 1, 2), Index: blind}, // no longer current
	})
	if err != nil || n != 1 {
		t.Fatalf("replace index: %d, %v; want 1", n, err)
	}
	find := func(p store.Predicate) []string {
		t.Helper()
		page, err := s.Search(ctx, store.Query{Type: "Observation", Count: 10, Clauses: []store.Clause{{Param: "value-string", Any: []store.Predicate{p}}}})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range page.Resources {
			ids = append(ids, r.ID)
		}
		slices.Sort(ids)
		return ids
	}
	if got := find(store.Predicate{Kind: store.KindString, Op: store.OpEq, Value: "chest pain"}); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("old plaintext rows found %v, want only b's", got)
	}
	if got := find(store.Predicate{Kind: store.KindBlind, Op: store.OpEq, Value: "h1"}); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("new rows found %v, want a", got)
	}
	if err := s.IndexRebuilt(ctx); err != nil {
		t.Fatal(err)
	}
	if pending, err := s.IndexRebuildPending(ctx); err != nil || pending {
		t.Fatalf("pending after rebuilding: %v, %v", pending, err)
	}
}

// testBlindAlternatives: a predicate with alternative values (a blind
// value under each live key generation during a rotation) matches a row
// equal to any of them, and negated, only resources with none of them:
// NOT (a OR b), never (NOT a) OR (NOT b).
func testBlindAlternatives(t *testing.T, s store.Store) {
	ctx := t.Context()
	row := func(v string) []store.IndexEntry {
		return []store.IndexEntry{{Param: "identifier", Kind: store.KindBlind, Value: v}}
	}
	put(t, s, res("Patient", "a", 1, 1), row("old-x")) // value x, old key
	put(t, s, res("Patient", "b", 1, 2), row("new-x")) // value x, new key
	put(t, s, res("Patient", "c", 1, 3), row("new-y")) // another value
	put(t, s, res("Patient", "d", 1, 4), nil)          // no identifier
	find := func(any ...store.Predicate) []string {
		t.Helper()
		page, err := s.Search(ctx, store.Query{Type: "Patient", Count: 10, Clauses: []store.Clause{{Param: "identifier", Any: any}}})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range page.Resources {
			ids = append(ids, r.ID)
		}
		slices.Sort(ids)
		return ids
	}
	x := store.Predicate{Kind: store.KindBlind, Op: store.OpEq, Value: "new-x", Alt: []string{"old-x"}}
	notX := x
	notX.Not = true
	y := store.Predicate{Kind: store.KindBlind, Op: store.OpEq, Value: "new-y", Alt: []string{"old-y"}}
	for _, c := range []struct {
		name string
		any  []store.Predicate
		want []string
	}{
		{"x under either key", []store.Predicate{x}, []string{"a", "b"}},
		{"not x under any key", []store.Predicate{notX}, []string{"c", "d"}},
		{"x or y", []store.Predicate{x, y}, []string{"a", "b", "c"}},
		{"one value only", []store.Predicate{{Kind: store.KindBlind, Op: store.OpEq, Value: "old-x"}}, []string{"a"}},
	} {
		if got := find(c.any...); !slices.Equal(got, c.want) {
			t.Errorf("%s: found %v, want %v", c.name, got, c.want)
		}
	}
}
