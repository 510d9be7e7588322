package records_test

import (
	"context"
	"crypto/rand"
	"errors"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/search"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/policy"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/sqlite"
)

// These tests hold the records service to the compartment obligation of a
// patient/ grant (catalogue cases A1 to A5): patient A's token never sees,
// counts or writes patient B's data, and what it may not see answers as
// what does not exist.

const (
	patA = "pat-a"
	patB = "pat-b"
)

type fixture struct {
	t   *testing.T
	svc *records.Service
	db  store.Store
	sys records.Caller // system/*.cruds: sees everything

	obsA, obsB    string // one Observation of each patient
	obsBDeleted   string // a deleted Observation of B
	obsAPerformsB string // A's Observation naming B as performer
	obsBPerformsA string // B's Observation naming A as performer
	org           string // a shared Organization
}

// newService is a records service over a fresh SQLite database and key
// file, with cfg, for records-level tests.
func newService(t *testing.T, cfg records.Config) (*records.Service, store.Store) {
	t.Helper()
	return newServiceWith(t, cfg, nil)
}

// newServiceWith is newService over the store wrap returns (nil: as is).
func newServiceWith(t *testing.T, cfg records.Config, wrap func(store.Store) store.Store) (*records.Service, store.Store) {
	t.Helper()
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "keys.json")
	if err := keys.CreateLocalFile(keyPath, keys.LocalParams{}, rand.Reader); err != nil {
		t.Fatal(err)
	}
	return newServiceAt(t, cfg, keyPath, filepath.Join(dir, "ward.db"), wrap)
}

// newServiceAt is a service over the key file at keyPath and the SQLite
// database at dbPath.
func newServiceAt(t *testing.T, cfg records.Config, keyPath, dbPath string, wrap func(store.Store) store.Store) (*records.Service, store.Store) {
	t.Helper()
	kf, err := keys.OpenLocalFile(keyPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	kr, err := keys.NewKeyring(kf, records.KeyStore(db), keys.Config{})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := search.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	val, err := fhir.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	var st store.Store = db
	if wrap != nil {
		st = wrap(db)
	}
	if cfg.Ledger == nil {
		log := audit.New(st, audit.Config{})
		t.Cleanup(func() { log.Close() })
		cfg.Ledger = log
	}
	return records.New(cfg, st, kr, keys.NewBlindIndex(kf.IndexKey()), reg, val), st
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	svc, db := newService(t, records.Config{})
	f := &fixture{
		t:   t,
		svc: svc,
		db:  db,
		sys: service(t, "system/*.cruds"),
	}
	for _, id := range []string{patA, patB} {
		f.put("Patient", id, `{"resourceType":"Patient","id":"`+id+`","active":true}`)
	}
	f.obsA = f.create(observation(patA, "a-1", ""))
	f.obsB = f.create(observation(patB, "b-1", ""))
	f.obsBDeleted = f.create(observation(patB, "b-2", ""))
	if _, err := f.svc.Delete(context.Background(), f.sys, "Observation", f.obsBDeleted); err != nil {
		t.Fatal(err)
	}
	f.obsAPerformsB = f.create(observation(patA, "a-2", patB))
	f.obsBPerformsA = f.create(observation(patB, "b-3", patA))
	f.org = f.create(`{"resourceType":"Organization","name":"Clinic"}`)
	return f
}

// service is a service's caller (client credentials): scopes only.
func service(t *testing.T, scopes ...string) records.Caller {
	c := caller(t, "", scopes...)
	c.Subject = policy.Subject{ClientID: "svc", Scopes: c.Subject.Scopes}
	return c
}

// serviceFor is a service's caller with a launch patient, holding both
// system/ and patient/ scopes (a person's token never holds system/ ones).
func serviceFor(t *testing.T, patient string, scopes ...string) records.Caller {
	c := service(t, scopes...)
	c.Subject.Patient = patient
	return c
}

// caller is a practitioner's caller with a care relationship to patient,
// the SMART launch patient: the role grants every interaction, so what is
// tested is the compartment the patient/ scopes limit the access to.
func caller(t *testing.T, patient string, scopes ...string) records.Caller {
	t.Helper()
	sub := policy.Subject{ClientID: "app", UserID: "u-" + patient, Role: "practitioner", FHIRUser: "Practitioner/p1", Patient: patient, Related: []string{}}
	if patient != "" {
		sub.Related = []string{patient}
	}
	for _, s := range scopes {
		sc, err := policy.ParseScope(s)
		if err != nil {
			t.Fatal(err)
		}
		sub.Scopes = append(sub.Scopes, sc)
	}
	return records.Caller{Subject: sub, RequestID: "req"}
}

// observation is an Observation about subject with an identifier ident,
// and a Patient performer when performer is not "".
func observation(subject, ident, performer string) string {
	s := `{"resourceType":"Observation","status":"final","code":{"text":"weight"},` +
		`"identifier":[{"system":"urn:test","value":"` + ident + `"}],` +
		`"subject":{"reference":"Patient/` + subject + `"}`
	if performer != "" {
		s += `,"performer":[{"reference":"Patient/` + performer + `"}]`
	}
	return s + `}`
}

func parse(t *testing.T, body string) *fhir.Resource {
	t.Helper()
	r, err := fhir.Parse([]byte(body), fhir.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (f *fixture) create(body string) string {
	f.t.Helper()
	e, err := f.svc.Create(context.Background(), f.sys, parse(f.t, body))
	if err != nil {
		f.t.Fatal(err)
	}
	return e.ID
}

func (f *fixture) put(typ, id, body string) {
	f.t.Helper()
	if _, _, err := f.svc.Update(context.Background(), f.sys, typ, id, parse(f.t, body), 0); err != nil {
		f.t.Fatal(err)
	}
}

// state is what a write must leave untouched: every Observation and
// Patient version, seen by the system caller, and the ledger's entries of
// writes (a refusal, and state's own reads, add entries of their own).
func (f *fixture) state() string {
	f.t.Helper()
	ctx := context.Background()
	var b strings.Builder
	for _, typ := range []string{"Observation", "Patient", "Organization"} {
		h, err := f.svc.History(ctx, f.sys, records.HistoryRequest{Type: typ, Count: 1000})
		if err != nil {
			f.t.Fatal(err)
		}
		for _, e := range h.Entries {
			b.WriteString(e.Location() + " " + e.Compartment + "\n")
		}
	}
	n, err := f.db.LedgerSize(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	rows, err := f.db.LedgerEntries(ctx, 0, n)
	if err != nil {
		f.t.Fatal(err)
	}
	writes := 0
	for _, row := range rows {
		e, err := ledger.DecodeEntry(row.Entry)
		if err != nil {
			f.t.Fatal(err)
		}
		switch {
		case e.Outcome != "success" && e.Outcome != "no-change":
		case e.Action == "create", e.Action == "update", e.Action == "delete":
			writes++
		}
	}
	b.WriteString("ledger writes " + strconv.Itoa(writes))
	return b.String()
}

// unknownErr is what reading an id that never existed answers.
func (f *fixture) unknownErr(c records.Caller) error {
	f.t.Helper()
	_, err := f.svc.Read(context.Background(), c, "Observation", "no-such-id")
	if !errors.Is(err, records.ErrNotFound) {
		f.t.Fatalf("unknown id: %v", err)
	}
	return err
}

// like fails unless err answers as unknown does: package api maps records
// errors to a status and a body by their sentinels alone, so err must be
// ErrNotFound and no other sentinel, as unknown is.
func like(t *testing.T, what string, err, unknown error) {
	t.Helper()
	if sentinels(err) != sentinels(unknown) || sentinels(err) != "not-found " {
		t.Errorf("%s: %v (%s), want the unknown-id answer %v (%s)", what, err, sentinels(err), unknown, sentinels(unknown))
	}
}

func sentinels(err error) string {
	var b strings.Builder
	for _, s := range []struct {
		name string
		err  error
	}{
		{"not-found", records.ErrNotFound}, {"gone", records.ErrGone}, {"forbidden", records.ErrForbidden},
		{"precondition", records.ErrPrecondition}, {"conflict", records.ErrConflict}, {"invalid", records.ErrInvalid},
		{"unavailable", records.ErrUnavailable}, {"too-costly", records.ErrTooCostly},
	} {
		if errors.Is(err, s.err) {
			b.WriteString(s.name + " ")
		}
	}
	return b.String()
}

// A1, A5: reads of B's data, and of shared data, look like unknown ids.
func TestCompartmentReads(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a := caller(t, patA, "patient/*.rs")
	unknown := f.unknownErr(a)

	_, err := f.svc.Read(ctx, a, "Observation", f.obsB)
	like(t, "read B's Observation", err, unknown)
	_, err = f.svc.Read(ctx, a, "Observation", f.obsBDeleted)
	like(t, "read B's deleted Observation", err, unknown)
	_, err = f.svc.Read(ctx, a, "Patient", patB)
	like(t, "read Patient B", err, unknown)
	_, err = f.svc.Read(ctx, a, "Organization", f.org)
	like(t, "read a shared Organization", err, unknown)
	_, err = f.svc.VRead(ctx, a, "Observation", f.obsB, 1)
	like(t, "vread B's Observation", err, unknown)
	_, err = f.svc.VRead(ctx, a, "Observation", f.obsBDeleted, 2)
	like(t, "vread B's deletion", err, unknown)
	_, err = f.svc.History(ctx, a, records.HistoryRequest{Type: "Observation", ID: f.obsB})
	like(t, "history of B's Observation", err, unknown)
	_, err = f.svc.History(ctx, a, records.HistoryRequest{Type: "Observation", ID: f.obsBDeleted})
	like(t, "history of B's deleted Observation", err, unknown)

	// Each refusal of something that exists names, for the audit entry
	// only, the patient whose data it is (H1); a shared resource and an
	// unknown patient name no one. The error text never names anyone.
	named := func(what string, err error, want string) {
		t.Helper()
		like(t, what, err, unknown)
		var he *records.HiddenError
		if got := errors.As(err, &he); got != (want != "") || (got && he.Compartment != want) {
			t.Errorf("%s: %v names compartment %+v, want %q", what, err, he, want)
		}
		if strings.Contains(err.Error(), patB) {
			t.Errorf("%s: the error text names the patient", what)
		}
	}
	none := func(records.Entry) error { return nil }
	_, err = f.svc.Read(ctx, a, "Observation", f.obsB)
	named("read B's Observation", err, patB)
	_, err = f.svc.VRead(ctx, a, "Observation", f.obsB, 1)
	named("vread B's Observation", err, patB)
	_, err = f.svc.History(ctx, a, records.HistoryRequest{Type: "Observation", ID: f.obsB})
	named("history of B's Observation", err, patB)
	named("$everything of B", f.svc.Everything(ctx, a, patB, none), patB)
	named("$everything of an unknown patient", f.svc.Everything(ctx, a, "no-such-patient", none), "")
	_, err = f.svc.Read(ctx, a, "Organization", f.org)
	if he := (*records.HiddenError)(nil); errors.As(err, &he) && he.Compartment != "" {
		t.Errorf("a shared resource names compartment %q", he.Compartment)
	}

	// A's own data.
	for _, ref := range []string{"Observation/" + f.obsA, "Patient/" + patA, "Observation/" + f.obsAPerformsB} {
		typ, id, _ := strings.Cut(ref, "/")
		e, err := f.svc.Read(ctx, a, typ, id)
		if err != nil || e.Compartment != patA || len(e.Body) == 0 {
			t.Errorf("read own %s: %+v, %v", typ, e.Compartment, err)
		}
	}
	if _, err := f.svc.VRead(ctx, a, "Observation", f.obsA, 1); err != nil {
		t.Errorf("vread own: %v", err)
	}
	h, err := f.svc.History(ctx, a, records.HistoryRequest{Type: "Observation", ID: f.obsA})
	if err != nil || h.Total != 1 || len(h.Entries) != 1 {
		t.Errorf("own instance history: %+v, %v", h, err)
	}

	// Type and system history cannot be narrowed: refused.
	for _, typ := range []string{"Observation", ""} {
		if _, err := f.svc.History(ctx, caller(t, patA, "patient/*.rs"), records.HistoryRequest{Type: typ}); !errors.Is(err, records.ErrForbidden) {
			t.Errorf("history of %q: %v, want ErrForbidden", typ, err)
		}
	}
	// The ledger's AuditEvent view has no compartment filter: refused.
	if _, err := f.svc.AuditEvents(ctx, a, url.Values{"patient": {patA}}); !errors.Is(err, records.ErrForbidden) {
		t.Errorf("AuditEvent search: %v, want ErrForbidden", err)
	}
	if _, err := f.svc.AuditEvent(ctx, a, "0"); !errors.Is(err, records.ErrForbidden) {
		t.Errorf("AuditEvent read: %v, want ErrForbidden", err)
	}

	// A patient/ scope without a launch patient reads nothing.
	if _, err := f.svc.Read(ctx, caller(t, "", "patient/*.rs"), "Observation", f.obsA); !errors.Is(err, records.ErrForbidden) {
		t.Errorf("no launch patient: %v, want ErrForbidden", err)
	}
	// user/ scopes reach the practitioner's related patients, and only them.
	if _, err := f.svc.Read(ctx, caller(t, patA, "user/*.cruds"), "Observation", f.obsA); err != nil {
		t.Errorf("user scope on a related patient: %v", err)
	}
	if _, err := f.svc.Read(ctx, caller(t, patA, "user/*.cruds"), "Observation", f.obsB); !errors.Is(err, records.ErrNotFound) {
		t.Errorf("user scope on an unrelated patient: %v, want ErrNotFound", err)
	}
	// The system caller still sees B's data.
	if _, err := f.svc.Read(ctx, f.sys, "Observation", f.obsB); err != nil {
		t.Errorf("system read: %v", err)
	}
}

// A resource that moved between compartments: each version is visible
// only if sealed in A's, and its history only if every version is.
func TestCompartmentMovedResource(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a := caller(t, patA, "patient/*.rs")
	unknown := f.unknownErr(a)
	id := f.obsB
	f.put("Observation", id, strings.Replace(observation(patA, "b-1", ""), `{"resourceType":"Observation",`, `{"resourceType":"Observation","id":"`+id+`",`, 1))

	if e, err := f.svc.Read(ctx, a, "Observation", id); err != nil || e.Version != 2 {
		t.Fatalf("read moved-in version: %+v, %v", e, err)
	}
	if _, err := f.svc.VRead(ctx, a, "Observation", id, 2); err != nil {
		t.Errorf("vread A's version: %v", err)
	}
	_, err := f.svc.VRead(ctx, a, "Observation", id, 1)
	like(t, "vread B's earlier version", err, unknown)
	_, err = f.svc.History(ctx, a, records.HistoryRequest{Type: "Observation", ID: id})
	like(t, "history holding a B version", err, unknown)
	// A page of A's version alone would still count B's in its total.
	_, err = f.svc.History(ctx, a, records.HistoryRequest{Type: "Observation", ID: id, Count: 1})
	like(t, "history page holding only A's version", err, unknown)
}

// A2, A3: searches, totals, includes and revincludes see only A's
// compartment.
func TestCompartmentSearch(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a := caller(t, patA, "patient/*.rs")
	ownObs := []string{f.obsA, f.obsAPerformsB}

	tests := []struct {
		name     string
		typ      string
		query    string
		matches  []string // "Type/id" expected, in any order
		included []string
	}{
		{"no filter", "Observation", "", refs("Observation", ownObs...), nil},
		{"patient=B", "Observation", "patient=" + patB, nil, nil},
		{"subject=Patient/B", "Observation", "subject=Patient/" + patB, nil, nil},
		{"performer=Patient/A", "Observation", "performer=Patient/" + patA, nil, nil},
		{"patient=A", "Observation", "patient=" + patA, refs("Observation", ownObs...), nil},
		{"B's identifier", "Observation", "identifier=urn:test|b-1", nil, nil},
		{"_id of B's", "Observation", "_id=" + f.obsB, nil, nil},
		{"Patients", "Patient", "", []string{"Patient/" + patA}, nil},
		{"Patient B", "Patient", "_id=" + patB, nil, nil},
		{"Organizations are shared", "Organization", "", nil, nil},
		{"_include performer aimed at B", "Observation", "_include=Observation:performer", refs("Observation", ownObs...), nil},
		{"_include subject", "Observation", "_include=Observation:subject", refs("Observation", ownObs...), []string{"Patient/" + patA}},
		{"_revinclude performer from B", "Patient", "_revinclude=Observation:performer", []string{"Patient/" + patA}, nil},
		{"_revinclude subject", "Patient", "_revinclude=Observation:subject", []string{"Patient/" + patA}, refs("Observation", ownObs...)},
		{"_revinclude on Patient B", "Patient", "_id=" + patB + "&_revinclude=Observation:subject", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			params, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			params.Set("_total", "accurate")
			res, err := f.svc.Search(ctx, a, tt.typ, params)
			if err != nil {
				t.Fatal(err)
			}
			if got := locations(res.Matches); !sameSet(got, tt.matches) {
				t.Errorf("matches %v, want %v", got, tt.matches)
			}
			if got := locations(res.Included); !sameSet(got, tt.included) {
				t.Errorf("included %v, want %v", got, tt.included)
			}
			if !res.HasTotal || res.Total != len(tt.matches) {
				t.Errorf("total %d (has %v), want %d", res.Total, res.HasTotal, len(tt.matches))
			}
			for _, e := range append(res.Matches, res.Included...) {
				if e.Compartment != patA {
					t.Errorf("%s/%s from compartment %q", e.Type, e.ID, e.Compartment)
				}
			}
		})
	}

	// Paging counts only A's: one per page, two pages, no third.
	res, err := f.svc.Search(ctx, a, "Observation", url.Values{"_count": {"1"}, "_total": {"accurate"}})
	if err != nil || res.Total != 2 || len(res.Matches) != 1 || !res.More {
		t.Errorf("first page: total %d, %d matches, more %v, %v", res.Total, len(res.Matches), res.More, err)
	}
	res, err = f.svc.Search(ctx, a, "Observation", url.Values{"_count": {"1"}, "_offset": {"1"}})
	if err != nil || len(res.Matches) != 1 || res.More {
		t.Errorf("second page: %d matches, more %v, %v", len(res.Matches), res.More, err)
	}

	// The same searches by the system caller do see B: the fixture holds
	// what the narrowing hides.
	res, err = f.svc.Search(ctx, f.sys, "Patient", url.Values{"_revinclude": {"Observation:performer"}})
	if err != nil || !slices.Contains(locations(res.Included), "Observation/"+f.obsBPerformsA) {
		t.Errorf("system revinclude: %v, %v", locations(res.Included), err)
	}
	res, err = f.svc.Search(ctx, f.sys, "Observation", url.Values{"_include": {"Observation:performer"}, "_id": {f.obsAPerformsB}})
	if err != nil || !slices.Contains(locations(res.Included), "Patient/"+patB) {
		t.Errorf("system include: %v, %v", locations(res.Included), err)
	}
}

// $everything is only for the launch patient.
func TestCompartmentEverything(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a := caller(t, patA, "patient/*.cruds")
	unknownPatient := f.svc.Everything(ctx, a, "no-such-patient", func(records.Entry) error { return nil })
	if !errors.Is(unknownPatient, records.ErrNotFound) {
		t.Fatalf("unknown patient: %v", unknownPatient)
	}
	emitted := 0
	err := f.svc.Everything(ctx, a, patB, func(records.Entry) error { emitted++; return nil })
	like(t, "$everything on B", err, unknownPatient)
	if emitted != 0 {
		t.Errorf("$everything on B emitted %d resources", emitted)
	}
	// A token that may read any Patient but search other types only
	// through a patient/ scope gets B's Patient, which it may read anyway,
	// and nothing else of B's: $everything is a read, never more.
	wide := serviceFor(t, patA, "system/Patient.r", "patient/*.cruds")
	var wideTypes []string
	err = f.svc.Everything(ctx, wide, patB, func(e records.Entry) error { wideTypes = append(wideTypes, e.Type); return nil })
	if err != nil || !slices.Equal(wideTypes, []string{"Patient"}) {
		t.Errorf("$everything on B with a system Patient read: %v, %v", wideTypes, err)
	}
	// A token whose $everything is unrestricted but whose Observation
	// search is compartment-bound gets B's Patient, and none of B's
	// Observations.
	mixed := serviceFor(t, patA, "system/Patient.cruds", "patient/Observation.rs")
	var types []string
	err = f.svc.Everything(ctx, mixed, patB, func(e records.Entry) error { types = append(types, e.Type); return nil })
	if err != nil || !slices.Equal(types, []string{"Patient"}) {
		t.Errorf("$everything on B with a patient-bound Observation search: %v, %v", types, err)
	}
	var got []string
	err = f.svc.Everything(ctx, a, patA, func(e records.Entry) error {
		got = append(got, e.Type+"/"+e.ID)
		if e.Compartment != patA {
			t.Errorf("$everything on A emitted %s/%s of compartment %q", e.Type, e.ID, e.Compartment)
		}
		return nil
	})
	want := append([]string{"Patient/" + patA}, refs("Observation", f.obsA, f.obsAPerformsB)...)
	if err != nil || !sameSet(got, want) {
		t.Errorf("$everything on A: %v, %v; want %v", got, err, want)
	}
}

// A4: writes outside A's compartment are refused and change nothing.
func TestCompartmentWrites(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a := caller(t, patA, "patient/*.cruds")
	withID := func(body, id string) *fhir.Resource {
		return parse(t, strings.Replace(body, `{"resourceType":"`, `{"id":"`+id+`","resourceType":"`, 1))
	}
	refused := []struct {
		name  string
		write func() error
	}{
		{"create with subject B", func() error {
			_, err := f.svc.Create(ctx, a, parse(t, observation(patB, "x", "")))
			return err
		}},
		{"create naming B as performer", func() error {
			_, err := f.svc.Create(ctx, a, parse(t, observation(patA, "x", patB)))
			return err
		}},
		{"create a shared Organization", func() error {
			_, err := f.svc.Create(ctx, a, parse(t, `{"resourceType":"Organization","name":"x"}`))
			return err
		}},
		{"create another Patient", func() error {
			_, err := f.svc.Create(ctx, a, parse(t, `{"resourceType":"Patient","active":true}`))
			return err
		}},
		{"update own Observation to subject B", func() error {
			_, _, err := f.svc.Update(ctx, a, "Observation", f.obsA, withID(observation(patB, "a-1", ""), f.obsA), 0)
			return err
		}},
		{"update B's Observation to subject A", func() error {
			_, _, err := f.svc.Update(ctx, a, "Observation", f.obsB, withID(observation(patA, "b-1", ""), f.obsB), 0)
			return err
		}},
		{"update B's deleted Observation to subject A", func() error {
			_, _, err := f.svc.Update(ctx, a, "Observation", f.obsBDeleted, withID(observation(patA, "b-2", ""), f.obsBDeleted), 0)
			return err
		}},
		{"update with subject B at a new id", func() error {
			_, _, err := f.svc.Update(ctx, a, "Observation", "fresh-id", withID(observation(patB, "n", ""), "fresh-id"), 0)
			return err
		}},
		{"update creating with subject B, create patient-bound", func() error {
			c := caller(t, patA, "patient/Observation.c", "system/Observation.u")
			_, _, err := f.svc.Update(ctx, c, "Observation", "fresh-id", withID(observation(patB, "n", ""), "fresh-id"), 0)
			return err
		}},
		{"update Patient B", func() error {
			_, _, err := f.svc.Update(ctx, a, "Patient", patB, parse(t, `{"resourceType":"Patient","id":"`+patB+`","active":false}`), 0)
			return err
		}},
		{"update the shared Organization", func() error {
			_, _, err := f.svc.Update(ctx, a, "Organization", f.org, withID(`{"resourceType":"Organization","name":"y"}`, f.org), 0)
			return err
		}},
		{"delete B's Observation", func() error {
			_, err := f.svc.Delete(ctx, a, "Observation", f.obsB)
			return err
		}},
		{"delete the shared Organization", func() error {
			_, err := f.svc.Delete(ctx, a, "Organization", f.org)
			return err
		}},
		{"conditional update with subject B", func() error {
			_, _, err := f.svc.UpdateWhere(ctx, a, "Observation", "identifier=urn:test|a-1", parse(t, observation(patB, "a-1", "")))
			return err
		}},
		{"conditional create with subject B", func() error {
			_, _, err := f.svc.CreateIfNoneExist(ctx, a, parse(t, observation(patB, "new", "")), "identifier=urn:test|new")
			return err
		}},
		{"transaction with a subject B entry", func() error {
			_, err := f.svc.Transaction(ctx, a, bundle(t, "transaction",
				entry("POST", "Observation", observation(patA, "t-1", "")),
				entry("POST", "Observation", observation(patB, "t-2", ""))))
			return err
		}},
		{"transaction updating B's Observation", func() error {
			_, err := f.svc.Transaction(ctx, a, bundle(t, "transaction",
				entry("PUT", "Observation/"+f.obsB, `{"id":"`+f.obsB+`",`+observation(patA, "b-1", "")[1:])))
			return err
		}},
		{"transaction deleting B's Observation", func() error {
			_, err := f.svc.Transaction(ctx, a, bundle(t, "transaction", entry("DELETE", "Observation/"+f.obsB, "")))
			return err
		}},
		{"transaction conditional update with subject B", func() error {
			_, err := f.svc.Transaction(ctx, a, bundle(t, "transaction",
				entry("PUT", "Observation?identifier=urn:test|a-1", observation(patB, "a-1", ""))))
			return err
		}},
		{"batch entry with subject B", func() error {
			res, err := f.svc.Batch(ctx, a, bundle(t, "batch", entry("POST", "Observation", observation(patB, "t-3", ""))))
			if err != nil {
				return err
			}
			return res[0].Err
		}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			before := f.state()
			// A delete outside the caller's reach answers as a delete of an
			// unknown id does (not found); other writes, and deletes of
			// shared resources (which the caller reads), are refused.
			want := records.ErrForbidden
			if (strings.HasPrefix(tt.name, "delete") || strings.Contains(tt.name, "deleting")) && !strings.Contains(tt.name, "shared") {
				want = records.ErrHidden
			}
			if err := tt.write(); !errors.Is(err, want) {
				t.Errorf("%v, want %v", err, want)
			}
			if after := f.state(); after != before {
				t.Errorf("the refused write changed the store:\nbefore\n%s\nafter\n%s", before, after)
			}
		})
	}

	// Conditional interactions match only within A's compartment: criteria
	// that select B's resource find nothing, so A's resource is created
	// instead, and B's is neither returned nor touched.
	before, err := f.svc.Read(ctx, f.sys, "Observation", f.obsB)
	if err != nil {
		t.Fatal(err)
	}
	e, created, err := f.svc.CreateIfNoneExist(ctx, a, parse(t, observation(patA, "b-1", "")), "identifier=urn:test|b-1")
	if err != nil || !created || e.ID == f.obsB || e.Compartment != patA {
		t.Errorf("conditional create matching B's: %s created=%v compartment %q, %v", e.ID, created, e.Compartment, err)
	}
	e, created, err = f.svc.UpdateWhere(ctx, a, "Observation", "_id="+f.obsB, parse(t, observation(patA, "c-1", "")))
	if err != nil || !created || e.ID == f.obsB || e.Compartment != patA {
		t.Errorf("conditional update matching B's: %s created=%v compartment %q, %v", e.ID, created, e.Compartment, err)
	}
	res, err := f.svc.Transaction(ctx, a, bundle(t, "transaction",
		entry("PUT", "Observation?_id="+f.obsB, observation(patA, "c-2", "")),
		ifNoneExist(entry("POST", "Observation", observation(patA, "c-3", "")), "identifier=urn:test|b-3")))
	if err != nil {
		t.Fatalf("transaction with criteria matching B's: %v", err)
	}
	for i, r := range res {
		if r.Entry.ID == f.obsB || r.Entry.Compartment != patA || r.Status != 201 {
			t.Errorf("transaction entry %d with criteria matching B's: %d %s in %q", i, r.Status, r.Entry.ID, r.Entry.Compartment)
		}
	}
	after, err := f.svc.Read(ctx, f.sys, "Observation", f.obsB)
	if err != nil || after.Version != before.Version {
		t.Errorf("B's Observation changed: version %d -> %d, %v", before.Version, after.Version, err)
	}

	// A's own writes work.
	e, err = f.svc.Create(ctx, a, parse(t, observation(patA, "own", "")))
	if err != nil || e.Compartment != patA {
		t.Fatalf("create own: %+v, %v", e.Compartment, err)
	}
	if _, _, err := f.svc.Update(ctx, a, "Observation", e.ID, withID(observation(patA, "own-2", ""), e.ID), 0); err != nil {
		t.Errorf("update own: %v", err)
	}
	if _, _, err := f.svc.Update(ctx, a, "Patient", patA, parse(t, `{"resourceType":"Patient","id":"`+patA+`","active":false}`), 0); err != nil {
		t.Errorf("update own Patient: %v", err)
	}
	res, err = f.svc.Transaction(ctx, a, bundle(t, "transaction", entry("POST", "Observation", observation(patA, "t-4", ""))))
	if err != nil || len(res) != 1 || res[0].Entry.Compartment != patA {
		t.Errorf("own transaction: %+v, %v", res, err)
	}
	if _, err := f.svc.Delete(ctx, a, "Observation", e.ID); err != nil {
		t.Errorf("delete own: %v", err)
	}
}

type bundleEntry struct{ method, url, body, ifNoneExist string }

func entry(method, url, body string) bundleEntry {
	return bundleEntry{method: method, url: url, body: body}
}

func ifNoneExist(e bundleEntry, criteria string) bundleEntry {
	e.ifNoneExist = criteria
	return e
}

func bundle(t *testing.T, typ string, entries ...bundleEntry) *fhir.Bundle {
	t.Helper()
	var parts []string
	for _, e := range entries {
		s := `{"request":{"method":"` + e.method + `","url":"` + e.url + `"`
		if e.ifNoneExist != "" {
			s += `,"ifNoneExist":"` + e.ifNoneExist + `"`
		}
		s += `}`
		if e.body != "" {
			s += `,"resource":` + e.body
		}
		parts = append(parts, s+`}`)
	}
	b, err := fhir.ParseBundle(parse(t, `{"resourceType":"Bundle","type":"`+typ+`","entry":[`+strings.Join(parts, ",")+`]}`))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func refs(typ string, ids ...string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = typ + "/" + id
	}
	return out
}

func locations(es []records.Entry) []string {
	out := make([]string, 0, len(es))
	for _, e := range es {
		out = append(out, e.Type+"/"+e.ID)
	}
	return out
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestCompartmentUnknownLooksLikeHidden: for a caller bound to a patient, an
// id outside its reach and an id that does not exist answer alike on
// delete (not found) and on update (refused): a write tells nothing about
// which ids are taken (invariant 10).
func TestCompartmentUnknownLooksLikeHidden(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a := caller(t, patA, "patient/*.cruds")
	_, errHidden := f.svc.Delete(ctx, a, "Observation", f.obsB)
	_, errUnknown := f.svc.Delete(ctx, a, "Observation", "no-such-observation")
	if !errors.Is(errHidden, records.ErrNotFound) || !errors.Is(errUnknown, records.ErrNotFound) {
		t.Errorf("delete hidden: %v; delete unknown: %v; want both not found", errHidden, errUnknown)
	}
	_, _, errHidden = f.svc.Update(ctx, a, "Observation", f.obsB, parse(t, `{"id":"`+f.obsB+`",`+observation(patA, "x-1", "")[1:]), 0)
	_, _, errUnknown = f.svc.Update(ctx, a, "Observation", "no-such-observation", parse(t, `{"id":"no-such-observation",`+observation(patA, "x-2", "")[1:]), 0)
	if !errors.Is(errHidden, records.ErrForbidden) || !errors.Is(errUnknown, records.ErrForbidden) {
		t.Errorf("update hidden: %v; update unknown: %v; want both forbidden", errHidden, errUnknown)
	}
}
