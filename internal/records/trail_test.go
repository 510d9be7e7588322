package records_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/store"
)

// lastEntries returns the newest n ledger entries, oldest first.
func (f *fixture) lastEntries(n int) []ledger.Entry {
	f.t.Helper()
	ctx := context.Background()
	size, err := f.db.LedgerSize(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	rows, err := f.db.LedgerEntries(ctx, max(0, size-int64(n)), size)
	if err != nil {
		f.t.Fatal(err)
	}
	out := make([]ledger.Entry, len(rows))
	for i, row := range rows {
		if out[i], err = ledger.DecodeEntry(row.Entry); err != nil {
			f.t.Fatal(err)
		}
	}
	return out
}

// TestEveryInteractionRecorded is DESIGN invariant 3 at the records
// service, with no HTTP layer in front: each interaction, served or
// refused, leaves its entry in the ledger by the time it returns, says so
// through the caller's Trail, and names the patients it concerned.
func TestEveryInteractionRecorded(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	onlyA := caller(t, patA, "patient/*.rs")
	cases := []struct {
		name    string
		c       records.Caller
		do      func(c records.Caller) error
		want    ledger.Entry // Action, ResourceType, ResourceID, Outcome, Patient, Detail
		wantErr error
	}{
		{"read", f.sys, func(c records.Caller) error { _, err := f.svc.Read(ctx, c, "Observation", f.obsA); return err },
			ledger.Entry{Action: "read", ResourceType: "Observation", ResourceID: f.obsA, Version: "1", Outcome: "success", Patient: patA, Detail: "200"}, nil},
		{"read of a deleted resource", f.sys, func(c records.Caller) error {
			_, err := f.svc.Read(ctx, c, "Observation", f.obsBDeleted)
			return err
		}, ledger.Entry{Action: "read", ResourceType: "Observation", ResourceID: f.obsBDeleted, Outcome: "not-found", Detail: "410"}, records.ErrGone},
		{"read outside the compartment", onlyA, func(c records.Caller) error { _, err := f.svc.Read(ctx, c, "Observation", f.obsB); return err },
			ledger.Entry{Action: "read", ResourceType: "Observation", ResourceID: f.obsB, Outcome: "denied", Patient: patB, Detail: "outside-compartment"}, records.ErrNotFound},
		{"vread", f.sys, func(c records.Caller) error { _, err := f.svc.VRead(ctx, c, "Observation", f.obsA, 1); return err },
			ledger.Entry{Action: "vread", ResourceType: "Observation", ResourceID: f.obsA, Version: "1", Outcome: "success", Patient: patA, Detail: "200"}, nil},
		{"search", onlyA, func(c records.Caller) error {
			_, err := f.svc.Search(ctx, c, "Observation", url.Values{"subject": {"Patient/" + patA}})
			return err
		}, ledger.Entry{Action: "search", ResourceType: "Observation", Outcome: "success", Patient: patA, Detail: "200"}, nil},
		{"refused search", service(t, "system/Patient.rs"), func(c records.Caller) error {
			_, err := f.svc.Search(ctx, c, "Observation", nil)
			return err
		}, ledger.Entry{Action: "search", ResourceType: "Observation", Outcome: "denied", Detail: "403"}, records.ErrForbidden},
		{"instance history", f.sys, func(c records.Caller) error {
			_, err := f.svc.History(ctx, c, records.HistoryRequest{Type: "Observation", ID: f.obsA})
			return err
		}, ledger.Entry{Action: "history", ResourceType: "Observation", ResourceID: f.obsA, Outcome: "success", Patient: patA, Detail: "200"}, nil},
		{"everything", f.sys, func(c records.Caller) error {
			return f.svc.Everything(ctx, c, patA, func(records.Entry) error { return nil })
		}, ledger.Entry{Action: "everything", ResourceType: "Patient", ResourceID: patA, Outcome: "success", Patient: patA, Detail: "200"}, nil},
		{"audit event search", service(t, "system/AuditEvent.rs"), func(c records.Caller) error {
			_, err := f.svc.AuditEvents(ctx, c, nil)
			return err
		}, ledger.Entry{Action: "search", ResourceType: "AuditEvent", Outcome: "success", Detail: "200"}, nil},
		{"invalid create", f.sys, func(c records.Caller) error {
			_, err := f.svc.Create(ctx, c, parse(t, `{"resourceType":"Observation","status":"no-such-status","code":{"text":"x"}}`))
			return err
		}, ledger.Entry{Action: "create", ResourceType: "Observation", Outcome: "invalid", Detail: "400"}, nil},
		{"create", f.sys, func(c records.Caller) error {
			_, err := f.svc.Create(ctx, c, parse(t, observation(patA, "a-9", "")))
			return err
		}, ledger.Entry{Action: "create", ResourceType: "Observation", Outcome: "success", Patient: patA}, nil},
		{"patch", f.sys, func(c records.Caller) error {
			_, err := f.svc.Patch(ctx, c, "Observation", f.obsA, jsonPatch(t, `[{"op":"add","path":"/language","value":"en"}]`), 0)
			return err
		}, ledger.Entry{Action: "patch", ResourceType: "Observation", ResourceID: f.obsA, Version: "2", Outcome: "success", Patient: patA}, nil},
		{"patch whose test fails", f.sys, func(c records.Caller) error {
			_, err := f.svc.Patch(ctx, c, "Observation", f.obsA, jsonPatch(t, `[{"op":"test","path":"/language","value":"fr"}]`), 0)
			return err
		}, ledger.Entry{Action: "patch", ResourceType: "Observation", ResourceID: f.obsA, Outcome: "invalid", Detail: "412"}, records.ErrPrecondition},
		{"patch outside the compartment", caller(t, patA, "patient/*.cruds"), func(c records.Caller) error {
			_, err := f.svc.Patch(ctx, c, "Observation", f.obsB, jsonPatch(t, `[]`), 0)
			return err
		}, ledger.Entry{Action: "patch", ResourceType: "Observation", ResourceID: f.obsB, Outcome: "denied", Patient: patB, Detail: "outside-compartment"}, records.ErrNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c
			c.Trail = new(records.Trail)
			err := tc.do(c)
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && tc.want.Outcome == "success" && err != nil {
				t.Fatal(err)
			}
			if !c.Trail.Recorded() {
				t.Error("the trail does not say the interaction was recorded")
			}
			got := f.lastEntries(1)[0]
			if tc.want.Action == "create" && tc.want.Outcome == "success" {
				// Committed with the write: its id and version are the new ones.
				tc.want.ResourceID, tc.want.Version = got.ResourceID, "1"
			}
			w := tc.want
			if got.Action != w.Action || got.ResourceType != w.ResourceType || got.ResourceID != w.ResourceID || got.Version != w.Version ||
				got.Outcome != w.Outcome || got.Patient != w.Patient || got.Detail != w.Detail {
				t.Errorf("entry\n got  %s\n want %s", describe(got), describe(w))
			}
			if got.Actor != cmpOr(c.UserID, c.ClientID) {
				t.Errorf("actor %q, want %q", got.Actor, cmpOr(c.UserID, c.ClientID))
			}
		})
	}
}

func describe(e ledger.Entry) string {
	return fmt.Sprintf("%s %s/%s v%q %s patient=%q detail=%q", e.Action, e.ResourceType, e.ResourceID, e.Version, e.Outcome, e.Patient, e.Detail)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// switchLedger appends to its ledger until broken, then refuses every
// entry, as a ledger whose disk filled up does.
type switchLedger struct {
	ledger records.Appender
	broken atomic.Bool
}

func (l *switchLedger) Append(ctx context.Context, recs ...audit.Record) error {
	if l.broken.Load() {
		return errors.New("disk full")
	}
	return l.ledger.Append(ctx, recs...)
}

// TestUnrecordedNotServed: when an interaction's entry cannot be made
// durable, the interaction fails with ErrUnavailable and hands on nothing
// of what it read.
func TestUnrecordedNotServed(t *testing.T) {
	l := &switchLedger{}
	svc, db := newServiceWith(t, records.Config{Ledger: l}, func(st store.Store) store.Store {
		log := audit.New(st, audit.Config{})
		t.Cleanup(func() { log.Close() })
		l.ledger = log
		return st
	})
	f := &fixture{t: t, svc: svc, db: db, sys: service(t, "system/*.cruds")}
	f.put("Patient", patA, `{"resourceType":"Patient","id":"`+patA+`","active":true}`)
	obs := f.create(observation(patA, "a-1", ""))
	l.broken.Store(true)
	c := f.sys
	c.Trail = new(records.Trail)
	e, err := svc.Read(context.Background(), c, "Observation", obs)
	if !errors.Is(err, records.ErrUnavailable) {
		t.Fatalf("read with an unrecordable entry: %v, want ErrUnavailable", err)
	}
	if e.Body != nil || e.ID != "" {
		t.Errorf("an unrecorded read handed on %s/%s", e.Type, e.ID)
	}
	res, err := svc.Search(context.Background(), c, "Observation", nil)
	if !errors.Is(err, records.ErrUnavailable) || len(res.Matches) != 0 {
		t.Errorf("search with an unrecordable entry: %v and %d matches, want ErrUnavailable and none", err, len(res.Matches))
	}
	emitted := 0
	err = svc.Everything(context.Background(), c, patA, func(records.Entry) error { emitted++; return nil })
	if !errors.Is(err, records.ErrUnavailable) || emitted != 0 {
		t.Errorf("$everything with an unrecordable entry: %v after %d resources, want ErrUnavailable before any", err, emitted)
	}
	if c.Trail.Recorded() {
		t.Error("the trail says an unrecorded interaction was recorded")
	}
}

// A search names in its entry the patients its criteria asked about, even
// when the caller's reach emptied the answer (catalogue G2: snooping by
// search shows), and every entry carries the caller's token identifier.
func TestEntryNamesAskedPatientsAndToken(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	onlyA := caller(t, patA, "patient/*.rs")
	onlyA.Token = "tok-1"
	cases := []struct {
		typ    string
		params url.Values
		asked  []string
	}{
		{"Observation", url.Values{"subject": {"Patient/" + patB}}, []string{patB}},
		{"Observation", url.Values{"patient": {patB + "," + patA}}, []string{patA, patB}},
		{"Observation", url.Values{"subject:Patient": {patB}}, []string{patB}},
		{"Patient", url.Values{"_id": {patB}}, []string{patB}},
		{"Observation", url.Values{"subject": {"Group/g1"}, "code": {"1234-5"}}, nil},
	}
	for _, tc := range cases {
		res, err := f.svc.Search(ctx, onlyA, tc.typ, tc.params)
		if err != nil {
			t.Fatalf("search %s %v: %v", tc.typ, tc.params, err)
		}
		for _, m := range res.Matches {
			if m.Compartment == patB {
				t.Fatalf("search %v answered patient B's data", tc.params)
			}
		}
		e := f.lastEntries(1)[0]
		if fmt.Sprint(e.Asked) != fmt.Sprint(tc.asked) || e.Token != "tok-1" {
			t.Errorf("search %s %v: entry asked %q token %q, want %q and tok-1", tc.typ, tc.params, e.Asked, e.Token, tc.asked)
		}
	}
	// A value that is no id is refused and never recorded.
	if _, err := f.svc.Search(ctx, onlyA, "Observation", url.Values{"patient": {"Jane Doe"}}); !errors.Is(err, records.ErrInvalid) {
		t.Fatalf("search patient=<not an id>: %v", err)
	}
	if e := f.lastEntries(1)[0]; len(e.Asked) != 0 || e.Outcome != "invalid" {
		t.Errorf("refused search: entry asked %q outcome %s", e.Asked, e.Outcome)
	}
	if _, err := f.svc.SearchCompartment(ctx, onlyA, patB, "Observation", nil); err != nil {
		t.Fatal(err)
	}
	if e := f.lastEntries(1)[0]; fmt.Sprint(e.Asked) != fmt.Sprint([]string{patB}) {
		t.Errorf("compartment search of B: entry asked %q", e.Asked)
	}
}

// A break-the-glass grant for a patient the same person was granted
// before shows as a repeat in its entry, with the number of earlier
// grants (catalogue G5); another person's, or another patient's, does not.
func TestRepeatedGrantFlagged(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	doctor := func(user string) records.Caller {
		c := caller(t, "", "user/*.cruds")
		c.Subject.UserID, c.Subject.Related = user, []string{}
		return c
	}
	grant := func(c records.Caller, patient string) string {
		t.Helper()
		g, err := f.svc.BreakGlass(ctx, c, records.EmergencyRequest{Patient: patient, Reason: "unconscious", Purpose: "BTG", FreshMFA: true})
		if err != nil {
			t.Fatal(err)
		}
		e := f.lastEntries(1)[0]
		if e.Action != records.ActionEmergencyGrant || !strings.HasPrefix(e.Detail, g.ID) {
			t.Fatalf("grant entry %+v", e)
		}
		return strings.TrimSpace(strings.TrimPrefix(e.Detail, g.ID))
	}
	for i, want := range []string{"", "repeat=1", "repeat=2"} {
		if got := grant(doctor("u-1"), patA); got != want {
			t.Errorf("grant %d of u-1 to A: detail %q, want %q", i+1, got, want)
		}
	}
	if got := grant(doctor("u-2"), patA); got != "" {
		t.Errorf("first grant of u-2 to A: detail %q", got)
	}
	if got := grant(doctor("u-1"), patB); got != "" {
		t.Errorf("first grant of u-1 to B: detail %q", got)
	}
}

func jsonPatch(t *testing.T, doc string) *fhir.JSONPatch {
	t.Helper()
	p, err := fhir.ParseJSONPatch([]byte(doc), fhir.Limits{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
