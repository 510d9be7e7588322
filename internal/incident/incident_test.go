package incident

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/csv"
	"errors"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/postgres"
	"github.com/wardhealth/ward/internal/store/sqlite"
	"github.com/wardhealth/ward/internal/store/storetest"
)

var t0 = time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)

func newSigner(t testing.TB) *ledger.Signer {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ledger.NewSigner("ward.test/ledger", key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type backend struct {
	name string
	open func(t testing.TB) (store.Store, *sql.DB, func(string) string)
}

func backends() []backend {
	return []backend{
		{"sqlite", func(t testing.TB) (store.Store, *sql.DB, func(string) string) {
			path := filepath.Join(t.TempDir(), "ward.db")
			st, err := sqlite.Open(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { raw.Close() })
			return st, raw, func(s string) string { return s }
		}},
		{"postgres", func(t testing.TB) (store.Store, *sql.DB, func(string) string) {
			sc := storetest.FreshSchema(t, "ward_incident_")
			st, err := postgres.Open(context.Background(), sc.URL)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st, sc.Admin, func(s string) string { return sc.Name + "." + s }
		}},
	}
}

// expected is what a report must hold, computed by a brute-force scan of
// the whole ledger, independently of the actor index and of fill.
type expected struct {
	disclosures, attempts, other []int64
	patients                     map[string]*Patient
}

func bruteForce(t *testing.T, st store.Store, q Query) expected {
	t.Helper()
	ctx := t.Context()
	size, err := st.LedgerSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	x := expected{patients: map[string]*Patient{}}
	for start := int64(0); start < size; start += 5000 {
		rows, err := st.LedgerEntries(ctx, start, min(size, start+5000))
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range rows {
			e, err := ledger.DecodeEntry(row.Entry)
			if err != nil {
				t.Fatal(err)
			}
			if (q.Actor != "" && e.Actor != q.Actor) || (q.Client != "" && e.Client != q.Client) ||
				e.Time.Before(q.From) || !e.Time.Before(q.To) {
				continue
			}
			data := map[string]bool{"read": true, "vread": true, "search": true, "history": true, "everything": true,
				"create": true, "update": true, "delete": true}[e.Action]
			switch {
			case !data:
				x.other = append(x.other, row.Index)
				continue
			case e.Outcome != "success":
				x.attempts = append(x.attempts, row.Index)
				continue
			}
			x.disclosures = append(x.disclosures, row.Index)
			named := map[string]bool{e.Patient: true}
			for _, id := range e.Patients {
				named[id] = true
			}
			delete(named, "")
			for id := range named {
				p := x.patients[id]
				if p == nil {
					p = &Patient{ID: id, First: e.Time, Last: e.Time}
					x.patients[id] = p
				}
				p.First, p.Last = minTime(p.First, e.Time), maxTime(p.Last, e.Time)
				p.Accesses++
			}
		}
	}
	return x
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func indexes(l []Access) []int64 {
	var out []int64
	for _, a := range l {
		out = append(out, a.Index)
	}
	return out
}

// sameEntries reports whether a brute-force list (in index order) and a
// report list hold the same entries; the report orders by time, which
// the generator keeps in index order.
func sameEntries(got []Access, want []int64) bool { return slices.Equal(indexes(got), want) }

// The report of a synthetic ledger of 20,000 entries matches a
// brute-force scan of every entry: the same disclosures, attempts and
// other activity, the same affected patients with their first and last
// access and count; every proof verifies with the public key alone, also
// after a JSON round trip. By actor and by client, on a window inside
// the ledger, on SQLite and PostgreSQL.
func TestScopeMatchesBruteForce(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			st, _, _ := b.open(t)
			signer := newSigner(t)
			cfg := genConfig{Entries: 20000, TargetEntries: 4500, Target: "mallory", Start: t0, Span: 30 * 24 * time.Hour, Batch: 5000, Seed: 7}
			if err := generate(t.Context(), st, signer, cfg, nil); err != nil {
				t.Fatal(err)
			}
			for _, q := range []Query{
				{Actor: "mallory", From: t0, To: t0.Add(30 * 24 * time.Hour)},
				{Actor: "mallory", From: t0.Add(3 * 24 * time.Hour), To: t0.Add(9*24*time.Hour + time.Hour)},
				{Client: "app-3", From: t0.Add(24 * time.Hour), To: t0.Add(4 * 24 * time.Hour)},
			} {
				pages := 0
				q.Progress = func(int) { pages++ }
				r, err := Scope(t.Context(), st, signer.Verifier(), q, t0.Add(40*24*time.Hour))
				if err != nil {
					t.Fatal(err)
				}
				x := bruteForce(t, st, q)
				if len(x.disclosures) < 10 || len(x.attempts) < 2 || len(x.other) < 2 {
					t.Fatalf("%+v: the generator gave too few entries to test with: %d %d %d", q, len(x.disclosures), len(x.attempts), len(x.other))
				}
				if !sameEntries(r.Disclosures, x.disclosures) || !sameEntries(r.Attempts, x.attempts) || !sameEntries(r.Other, x.other) {
					t.Fatalf("%+v: report lists %d/%d/%d entries, brute force %d/%d/%d", q,
						len(r.Disclosures), len(r.Attempts), len(r.Other), len(x.disclosures), len(x.attempts), len(x.other))
				}
				if len(r.Patients) != len(x.patients) {
					t.Fatalf("%+v: %d affected patients, brute force %d", q, len(r.Patients), len(x.patients))
				}
				for _, p := range r.Patients {
					w := x.patients[p.ID]
					if w == nil || !p.First.Equal(w.First) || !p.Last.Equal(w.Last) || p.Accesses != w.Accesses {
						t.Fatalf("patient %s: %+v, brute force %+v", p.ID, p, w)
					}
				}
				if r.Uncovered != 0 || pages == 0 {
					t.Errorf("uncovered %d, progress calls %d", r.Uncovered, pages)
				}
				var buf bytes.Buffer
				if err := r.WriteJSON(&buf); err != nil {
					t.Fatal(err)
				}
				back, err := ReadReport(&buf)
				if err != nil {
					t.Fatal(err)
				}
				v, err := Verify(back, signer.VerifierKey())
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if n := len(x.disclosures) + len(x.attempts) + len(x.other); v.Entries != n || v.Proven != n {
					t.Errorf("Verify: %+v, want %d entries proven", v, n)
				}
			}
		})
	}
}

// scoped builds a small ledger by hand and the report of mallory's
// activity on it.
func scoped(t *testing.T, st store.Store, signer *ledger.Signer) *Report {
	t.Helper()
	ctx := t.Context()
	search := ledger.Entry{Time: t0.Add(2 * time.Minute), Actor: "mallory", Client: "app", Action: "search", ResourceType: "Observation", Outcome: "success"}
	search.SetPatients([]string{"p2", "p1", "p3"})
	entries := []ledger.Entry{
		{Time: t0.Add(time.Minute), Actor: "mallory", Client: "app", Action: "read", ResourceType: "Condition", ResourceID: "c1", Patient: "p1", Outcome: "success"},
		search,
		{Time: t0.Add(3 * time.Minute), Actor: "alice", Client: "app", Action: "read", ResourceType: "Patient", ResourceID: "p9", Patient: "p9", Outcome: "success"},
		{Time: t0.Add(4 * time.Minute), Actor: "mallory", Client: "app", Action: "read", ResourceType: "Patient", ResourceID: "p4", Patient: "p4", Outcome: "denied"},
		{Time: t0.Add(5 * time.Minute), Actor: "mallory", Client: "app", Action: "token", Outcome: "success"},
		{Time: t0.Add(6 * time.Minute), Actor: "mallory", Client: "app", Action: "update", ResourceType: "MedicationRequest", ResourceID: "m1", Version: "2", Patient: "p2", Outcome: "success"},
		{Time: t0.Add(90 * time.Minute), Actor: "mallory", Client: "app", Action: "read", ResourceType: "Patient", ResourceID: "p5", Patient: "p5", Outcome: "success"},
	}
	var recs []audit.Record
	for _, e := range entries {
		rec, err := audit.NewRecord(e)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	if err := store.ReadWrite(ctx, st, func(tx store.Tx) error { return audit.AppendInTx(ctx, tx, recs) }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := audit.Checkpoint(ctx, st, signer); err != nil {
		t.Fatal(err)
	}
	r, err := Scope(ctx, st, signer.Verifier(), Query{Actor: "mallory", From: t0, To: t0.Add(time.Hour), Discovered: t0.Add(2 * time.Hour)}, t0.Add(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The report of a hand-made ledger says exactly what happened: who was
// affected, when, which categories, which deadlines.
func TestScopeReport(t *testing.T) {
	st, _, _ := backends()[0].open(t)
	signer := newSigner(t)
	r := scoped(t, st, signer)
	if got := indexes(r.Disclosures); !slices.Equal(got, []int64{0, 1, 5}) {
		t.Errorf("disclosures %v, want [0 1 5]", got)
	}
	if got := indexes(r.Attempts); !slices.Equal(got, []int64{3}) {
		t.Errorf("attempts %v, want [3]", got)
	}
	if got := indexes(r.Other); !slices.Equal(got, []int64{4}) {
		t.Errorf("other %v, want [4]", got)
	}
	var ids []string
	for _, p := range r.Patients {
		ids = append(ids, p.ID)
	}
	if !slices.Equal(ids, []string{"p1", "p2", "p3"}) {
		t.Errorf("affected patients %v, want p1 p2 p3 (not p4, whose read was denied, nor p9, read by someone else)", ids)
	}
	p1 := r.Patients[0]
	if !p1.First.Equal(t0.Add(time.Minute)) || !p1.Last.Equal(t0.Add(2*time.Minute)) || p1.Accesses != 2 ||
		!slices.Equal(p1.Categories, []string{CategoryConditions, CategoryObservations}) || !slices.Equal(p1.Actions, []string{"read", "search"}) {
		t.Errorf("p1: %+v", p1)
	}
	if p2 := r.Patients[1]; !slices.Equal(p2.Actions, []string{"search", "update"}) || !slices.Contains(p2.Categories, CategoryMedications) {
		t.Errorf("p2: %+v", p2)
	}
	if !slices.Equal(r.Categories, []string{CategoryConditions, CategoryMedications, CategoryObservations}) {
		t.Errorf("categories %v", r.Categories)
	}
	if r.Actions["read"] != 1 || r.Actions["search"] != 1 || r.Actions["update"] != 1 || len(r.Actions) != 3 {
		t.Errorf("actions %v", r.Actions)
	}
	d := r.Deadlines
	if !d.GDPRAuthority.Equal(t0.Add(74*time.Hour)) || !d.HIPAAIndividuals.Equal(t0.Add(2*time.Hour).AddDate(0, 0, 60)) ||
		!d.HIPAASecretary.Equal(time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)) || d.HIPAAMedia {
		t.Errorf("deadlines %+v", d)
	}
	if _, err := Verify(r, signer.VerifierKey()); err != nil {
		t.Fatal(err)
	}
}

// Deadlines: 500 or more individuals bring the Secretary's notice forward
// to the individuals' deadline; more than 500 may need media notice.
func TestDeadlines(t *testing.T) {
	at := time.Date(2025, 11, 20, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		n         int
		secretary time.Time
		media     bool
	}{
		{0, time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), false},
		{499, time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), false},
		{500, at.AddDate(0, 0, 60), false},
		{501, at.AddDate(0, 0, 60), true},
	} {
		d := deadlines(at, c.n)
		if !d.HIPAASecretary.Equal(c.secretary) || d.HIPAAMedia != c.media || !d.HIPAAIndividuals.Equal(at.AddDate(0, 0, 60)) || !d.GDPRAuthority.Equal(at.Add(72*time.Hour)) {
			t.Errorf("%d individuals: %+v", c.n, d)
		}
	}
}

// Every change to a report is rejected by Verify: a flipped bit in any
// proof hash, an edited entry, a list or summary that does not match the
// entries, another key, another checkpoint.
func TestVerifyRejectsTampering(t *testing.T) {
	st, _, _ := backends()[0].open(t)
	signer := newSigner(t)
	good := scoped(t, st, signer)
	var buf bytes.Buffer
	if err := good.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	fresh := func() *Report {
		r, err := ReadReport(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if _, err := Verify(fresh(), signer.VerifierKey()); err != nil {
		t.Fatal(err)
	}
	reject := func(name string, r *Report, vkey string) {
		t.Helper()
		if _, err := Verify(r, vkey); !errors.Is(err, ErrRejected) {
			t.Errorf("%s: %v, want ErrRejected", name, err)
		}
	}
	flips := 0
	for i := range good.Disclosures {
		for k := range good.Disclosures[i].Proof {
			for bit := range 256 {
				r := fresh()
				r.Disclosures[i].Proof[k][bit/8] ^= 1 << (bit % 8)
				reject("flipped proof bit", r, signer.VerifierKey())
				flips++
			}
		}
	}
	if flips == 0 {
		t.Fatal("no proof to tamper with")
	}
	other := newSigner(t)
	for _, c := range []struct {
		name string
		edit func(r *Report)
		vkey string
	}{
		{"another entry text", func(r *Report) {
			r.Disclosures[0].Entry = strings.Replace(r.Disclosures[0].Entry, `"c1"`, `"c2"`, 1)
			r.Disclosures[0].ResourceID = "c2"
		}, ""},
		{"a field that the entry does not say", func(r *Report) { r.Disclosures[0].ResourceID = "c2" }, ""},
		{"a disclosure left out", func(r *Report) { r.Disclosures = r.Disclosures[1:] }, ""},
		{"a disclosure listed twice", func(r *Report) { r.Disclosures = append(r.Disclosures, r.Disclosures[0]) }, ""},
		{"a disclosure called an attempt", func(r *Report) {
			r.Attempts = append(r.Attempts, r.Disclosures[2])
			r.Disclosures = r.Disclosures[:2]
		}, ""},
		{"a patient left out", func(r *Report) { r.Patients = r.Patients[1:] }, ""},
		{"a patient added", func(r *Report) { r.Patients = append(r.Patients, Patient{ID: "p7"}) }, ""},
		{"an access count", func(r *Report) { r.Patients[0].Accesses++ }, ""},
		{"a category", func(r *Report) { r.Categories = r.Categories[1:] }, ""},
		{"a deadline", func(r *Report) { r.Deadlines.GDPRAuthority = r.Deadlines.GDPRAuthority.Add(time.Hour) }, ""},
		{"the window, leaving out an entry", func(r *Report) { r.To = r.To.Add(-55 * time.Minute) }, ""},
		{"the actor", func(r *Report) { r.Actor = "alice" }, ""},
		{"a proof dropped", func(r *Report) { r.Disclosures[1].Proof = nil }, ""},
		{"the checkpoint size", func(r *Report) { r.CheckpointSize++ }, ""},
		{"the checkpoint", func(r *Report) { r.Checkpoint = strings.Replace(r.Checkpoint, "\n7\n", "\n8\n", 1) }, ""},
		{"another key", func(*Report) {}, other.VerifierKey()},
		{"an unknown format", func(r *Report) { r.Format = "ward-incident-scope/0" }, ""},
	} {
		r := fresh()
		c.edit(r)
		vkey := c.vkey
		if vkey == "" {
			vkey = signer.VerifierKey()
		}
		reject(c.name, r, vkey)
	}
	if _, err := ReadReport(strings.NewReader(`{"format":"ward-incident-scope/1","extra":1}`)); err == nil {
		t.Error("ReadReport accepted an unknown field")
	}
}

// Entries after the latest checkpoint are listed, marked unproven and
// counted; the report still verifies, saying how many are unproven.
func TestScopeUncovered(t *testing.T) {
	st, _, _ := backends()[0].open(t)
	signer := newSigner(t)
	scoped(t, st, signer)
	ctx := t.Context()
	rec, err := audit.NewRecord(ledger.Entry{Time: t0.Add(10 * time.Minute), Actor: "mallory", Client: "app", Action: "read", ResourceType: "Patient", ResourceID: "p6", Patient: "p6", Outcome: "success"})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.ReadWrite(ctx, st, func(tx store.Tx) error { return audit.AppendInTx(ctx, tx, []audit.Record{rec}) }); err != nil {
		t.Fatal(err)
	}
	r, err := Scope(ctx, st, signer.Verifier(), Query{Actor: "mallory", From: t0, To: t0.Add(time.Hour)}, t0.Add(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	last := r.Disclosures[len(r.Disclosures)-1]
	if r.Uncovered != 1 || last.Index != 7 || len(last.Proof) != 0 || r.Patients[len(r.Patients)-1].ID != "p6" {
		t.Fatalf("uncovered %d, last disclosure %d with %d proof hashes", r.Uncovered, last.Index, len(last.Proof))
	}
	v, err := Verify(r, signer.VerifierKey())
	if err != nil || v.Uncovered != 1 || v.Proven != v.Entries-1 {
		t.Fatalf("Verify: %+v, %v", v, err)
	}
	// A signed checkpoint covers it.
	if _, _, err := audit.Checkpoint(ctx, st, signer); err != nil {
		t.Fatal(err)
	}
	if r, err = Scope(ctx, st, signer.Verifier(), Query{Actor: "mallory", From: t0, To: t0.Add(time.Hour)}, t0.Add(3*time.Hour)); err != nil || r.Uncovered != 0 {
		t.Fatalf("after a checkpoint: uncovered %d, %v", r.Uncovered, err)
	}
}

// Scope refuses a ledger that disagrees with itself: an index row that
// files someone else's entry under the actor, a tree hash that does not
// give the signed root, a checkpoint signed by another key; and a query
// that is not one.
func TestScopeRefuses(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			st, raw, table := b.open(t)
			signer := newSigner(t)
			scoped(t, st, signer)
			ctx := t.Context()
			q := Query{Actor: "mallory", From: t0, To: t0.Add(time.Hour)}
			exec := func(s string) {
				t.Helper()
				if _, err := raw.ExecContext(ctx, s); err != nil {
					t.Fatal(err)
				}
			}
			exec(`UPDATE ` + table("ledger_entries") + ` SET actor = 'mallory' WHERE idx = 2`)
			if _, err := Scope(ctx, st, signer.Verifier(), q, t0); !errors.Is(err, ErrTampered) {
				t.Errorf("an index row naming alice's entry: %v, want ErrTampered", err)
			}
			exec(`UPDATE ` + table("ledger_entries") + ` SET actor = 'alice' WHERE idx = 2`)
			if _, err := Scope(ctx, st, signer.Verifier(), q, t0); err != nil {
				t.Fatalf("repaired: %v", err)
			}
			exec(`UPDATE ` + table("ledger_hashes") + ` SET hash = ` + zeroHash(b.name) + ` WHERE idx = 0`)
			if _, err := Scope(ctx, st, signer.Verifier(), q, t0); !errors.Is(err, ErrTampered) {
				t.Errorf("a zeroed tree hash: %v, want ErrTampered", err)
			}
			if _, err := Scope(ctx, st, newSigner(t).Verifier(), q, t0); err == nil {
				t.Error("a checkpoint of another key was accepted")
			}
			for _, bad := range []Query{
				{From: t0, To: t0.Add(time.Hour)},
				{Actor: "a", Client: "b", From: t0, To: t0.Add(time.Hour)},
				{Actor: "a", To: t0},
				{Actor: "a", From: t0, To: t0},
			} {
				if _, err := Scope(ctx, st, signer.Verifier(), bad, t0); err == nil {
					t.Errorf("query %+v accepted", bad)
				}
			}
		})
	}
}

func zeroHash(backend string) string {
	if backend == "postgres" {
		return `'\x` + strings.Repeat("00", 32) + `'::bytea`
	}
	return `zeroblob(32)`
}

// A ledger without a checkpoint has nothing to prove against; a report
// past MaxEntries is refused rather than cut.
func TestScopeLimits(t *testing.T) {
	st, _, _ := backends()[0].open(t)
	signer := newSigner(t)
	q := Query{Actor: "mallory", From: t0, To: t0.Add(time.Hour)}
	if _, err := Scope(t.Context(), st, signer.Verifier(), q, t0); !errors.Is(err, ErrNoCheckpoint) {
		t.Errorf("no checkpoint: %v", err)
	}
	scoped(t, st, signer)
	q.MaxEntries = 4
	if _, err := Scope(t.Context(), st, signer.Verifier(), q, t0); !errors.Is(err, ErrTooLarge) {
		t.Errorf("5 entries, at most 4: %v", err)
	}
	q.MaxEntries = 5
	if _, err := Scope(t.Context(), st, signer.Verifier(), q, t0); err != nil {
		t.Errorf("5 entries, at most 5: %v", err)
	}
}

// The patients CSV has one line per affected patient with ids, dates,
// categories and counts; the accesses CSV one per entry. A value a
// spreadsheet would run as a formula is defused.
func TestCSV(t *testing.T) {
	st, _, _ := backends()[0].open(t)
	r := scoped(t, st, newSigner(t))
	var buf bytes.Buffer
	if err := r.WritePatientsCSV(&buf); err != nil {
		t.Fatal(err)
	}
	lines, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"patient", "first_access", "last_access", "categories", "actions", "accesses"},
		{"p1", "2025-03-01T00:01:00Z", "2025-03-01T00:02:00Z", "conditions and diagnoses; observations and lab results", "read; search", "2"},
	}
	if len(lines) != 4 || !slices.Equal(lines[0], want[0]) || !slices.Equal(lines[1], want[1]) {
		t.Errorf("patients CSV:\n%v", lines)
	}
	buf.Reset()
	r.Other[0].Actor, r.Other[0].Source = "=HYPERLINK(\"x\")", "-1-2"
	if err := r.WriteAccessesCSV(&buf); err != nil {
		t.Fatal(err)
	}
	lines, err = csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 6 || lines[1][0] != "disclosure" || lines[1][1] != "0" || lines[4][0] != "attempt" || lines[5][0] != "other" || lines[1][13] != "true" {
		t.Fatalf("accesses CSV:\n%v", lines)
	}
	if lines[5][10] != `'=HYPERLINK("x")` || lines[5][12] != "-1-2" {
		t.Errorf("formula guard: actor %q, source %q", lines[5][10], lines[5][12])
	}
}

func TestCategoryOf(t *testing.T) {
	for _, c := range []struct{ action, typ, want string }{
		{"read", "Patient", CategoryDemographics},
		{"search", "Observation", CategoryObservations},
		{"read", "DiagnosticReport", CategoryObservations},
		{"update", "MedicationRequest", CategoryMedications},
		{"read", "Condition", CategoryConditions},
		{"read", "Procedure", CategoryProcedures},
		{"read", "Encounter", CategoryEncounters},
		{"read", "DocumentReference", CategoryDocuments},
		{"read", "ImagingStudy", CategoryImaging},
		{"read", "Immunization", CategoryImmunizations},
		{"read", "AllergyIntolerance", CategoryAllergies},
		{"read", "ExplanationOfBenefit", CategoryFinancial},
		{"read", "CarePlan", CategoryCarePlans},
		{"read", "Device", CategoryOther},
		{"search", "", CategoryOther},
		{"everything", "Patient", CategoryWholeRecord},
		{"export", "Group", CategoryWholeRecord},
	} {
		if got := CategoryOf(c.action, c.typ); got != c.want {
			t.Errorf("CategoryOf(%s, %s) = %q, want %q", c.action, c.typ, got, c.want)
		}
	}
}

// ParseQuery reads the URL parameters of an HTTP endpoint strictly.
func TestParseQuery(t *testing.T) {
	q, err := ParseQuery(url.Values{"actor": {"u-1"}, "from": {"2025-03-01"}, "to": {"2025-03-02T12:30:00+02:00"}, "discovered": {"2025-03-05"}})
	if err != nil {
		t.Fatal(err)
	}
	if q.Actor != "u-1" || !q.From.Equal(t0) || !q.To.Equal(t0.Add(34*time.Hour+30*time.Minute)) || !q.Discovered.Equal(t0.Add(96*time.Hour)) || q.To.Location() != time.UTC {
		t.Errorf("ParseQuery: %+v", q)
	}
	for _, bad := range []url.Values{
		{"actor": {"u-1"}, "from": {"2025-03-01"}},
		{"actor": {"u-1", "u-2"}, "from": {"2025-03-01"}, "to": {"2025-03-02"}},
		{"actor": {"u-1"}, "client": {"c"}, "from": {"2025-03-01"}, "to": {"2025-03-02"}},
		{"actor": {"u-1"}, "from": {"last week"}, "to": {"2025-03-02"}},
		{"actor": {"u-1"}, "from": {"2025-03-02"}, "to": {"2025-03-01"}},
		{"actor": {"u-1"}, "from": {"2025-03-01"}, "to": {"2025-03-02"}, "patient": {"p"}},
	} {
		if _, err := ParseQuery(bad); err == nil {
			t.Errorf("ParseQuery(%v) accepted", bad)
		}
	}
}

// Window bounds finer than the store's microseconds are cut to them, so
// that an entry the store finds by its microsecond is in the window by
// its own time too; an entry in a one-entry ledger (an empty proof) is
// proven, not counted as uncovered.
func TestScopeFineBounds(t *testing.T) {
	st, _, _ := backends()[0].open(t)
	signer := newSigner(t)
	ctx := t.Context()
	rec, err := audit.NewRecord(ledger.Entry{Time: t0.Add(1200 * time.Nanosecond), Actor: "mallory", Action: "read", ResourceType: "Patient", ResourceID: "p1", Patient: "p1", Outcome: "success"})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.ReadWrite(ctx, st, func(tx store.Tx) error { return audit.AppendInTx(ctx, tx, []audit.Record{rec}) }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := audit.Checkpoint(ctx, st, signer); err != nil {
		t.Fatal(err)
	}
	r, err := Scope(ctx, st, signer.Verifier(), Query{Actor: "mallory", From: t0.Add(1500 * time.Nanosecond), To: t0.Add(time.Hour)}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Disclosures) != 1 || r.Uncovered != 0 || !r.From.Equal(t0.Add(time.Microsecond)) {
		t.Fatalf("%d disclosures, %d uncovered, from %s", len(r.Disclosures), r.Uncovered, r.From)
	}
	if v, err := Verify(r, signer.VerifierKey()); err != nil || v.Proven != 1 {
		t.Fatalf("Verify: %+v, %v", v, err)
	}
}
