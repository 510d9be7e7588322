package compliance_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/compliance"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store"
)

// fakeReview is an in-memory ReviewStore.
type fakeReview struct {
	users   []store.User
	clients []store.Client
	ledger  []store.LedgerEntry
	grants  []store.EmergencyGrant
}

func (f *fakeReview) ListUsers(context.Context) ([]store.User, error)     { return f.users, nil }
func (f *fakeReview) ListClients(context.Context) ([]store.Client, error) { return f.clients, nil }
func (f *fakeReview) LastLedgerEntryByActor(_ context.Context, actor, client string) (store.LedgerEntry, error) {
	var last *store.LedgerEntry
	for i, e := range f.ledger {
		if (actor != "" && e.Actor == actor) || (actor == "" && e.Client == client) {
			if last == nil || !e.Time.Before(last.Time) {
				last = &f.ledger[i]
			}
		}
	}
	if last == nil {
		return store.LedgerEntry{}, store.ErrNotFound
	}
	return *last, nil
}
func (f *fakeReview) ListEmergencyGrants(_ context.Context, q store.EmergencyQuery) ([]store.EmergencyGrant, bool, error) {
	end := min(q.Offset+q.Count, len(f.grants))
	return f.grants[q.Offset:end], end < len(f.grants), nil
}
func (f *fakeReview) LedgerEntriesByActor(_ context.Context, q store.ActorQuery) ([]store.LedgerEntry, error) {
	var out []store.LedgerEntry
	for _, e := range f.ledger {
		if e.Client == q.Client && (e.Time.After(q.Since) || e.Time.Equal(q.Since) && e.Index > q.AfterIndex) && len(out) < q.Count {
			out = append(out, e)
		}
	}
	return out, nil
}

func (f *fakeReview) add(t *testing.T, e ledger.Entry) {
	t.Helper()
	b, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	f.ledger = append(f.ledger, store.LedgerEntry{Index: int64(len(f.ledger)), Entry: b, Time: e.Time, Actor: e.Actor, Client: e.Client})
}

// TestReviewFlagsOverdue: every person and client is listed with role,
// scopes, last use, second factors and break-the-glass history; one
// confirmed within the period is not overdue, one confirmed before it or
// never (and created before it) is, a disabled or revoked one never is;
// the latest confirmation counts; confirmations recorded under another
// client, refused or malformed do not count.
func TestReviewFlagsOverdue(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	old := now.Add(-400 * day)
	f := &fakeReview{
		users: []store.User{
			{ID: "u-admin", Username: "ann", Role: "admin", Created: old, MFASecret: []byte{1}},
			{ID: "u-doc", Username: "bob", Role: "practitioner", Created: old, WebAuthn: []byte{1}, MFASecret: []byte{1}},
			{ID: "u-gone", Username: "cid", Role: "practitioner", Created: old, Disabled: true},
			{ID: "u-new", Username: "dee", Role: "auditor", Created: now.Add(-10 * day)},
		},
		clients: []store.Client{
			{ID: "c-svc", Name: "lab feed", Scopes: []string{"system/Observation.c"}, Created: old},
			{ID: "c-old", Name: "retired", Created: old, Revoked: true},
		},
		grants: []store.EmergencyGrant{
			{ID: "g1", UserID: "u-doc", Created: now.Add(-50 * day), Reviewed: now.Add(-49 * day)},
			{ID: "g2", UserID: "u-doc", Created: now.Add(-5 * day)},
		},
	}
	confirm := func(kind, id, reviewer string, at time.Time, client string) {
		e, err := compliance.ConfirmEntry(kind, id, reviewer, at)
		if err != nil {
			t.Fatal(err)
		}
		e.Actor, e.Client = "local:ops", client
		f.add(t, e)
	}
	confirm(compliance.KindPerson, "u-admin", "u-auditor", now.Add(-200*day), "ward-cli")
	confirm(compliance.KindPerson, "u-admin", "u-auditor", now.Add(-20*day), "ward-cli")  // the latest counts
	confirm(compliance.KindPerson, "u-doc", "u-auditor", now.Add(-100*day), "ward-cli")   // before the period
	confirm(compliance.KindClient, "c-svc", "u-auditor", now.Add(-1*day), "someone-else") // not the CLI's
	f.add(t, ledger.Entry{Time: now.Add(-2 * day), Actor: "u-doc", Client: "app", Action: "read", Outcome: "success"})
	f.add(t, ledger.Entry{Time: now.Add(-3 * day), Actor: "c-svc", Client: "c-svc", Action: "create", Outcome: "success"})
	f.add(t, ledger.Entry{Time: now.Add(-1 * day), Actor: "local:ops", Client: "ward-cli", Action: compliance.ActionConfirm, ResourceType: "Client", ResourceID: "c-svc", Outcome: "denied", Detail: "reviewer=x"})

	subjects, err := compliance.Review(t.Context(), f, compliance.ReviewConfig{Period: 90 * day, ConfirmClient: "ward-cli"}, now)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]compliance.ReviewSubject{}
	var order []string
	for _, s := range subjects {
		got[s.ID] = s
		order = append(order, s.ID)
	}
	if want := []string{"u-admin", "u-doc", "u-gone", "u-new", "c-old", "c-svc"}; !slices.Equal(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
	for id, want := range map[string]bool{"u-admin": false, "u-doc": true, "u-gone": false, "u-new": false, "c-svc": true, "c-old": false} {
		if got[id].Overdue != want {
			t.Errorf("%s: overdue %v, want %v (due %s, confirmed %+v)", id, got[id].Overdue, want, got[id].Due, got[id].Confirmed)
		}
	}
	if c := got["u-admin"].Confirmed; c == nil || !c.At.Equal(now.Add(-20*day)) || c.Reviewer != "u-auditor" || c.Recorder != "local:ops" {
		t.Errorf("u-admin's confirmation: %+v", c)
	}
	if got["c-svc"].Confirmed != nil {
		t.Errorf("a confirmation under another client or refused counted: %+v", got["c-svc"].Confirmed)
	}
	doc := got["u-doc"]
	if doc.MFA != "totp+webauthn" || doc.MFARequired || doc.LastUse == nil || !doc.LastUse.Equal(now.Add(-2*day)) {
		t.Errorf("u-doc: %+v", doc)
	}
	if doc.BreakGlass == nil || doc.BreakGlass.Grants != 2 || doc.BreakGlass.Unreviewed != 1 || !doc.BreakGlass.Last.Equal(now.Add(-5*day)) {
		t.Errorf("u-doc break-the-glass: %+v", doc.BreakGlass)
	}
	if !slices.Contains(doc.Scopes, "user/*.cruds") {
		t.Errorf("practitioner scopes: %v", doc.Scopes)
	}
	if n := got["u-new"]; n.MFA != "none" || !n.MFARequired || n.LastUse != nil || !slices.Contains(n.Scopes, "(ledger)") {
		t.Errorf("u-new: %+v", n)
	}
	if s := got["c-svc"]; s.LastUse == nil || !slices.Equal(s.Scopes, []string{"system/Observation.c"}) || s.Status != "active" {
		t.Errorf("c-svc: %+v", s)
	}
	if got["u-gone"].Status != "disabled" || got["c-old"].Status != "revoked" {
		t.Errorf("statuses: %s, %s", got["u-gone"].Status, got["c-old"].Status)
	}
	if n := len(compliance.Overdue(subjects)); n != 2 {
		t.Errorf("Overdue: %d, want 2", n)
	}
	for _, bad := range [][3]string{{"robot", "x", "r"}, {compliance.KindPerson, "", "r"}, {compliance.KindPerson, "u", ""}, {compliance.KindPerson, "u", "a b"}} {
		if _, err := compliance.ConfirmEntry(bad[0], bad[1], bad[2], now); err == nil {
			t.Errorf("ConfirmEntry%v accepted", bad)
		}
	}
}
