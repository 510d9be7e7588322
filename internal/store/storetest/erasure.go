package storetest

import (
	"errors"
	"testing"

	"github.com/wardhealth/ward/internal/store"
)

var erasureTests = []conformanceTest{
	{"EraseCompartment", testEraseCompartment},
	{"ErasureRequests", testErasureRequests},
	{"LegalHolds", testLegalHolds},
	{"CompartmentActivity", testCompartmentActivity},
}

// testEraseCompartment: erasing a compartment deletes every version sealed
// in it, the index rows of its current resources and its data key, and
// leaves a bodiless deletion as each such resource's current version;
// another compartment, and an older version of a resource that moved into
// the erased compartment from another, are untouched.
func testEraseCompartment(t *testing.T, s store.Store) {
	ctx := t.Context()
	idx := []store.IndexEntry{{Param: "code", Kind: store.KindToken, System: "s", Value: "v"}, {Param: "name", Kind: store.KindBlind, Value: "h"}}
	in := func(r store.Resource, c string) store.Resource { r.Compartment = c; return r }
	put(t, s, in(res("Patient", "p1", 1, 0), "p1"), idx)
	put(t, s, in(res("Observation", "o1", 1, 1), "p1"), idx)
	put(t, s, in(res("Observation", "o1", 2, 2), "p1"), idx)
	put(t, s, in(res("Observation", "moved", 1, 3), "p2"), idx) // moved into p1 below
	put(t, s, in(res("Observation", "moved", 2, 4), "p1"), idx)
	put(t, s, in(res("Observation", "o2", 1, 5), "p2"), idx)
	for _, c := range []string{"p1", "p2"} {
		if _, err := s.CreateKey(ctx, store.WrappedKey{Compartment: c, KEKID: "k", Wrapped: []byte("wrapped " + c)}); err != nil {
			t.Fatal(err)
		}
	}
	err := store.ReadWrite(ctx, s, func(tx store.Tx) error {
		versions, rows, err := tx.EraseCompartment(ctx, "p1", at(10))
		if versions != 4 || rows != int64(3*len(idx)) {
			t.Errorf("EraseCompartment = %d versions, %d index rows; want 4, %d", versions, rows, 3*len(idx))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	err = store.ReadWrite(ctx, s, func(tx store.Tx) error {
		versions, rows, err := tx.EraseCompartment(ctx, "p1", at(11))
		if versions != 0 || rows != 0 {
			t.Errorf("erasing again deleted %d versions, %d index rows; want none", versions, rows)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		typ, id string
		version int64
	}{{"Patient", "p1", 2}, {"Observation", "o1", 3}, {"Observation", "moved", 3}} {
		cur, err := s.Current(ctx, r.typ, r.id)
		if err != nil || !cur.Deleted || len(cur.Body) != 0 || cur.Version != r.version || cur.Compartment != "p1" || !cur.LastUpdated.Equal(at(10)) {
			t.Errorf("%s/%s after the erasure: %+v, %v; want a deletion, version %d", r.typ, r.id, cur, err, r.version)
		}
	}
	for _, v := range []int64{1, 2} {
		if _, err := s.Version(ctx, "Observation", "o1", v); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("erased version o1/%d: %v, want ErrNotFound", v, err)
		}
	}
	if got, err := s.Version(ctx, "Observation", "moved", 1); err != nil || got.Compartment != "p2" || len(got.Body) == 0 {
		t.Errorf("the version of another compartment: %+v, %v", got, err)
	}
	if got, err := s.Current(ctx, "Observation", "o2"); err != nil || got.Deleted {
		t.Errorf("another compartment's resource: %+v, %v", got, err)
	}
	for _, q := range []store.Query{{Type: "Observation"}, {Type: "Patient"}} {
		page, err := s.Search(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Resources {
			if r.Compartment == "p1" {
				t.Errorf("search %s finds %s/%s of the erased compartment", q.Type, r.Type, r.ID)
			}
		}
	}
	if _, err := s.LoadKey(ctx, "p1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the erased compartment's data key: %v, want ErrNotFound", err)
	}
	if k, err := s.LoadKey(ctx, "p2"); err != nil || string(k.Wrapped) != "wrapped p2" {
		t.Errorf("another compartment's key: %+v, %v", k, err)
	}
	if err := store.ReadWrite(ctx, s, func(tx store.Tx) error { _, _, err := tx.EraseCompartment(ctx, "", at(11)); return err }); err == nil {
		t.Error("the shared compartment was erased")
	}
}

func testErasureRequests(t *testing.T, s store.Store) {
	ctx := t.Context()
	e := store.Erasure{ID: "e1", Patient: "p1", Requester: "u1", Reason: "patient-request", LegalBasis: "art17-1a", Requested: at(1)}
	if err := store.ReadWrite(ctx, s, func(tx store.Tx) error { return tx.CreateErasure(ctx, e) }); err != nil {
		t.Fatal(err)
	}
	if err := store.ReadWrite(ctx, s, func(tx store.Tx) error { return tx.CreateErasure(ctx, e) }); !errors.Is(err, store.ErrConflict) {
		t.Errorf("a duplicate request: %v, want ErrConflict", err)
	}
	got, err := s.Erasure(ctx, "e1")
	if err != nil || got.Patient != "p1" || got.Requester != "u1" || got.Reason != e.Reason || got.LegalBasis != e.LegalBasis ||
		!got.Requested.Equal(at(1)) || !got.Approved.IsZero() || got.Approver != "" {
		t.Fatalf("Erasure = %+v, %v", got, err)
	}
	var approved store.Erasure
	err = store.ReadWrite(ctx, s, func(tx store.Tx) (err error) {
		approved, err = tx.ApproveErasure(ctx, "e1", "u2", at(2), 7, 21)
		return err
	})
	if err != nil || approved.Approver != "u2" || !approved.Approved.Equal(at(2)) || approved.Versions != 7 || approved.IndexRows != 21 {
		t.Fatalf("ApproveErasure = %+v, %v", approved, err)
	}
	for id, want := range map[string]error{"e1": store.ErrConflict, "nope": store.ErrNotFound} {
		err := store.ReadWrite(ctx, s, func(tx store.Tx) error { _, err := tx.ApproveErasure(ctx, id, "u3", at(3), 0, 0); return err })
		if !errors.Is(err, want) {
			t.Errorf("approve %s: %v, want %v", id, err, want)
		}
	}
	if _, err := s.Erasure(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown erasure: %v", err)
	}
}

func testLegalHolds(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.LegalHold(ctx, "p1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("no hold: %v", err)
	}
	for _, reason := range []string{"litigation", "regulator"} {
		h := store.LegalHold{Patient: "p1", Reason: reason, SetBy: "u1", Set: at(1)}
		if err := store.ReadWrite(ctx, s, func(tx store.Tx) error { return tx.SetLegalHold(ctx, h) }); err != nil {
			t.Fatal(err)
		}
	}
	if h, err := s.LegalHold(ctx, "p1"); err != nil || h.Reason != "regulator" || h.SetBy != "u1" || !h.Set.Equal(at(1)) {
		t.Fatalf("LegalHold = %+v, %v", h, err)
	}
	if err := store.ReadWrite(ctx, s, func(tx store.Tx) error { return tx.ReleaseLegalHold(ctx, "p1") }); err != nil {
		t.Fatal(err)
	}
	if err := store.ReadWrite(ctx, s, func(tx store.Tx) error { return tx.ReleaseLegalHold(ctx, "p1") }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("releasing no hold: %v, want ErrNotFound", err)
	}
}

// testCompartmentActivity: per compartment, the newest current version
// and the latest Encounter period end; shared resources, deletions and
// versions no longer current do not count.
func testCompartmentActivity(t *testing.T, s store.Store) {
	in := func(r store.Resource, c string) store.Resource { r.Compartment = c; return r }
	date := func(hi int) []store.IndexEntry {
		return []store.IndexEntry{{Param: "date", Kind: store.KindDate, Lo: float64(at(hi).Unix() - 3600), Hi: float64(at(hi).Unix())}}
	}
	put(t, s, in(res("Patient", "p1", 1, 1), "p1"), nil)
	put(t, s, in(res("Encounter", "e1", 1, 2), "p1"), date(50))
	put(t, s, in(res("Encounter", "e2", 1, 3), "p1"), date(70))
	put(t, s, in(res("Encounter", "e2", 2, 4), "p1"), date(60)) // the current version's period counts
	put(t, s, in(res("Observation", "o1", 1, 9), "p1"), nil)
	put(t, s, in(res("Patient", "p2", 1, 5), "p2"), nil)
	del := in(res("Observation", "o2", 2, 20), "p2")
	put(t, s, in(res("Observation", "o2", 1, 6), "p2"), nil)
	del.Deleted, del.Body = true, nil
	put(t, s, del, nil)
	put(t, s, res("Organization", "org", 1, 30), nil)
	var got []store.Activity
	if err := s.CompartmentActivity(t.Context(), func(a store.Activity) error { got = append(got, a); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Compartment != "p1" || got[1].Compartment != "p2" {
		t.Fatalf("CompartmentActivity = %+v", got)
	}
	if a := got[0]; !a.LastUpdated.Equal(at(9)) || a.LastEncounter.Unix() != at(60).Unix() || a.Resources != 4 {
		t.Errorf("p1: %+v; want last update %v, last encounter %v, 4 resources", a, at(9), at(60))
	}
	if a := got[1]; !a.LastUpdated.Equal(at(5)) || !a.LastEncounter.IsZero() || a.Resources != 1 {
		t.Errorf("p2: %+v; want last update %v, no encounter, 1 resource", a, at(5))
	}
}
