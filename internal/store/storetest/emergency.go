package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

// emergencyTests are Run's tests of break-the-glass grants; each gets a
// fresh store.
var emergencyTests = []conformanceTest{
	{"EmergencyGrants", testEmergencyGrants},
	{"EmergencyActive", testEmergencyActive},
	{"EmergencyQueue", testEmergencyQueue},
	{"EmergencyReview", testEmergencyReview},
	{"EmergencyReviewRace", func(t *testing.T, s store.Store) { testEmergencyReviewRace(t, s, s) }},
}

// runSharedEmergency runs the grant tests that need two handles on one
// database: reviewers in two processes close a grant once.
func runSharedEmergency(t *testing.T, openPair func(t *testing.T) (store.Store, store.Store)) {
	t.Run("EmergencyReviewRace", func(t *testing.T) {
		a, b := openPair(t)
		testEmergencyReviewRace(t, a, b)
	})
}

// emergencyGrant is an open grant of user to patient created at(n) for d seconds.
func emergencyGrant(id, user, patient string, n, d int) store.EmergencyGrant {
	return store.EmergencyGrant{
		ID: id, UserID: user, Patient: patient, Purpose: "BTG",
		Reason: []byte("sealed\x00\xff" + id), Created: at(n), Expires: at(n + d),
	}
}

// createEmergency stores g in its own transaction.
func createEmergency(t *testing.T, s store.Store, g store.EmergencyGrant) {
	t.Helper()
	if err := inTx(t.Context(), s, func(tx store.Tx) error { return tx.CreateEmergencyGrant(t.Context(), g) }); err != nil {
		t.Fatalf("CreateEmergencyGrant(%s) = %v", g.ID, err)
	}
}

// inTx runs fn in a transaction and commits it, or rolls it back when fn
// fails.
func inTx(ctx context.Context, s store.Store, fn func(tx store.Tx) error) error {
	tx, err := s.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

func reviewEmergency(ctx context.Context, s store.Store, id string, n int, reviewer string) (store.EmergencyGrant, error) {
	var got store.EmergencyGrant
	err := inTx(ctx, s, func(tx store.Tx) error {
		var err error
		got, err = tx.ReviewEmergencyGrant(ctx, id, at(n), reviewer, "justified", []byte("note\x00"+reviewer))
		return err
	})
	return got, err
}

// sameEmergency compares every field, and tells a nil Note from a set one.
func sameEmergency(a, b store.EmergencyGrant) bool {
	return a.ID == b.ID && a.UserID == b.UserID && a.Patient == b.Patient && a.Purpose == b.Purpose &&
		bytes.Equal(a.Reason, b.Reason) && a.Created.Equal(b.Created) && a.Expires.Equal(b.Expires) &&
		a.Reviewed.Equal(b.Reviewed) && a.Reviewed.IsZero() == b.Reviewed.IsZero() &&
		a.Reviewer == b.Reviewer && a.Outcome == b.Outcome && (a.Note == nil) == (b.Note == nil) && bytes.Equal(a.Note, b.Note)
}

func emergencyIDs(gs []store.EmergencyGrant) []string {
	out := []string{}
	for _, g := range gs {
		out = append(out, g.ID)
	}
	return out
}

func testEmergencyGrants(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.EmergencyGrant(ctx, "g1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("EmergencyGrant(unknown) = %v, want ErrNotFound", err)
	}
	g := emergencyGrant("g1", "u1", "p1", 0, 3600)
	// Review fields given to Create are not stored: a grant starts open.
	withReview := g
	withReview.Reviewed, withReview.Reviewer, withReview.Outcome, withReview.Note = at(1), "po", "justified", []byte("x")
	createEmergency(t, s, withReview)
	got, err := s.EmergencyGrant(ctx, "g1")
	if err != nil || !sameEmergency(got, g) {
		t.Fatalf("EmergencyGrant = %+v, %v; want %+v", got, err, g)
	}
	if err := inTx(ctx, s, func(tx store.Tx) error { return tx.CreateEmergencyGrant(ctx, emergencyGrant("g1", "u2", "p2", 5, 60)) }); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate CreateEmergencyGrant = %v, want ErrConflict", err)
	}
	// A grant created in a transaction that rolls back is not there.
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.CreateEmergencyGrant(ctx, emergencyGrant("g2", "u1", "p2", 1, 60)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EmergencyGrant(ctx, "g2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("EmergencyGrant after rollback = %v, want ErrNotFound", err)
	}
	if err := inTx(ctx, s, func(tx store.Tx) error {
		return tx.CreateEmergencyGrant(ctx, store.EmergencyGrant{ID: "g3", UserID: "u1"})
	}); err == nil {
		t.Fatal("a grant without a patient was stored")
	}
}

func testEmergencyActive(t *testing.T, s store.Store) {
	ctx := t.Context()
	// u1: a [0,100), b [50,60), c [200,300); u2: d [0,100).
	createEmergency(t, s, emergencyGrant("c", "u1", "p3", 200, 100))
	createEmergency(t, s, emergencyGrant("a", "u1", "p1", 0, 100))
	createEmergency(t, s, emergencyGrant("b", "u1", "p2", 50, 10))
	createEmergency(t, s, emergencyGrant("d", "u2", "p1", 0, 100))
	for _, tc := range []struct {
		user string
		n    int
		want []string
	}{
		{"u1", -1, []string{}},
		{"u1", 0, []string{"a"}},
		{"u1", 55, []string{"a", "b"}},
		{"u1", 60, []string{"a"}},
		{"u1", 100, []string{}},
		{"u1", 250, []string{"c"}},
		{"u2", 10, []string{"d"}},
		{"nobody", 10, []string{}},
	} {
		got, err := s.ActiveEmergencyGrants(ctx, tc.user, at(tc.n))
		if err != nil || !slices.Equal(emergencyIDs(got), tc.want) {
			t.Errorf("ActiveEmergencyGrants(%s, at %d) = %v, %v; want %v", tc.user, tc.n, emergencyIDs(got), err, tc.want)
		}
	}
	// Counted by user, patient and creation time, the end exclusive.
	for _, tc := range []struct {
		user, patient string
		since, before int
		want          int
	}{
		{"u1", "p1", 0, 1, 1}, {"u1", "p1", 1, 300, 0}, {"u1", "p1", -10, 0, 0},
		{"u2", "p1", 0, 300, 1}, {"u1", "p3", 0, 300, 1}, {"u1", "p9", 0, 300, 0},
	} {
		if n, err := s.CountEmergencyGrants(ctx, tc.user, tc.patient, at(tc.since), at(tc.before)); err != nil || n != tc.want {
			t.Errorf("CountEmergencyGrants(%s, %s, [%d, %d)) = %d, %v; want %d", tc.user, tc.patient, tc.since, tc.before, n, err, tc.want)
		}
	}
	// Expiry is exact to the microsecond.
	if got, _ := s.ActiveEmergencyGrants(ctx, "u1", at(60).Add(-time.Microsecond)); !slices.Equal(emergencyIDs(got), []string{"a", "b"}) {
		t.Errorf("a microsecond before b expires: %v", emergencyIDs(got))
	}
	// A reviewed grant is still active until it expires: review is after
	// the fact, not revocation.
	if _, err := reviewEmergency(ctx, s, "a", 20, "po"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ActiveEmergencyGrants(ctx, "u1", at(30)); !slices.Equal(emergencyIDs(got), []string{"a"}) {
		t.Errorf("after review: %v", emergencyIDs(got))
	}
}

func testEmergencyQueue(t *testing.T, s store.Store) {
	ctx := t.Context()
	// Created out of order; g2 and g3 share an instant (ordered by id).
	for _, g := range []store.EmergencyGrant{emergencyGrant("g4", "u1", "p1", 4, 60), emergencyGrant("g3", "u2", "p1", 2, 60), emergencyGrant("g1", "u1", "p2", 1, 60), emergencyGrant("g2", "u1", "p3", 2, 60), emergencyGrant("g5", "u3", "p1", 5, 60)} {
		createEmergency(t, s, g)
	}
	for _, id := range []string{"g2", "g5"} {
		if _, err := reviewEmergency(ctx, s, id, 10, "po"); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		q    store.EmergencyQuery
		want []string
		more bool
	}{
		{"all", store.EmergencyQuery{Count: 10}, []string{"g1", "g2", "g3", "g4", "g5"}, false},
		{"all, first page", store.EmergencyQuery{Count: 2}, []string{"g1", "g2"}, true},
		{"all, last page", store.EmergencyQuery{Offset: 4, Count: 2}, []string{"g5"}, false},
		{"all, exact page", store.EmergencyQuery{Offset: 3, Count: 2}, []string{"g4", "g5"}, false},
		{"unreviewed", store.EmergencyQuery{Unreviewed: true, Count: 10}, []string{"g1", "g3", "g4"}, false},
		{"unreviewed, paged", store.EmergencyQuery{Unreviewed: true, Offset: 1, Count: 1}, []string{"g3"}, true},
		{"past the end", store.EmergencyQuery{Unreviewed: true, Offset: 5, Count: 1}, []string{}, false},
		{"count only", store.EmergencyQuery{Unreviewed: true}, []string{}, true},
	} {
		got, more, err := s.ListEmergencyGrants(ctx, tc.q)
		if err != nil || !slices.Equal(emergencyIDs(got), tc.want) || more != tc.more {
			t.Errorf("ListEmergencyGrants(%s) = %v more=%v, %v; want %v more=%v", tc.name, emergencyIDs(got), more, err, tc.want, tc.more)
		}
	}
	list, _, err := s.ListEmergencyGrants(ctx, store.EmergencyQuery{Count: 10})
	if err != nil || len(list) != 5 || list[1].Reviewer != "po" || list[1].Reviewed.IsZero() || !list[0].Reviewed.IsZero() || !bytes.Equal(list[0].Reason, emergencyGrant("g1", "", "", 0, 0).Reason) {
		t.Fatalf("listed grants do not carry their fields: %+v, %v", list, err)
	}
	for _, q := range []store.EmergencyQuery{{Count: -1}, {Offset: -1, Count: 1}} {
		if _, _, err := s.ListEmergencyGrants(ctx, q); err == nil {
			t.Errorf("ListEmergencyGrants(%+v) succeeded", q)
		}
	}
}

func testEmergencyReview(t *testing.T, s store.Store) {
	ctx := t.Context()
	g := emergencyGrant("g1", "u1", "p1", 0, 3600)
	createEmergency(t, s, g)
	createEmergency(t, s, emergencyGrant("g2", "u1", "p2", 1, 3600))
	if _, err := reviewEmergency(ctx, s, "nosuch", 5, "po"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("review of an unknown grant = %v, want ErrNotFound", err)
	}
	// A review in a transaction that rolls back leaves the grant open.
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ReviewEmergencyGrant(ctx, "g1", at(5), "po0", "unjustified", nil); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.EmergencyGrant(ctx, "g1"); !got.Reviewed.IsZero() || got.Reviewer != "" {
		t.Fatalf("rolled-back review stuck: %+v", got)
	}

	want := g
	want.Reviewed, want.Reviewer, want.Outcome, want.Note = at(7), "po1", "justified", []byte("note\x00po1")
	got, err := reviewEmergency(ctx, s, "g1", 7, "po1")
	if err != nil || !sameEmergency(got, want) {
		t.Fatalf("review = %+v, %v; want %+v", got, err, want)
	}
	if got, err := s.EmergencyGrant(ctx, "g1"); err != nil || !sameEmergency(got, want) {
		t.Fatalf("reviewed grant = %+v, %v; want %+v", got, err, want)
	}
	if _, err := reviewEmergency(ctx, s, "g1", 9, "po2"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second review = %v, want ErrConflict", err)
	}
	if got, _ := s.EmergencyGrant(ctx, "g1"); !sameEmergency(got, want) {
		t.Fatalf("second review changed the grant: %+v", got)
	}
	// A review without a note reads back nil; the other grant is untouched
	// until then.
	if got, _ := s.EmergencyGrant(ctx, "g2"); !got.Reviewed.IsZero() {
		t.Fatalf("reviewing g1 closed g2: %+v", got)
	}
	if err := inTx(ctx, s, func(tx store.Tx) error {
		got, err = tx.ReviewEmergencyGrant(ctx, "g2", at(8), "po1", "escalated", nil)
		return err
	}); err != nil || got.Note != nil || got.Outcome != "escalated" {
		t.Fatalf("review without a note = %+v, %v", got, err)
	}
	if err := inTx(ctx, s, func(tx store.Tx) error {
		_, err := tx.ReviewEmergencyGrant(ctx, "g2", time.Time{}, "po1", "justified", nil)
		return err
	}); err == nil {
		t.Fatal("a review without a time was accepted")
	}
}

// testEmergencyReviewRace has reviewers on a and b close the same grant at
// once, many times: exactly one must win each round.
func testEmergencyReviewRace(t *testing.T, a, b store.Store) {
	ctx := t.Context()
	const rounds, reviewers = 5, 6
	for round := range rounds {
		id := fmt.Sprintf("race-%d", round)
		createEmergency(t, a, emergencyGrant(id, "u1", "p1", round, 60))
		var wg sync.WaitGroup
		errs := make([]error, reviewers)
		for i := range reviewers {
			s := a
			if i%2 == 1 {
				s = b
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = reviewEmergency(ctx, s, id, 100+i, fmt.Sprintf("po%d", i))
			}()
		}
		wg.Wait()
		wins, winner := 0, -1
		for i, err := range errs {
			switch {
			case err == nil:
				wins, winner = wins+1, i
			case !errors.Is(err, store.ErrConflict):
				t.Fatalf("round %d: reviewer %d: unexpected error %v", round, i, err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d reviewers won, want exactly 1 (errors %v)", round, wins, errs)
		}
		got, err := b.EmergencyGrant(ctx, id)
		if err != nil || got.Reviewer != fmt.Sprintf("po%d", winner) || !got.Reviewed.Equal(at(100+winner)) {
			t.Fatalf("round %d: stored review %+v, %v; want reviewer %d's", round, got, err, winner)
		}
	}
}
